"""A call's state between Twilio's requests: where the caller is, carried in the signed Gather URL.

Call state travels in the Gather action URL (never in process memory), so a call survives a
server restart between its Gather and the action. Twilio's signature cannot tell where one
parameter ends and the next begins, so the state is never trusted on it alone: its query string
ends with our own MAC (`z`) binding it to the CallSid and business it was issued for, and it
carries when the call was answered (`t`); `check_issued` refuses anything else.

Data and checks only: no I/O, no TwiML (ivr.twilio.call_flow builds the replies).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from consent_store import text_sha256
from ivr.exceptions import InvalidCallState

Step = Literal["language", "consent", "subscribed"]
STEPS: tuple[Step, ...] = ("language", "consent", "subscribed")
MAX_ATTEMPTS = 3
MAX_REPEATS = 5
MAX_PROMPTS_HEARD = 1000  # far above what MAX_ATTEMPTS and MAX_REPEATS allow; a bound for the URL
# The start time in a cached first TwiML: 13 digits like a real one (epoch ms), replaced per call.
START_PLACEHOLDER = 9_999_999_999_999
GATHER_TIMEOUT_SECONDS = 7
# A Gather post is refused once its call was answered longer ago than Twilio's default maximum
# call length, 4 hours (an account can raise it to 24; this flow's calls last minutes), see
# https://www.twilio.com/en-us/blog/introducing-configurable-call-limits-for-programmable-voice
# or further in the future than another server's clock could be.
MAX_CALL_MS = 4 * 3600 * 1000
CLOCK_SKEW_MS = 60 * 1000
# The MAC in a first TwiML made for the cache (or a preview): each call gets its own, see stamp_start.
UNSEALED = "unsealed"


@dataclass(frozen=True)
class GatherState:
    """Where the caller is, carried in the Gather action URL's query string."""

    step: Step
    attempt: int = 1
    repeats: int = 0
    locale: str | None = None
    version: int | None = None
    prompt_sha: str | None = None
    heard: int = 1  # prompts played so far, the one this Gather belongs to included
    started: int | None = None  # when the call was answered, ms since the epoch (server clock)

    def to_query(self) -> dict[str, str]:
        query = {"step": self.step, "n": str(self.attempt), "r": str(self.repeats), "p": str(self.heard)}
        if self.started is not None:
            query["t"] = str(self.started)
        if self.locale is not None and self.version is not None and self.prompt_sha is not None:
            query |= {"locale": self.locale, "v": str(self.version), "h": self.prompt_sha}
        # In name order, with the MAC (MAC_PARAM) last: Twilio has been reported to sort an
        # action URL's query before requesting it while signing it as given (twilio-php #790,
        # twilio-node #1079); a URL already in order reads the same either way.
        return dict(sorted(query.items()))

    def next(
        self,
        *,
        step: Step | None = None,
        attempt: int | None = None,
        repeats: int | None = None,
        locale: str | None = None,
    ) -> GatherState:
        """The state of the next prompt played in this call (one more prompt heard)."""
        return replace(
            self,
            heard=self.heard + 1,
            step=step or self.step,
            attempt=self.attempt if attempt is None else attempt,
            repeats=self.repeats if repeats is None else repeats,
            locale=locale or self.locale,
        )

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> GatherState:
        step = query.get("step", "")
        if step not in STEPS:
            raise InvalidCallState(f"unknown step {step!r}")
        try:
            attempt = int(query.get("n", "1"))
            repeats = int(query.get("r", "0"))
            version = int(query["v"]) if "v" in query else None
            heard = int(query.get("p", "1"))
            started = int(query["t"]) if "t" in query else None
        except ValueError as exc:
            raise InvalidCallState(
                "attempt, repeats, prompts, time and version must be whole numbers"
            ) from exc
        if not 1 <= attempt <= MAX_ATTEMPTS or not 0 <= repeats <= MAX_REPEATS:
            raise InvalidCallState("attempt or repeat count out of range")
        if not 1 <= heard <= MAX_PROMPTS_HEARD or (
            started is not None and not 0 < started <= START_PLACEHOLDER
        ):
            raise InvalidCallState("prompt count or start time out of range")
        state = cls(
            step=step,
            attempt=attempt,
            repeats=repeats,
            locale=query.get("locale"),
            version=version,
            prompt_sha=query.get("h"),
            heard=heard,
            started=started,
        )
        if step != "language" and (state.locale is None or state.version is None or not state.prompt_sha):
            raise InvalidCallState(f"step {step!r} needs locale, v and h")
        return state


def prompt_fingerprint(text: str) -> str:
    return text_sha256(text)[:16]


@functools.lru_cache(maxsize=8)
def _keyed_hmac(key: bytes) -> hmac.HMAC:
    # Copying an HMAC already keyed skips hashing the key's pads on every state (about half the cost).
    return hmac.new(key, digestmod=hashlib.sha256)


# The Gather state's MAC: named to sort after every other parameter of the state.
MAC_PARAM = "z"


def state_mac(key: bytes, call_sid: str, business: str, query: str) -> str:
    """The MAC that binds a Gather state's query string to one call of one business (128 bits, hex)."""
    mac = _keyed_hmac(key).copy()
    mac.update(f"{call_sid}\n{len(business)}:{business}\n{query}".encode())
    return mac.digest()[:16].hex()


def check_issued(
    query: str, state: GatherState, key: bytes, call_sid: str, business: str, now_ms: int
) -> None:
    """Raise InvalidCallState unless `query` (the Gather URL's, which `state` was read from) is one we
    issued for this call of this business, in a call answered at most MAX_CALL_MS before `now_ms`."""
    sealed, _, mac = query.rpartition(f"&{MAC_PARAM}=")
    expected = state_mac(key, call_sid, business, sealed)
    if not sealed or not hmac.compare_digest(mac.encode("utf-8", "replace"), expected.encode()):
        raise InvalidCallState("the call state was not issued for this call")
    if state.started is None or not now_ms - MAX_CALL_MS <= state.started <= now_ms + CLOCK_SKEW_MS:
        raise InvalidCallState("the call state is too old, or from the future")


def stamp_start(twiml: str, started: int, key: bytes, call_sid: str, business: str) -> str:
    """A first TwiML made with START_PLACEHOLDER and no CallSid, for a call answered at `started`
    (epoch ms): its start time, and the MAC of its Gather state for this call."""
    twiml = twiml.replace(f"t={START_PLACEHOLDER}", f"t={started}")
    begin = twiml.index("/twilio/gather?") + len("/twilio/gather?")
    query = twiml[begin : twiml.index(f"&amp;{MAC_PARAM}={UNSEALED}", begin)].replace("&amp;", "&")
    mac = state_mac(key, call_sid, business, query)
    return twiml.replace(f"{MAC_PARAM}={UNSEALED}", f"{MAC_PARAM}={mac}")
