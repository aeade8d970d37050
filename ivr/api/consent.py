"""The consent-check API for sending systems: "may I message this number on WhatsApp?".

Bearer tokens from `ivr token add` (kept as SHA-256 only), each for every business or only those
given with `--business`. Answers from an index, never a scan. 401 without a valid token, 400 for a
bad phone, 404 for an unknown business or one the token is not for.
"""

from __future__ import annotations

import hashlib
import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from consent_store import StoreError
from consent_store.phone import is_e164
from ivr.runtime import Runtime

TOKEN_PREFIX = "ivr_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _unauthorized(message: str) -> Response:
    return JSONResponse(
        {"error": message}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="consent"'}
    )


async def consent_check(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return _unauthorized("send Authorization: Bearer <token> (create one with 'ivr token add NAME')")
    grant = await runtime.store.api_token(token_sha256(token.strip()))
    if grant is None:
        return _unauthorized("unknown or revoked token")
    phone, business = request.query_params.get("phone", ""), request.query_params.get("business", "")
    if not is_e164(phone):
        return JSONResponse(
            {"error": f"phone {phone!r} is not E.164, e.g. +14155550123 (in a URL, write + as %2B)"},
            status_code=400,
        )
    try:
        if grant.businesses is not None and business not in grant.businesses:
            raise StoreError(business)  # another business's token learns nothing, not even that it exists
        await runtime.store.get_business(business)
    except StoreError:
        return JSONResponse({"error": f"no business named {business!r}"}, status_code=404)
    standing = await runtime.store.standing(phone, business)
    opted_in = standing is not None and standing.action == "opt_in"
    return JSONResponse(
        {
            "phone": phone,
            "business": business,
            "opted_in": opted_in,
            "since": standing.recorded_at if opted_in and standing else None,
            "message_types": list(standing.message_types) if opted_in and standing else [],
            "last_action": standing.action if standing else None,
            "last_action_at": standing.recorded_at if standing else None,
            "record_hash": standing.record_hash if standing else None,
        },
        headers={"Cache-Control": "no-store"},
    )


routes = [Route("/api/consent", consent_check, methods=["GET"])]
