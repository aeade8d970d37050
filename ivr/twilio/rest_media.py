"""Recording media in the REST emulator (`ivr/twilio/rest_emulator.py` registers the routes).

GET /2010-04-01/Accounts/{AccountSid}/Recordings/{Sid}.wav gives the audio as WAV, audio/x-wav;
.mp3 as audio/mpeg (https://www.twilio.com/docs/voice/api/recording, "Fetch a Recording media
file"). Behind basic auth here, as on an account with "Enforce HTTP Auth on Media URLs" (which a
service keeping consent evidence must turn on), and answered, as Twilio's media URLs are, with a
redirect to a short-lived URL on another host (help.twilio.com/articles/223183748) that refuses
a request carrying an Authorization header as S3's pre-signed URLs do ("Only one auth mechanism
allowed"). The bytes are made up but fixed per RecordingSid: a two-channel 8 kHz 16-bit WAV of
the recording's duration, the format Twilio records calls in.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

if TYPE_CHECKING:
    from ivr.twilio.rest_emulator import Account, TwilioRestEmulator

    Handler = Callable[[TwilioRestEmulator, Request, Account], Awaitable[Response]]


def _error(status: int, code: int, message: str) -> Response:
    """Twilio's JSON error (imported when called: that module imports this one)."""
    from ivr.twilio.rest_emulator import twilio_error

    return twilio_error(status, code, message)


MEDIA_TIMEOUT_SECONDS = 60.0  # a "timeout" fault hangs this long: longer than any client waits
MEDIA_TYPES = {"wav": "audio/x-wav", "mp3": "audio/mpeg"}


def recording_media(sid: str, duration: int, extension: str = "wav") -> bytes:
    """The emulated audio of a recording: the same bytes for the same RecordingSid and duration."""
    audio = hashlib.shake_256(sid.encode()).digest(max(duration, 0) * 8000 * 2 * 2)
    if extension == "mp3":  # an MPEG-1 Layer III frame header, then the same noise
        return b"\xff\xfb\x90\x64" + audio
    channels, rate, bits = 2, 8000, 16
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(audio),
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        rate,
        rate * channels * bits // 8,
        channels * bits // 8,
        bits,
        b"data",
        len(audio),
    )
    return header + audio


def _media_of(api: TwilioRestEmulator, sid: str, extension: str) -> bytes | None:
    recording = api.recordings.get(sid)
    if recording is None or recording["status"] != "completed":
        return None
    return recording_media(sid, int(recording["duration"]), extension)


async def _media_fault(api: TwilioRestEmulator, body: bytes, media_type: str) -> Response | None:
    """The next fault, if one is queued: 500, 401 (credentials revoked), a hang, a body cut short
    of its Content-Length ("short"), or a whole response whose WAV is cut short ("truncated")."""
    if not api.media_faults:
        return None
    fault = api.media_faults.pop(0)
    if fault == "401":
        return _error(401, 20003, "Authenticate")
    if fault == "timeout":
        await asyncio.sleep(MEDIA_TIMEOUT_SECONDS)
        return _error(500, 20500, "Internal Server Error")
    if fault == "short":
        return _CutShort(body, media_type)
    if fault == "truncated":
        return Response(body[: len(body) // 2], media_type=media_type)
    return _error(500, 20500, "Internal Server Error")


class _CutShort(Response):
    """Headers promising the whole body, half of it, then the connection drops."""

    def __init__(self, body: bytes, media_type: str) -> None:
        super().__init__(b"", media_type=media_type)
        self.whole = body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = [
            (b"content-type", str(self.media_type).encode()),
            (b"content-length", str(len(self.whole)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": self.whole[: len(self.whole) // 2], "more_body": True}
        )
        raise ConnectionAbortedError("emulated: the connection drops before the body is whole")


def media_handler(extension: str) -> Handler:
    async def fetch_media(api: TwilioRestEmulator, request: Request, account: Account) -> Response:
        sid = request.path_params["Sid"]
        recording = api.recordings.get(sid)
        if recording is None or recording["account_sid"] != account.sid:
            return _error(404, 20404, f"The requested resource {request.url.path} was not found")
        body = _media_of(api, sid, extension)
        if body is None:
            return _error(404, 20404, f"The requested resource {request.url.path} was not found")
        fault = await _media_fault(api, body, MEDIA_TYPES[extension])
        if fault is not None:
            return fault
        if api.media_host is None:
            return Response(body, media_type=MEDIA_TYPES[extension])
        token = secrets.token_urlsafe(24)
        api.media_links[token] = (sid, extension)
        port = request.url.port
        location = f"{request.url.scheme}://{api.media_host}{f':{port}' if port else ''}/media/{token}"
        return Response(status_code=302, headers={"Location": location})

    return fetch_media


async def media_link(api: TwilioRestEmulator, request: Request) -> Response:
    """The short-lived media URL the API redirects to: no account, one use, no Authorization."""
    had_auth = "authorization" in request.headers
    api.media_requests.append((request.url.path, had_auth))
    link = api.media_links.pop(request.path_params["token"], None)
    if link is None:
        return Response(
            "<Error><Code>AccessDenied</Code></Error>", status_code=403, media_type="application/xml"
        )
    if had_auth:
        return Response(
            "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>",
            status_code=400,
            media_type="application/xml",
        )
    sid, extension = link
    body = _media_of(api, sid, extension)
    if body is None:
        return Response(
            "<Error><Code>NoSuchKey</Code></Error>", status_code=404, media_type="application/xml"
        )
    return Response(body, media_type=MEDIA_TYPES[extension])


MEDIA_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/{AccountSid}/Recordings/{Sid}.wav", media_handler("wav")),
    ("GET", "/{AccountSid}/Recordings/{Sid}.mp3", media_handler("mp3")),
]
