"""A stand-in for Twilio's REST API (api.twilio.com), for tests and rehearsals of `ivr twilio`.

It serves the resources this service uses, at Twilio's paths, behind HTTP basic auth
(an account SID and its Auth Token, or an API key SID and its secret: "Credentials" in
https://www.twilio.com/docs/usage/your-request-to-twilio) and Twilio's JSON error shape
(`code`, `message`, `more_info`, `status`; 401 with code 20003, "Authenticate", for wrong
credentials: https://www.twilio.com/docs/api/errors/20003). It is as unkind as the real API where
that matters here: `PhoneNumber` filters match partial numbers and `*` wildcards, as the
IncomingPhoneNumber read does (twilio-python's `incoming_phone_numbers.list` docstring),
so a client must compare the numbers it gets back. The twilio library talks to it over
real HTTP (`serve()`, or IVR_TWILIO_API_URL). It never touches the consent store.

Adding a resource (Recordings, ...): write `async def handler(api, request, account)`
returning a Response, and add it to ROUTES with its path below `/2010-04-01/Accounts/{AccountSid}`
(accounts and phone numbers are in rest_numbers.py, recording media in rest_media.py, what they
share in rest_base.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ivr.twilio.rest_base import ACCOUNTS as ACCOUNTS
from ivr.twilio.rest_base import API_VERSION as API_VERSION
from ivr.twilio.rest_base import Account as Account
from ivr.twilio.rest_base import ApiKey as ApiKey
from ivr.twilio.rest_base import new_sid as new_sid
from ivr.twilio.rest_base import not_found as _not_found
from ivr.twilio.rest_base import twilio_error as twilio_error
from ivr.twilio.rest_numbers import NUMBER_ROUTES


@dataclass
class TwilioRestEmulator:
    """Twilio's REST API for a few accounts, their API keys and their phone numbers."""

    accounts: dict[str, Account] = field(default_factory=dict)
    api_keys: dict[str, ApiKey] = field(default_factory=dict)
    numbers: dict[str, dict[str, Any]] = field(default_factory=dict)  # by PN sid, Twilio's JSON
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path), for tests
    # Recordings (Twilio's JSON, by RecordingSid) for the Recordings list and DELETE, and faults
    # those two answer with, one per request, first in first out: "500" or "timeout".
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)
    recordings_faults: list[str] = field(default_factory=list)
    # Recording media (GET .../Recordings/{Sid}.wav|.mp3): faults one per request, first in first
    # out ("500", "401", "timeout", "short", "truncated"; see media_fault), the host of the media
    # URL the API redirects to (None: served at once), and what that URL was asked with (tests).
    media_faults: list[str] = field(default_factory=list)
    media_host: str | None = "localhost"
    media_links: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (Sid, extension)
    media_requests: list[tuple[str, bool]] = field(default_factory=list)  # (path, had Authorization)

    def add_account(self, sid: str | None = None, auth_token: str | None = None) -> Account:
        account = Account(sid or new_sid("AC"), auth_token or secrets.token_hex(16))
        self.accounts[account.sid] = account
        return account

    def add_api_key(self, account_sid: str) -> ApiKey:
        key = ApiKey(new_sid("SK"), secrets.token_urlsafe(24), account_sid)
        self.api_keys[key.sid] = key
        return key

    def add_number(self, account_sid: str, phone_number: str, **fields: str) -> dict[str, Any]:
        """An IncomingPhoneNumber of the account; `fields` in Twilio's names (voice_url=...)."""
        sid = new_sid("PN")
        now = formatdate(usegmt=True)
        number: dict[str, Any] = {
            "account_sid": account_sid,
            "address_requirements": "none",
            "api_version": API_VERSION,
            "beta": False,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": now,
            "date_updated": now,
            "friendly_name": phone_number,
            "identity_sid": None,
            "phone_number": phone_number,
            "origin": "twilio",
            "sid": sid,
            "sms_application_sid": "",
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": "",
            "status_callback": "",
            "status_callback_method": "POST",
            "trunk_sid": None,
            "uri": f"{ACCOUNTS}/{account_sid}/IncomingPhoneNumbers/{sid}.json",
            "voice_application_sid": "",
            "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST",
            "voice_fallback_url": "",
            "voice_method": "POST",
            "voice_url": "",
            "emergency_status": "Inactive",
            "emergency_address_sid": None,
            "bundle_sid": None,
            "status": "in-use",
        } | fields
        self.numbers[sid] = number
        return number

    def number(self, phone_number: str) -> dict[str, Any]:
        """The stored resource of a phone number (for tests)."""
        return next(n for n in self.numbers.values() if n["phone_number"] == phone_number)

    @property
    def app(self) -> Starlette:
        routes = [
            Route(ACCOUNTS + path, _endpoint(self, handler), methods=[m]) for m, path, handler in ROUTES
        ]
        routes += [Route(path, _public(self, handler), methods=["GET"]) for path, handler in PUBLIC_ROUTES]
        return Starlette(routes=routes)

    @contextlib.contextmanager
    def serve(self, host: str = "127.0.0.1") -> Iterator[str]:
        """Serve over real HTTP on a free port in a thread; yields the base URL."""
        import uvicorn

        sock = socket.socket()
        sock.bind((host, 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            yield f"http://{host}:{port}"
        finally:
            # Like Twilio going away: requests still in flight (a test's hanging API) are dropped,
            # not waited for (uvicorn's graceful shutdown waited for them until the join gave up).
            server.should_exit = server.force_exit = True
            thread.join(10)
            sock.close()


Handler = Callable[[TwilioRestEmulator, Request, Account], Awaitable[Response]]


def _credentials(api: TwilioRestEmulator, request: Request) -> Account | None:
    """The account the basic-auth credentials belong to, or None."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    account = api.accounts.get(user)
    if account is not None:
        return account if secrets.compare_digest(account.auth_token, password) else None
    key = api.api_keys.get(user)
    if key is not None and secrets.compare_digest(key.secret, password):
        return api.accounts.get(key.account_sid)
    return None


def _endpoint(api: TwilioRestEmulator, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        api.requests.append((request.method, request.url.path))
        account = _credentials(api, request)
        if account is None:
            return twilio_error(401, 20003, "Authenticate")
        if request.path_params["AccountSid"] != account.sid:
            return _not_found(request)
        return await handler(api, request, account)

    return endpoint


ROUTES: list[tuple[str, str, Handler]] = [*NUMBER_ROUTES]


# -- Recordings list by CallSid, and DELETE (ivr recordings sync, retention) --------------------
# The resource and page shapes are twilio-python's RecordingInstance and Page (api/v2010/account/
# recording): `duration` is a string ("-1" until the recording is completed), `error_code` is set
# only for an absent recording, `uri` is relative to the API and ends in .json; a list page names
# its items "recordings" beside first_page_uri, next_page_uri (with a PageToken), page, page_size,
# previous_page_uri, start, end and uri. DELETE answers 204 with no body, 404 (20404) when gone.
LIST_TIMEOUT_SECONDS = 30.0  # a "timeout" fault hangs this long: longer than any client waits


def add_recording(
    api: TwilioRestEmulator,
    account_sid: str,
    call_sid: str,
    *,
    sid: str | None = None,
    status: str = "completed",
    duration: int = 12,
    error_code: int | None = None,
) -> dict[str, Any]:
    """A Recording of a call as Twilio lists it (for tests): completed, or absent with an error code."""
    sid = sid or new_sid("RE")
    now = formatdate(usegmt=True)
    uri = f"{ACCOUNTS}/{account_sid}/Recordings/{sid}.json"
    recording: dict[str, Any] = {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "call_sid": call_sid,
        "conference_sid": None,
        "date_created": now,
        "date_updated": now,
        "start_time": now,
        "duration": str(duration) if status == "completed" else ("0" if status == "absent" else "-1"),
        "sid": sid,
        "price": "-0.0025" if status == "completed" else None,
        "price_unit": "USD",
        "status": status,
        "channels": 2,
        "source": "StartCallRecordingTwiML",
        "error_code": error_code if status == "absent" else None,
        "uri": uri,
        "encryption_details": None,
        "subresource_uris": {
            "add_on_results": uri.replace(".json", "/AddOnResults.json"),
            "transcriptions": uri.replace(".json", "/Transcriptions.json"),
        },
        "media_url": f"https://api.twilio.com{uri[: -len('.json')]}",
    }
    api.recordings[sid] = recording
    return recording


async def _recordings_fault(api: TwilioRestEmulator) -> Response | None:
    if not api.recordings_faults:
        return None
    fault = api.recordings_faults.pop(0)
    if fault == "timeout":
        await asyncio.sleep(LIST_TIMEOUT_SECONDS)
    return twilio_error(500, 20500, "Internal Server Error")


async def list_recordings(api: TwilioRestEmulator, request: Request, account: Account) -> Response:
    fault = await _recordings_fault(api)
    if fault is not None:
        return fault
    query = request.query_params
    try:
        page_size = int(query.get("PageSize") or 50)
        page = int(query.get("Page") or 0)
    except ValueError:
        return twilio_error(400, 20001, "Invalid paging parameter")
    if not 1 <= page_size <= 1000 or page < 0:
        return twilio_error(400, 20001, "Invalid paging parameter")
    call_sid = query.get("CallSid")
    found = sorted(
        (
            r
            for r in api.recordings.values()
            if r["account_sid"] == account.sid and (call_sid is None or r["call_sid"] == call_sid)
        ),
        key=lambda r: r["sid"],
    )
    items = found[page * page_size : (page + 1) * page_size]
    base = {k: v for k, v in (("CallSid", call_sid), ("PageSize", str(page_size))) if v is not None}

    def page_uri(n: int, token: str | None) -> str:
        extra = {"Page": str(n)} | ({"PageToken": token} if token else {})
        return f"{request.url.path}?{urlencode(base | extra)}"

    more = len(found) > (page + 1) * page_size
    return JSONResponse(
        {
            "end": page * page_size + max(len(items) - 1, 0),
            "first_page_uri": page_uri(0, None),
            "next_page_uri": page_uri(page + 1, "PA" + items[-1]["sid"]) if more else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": page_uri(page - 1, "PB" + items[0]["sid"]) if page > 0 and items else None,
            "recordings": items,
            "start": page * page_size,
            "uri": page_uri(page, query.get("PageToken")),
        }
    )


async def delete_recording(api: TwilioRestEmulator, request: Request, account: Account) -> Response:
    fault = await _recordings_fault(api)
    if fault is not None:
        return fault
    recording = api.recordings.get(request.path_params["Sid"])
    if recording is None or recording["account_sid"] != account.sid:
        return _not_found(request)
    del api.recordings[recording["sid"]]
    return Response(status_code=204)


ROUTES += [
    ("GET", "/{AccountSid}/Recordings.json", list_recordings),
    ("DELETE", "/{AccountSid}/Recordings/{Sid}.json", delete_recording),
]


# -- Recording media (the recording archive fetches it): ivr/twilio/rest_media.py ----------------
from ivr.twilio.rest_media import MEDIA_ROUTES, media_link, recording_media  # noqa: E402, F401 (re-exported)

PublicHandler = Callable[[TwilioRestEmulator, Request], Awaitable[Response]]


def _public(api: TwilioRestEmulator, handler: PublicHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(api, request)

    return endpoint


ROUTES += MEDIA_ROUTES
PUBLIC_ROUTES: list[tuple[str, PublicHandler]] = [("/media/{token}", media_link)]
