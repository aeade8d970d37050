"""A Twilio emulator: places calls against this service the way Twilio does.

It signs every request like Twilio (X-Twilio-Signature, with the Auth Token or a
Webhook Rule's shared key), follows the TwiML it gets back (Say, Gather,
Redirect, Hangup, Pause, Start/Recording), presses the keys it is given, and sends the recording and
call status callbacks. The tests and `ivr call` both use it; it stands in
for Twilio's servers only and never touches the store.

It is at least as unkind as Twilio, each behaviour from Twilio's own pages:
- a key pressed while a <Gather>'s nested <Say> speaks stops it ("After the first digit is
  received the audio will stop playing", https://www.twilio.com/docs/api/twiml/gather): a key
  given as "!1" is pressed AT_ONCE_SECONDS into the next audio, and `CallResult.spoken` keeps
  only the words said by then (`interrupted`); a plain "1" is pressed once the prompt is said;
- a <Say> outside a <Gather> is heard whole, and a key pressed during it is not gathered
  ("Sometimes users begin to press keys before the <Gather> has actually begun",
  https://support.twilio.com/hc/en-us/articles/223180068-Troubleshooting-issues-with-Gather);
  `early_keys = "buffered"` instead hands it to the next Gather, for a service to be tested
  against both readings;
- finishOnKey ('#' unless set): pressed before any digit, the Gather ends with nothing
  ("if the caller enters the 'finishOnKey' value before entering any other digits, Twilio will
  not make a request to the 'action' URL" but goes on to the next verb), and numDigits cuts Digits;
- the first request of an inbound call says CallStatus=ringing, later ones in-progress
  (https://www.twilio.com/docs/voice/api/call-resource#call-status-values);
- StirVerstat (TN-Validation-Passed-A unless set; absent when None, as on calls without a
  SHAKEN PASSporT), FromCountry (absent when None) and CallerName (absent unless set: it needs
  caller name lookup) on every call webhook
  (https://www.twilio.com/changelog/twilio-performs-shakenstir-verification-on-incoming-calls-to-your-phone-numbers);
- an absent or failed recording's callback carries an ErrorCode: 16101 (too short) unless given
  (https://support.twilio.com/hc/en-us/articles/360014251313-Getting-Started-with-Recording-Status-Callbacks).
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin

import httpx
from twilio.request_validator import RequestValidator

from ivr.exceptions import EmulatorError
from ivr.twilio.rest_emulator import TwilioRestEmulator, add_recording

MAX_REQUESTS_PER_CALL = 60
NO_INPUT = "-"
HANG_UP = "hangup"  # a key source may return this: the caller hangs up at that prompt
# A key written "!1" is pressed at once: this many seconds into the next audio the caller hears.
PRESS_AT_ONCE = "!"
AT_ONCE_SECONDS = 2.0
WORDS_PER_SECOND = 2.5  # a text-to-speech voice at its normal rate, about 150 words a minute
DEFAULT_STIR_VERSTAT = "TN-Validation-Passed-A"
ABSENT_RECORDING_ERROR = "16101"  # "Too Short: Error 16101"

RecordingTiming = Literal["after", "before", "twice", "none", "absent", "failed"]
# What Twilio does with a key pressed during a <Say> outside a <Gather>: its pages say such keys
# are not gathered (dropped); "buffered" hands them to the next Gather, the unkinder reading.
EarlyKeys = Literal["dropped", "buffered"]


@dataclass(frozen=True)
class Spoken:
    text: str  # what the caller heard: the start only, if a key interrupted it
    language: str | None
    voice: str | None
    interrupted: bool = False


@dataclass
class CallResult:
    call_sid: str
    spoken: list[Spoken] = field(default_factory=list)
    responses: list[tuple[str, int]] = field(default_factory=list)
    pressed: list[str] = field(default_factory=list)
    recording_callback: str | None = None
    recording_sid: str | None = None
    dropped: list[str] = field(default_factory=list)  # keys pressed during a <Say> outside a Gather
    ended_by: Literal["hangup", "caller-hangup", "end-of-document", "request-limit"] = "end-of-document"

    @property
    def transcript(self) -> str:
        return " ".join(s.text for s in self.spoken)


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


# Called at each Gather once its prompt has been said, with its timeout; returns the key
# pressed (or NO_INPUT).
KeySource = Callable[[int], Awaitable[str]]


class _Keypad:
    """The caller's keys, in order: a KeySource asked at each Gather, or a list ('!' = at once)."""

    def __init__(self, keys: Sequence[str] | KeySource) -> None:
        self._ask = keys if callable(keys) else None
        self._keys = [] if callable(keys) else list(keys)
        self.buffer: list[str] = []  # pressed during a <Say> outside a Gather, if Twilio kept them

    def at_once(self) -> str | None:
        """The next key, taken, if the caller presses it at once (only a list can say so)."""
        if self._keys and self._keys[0].startswith(PRESS_AT_ONCE) and len(self._keys[0]) > 1:
            return self._keys.pop(0)[len(PRESS_AT_ONCE) :]
        return None

    async def after_prompt(self, timeout: int) -> str:
        if self._ask is not None:
            return await self._ask(timeout)
        return self._keys.pop(0).removeprefix(PRESS_AT_ONCE) if self._keys else NO_INPUT


def query_sorted(url: str) -> str:
    """The URL as Twilio has been reported to request it: its query's parameters sorted by name,
    bytes kept, while the signature covers the URL as given (twilio-php #790, twilio-node #1079).
    Unkind on purpose: a service whose URLs are not already in that order fails validation."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    pairs = sorted(query.split("&"), key=lambda pair: pair.partition("=")[0])
    return f"{base}?{'&'.join(pairs)}"


class TwilioEmulator:
    """Twilio's side of calls to one service."""

    # What each call webhook says about the caller; None: the parameter is not sent.
    stir_verstat: str | None = DEFAULT_STIR_VERSTAT
    from_country: str | None = "US"
    caller_name: str | None = None
    early_keys: EarlyKeys = "dropped"
    # Twilio's REST API beside these calls: a completed recording's callback first makes the
    # recording there (its list and its media), as Twilio has it before it calls back.
    rest: TwilioRestEmulator | None = None

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
        return await self.client.post(query_sorted(url), data=dict(params), headers=headers)

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
        } | {
            name: value
            for name, value in (
                ("StirVerstat", self.stir_verstat),
                ("FromCountry", self.from_country),
                ("CallerName", self.caller_name),
            )
            if value is not None
        }

    async def send_recording(
        self,
        result: CallResult,
        to: str,
        from_: str,
        status: str = "completed",
        duration: int = 31,
        error_code: str | None = None,
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
        if status == "completed" and self.rest is not None:
            rest, sid = self.rest, result.recording_sid
            add_recording(rest, self.account_sid, result.call_sid, sid=sid, duration=duration)
        if status == "completed":
            params |= {
                "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}"
                f"/Recordings/{result.recording_sid}",
                "RecordingDuration": str(duration),
            }
        if status == "absent":
            error_code = error_code or ABSENT_RECORDING_ERROR
        if error_code is not None:
            params["ErrorCode"] = error_code
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
        """Place one call; each Gather takes the next key ('-' or running out: no input; '!1':
        1 pressed at once, into the audio, see the module docstring).

        `extra_params` are added to every request of the call (this service's own simulator
        uses them to mark a rehearsal)."""
        result = CallResult(call_sid=call_sid or new_sid("CA"))
        keypad = _Keypad(keys)
        params = self.call_params(result.call_sid, to, from_) | dict(extra_params or {})
        url = self.url(voice_path)
        # An inbound call's first request is made while it rings; later ones once answered.
        response = await self._request(result, url, params | {"CallStatus": "ringing"})
        while response is not None:
            url, response = await self._run(result, url, response, params, keypad, to, from_, recording)
        if recording in ("after", "twice") and result.recording_callback:
            for _ in range(2 if recording == "twice" else 1):
                await self.send_recording(result, to, from_)
        if recording in ("absent", "failed") and result.recording_callback:
            await self.send_recording(result, to, from_, status=recording)
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

    def _say(self, result: CallResult, element: ET.Element, cut_after: float | None = None) -> None:
        """The caller hears `element`, all of it or, cut by a key, its first `cut_after` seconds."""
        text = (element.text or "").strip()
        words = text.split()
        said = len(words) if cut_after is None else int(cut_after * WORDS_PER_SECOND)
        if said < len(words):
            text = " ".join(words[:said])
        spoken = Spoken(text, element.get("language"), element.get("voice"), said < len(words))
        result.spoken.append(spoken)
        if self.on_say is not None:
            self.on_say(spoken)

    async def _run(
        self,
        result: CallResult,
        url: str,
        root: ET.Element,
        params: dict[str, str],
        keypad: _Keypad,
        to: str,
        from_: str,
        recording: RecordingTiming,
    ) -> tuple[str, ET.Element | None]:
        """Execute one TwiML document; return the next document to run (or None: call over)."""
        for verb in root:
            if verb.tag == "Say":
                early = keypad.at_once()
                self._say(result, verb)  # outside a Gather nothing cuts it
                if early is not None:
                    (keypad.buffer if self.early_keys == "buffered" else result.dropped).append(early)
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
                key = await self._gather(result, verb, keypad)
                if key == HANG_UP:
                    result.ended_by = "caller-hangup"
                    return url, None
                digits = "" if key == NO_INPUT else key
                finish = verb.get("finishOnKey", "#")
                if finish and finish in digits:
                    digits = digits[: digits.index(finish)]  # the finishing key is not in Digits
                if verb.get("numDigits"):
                    digits = digits[: int(verb.get("numDigits", "1"))]
                if key != NO_INPUT:
                    result.pressed.append(key)
                if not digits and verb.get("actionOnEmptyResult") != "true":
                    continue  # timeout, or finishOnKey first: fall through to the next verb
                action = urljoin(url, verb.get("action") or url)
                gathered = params | ({"Digits": digits} if digits else {})
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

    async def _gather(self, result: CallResult, verb: ET.Element, keypad: _Keypad) -> str:
        """The key a <Gather> takes: one kept from before it (its audio then never starts), one
        pressed into its nested audio (which stops there), or one pressed after it."""
        if keypad.buffer:
            return keypad.buffer.pop(0)
        for nested in verb:
            if nested.tag == "Pause":
                continue
            if nested.tag != "Say":
                raise EmulatorError(f"unsupported <Gather><{nested.tag}>")
            early = keypad.at_once()
            self._say(result, nested, cut_after=AT_ONCE_SECONDS if early is not None else None)
            if early is not None:
                return early
        return await keypad.after_prompt(int(verb.get("timeout", "5")))
