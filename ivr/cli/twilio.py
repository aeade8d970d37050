"""`ivr twilio connect|check`: point the account's numbers at this service, and check a live set-up.

Both talk to Twilio's REST API through the twilio library's `Client`, at IVR_TWILIO_API_URL
(default https://api.twilio.com; tests use ivr.twilio.rest_emulator), with TWILIO_ACCOUNT_SID
and TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and TWILIO_API_SECRET. Secrets are never printed.

`check` proves signatures end to end with a request that writes nothing: a POST to
IVR_PUBLIC_URL/twilio/voice signed like Twilio (TWILIO_AUTH_TOKEN for TWILIO_ACCOUNT_SID, or
the first shared key with its header), a well-formed random CallSid, and a `To` that is no
business's number. The service answers such a call with its "not set up" message and
records nothing; the same request with a wrong signature must get 403. (A signed
/twilio/status was the other candidate, and was turned down: it appends a call status to
the append-only consent log, where a test request would stay for ever.)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
import httpx

from consent_store import ConsentStore
from ivr.cli.admin import region_option, typed_phone
from ivr.cli.support import database_read, settings_from_env, with_store
from ivr.exceptions import CliFailure
from ivr.settings import DEFAULT_TWILIO_API_URL, Settings

T = TypeVar("T")

VOICE_PATH = "/twilio/voice"
STATUS_PATH = "/twilio/status"
# What `connect` sets on each number, as (REST parameter, field of the resource).
FIELDS = (
    ("VoiceUrl", "voice_url"),
    ("VoiceMethod", "voice_method"),
    ("StatusCallback", "status_callback"),
    ("StatusCallbackMethod", "status_callback_method"),
)
# Twilio's test numbers (https://www.twilio.com/docs/iam/test-credentials): never a business's.
PROBE_CALLER = "+15005550006"
PROBE_CALLED = ("+15005550000", "+15005550001", "+15005550002", "+15005550003")


def wanted(public_url: str) -> dict[str, str]:
    """Each field `connect` sets, and its value for this service."""
    return {
        "voice_url": public_url + VOICE_PATH,
        "voice_method": "POST",
        "status_callback": public_url + STATUS_PATH,
        "status_callback_method": "POST",
    }


def public_url_problem(settings: Settings, allow_http: bool) -> str | None:
    """Why IVR_PUBLIC_URL cannot be given to Twilio, or None."""
    if settings.public_url is None:
        return "IVR_PUBLIC_URL is not set: set it to the HTTPS URL Twilio reaches this service at"
    if not settings.public_url.startswith("https://") and not allow_http:
        return (
            f"IVR_PUBLIC_URL {settings.public_url} is not HTTPS: Twilio needs HTTPS with a valid "
            "certificate (--allow-http for a local tunnel or a test)"
        )
    return None


def rest_client(settings: Settings) -> Any:
    """The twilio library's Client for this account, at IVR_TWILIO_API_URL."""
    from twilio.rest import Client

    account_sid = settings.twilio_account_sid
    if account_sid and settings.twilio_api_key and settings.twilio_api_secret:
        username, password = settings.twilio_api_key, settings.twilio_api_secret
    elif account_sid and settings.twilio_auth_token:
        username, password = account_sid, settings.twilio_auth_token
    else:
        raise CliFailure(
            "no Twilio credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
            "(or TWILIO_ACCOUNT_SID, TWILIO_API_KEY and TWILIO_API_SECRET)",
            2,
        )
    return Client(username, password, account_sid, http_client=_http_client(settings.twilio_api_url))


def _http_client(base_url: str) -> Any:
    from twilio.http.http_client import TwilioHttpClient

    class ApiAt(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no type information
        """TwilioHttpClient sending each request to `base_url` instead of Twilio's own host."""

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if base_url != DEFAULT_TWILIO_API_URL:
                parts = urlsplit(url)
                url = base_url + parts.path + (f"?{parts.query}" if parts.query else "")
            return super().request(method, url, *args, **kwargs)

    return ApiAt(timeout=20)


def rest(settings: Settings, what: str, call: Callable[[], T]) -> T:
    """Run one REST call; any failure becomes one line naming what was being done (exit 1)."""
    import requests
    from twilio.base.exceptions import TwilioException, TwilioRestException

    try:
        return call()
    except TwilioRestException as exc:
        raise CliFailure(f"{what}: {_rest_error(settings, exc.status, exc.code, exc.msg)}", 1) from exc
    except TwilioException as exc:  # a list page that failed carries the response
        response = exc.args[1] if len(exc.args) > 1 else None
        status = getattr(response, "status_code", 0)
        try:
            body = httpx.Response(200, content=getattr(response, "text", "")).json()
        except ValueError:
            body = {}
        raise CliFailure(
            f"{what}: {_rest_error(settings, status, body.get('code'), body.get('message'))}", 1
        ) from exc
    except requests.RequestException as exc:
        reason = type(exc).__name__
        raise CliFailure(
            f"{what}: Twilio's REST API at {settings.twilio_api_url} did not answer ({reason})", 1
        ) from exc


def _rest_error(settings: Settings, status: int, code: object, message: object) -> str:
    if status == 401:
        who = "TWILIO_API_KEY and TWILIO_API_SECRET" if settings.twilio_api_key else "TWILIO_AUTH_TOKEN"
        return (
            f"Twilio refused the credentials (HTTP 401, code {code}): check TWILIO_ACCOUNT_SID "
            f"({settings.twilio_account_sid}) and {who}"
        )
    return f"Twilio answered HTTP {status} (code {code}): {message}"


def find_number(client: Any, settings: Settings, number: str) -> Any | None:
    """The account's IncomingPhoneNumber for exactly `number` (Twilio's filter also matches partly)."""
    found = rest(
        settings, f"looking up {number}", lambda: client.incoming_phone_numbers.list(phone_number=number)
    )
    return next((n for n in found if n.phone_number == number), None)


def business_numbers() -> list[str]:
    """Every number of a (not demo) business in IVR_DATABASE_URL."""
    database_read()

    async def read(store: ConsentStore) -> list[str]:
        return [n for b in await store.list_businesses() if not b.demo for n in b.numbers]

    return with_store(read)


@click.group()
def twilio() -> None:
    """Point Twilio numbers at this service, and check a live set-up."""


@twilio.command()
@click.option(
    "--number", "numbers", multiple=True, help="A business's number, e.g. +14155550123; repeatable."
)
@region_option
@click.option("--all", "all_numbers", is_flag=True, help="Every business's number.")
@click.option("--allow-http", is_flag=True, help="Accept an http:// IVR_PUBLIC_URL (a local tunnel, a test).")
def connect(numbers: Sequence[str], region: str | None, all_numbers: bool, allow_http: bool) -> None:
    """Set each number's Voice URL and status callback to IVR_PUBLIC_URL, through Twilio's REST API."""
    if bool(numbers) == all_numbers:
        raise click.UsageError("give --number E164 (repeatable) or --all")
    numbers = [typed_phone("--number", number, region) for number in numbers]
    settings = settings_from_env()
    problem = public_url_problem(settings, allow_http)
    if problem:
        raise CliFailure(problem, 2)
    assert settings.public_url is not None
    client = rest_client(settings)
    ours = business_numbers()
    for number in numbers:
        if number not in ours:
            raise CliFailure(
                f"{number} is no business's number here: add it with `ivr business add` first", 2
            )
    targets = list(numbers) if numbers else ours
    if not targets:
        raise CliFailure("no business has a number yet: add one with `ivr business add`", 2)
    found = {number: find_number(client, settings, number) for number in targets}
    missing = [number for number, resource in found.items() if resource is None]
    if missing:
        raise CliFailure(
            f"not in account {settings.twilio_account_sid}: {', '.join(missing)} (nothing was changed)", 1
        )
    for number, resource in found.items():
        target = wanted(settings.public_url)
        changes = {param: target[name] for param, name in FIELDS if getattr(resource, name) != target[name]}
        if not changes:
            click.echo(f"{number}: already points at {settings.public_url} (unchanged)")
            continue
        update = _updater(resource, _snake(changes))
        updated = rest(settings, f"updating {number}", update)
        for param, name in FIELDS:
            if param in changes:
                click.echo(
                    f"{number} {param}: {getattr(resource, name) or '(none)'} → {getattr(updated, name)}"
                )


def _updater(resource: Any, fields: dict[str, str]) -> Callable[[], Any]:
    return lambda: resource.update(**fields)


def _snake(changes: dict[str, str]) -> dict[str, str]:
    return {name: changes[param] for param, name in FIELDS if param in changes}


@dataclass
class Findings:
    failed: list[str]

    def ok(self, line: str) -> None:
        click.echo(f"ok    {line}")

    def fail(self, name: str, line: str) -> None:
        self.failed.append(name)
        click.echo(f"FAIL  {line}")


@twilio.command()
@click.option("--allow-http", is_flag=True, help="Accept an http:// IVR_PUBLIC_URL (a local tunnel, a test).")
def check(allow_http: bool) -> None:
    """Check credentials, every business number's URLs, /healthz and a signed request: one line each."""
    settings = settings_from_env()
    findings = Findings([])
    public_url = settings.public_url
    problem = public_url_problem(settings, allow_http)
    if problem:
        findings.fail("IVR_PUBLIC_URL", problem)
        public_url = None
    else:
        findings.ok(f"IVR_PUBLIC_URL is {public_url}")
    numbers = business_numbers()
    try:
        client = rest_client(settings)
        account = rest(
            settings, "credentials", lambda: client.api.v2010.accounts(settings.twilio_account_sid).fetch()
        )
    except CliFailure as exc:
        findings.fail("credentials", str(exc))
    else:
        if account.status == "active":
            findings.ok(f"credentials: account {account.sid} ({account.friendly_name}) is active")
        else:
            findings.fail(
                "account", f"account {account.sid} is {account.status}: Twilio will not route its calls"
            )
        _check_numbers(findings, client, settings, numbers, public_url)
    if public_url is not None:
        _check_healthz(findings, public_url)
        _check_signature(findings, settings, public_url, numbers)
    if findings.failed:
        raise CliFailure(f"{len(findings.failed)} check(s) failed: {', '.join(findings.failed)}", 1)


def _check_numbers(
    findings: Findings, client: Any, settings: Settings, numbers: list[str], public_url: str | None
) -> None:
    if not numbers:
        findings.fail("numbers", "no business has a number: add one with `ivr business add`")
    for number in numbers:
        try:
            resource = find_number(client, settings, number)
        except CliFailure as exc:
            findings.fail(number, str(exc))
            continue
        if resource is None:
            findings.fail(number, f"{number} is not in account {settings.twilio_account_sid}")
            continue
        if resource.voice_application_sid:
            findings.fail(
                f"{number} VoiceApplicationSid",
                f"{number} uses TwiML App {resource.voice_application_sid}, whose Voice URL Twilio calls "
                "instead: clear it in the console",
            )
        if public_url is None:
            continue
        target = wanted(public_url)
        wrong = [(param, name) for param, name in FIELDS if getattr(resource, name) != target[name]]
        for param, name in wrong:
            findings.fail(
                f"{number} {param}",
                f"{number} {param} is {getattr(resource, name) or '(none)'}, not {target[name]}: "
                f"run `ivr twilio connect --number {number}`",
            )
        if not wrong:
            findings.ok(
                f"{number} calls {target['voice_url']} and reports to {target['status_callback']} (POST)"
            )


def _check_healthz(findings: Findings, public_url: str) -> None:
    try:
        response = httpx.get(public_url + "/healthz", timeout=10)
    except httpx.HTTPError as exc:
        findings.fail(
            "healthz", f"{public_url}/healthz did not answer ({type(exc).__name__}): is the service up?"
        )
        return
    if response.status_code == 200:
        findings.ok(f"{public_url}/healthz answers 200")
    else:
        findings.fail(
            "healthz", f"{public_url}/healthz answered HTTP {response.status_code}: {response.text[:120]}"
        )


def _check_signature(findings: Findings, settings: Settings, public_url: str, numbers: list[str]) -> None:
    from twilio.request_validator import RequestValidator

    headers: dict[str, str] = {}
    if settings.twilio_auth_token:
        secret, algorithm, signed_with = settings.twilio_auth_token, "HMAC_SHA1", "TWILIO_AUTH_TOKEN"
    elif settings.twilio_shared_keys:
        key_id, secret = settings.twilio_shared_keys[0]
        algorithm, signed_with = "HMAC_SHA256", f"shared key {key_id}"
        headers["X-Twilio-Webhooks-Signature-Settings"] = f"key={key_id},algorithm={algorithm}"
    else:
        findings.fail("signature", "cannot sign a test request: set TWILIO_AUTH_TOKEN (Twilio signs with it)")
        return
    url = public_url + VOICE_PATH
    params = {
        "AccountSid": settings.twilio_account_sid or "AC" + secrets.token_hex(16),
        "ApiVersion": "2010-04-01",
        "CallSid": "CA" + secrets.token_hex(16),
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": PROBE_CALLER,
        "To": next(n for n in PROBE_CALLED if n not in numbers),
    }
    signature = RequestValidator(secret).compute_signature(url, params, algorithm)
    try:
        signed = httpx.post(url, data=params, headers=headers | {"X-Twilio-Signature": signature}, timeout=10)
        forged = httpx.post(
            url, data=params, headers=headers | {"X-Twilio-Signature": signature[::-1]}, timeout=10
        )
    except httpx.HTTPError as exc:
        findings.fail("signature", f"{url} did not answer ({type(exc).__name__})")
        return
    if signed.status_code != 200:
        findings.fail(
            "signature",
            f"{url} refused a request signed with {signed_with} (HTTP {signed.status_code}): the server "
            "needs the same TWILIO_AUTH_TOKEN and IVR_PUBLIC_URL (its log says which secrets it tried)",
        )
    elif forged.status_code != 403:
        findings.fail("signature", f"{url} took a wrongly signed request (HTTP {forged.status_code})")
    else:
        findings.ok(f"{url} takes a request signed with {signed_with} and refuses a forged one (403)")
