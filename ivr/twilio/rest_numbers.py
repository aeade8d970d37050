"""Accounts and phone numbers in the REST emulator (`ivr/twilio/rest_emulator.py` registers the routes).

GET /2010-04-01/Accounts/{AccountSid}.json, the IncomingPhoneNumbers list (its `PhoneNumber`
filter matching partial numbers and `*` wildcards, as Twilio's does), and fetching and updating
one number (the Voice, fallback, status callback and SMS URLs `ivr twilio` sets), with Twilio's
error codes for a bad method (21101) or URL (21502).
"""

from __future__ import annotations

import re
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ivr.twilio.rest_base import ACCOUNTS, Account, not_found, twilio_error

if TYPE_CHECKING:
    from ivr.twilio.rest_base import Handler
    from ivr.twilio.rest_emulator import TwilioRestEmulator


async def fetch_account(api: TwilioRestEmulator, request: Request, account: Account) -> Response:
    return JSONResponse(
        {
            "sid": account.sid,
            "friendly_name": account.friendly_name,
            "status": account.status,
            "type": "Full",
            "uri": f"{ACCOUNTS}/{account.sid}.json",
        }
    )


def _pattern(phone_filter: str) -> re.Pattern[str]:
    """Twilio's PhoneNumber filter: partial numbers, '*' for any digit."""
    digits = "".join(c for c in phone_filter if c.isdigit() or c == "*")
    return re.compile(re.escape(digits).replace(r"\*", r"\d"))


async def list_numbers(api: TwilioRestEmulator, request: Request, account: Account) -> Response:
    phone_filter = request.query_params.get("PhoneNumber")
    pattern = _pattern(phone_filter) if phone_filter else None
    page_size = int(request.query_params.get("PageSize") or 50)
    found = [
        n
        for n in api.numbers.values()
        if n["account_sid"] == account.sid
        and (pattern is None or pattern.search(re.sub(r"\D", "", n["phone_number"])))
    ][:page_size]
    uri = f"{request.url.path}?{request.url.query}" if request.url.query else request.url.path
    return JSONResponse(
        {
            "end": max(len(found) - 1, 0),
            "first_page_uri": uri,
            "incoming_phone_numbers": found,
            "next_page_uri": None,
            "page": 0,
            "page_size": page_size,
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }
    )


def _owned_number(api: TwilioRestEmulator, request: Request, account: Account) -> dict[str, Any] | None:
    number = api.numbers.get(request.path_params["Sid"])
    return number if number is not None and number["account_sid"] == account.sid else None


async def fetch_number(api: TwilioRestEmulator, request: Request, account: Account) -> Response:
    number = _owned_number(api, request, account)
    return not_found(request) if number is None else JSONResponse(number)


# Writable IncomingPhoneNumber parameters: name -> field; *Method ones take GET or POST.
UPDATABLE = {
    "FriendlyName": "friendly_name",
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "VoiceFallbackUrl": "voice_fallback_url",
    "VoiceFallbackMethod": "voice_fallback_method",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
    "VoiceApplicationSid": "voice_application_sid",
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
}


async def update_number(api: TwilioRestEmulator, request: Request, account: Account) -> Response:
    number = _owned_number(api, request, account)
    if number is None:
        return not_found(request)
    form = await request.form()
    changes: dict[str, str] = {}
    for name, value in form.multi_items():
        if name not in UPDATABLE or not isinstance(value, str):
            continue
        if name.endswith("Method"):
            if value.upper() not in ("GET", "POST"):
                return twilio_error(400, 21101, f"{name} is not valid: {value!r} (GET or POST)")
            value = value.upper()
        elif name.endswith(("Url", "Callback")) and value and not value.startswith(("http://", "https://")):
            return twilio_error(400, 21502, f"{name} is not a valid URL: {value!r}")
        changes[UPDATABLE[name]] = value
    number.update(changes, date_updated=formatdate(usegmt=True))
    return JSONResponse(number)


NUMBER = "/{AccountSid}/IncomingPhoneNumbers/{Sid}.json"


NUMBER_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/{AccountSid}.json", fetch_account),
    ("GET", "/{AccountSid}/IncomingPhoneNumbers.json", list_numbers),
    ("GET", NUMBER, fetch_number),
    ("POST", NUMBER, update_number),
]
