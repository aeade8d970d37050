"""Checking X-Twilio-Signature fast: one HMAC-SHA1 over the exact URL first, twilio's own
validator (which also tries the URL with and without a port) only when that does not match.

The signature joins names and values with no separator, so it never proves where one parameter
ends: what a signed request names (a CallSid, a RecordingSid) must also be of Twilio's form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

from starlette.datastructures import FormData, UploadFile
from twilio.request_validator import RequestValidator


def expected_signature(token: bytes, url: str, items: Sequence[tuple[str, str]]) -> str:
    """Twilio's scheme: the URL, then each parameter name and value, sorted, as HMAC-SHA1 base64."""
    # Names sorted, each name's distinct values sorted: the order of the distinct pairs.
    text = url + "".join([name + value for name, value in sorted(set(items))])
    return base64.b64encode(hmac.new(token, text.encode("utf-8"), hashlib.sha1).digest()).decode()


def signature_ok(
    validator: RequestValidator, token: bytes, url: str, items: Sequence[tuple[str, str]], signature: str
) -> bool:
    if hmac.compare_digest(expected_signature(token, url, items), signature):
        return True
    return bool(validator.validate(url, FormData(list[tuple[str, str | UploadFile]](items)), signature))


_HEX32 = re.compile("[0-9a-f]{32}")


def twilio_sid_ok(sid: str, prefix: str) -> bool:
    """True if `sid` is a Twilio SID of this kind: `prefix` ("CA", "RE") and 32 lower-case hex digits."""
    return len(sid) == 34 and sid.startswith(prefix) and _HEX32.fullmatch(sid, 2) is not None
