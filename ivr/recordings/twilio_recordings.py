"""Twilio's Recordings list (by CallSid) and recording deletion, over HTTP basic auth.

`GET {IVR_TWILIO_API_URL}/2010-04-01/Accounts/{AccountSid}/Recordings.json?CallSid=CA...` answers
a page `{"recordings": [...], "next_page_uri": ..., "page", "page_size", ...}`; each recording has
`sid`, `call_sid`, `status` (processing, completed, absent, failed, deleted...), `duration` (a
string of seconds), `error_code` (null unless absent) and `uri` (relative to the API, `.json`):
twilio-python's RecordingInstance and Page. `DELETE .../Recordings/{Sid}.json` answers 204.
Credentials: TWILIO_ACCOUNT_SID with an API key and secret, else with TWILIO_AUTH_TOKEN
(https://www.twilio.com/docs/usage/your-request-to-twilio). Credentials are only ever sent to
IVR_TWILIO_API_URL's host: a next_page_uri naming another host is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from ivr.recordings.exceptions import NoCredentials, TwilioApiError
from ivr.recordings.twilio_media import TwilioCredentials

API_VERSION = "2010-04-01"
MAX_PAGES = 20  # a call has a handful of recordings; more pages than this is a broken answer
_RECORDING_SID = re.compile("RE[0-9a-f]{32}")
_CALL_SID = re.compile("CA[0-9a-f]{32}")


@dataclass(frozen=True)
class TwilioRecording:
    """One entry of Twilio's Recordings list."""

    sid: str
    call_sid: str
    status: str
    duration: int | None
    error_code: str | None
    media_url: str  # the recording's URL without extension, as a RecordingUrl is


def _account(credentials: TwilioCredentials, what: str) -> tuple[str, tuple[str, str]]:
    """The account path and basic-auth pair; NoCredentials when none are configured."""
    if not (credentials.account_sid and credentials.username and credentials.password):
        raise NoCredentials(
            "-",
            f"{what}: no Twilio credentials (set TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN,"
            " or TWILIO_API_KEY and TWILIO_API_SECRET)",
        )
    return f"/{API_VERSION}/Accounts/{credentials.account_sid}", (credentials.username, credentials.password)


def check_call_sid(call_sid: str) -> str:
    if _CALL_SID.fullmatch(call_sid) is None:
        raise ValueError(f"{call_sid[:40]!r} is not a CallSid (CA and 32 lower-case hex digits)")
    return call_sid


def _error(what: str, response: httpx.Response) -> TwilioApiError:
    code: int | None = None
    message = response.reason_phrase
    try:
        body = response.json()
        code = int(body.get("code")) if body.get("code") is not None else None
        message = str(body.get("message") or message)
    except (ValueError, AttributeError, TypeError):
        pass
    return TwilioApiError(
        what, f"Twilio answered {response.status_code} ({code}: {message})", response.status_code, code
    )


def _recording(api_url: str, entry: dict[str, Any]) -> TwilioRecording | None:
    sid, call_sid = str(entry.get("sid") or ""), str(entry.get("call_sid") or "")
    if _RECORDING_SID.fullmatch(sid) is None or _CALL_SID.fullmatch(call_sid) is None:
        return None
    raw = entry.get("duration")
    duration = int(raw) if isinstance(raw, str | int) and str(raw).isdigit() else None
    code = entry.get("error_code")
    uri = str(entry.get("uri") or "")
    path = uri[: -len(".json")] if uri.endswith(".json") else uri
    return TwilioRecording(
        sid=sid,
        call_sid=call_sid,
        status=str(entry.get("status") or ""),
        duration=duration,
        error_code=None if code is None else str(code),
        media_url=api_url + path,
    )


async def list_call_recordings(
    client: httpx.AsyncClient, credentials: TwilioCredentials, call_sid: str, page_size: int = 50
) -> list[TwilioRecording]:
    """Every recording Twilio lists for a call, following next_page_uri."""
    check_call_sid(call_sid)
    what = f"Twilio's Recordings list for {call_sid}"
    account_path, auth = _account(credentials, what)
    url: str | None = (
        credentials.api_url
        + account_path
        + "/Recordings.json?"
        + urlencode({"CallSid": call_sid, "PageSize": page_size})
    )
    api_host = urlsplit(credentials.api_url).netloc
    found: list[TwilioRecording] = []
    for _page in range(MAX_PAGES):
        if url is None:
            return found
        try:
            response = await client.get(url, auth=auth)
        except httpx.HTTPError as exc:
            raise TwilioApiError(
                what, f"no answer from {credentials.api_url} ({type(exc).__name__})"
            ) from exc
        if response.status_code != 200:
            raise _error(what, response)
        try:
            page = response.json()
            entries = page["recordings"]
            next_uri = page.get("next_page_uri")
        except (ValueError, KeyError, TypeError) as exc:
            raise TwilioApiError(what, "the answer is not a Recordings page") from exc
        found += [
            r for entry in entries if (r := _recording(credentials.api_url, entry)) and r.call_sid == call_sid
        ]
        if not next_uri:
            return found
        url = credentials.api_url + next_uri if str(next_uri).startswith("/") else str(next_uri)
        if urlsplit(url).netloc != api_host:
            raise TwilioApiError(what, f"next_page_uri points at another host ({urlsplit(url).netloc})")
    raise TwilioApiError(what, f"more than {MAX_PAGES} pages")


async def delete_recording(
    client: httpx.AsyncClient, credentials: TwilioCredentials, recording_sid: str
) -> bool:
    """Delete a recording at Twilio: True when deleted now, False when Twilio has none (404)."""
    if _RECORDING_SID.fullmatch(recording_sid) is None:
        raise ValueError(f"{recording_sid[:40]!r} is not a RecordingSid")
    what = f"deleting recording {recording_sid} at Twilio"
    account_path, auth = _account(credentials, what)
    url = f"{credentials.api_url}{account_path}/Recordings/{recording_sid}.json"
    try:
        response = await client.delete(url, auth=auth)
    except httpx.HTTPError as exc:
        raise TwilioApiError(what, f"no answer from {credentials.api_url} ({type(exc).__name__})") from exc
    if response.status_code == 204:
        return True
    if response.status_code == 404:
        return False
    raise _error(what, response)
