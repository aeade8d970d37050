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
    values: dict[str, set[str]] = {}
    for name, value in items:
        values.setdefault(name, set()).add(value)
    text = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return base64.b64encode(hmac.new(token, text.encode("utf-8"), hashlib.sha1).digest()).decode()


def signature_ok(
    validator: RequestValidator, token: bytes, url: str, items: Sequence[tuple[str, str]], signature: str
) -> bool:
    if hmac.compare_digest(expected_signature(token, url, items), signature):
        return True
    return bool(validator.validate(url, FormData(list[tuple[str, str | UploadFile]](items)), signature))
