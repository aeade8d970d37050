"""Checking X-Twilio-Signature fast: one HMAC-SHA1 over the exact URL first, twilio's own
validator (which also tries the URL with and without a port) only when that does not match."""

from __future__ import annotations

import base64
import hashlib
import hmac
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
