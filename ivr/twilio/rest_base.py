"""What every resource of the REST emulator shares: Twilio's API version and paths, SIDs, accounts and
API keys, and Twilio's JSON error body (`code`, `message`, `more_info`, `status`).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

if TYPE_CHECKING:
    from ivr.twilio.rest_emulator import TwilioRestEmulator


API_VERSION = "2010-04-01"
ACCOUNTS = f"/{API_VERSION}/Accounts"


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Account:
    sid: str
    auth_token: str
    friendly_name: str = "My first Twilio account"
    status: str = "active"  # active | suspended | closed


@dataclass(frozen=True)
class ApiKey:
    sid: str
    secret: str
    account_sid: str


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    """Twilio's error body, e.g. {"code": 20003, "message": "Authenticate", ...}."""
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}"}
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
    return JSONResponse(body | {"status": status}, status_code=status, headers=headers)


def not_found(request: Request) -> JSONResponse:
    return twilio_error(404, 20404, f"The requested resource {request.url.path} was not found")


if TYPE_CHECKING:
    # A resource's handler: `async def handler(api, request, account)` returning a Response.
    Handler = Callable[[TwilioRestEmulator, Request, Account], Awaitable[Response]]
