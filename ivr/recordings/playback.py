"""Playing and downloading a call's archived recording from the receipt page.

`GET /audit/recording?call_sid=CA...` serves the archived bytes to signed-in auditors and
managers of the call's business (another business's call answers exactly as a call that does
not exist), with single byte-range requests (206 and Content-Range, 416 when unsatisfiable; a
malformed or multi-range header is ignored and the whole file served, as RFC 9110 allows).
The bytes are hashed again on every request and served only if they match the SHA-256 the chain
holds (else 409, nothing served): the whole file is read and hashed for each request, which a
long call (about 2 MB a minute in Twilio's two-channel WAV) makes the cost of seeking.
`&download=1` offers the file as an attachment.
`receipt_audio` tells the receipt page what to say about the audio.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from consent_store import ExportFilter
from consent_store.events import ArchivedRecording
from ivr.pages.auth import SessionUser, requires
from ivr.recordings.archive import RecordingArchive, open_archive
from ivr.recordings.exceptions import RecordingError, RecordingMissing
from ivr.recordings.fetch import fetcher_of
from ivr.runtime import Runtime

RECORDING_PATH = "/audit/recording"
_CALL_SID = re.compile("CA[0-9a-f]{32}")
_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})")

AudioState = Literal["matches", "differs", "missing", "deleted", "unavailable", "none"]


@dataclass(frozen=True)
class ReceiptAudio:
    """What the receipt says about a call's archived audio."""

    state: AudioState
    recording: ArchivedRecording | None = None
    detail: str = ""  # why deleted, or the archive's error

    @property
    def playable(self) -> bool:
        return self.state == "matches"


def _archive(request: Request, runtime: Runtime) -> RecordingArchive:
    fetcher = fetcher_of(request.app)
    return fetcher.deps.archive if fetcher is not None else open_archive(runtime.settings)


async def _audio(request: Request, runtime: Runtime, call_sid: str) -> tuple[ReceiptAudio, bytes | None]:
    store = runtime.store
    archived = await store.archived_recording(call_sid)
    if archived is None:
        return ReceiptAudio("none"), None
    deleted = (await store.deleted_recordings()).get(archived.recording_sid)
    if deleted is not None:
        return ReceiptAudio("deleted", archived, deleted), None
    try:
        data = await _archive(request, runtime).get(archived.sha256)
    except RecordingMissing:
        return ReceiptAudio("missing", archived), None
    except (RecordingError, ValueError) as exc:
        return ReceiptAudio("unavailable", archived, str(exc)), None
    # Hashed off the event loop (a long call is tens of megabytes): webhooks keep answering.
    if await asyncio.to_thread(_sha256, data) != archived.sha256:
        return ReceiptAudio("differs", archived), None
    return ReceiptAudio("matches", archived), data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def receipt_audio(request: Request, runtime: Runtime, call_sid: str) -> ReceiptAudio:
    """The state of a call's archived audio, its bytes hashed again now."""
    state, _ = await _audio(request, runtime, call_sid)
    return state


def byte_range(header: str | None, size: int) -> tuple[int, int] | None | Literal["unsatisfiable"]:
    """The inclusive (first, last) byte of a single `bytes=` range; None to serve the whole file
    (no header, or one that is malformed or asks for several ranges); "unsatisfiable"."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None  # invalid: ignored
    if first >= size:
        return "unsatisfiable"
    return first, min(int(last_text), size - 1) if last_text else size - 1


@requires("auditor", "manager")
async def recording(request: Request, user: SessionUser) -> Response:
    runtime: Runtime = request.app.state.runtime
    call_sid = request.query_params.get("call_sid", "")
    if _CALL_SID.fullmatch(call_sid) is None:
        return PlainTextResponse("call_sid must be CA and 32 lower-case hex digits.", status_code=400)
    not_found = PlainTextResponse(f"No archived recording for call {call_sid}.", status_code=404)
    rows = runtime.store.export_decisions(ExportFilter(call_sid=call_sid, include_demo=True))
    business = None
    async for row in rows:
        business = row.business
        break
    await rows.aclose()
    if business is None or not user.may_see(business):
        return not_found
    audio, data = await _audio(request, runtime, call_sid)
    if audio.state == "none":
        return not_found
    if audio.state == "deleted":
        return PlainTextResponse(f"The recording of call {call_sid} was deleted ({audio.detail}).", 410)
    if audio.state == "differs":
        return PlainTextResponse(
            f"The archived recording of call {call_sid} does not match the SHA-256 in the chain:"
            " it is not served. Run 'ivr verify'.",
            status_code=409,
        )
    if data is None or audio.recording is None:
        return PlainTextResponse(f"The recording of call {call_sid} is not in the archive now.", 503)
    archived = audio.recording
    disposition = "attachment" if request.query_params.get("download") == "1" else "inline"
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-store",
        "Content-Disposition": f'{disposition}; filename="{archived.recording_sid}.wav"',
        "ETag": f'"{archived.sha256}"',
        "X-Recording-SHA256": archived.sha256,
        "X-Content-Type-Options": "nosniff",
    }
    wanted = byte_range(request.headers.get("range"), len(data))
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != headers["ETag"]:
        wanted = None  # another version than the one the client holds part of: the whole file
    if wanted == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{len(data)}"})
    if wanted is None:
        return Response(data, media_type=archived.media_type, headers=headers)
    first, last = wanted
    headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
    return Response(data[first : last + 1], status_code=206, media_type=archived.media_type, headers=headers)


routes = [Route(RECORDING_PATH, recording, methods=["GET"])]
