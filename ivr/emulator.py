"""A Twilio emulator: places calls against this service the way Twilio does.

It signs every request like Twilio (X-Twilio-Signature, with the Auth Token or a
Webhook Rule's shared key), follows the TwiML it gets back (Say, Gather,
Redirect, Hangup, Pause, Start/Recording), presses the keys it is given, and sends the recording and
call status callbacks. The tests and `ivr call` both use it; it stands in
for Twilio's servers only and never touches the store.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin

import httpx
from twilio.request_validator import RequestValidator

MAX_REQUESTS_PER_CALL = 60
NO_INPUT = "-"
HANG_UP = "hangup"  # a key source may return this: the caller hangs up at that prompt

RecordingTiming = Literal["after", "before", "twice", "none", "absent"]


class EmulatorError(Exception):
    """The service answered something Twilio would not accept."""


@dataclass(frozen=True)
class Spoken:
    text: str
    language: str | None
    voice: str | None


@dataclass
class CallResult:
    call_sid: str
    spoken: list[Spoken] = field(default_factory=list)
    responses: list[tuple[str, int]] = field(default_factory=list)
    pressed: list[str] = field(default_factory=list)
    recording_callback: str | None = None
    recording_sid: str | None = None
    ended_by: Literal["hangup", "caller-hangup", "end-of-document", "request-limit"] = "end-of-document"

    @property
    def transcript(self) -> str:
        return " ".join(s.text for s in self.spoken)


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


# Called with each spoken sentence and each Gather; returns the key pressed (or NO_INPUT).
KeySource = Callable[[int], Awaitable[str]]


class TwilioEmulator:
    """Twilio's side of calls to one service."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        auth_token: str,
        account_sid: str | None = None,
        *,
        shared_key: str | None = None,
        algorithm: str = "HMAC_SHA256",
    ) -> None:
        """`auth_token` is the secret requests are signed with: the Auth Token of `account_sid`
        (a random AccountSid when None), or, with `shared_key` (a Webhook Rule's SharedKey id),
        that key's secret, with `algorithm` and the X-Twilio-Webhooks-Signature-Settings header
        naming both, as Twilio does (https://www.twilio.com/docs/usage/webhooks/webhook-shared-keys)."""
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self.account_sid = account_sid or new_sid("AC")
        self.shared_key = shared_key
        self.algorithm = algorithm if shared_key is not None else "HMAC_SHA1"
        self.on_say: Callable[[Spoken], None] | None = None

    def url(self, path: str) -> str:
        return urljoin(self.base_url + "/", path.lstrip("/"))

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        return str(self.validator.compute_signature(url, dict(params), self.algorithm))

    def signature_headers(
        self, url: str, params: Mapping[str, str], signature: str | None = None
    ) -> dict[str, str]:
        """The headers Twilio signs a request with."""
        headers = {"X-Twilio-Signature": signature or self.sign(url, params)}
        if self.shared_key is not None:
            headers["X-Twilio-Webhooks-Signature-Settings"] = (
                f"key={self.shared_key},algorithm={self.algorithm}"
            )
        return headers

    async def post(
        self, url: str, params: Mapping[str, str], *, signed: bool = True, signature: str | None = None
    ) -> httpx.Response:
        """POST form parameters the way Twilio does, signed unless told otherwise."""
        url = self.url(url) if url.startswith("/") else url
        headers = self.signature_headers(url, params, signature) if signed else {}
        return await self.client.post(url, data=dict(params), headers=headers)

    def call_params(self, call_sid: str, to: str, from_: str, status: str = "in-progress") -> dict[str, str]:
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call_sid,
            "CallStatus": status,
            "Direction": "inbound",
            "From": from_,
            "To": to,
            "Caller": from_,
            "Called": to,
        }

    async def send_recording(
        self, result: CallResult, to: str, from_: str, status: str = "completed", duration: int = 31
    ) -> httpx.Response:
        if result.recording_callback is None or result.recording_sid is None:
            raise EmulatorError("the call never started a recording")
        params = {
            "AccountSid": self.account_sid,
            "CallSid": result.call_sid,
            "RecordingSid": result.recording_sid,
            "RecordingStatus": status,
            "RecordingSource": "StartCallRecordingTwiML",
            "RecordingChannels": "2",
        }
        if status == "completed":
            params |= {
                "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}"
                f"/Recordings/{result.recording_sid}",
                "RecordingDuration": str(duration),
            }
        return await self.post(result.recording_callback, params)

    async def send_status(
        self, result: CallResult, to: str, from_: str, status: str = "completed", duration: int = 31
    ) -> httpx.Response:
        params = self.call_params(result.call_sid, to, from_, status) | {"CallDuration": str(duration)}
        return await self.post(self.url("/twilio/status"), params)

    async def call(
        self,
        to: str,
        from_: str,
        keys: Sequence[str] | KeySource = (),
        *,
        recording: RecordingTiming = "after",
        status_callback: bool = True,
        call_sid: str | None = None,
        voice_path: str = "/twilio/voice",
        extra_params: Mapping[str, str] | None = None,
    ) -> CallResult:
        """Place one call; each Gather takes the next key ('-' or running out: no input).

        `extra_params` are added to every request of the call (this service's own simulator
        uses them to mark a rehearsal)."""
        result = CallResult(call_sid=call_sid or new_sid("CA"))
        next_key = _key_source(keys)
        params = self.call_params(result.call_sid, to, from_) | dict(extra_params or {})
        url = self.url(voice_path)
        response = await self._request(result, url, params)
        while response is not None:
            url, response = await self._run(result, url, response, params, next_key, to, from_, recording)
        if recording in ("after", "twice") and result.recording_callback:
            for _ in range(2 if recording == "twice" else 1):
                await self.send_recording(result, to, from_)
        if recording == "absent" and result.recording_callback:
            await self.send_recording(result, to, from_, status="absent")
        if status_callback:
            await self.send_status(result, to, from_)
        return result

    async def _request(self, result: CallResult, url: str, params: Mapping[str, str]) -> ET.Element | None:
        if len(result.responses) >= MAX_REQUESTS_PER_CALL:
            result.ended_by = "request-limit"
            return None
        http = await self.post(url, params)
        result.responses.append((url, http.status_code))
        if http.status_code != 200:
            raise EmulatorError(f"{url} answered HTTP {http.status_code}: {http.text[:200]}")
        try:
            root = ET.fromstring(http.text)
        except ET.ParseError as exc:
            raise EmulatorError(f"{url} answered invalid XML: {exc}") from exc
        if root.tag != "Response":
            raise EmulatorError(f"{url} answered <{root.tag}>, not <Response>")
        return root

    def _say(self, result: CallResult, element: ET.Element) -> None:
        spoken = Spoken((element.text or "").strip(), element.get("language"), element.get("voice"))
        result.spoken.append(spoken)
        if self.on_say is not None:
            self.on_say(spoken)

    async def _run(
        self,
        result: CallResult,
        url: str,
        root: ET.Element,
        params: dict[str, str],
        next_key: KeySource,
        to: str,
        from_: str,
        recording: RecordingTiming,
    ) -> tuple[str, ET.Element | None]:
        """Execute one TwiML document; return the next document to run (or None: call over)."""
        for verb in root:
            if verb.tag == "Say":
                self._say(result, verb)
            elif verb.tag == "Pause":
                continue
            elif verb.tag == "Start":
                for noun in verb:
                    if noun.tag != "Recording":
                        raise EmulatorError(f"unsupported <Start><{noun.tag}>")
                    callback = noun.get("recordingStatusCallback")
                    result.recording_callback = urljoin(url, callback) if callback else None
                    result.recording_sid = new_sid("RE")
                    if recording == "before" and result.recording_callback:
                        await self.send_recording(result, to, from_)
            elif verb.tag == "Gather":
                for nested in verb:
                    if nested.tag != "Say":
                        raise EmulatorError(f"unsupported <Gather><{nested.tag}>")
                    self._say(result, nested)
                key = await next_key(int(verb.get("timeout", "5")))
                if key == HANG_UP:
                    result.ended_by = "caller-hangup"
                    return url, None
                if key == NO_INPUT:
                    if verb.get("actionOnEmptyResult") != "true":
                        continue  # timeout: fall through to the next verb
                    key = ""
                result.pressed.append(key)
                action = urljoin(url, verb.get("action") or url)
                gathered = params | ({"Digits": key} if key else {})
                return action, await self._request(result, action, gathered)
            elif verb.tag == "Redirect":
                target = urljoin(url, (verb.text or "").strip())
                return target, await self._request(result, target, params)
            elif verb.tag == "Hangup":
                result.ended_by = "hangup"
                return url, None
            else:
                raise EmulatorError(f"unsupported TwiML verb <{verb.tag}>")
        result.ended_by = "end-of-document"
        return url, None


def _key_source(keys: Sequence[str] | KeySource) -> KeySource:
    if callable(keys):
        return keys
    remaining: Iterator[str] = iter(list(keys))

    async def next_key(timeout: int) -> str:
        return next(remaining, NO_INPUT)

    return next_key
