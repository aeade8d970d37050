"""POST /api/opt-outs: opt-outs a business's other systems received (its own WhatsApp bot or
CRM, email, the web), recorded as the same chained `opt_out` decision a call or a STOP makes.

Bearer tokens as for /api/consent (ivr/api/consent.py), each limited to its businesses. Validated
hard before anything is written: 401 without a live token; 413 for a body over
MAX_BODY_BYTES; 422 naming the field for anything not of the documented shape; 404 for a
business the token may not see (the same as one that does not exist). Idempotent on the
`Idempotency-Key` header, per token: the same key and body again answer 200 with the first
record; the same key with another body 409; nothing is written twice.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any, cast

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from consent_store import Business, ConsentDecision, ExportFilter, StoredEvent, StoreError, text_sha256
from consent_store.events import CHANNELS, ApiToken, Channel
from consent_store.phone import is_e164, masked
from ivr.api.consent import token_sha256
from ivr.exceptions import NotAPhoneNumber, Refused
from ivr.phone_input import normalise_typed_phone
from ivr.runtime import Runtime
from ivr.twilio.messaging import last_locale

LOG = logging.getLogger(__name__)

OPT_OUTS_PATH = "/api/opt-outs"
API_REFERENCE_PREFIX = "api:"
MAX_BODY_BYTES = 16 * 1024
MAX_EVIDENCE_BYTES = 4096
FIELDS = ("phone", "business", "channel", "evidence")
REQUIRED = ("phone", "business", "channel")
# Printable ASCII without spaces at the ends, as most idempotency-key schemes (Stripe's) allow.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,198}[\x21-\x7e])?")


async def _grant(runtime: Runtime, request: Request) -> ApiToken:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused(401, "send Authorization: Bearer <token> (create one with 'ivr token add NAME')")
    grant = await runtime.store.api_token(token_sha256(token.strip()))
    if grant is None:
        raise Refused(401, "unknown or revoked token")
    return grant


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise Refused(413, f"the body is over {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Refused(413, f"the body is over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _fields(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)  # strict: no NaN, no integers past 64 bits, UTF-8 only
    except orjson.JSONDecodeError as exc:
        raise Refused(422, f"the body is not JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise Refused(422, "the body must be a JSON object with phone, business, channel and evidence")
    for name in parsed:
        if name not in FIELDS:
            raise Refused(
                422, f"unknown field {str(name)[:40]!r}; allowed: {', '.join(FIELDS)}", str(name)[:40]
            )
    for name in REQUIRED:
        if not isinstance(parsed.get(name), str) or not parsed[name].strip():
            raise Refused(422, f"{name} is required, as a non-empty string", name)
    return cast(dict[str, Any], parsed)


def _phone(text: str) -> str:
    try:
        phone = normalise_typed_phone(text, None)
    except NotAPhoneNumber as exc:
        raise Refused(422, str(exc), "phone") from None
    if not is_e164(phone):  # a withheld caller's placeholder: no record is ever kept for one
        raise Refused(422, "phone is a withheld caller's placeholder, not a person's number", "phone")
    return phone


def _channel(text: str) -> Channel:
    if text not in CHANNELS:
        raise Refused(422, f"channel {text[:40]!r} is not one of {', '.join(CHANNELS)}", "channel")
    return text


def _evidence(value: object) -> object:
    if value is None:
        return None
    if not isinstance(value, (dict, str)):
        raise Refused(422, "evidence must be a JSON object or a string", "evidence")
    if len(orjson.dumps(value)) > MAX_EVIDENCE_BYTES:
        raise Refused(422, f"evidence is over {MAX_EVIDENCE_BYTES} bytes as JSON", "evidence")
    return value


def _idempotency(request: Request, grant: ApiToken) -> str:
    key = request.headers.get("idempotency-key")
    if key is None:
        return f"api:{uuid.uuid4()}"
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise Refused(
            422,
            "Idempotency-Key must be 1 to 200 printable ASCII characters, not starting or ending in a space",
            "Idempotency-Key",
        )
    return f"api:{grant.name}:{key}"


async def _business(runtime: Runtime, grant: ApiToken, name: str) -> Business:
    try:
        if grant.businesses is not None and name not in grant.businesses:
            raise StoreError(name)  # another business's token learns nothing, not even that it exists
        return await runtime.store.get_business(name)
    except StoreError:
        raise Refused(404, f"no business named {name[:100]!r}", "business") from None


async def _same_request(runtime: Runtime, stored: StoredEvent, decision: ConsentDecision) -> bool:
    """Whether a repeated Idempotency-Key came with the body that made `stored`."""
    data: Mapping[str, Any] = stored.data
    if (data.get("channel"), data.get("evidence"), data.get("token_name")) != (
        decision.channel,
        decision.evidence,
        decision.token_name,
    ):
        return False
    where = ExportFilter(
        business=decision.business, phone=decision.phone, include_demo=True, after_seq=stored.seq - 1
    )
    async with contextlib.aclosing(runtime.store.export_decisions(where)) as rows:
        async for row in rows:
            return row.seq == stored.seq  # the phone is kept outside the chain: ask the store
    return False


def _answer(stored: StoredEvent, decision: ConsentDecision, status: int) -> Response:
    return JSONResponse(
        {
            "action": "opt_out",
            "phone": decision.phone,
            "business": decision.business,
            "channel": decision.channel,
            "seq": stored.seq,
            "recorded_at": stored.recorded_at,
            "record_hash": stored.hash,
        },
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


async def record_opt_out(request: Request) -> Response:
    """Record an opt-out another system received."""
    runtime: Runtime = request.app.state.runtime
    try:
        grant = await _grant(runtime, request)
        fields = _fields(await _body(request))
        phone, channel = _phone(fields["phone"]), _channel(fields["channel"])
        evidence, idempotency = _evidence(fields.get("evidence")), _idempotency(request, grant)
        business = await _business(runtime, grant, fields["business"])
        locale = await last_locale(runtime, phone, business.name) or business.locales[0]
    except Refused as refused:
        return refused.response()
    except ClientDisconnect:
        return Response(status_code=400)
    except StoreError as exc:
        LOG.error("opt-out API could not read the store: %s", exc)
        return JSONResponse({"error": "the consent store is unavailable: retry"}, status_code=503)
    decision = ConsentDecision(
        # No call: a reference of this service's own, never of Twilio's form, so receipts, the
        # audit pages and the opt-out webhook name the record as they name a call's.
        call_sid=API_REFERENCE_PREFIX + uuid.uuid4().hex,
        phone=phone,
        business=business.name,
        action="opt_out",
        message_types=business.message_types,
        digits="",
        locale=locale,
        script_version=0,  # no script was heard
        script_sha256=text_sha256(""),
        spoken_text="",
        channel=channel,
        source="api",
        token_name=grant.name,
        evidence=evidence,
        idempotency=idempotency,
    )
    try:
        stored = await runtime.store.record_decision(decision)
        if stored.duplicate and not await _same_request(runtime, stored, decision):
            return Refused(
                409, "this Idempotency-Key was used with another body", "Idempotency-Key"
            ).response()
    except StoreError as exc:
        LOG.error("could not record an API opt-out (%s) for %s: %s", masked(phone), business.name, exc)
        return JSONResponse({"error": "the opt-out was not recorded: retry"}, status_code=503)
    LOG.info(
        "recorded opt_out reported by token %s (%s, %s) as record %d%s",
        grant.name,
        masked(phone),
        channel,
        stored.seq,
        " (a repeat)" if stored.duplicate else "",
    )
    return _answer(stored, decision, 200 if stored.duplicate else 201)


routes = [Route(OPT_OUTS_PATH, record_opt_out, methods=["POST"])]
