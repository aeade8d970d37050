"""Getting one recording's audio from Twilio's REST API, whole or not at all.

The media URL is built from IVR_TWILIO_API_URL, the account and the RecordingSid
(`/2010-04-01/Accounts/{AccountSid}/Recordings/{RecordingSid}.wav`): the RecordingUrl of a
callback is never requested as it is, so no credentials go to a host an outsider wrote.
Twilio may answer with a redirect to a short-lived media URL on another host (its media
URLs are documented to do so: help.twilio.com/articles/223183748); that one is followed
without credentials. A body shorter than its Content-Length, a WAV whose RIFF header
promises more than arrived, any status but 200, a timeout: FetchError, and nothing is kept.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from ivr.recordings.archive import MEDIA_EXTENSION, MEDIA_TYPE
from ivr.recordings.exceptions import FetchError, NoCredentials
from ivr.settings import Settings

API_VERSION = "2010-04-01"
MAX_REDIRECTS = 3
# Four hours of two-channel 8 kHz 16-bit PCM is 460 MB: more than this is not a call.
MAX_BYTES = 1 << 30
TIMEOUT = httpx.Timeout(30.0, connect=10.0)

_RECORDING_URL = re.compile(r"/2010-04-01/Accounts/(AC[0-9a-f]{32})/Recordings/(RE[0-9a-f]{32})(?:\.\w+)?")


@dataclass(frozen=True)
class TwilioCredentials:
    """Who we are at Twilio's REST API (HTTP basic auth) and where that API is."""

    api_url: str
    account_sid: str | None  # TWILIO_ACCOUNT_SID
    username: str | None  # the account SID, or an API key SID
    password: str | None  # its Auth Token, or the API key's secret
    subaccounts: tuple[tuple[str, str], ...] = ()  # (AccountSid, Auth Token)

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioCredentials:
        username: str | None
        password: str | None
        if settings.twilio_api_key and settings.twilio_api_secret:
            username, password = settings.twilio_api_key, settings.twilio_api_secret
        else:
            username, password = settings.twilio_account_sid, settings.twilio_auth_token
        return cls(
            settings.twilio_api_url,
            settings.twilio_account_sid,
            username,
            password,
            settings.twilio_subaccount_tokens,
        )

    @property
    def configured(self) -> bool:
        return bool(self.account_sid and self.username and self.password)

    def for_recording(self, recording_sid: str, recording_url: str | None) -> tuple[str, httpx.BasicAuth]:
        """The media URL and the credentials for it. A subaccount's recording (its AccountSid in
        RecordingUrl, listed in TWILIO_SUBACCOUNT_TOKENS) is asked for with that subaccount's token;
        anything else under TWILIO_ACCOUNT_SID."""
        if not self.configured:
            raise NoCredentials(
                recording_sid,
                "no Twilio credentials: set TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN"
                " (or TWILIO_API_KEY and TWILIO_API_SECRET) to archive recordings",
            )
        assert self.account_sid and self.username and self.password
        account, auth = self.account_sid, httpx.BasicAuth(self.username, self.password)
        found = _RECORDING_URL.search(urlsplit(recording_url or "").path)
        if found is not None and found.group(2) == recording_sid:
            token = dict(self.subaccounts).get(found.group(1))
            if token is not None:
                account, auth = found.group(1), httpx.BasicAuth(found.group(1), token)
        path = f"/{API_VERSION}/Accounts/{account}/Recordings/{recording_sid}{MEDIA_EXTENSION}"
        return self.api_url.rstrip("/") + path, auth


@dataclass(frozen=True)
class Media:
    data: bytes
    media_type: str


def check_wav(recording_sid: str, data: bytes) -> None:
    """FetchError unless `data` is a RIFF/WAVE file whose header matches its length (a file cut
    short promises more than it holds). A size of 0 or 0xFFFFFFFF means "unknown" (streamed)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise FetchError(recording_sid, f"not a WAV file ({len(data)} bytes, starting {data[:12]!r})")
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if riff_size not in (0, 0xFFFFFFFF) and riff_size + 8 != len(data):
        raise FetchError(
            recording_sid, f"WAV file cut short: its header says {riff_size + 8} bytes, {len(data)} came"
        )
    at = 12
    while at + 8 <= len(data):
        chunk, size = data[at : at + 4], struct.unpack_from("<I", data, at + 4)[0]
        if chunk == b"data":
            if size not in (0, 0xFFFFFFFF) and at + 8 + size > len(data):
                raise FetchError(
                    recording_sid, f"WAV audio cut short: {size} bytes promised, {len(data) - at - 8} came"
                )
            return
        at += 8 + size + (size & 1)
    raise FetchError(recording_sid, "WAV file without audio (no data chunk)")


def _twilio_reason(response: httpx.Response) -> str:
    """Twilio's JSON error (`code`, `message`) if it sent one."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and "code" in body:
        return (
            f"HTTP {response.status_code}, Twilio error {body.get('code')}: {str(body.get('message'))[:200]}"
        )
    return f"HTTP {response.status_code}"


async def _read(recording_sid: str, response: httpx.Response) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BYTES):
        raise FetchError(recording_sid, f"Content-Length {declared[:20]!r} refused")
    parts, total = [], 0
    async for part in response.aiter_raw():
        total += len(part)
        if total > MAX_BYTES:
            raise FetchError(recording_sid, f"more than {MAX_BYTES} bytes: refused")
        parts.append(part)
    data = b"".join(parts)
    if declared is not None and int(declared) != len(data):
        raise FetchError(recording_sid, f"body cut short: Content-Length {declared}, {len(data)} bytes came")
    return data


async def fetch_media(
    client: httpx.AsyncClient,
    credentials: TwilioCredentials,
    recording_sid: str,
    recording_url: str | None,
    timeout: httpx.Timeout = TIMEOUT,
) -> Media:
    """The recording's whole WAV audio; FetchError (with Twilio's status) otherwise."""
    url, auth = credentials.for_recording(recording_sid, recording_url)
    api_origin = urlsplit(url)[:2]
    current: httpx.Auth | None = auth
    try:
        for _ in range(MAX_REDIRECTS + 1):
            # identity: Content-Length then counts the very bytes that are hashed.
            request = client.build_request(
                "GET", url, headers={"Accept-Encoding": "identity"}, timeout=timeout
            )
            response = await client.send(request, auth=current, stream=True, follow_redirects=False)
            try:
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    if urlsplit(url).scheme not in ("http", "https"):
                        raise FetchError(recording_sid, f"redirected to {url[:80]!r}: refused")
                    # Credentials only ever go to the API itself, never where it sends us.
                    current = auth if urlsplit(url)[:2] == api_origin else None
                    continue
                if response.status_code != 200:
                    await response.aread()  # Twilio's JSON error, small
                if response.status_code == 401:
                    raise FetchError(
                        recording_sid,
                        f"Twilio refused the credentials ({_twilio_reason(response)})",
                        status=401,
                    )
                if response.status_code != 200:
                    raise FetchError(recording_sid, _twilio_reason(response), status=response.status_code)
                data = await _read(recording_sid, response)
            finally:
                await response.aclose()
            check_wav(recording_sid, data)
            return Media(data, MEDIA_TYPE)
    except httpx.TimeoutException as exc:
        raise FetchError(recording_sid, f"timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise FetchError(recording_sid, f"{type(exc).__name__}: {exc}") from exc
    raise FetchError(recording_sid, f"more than {MAX_REDIRECTS} redirects")
