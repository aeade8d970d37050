"""Every way a real Twilio account signs webhooks: primary and secondary tokens, a
subaccount's token for its own AccountSid, a Webhook Rule's shared key with its header.
What is refused gets 403, writes nothing, and leaves one log line that says what was
checked and what to fix, and never a secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from consent_store import ConsentStore
from ivr.app import create_app
from ivr.businesses import add_business
from ivr.settings import Settings
from ivr.twilio.emulator import TwilioEmulator
from tests.conftest import ACME_NUMBER, CALLER

MAIN = "AC" + "a1" * 16
SUB = "AC" + "b2" * 16
STRANGER = "AC" + "c3" * 16
PRIMARY = "primary-token-0123456789abcdef0"
SECONDARY = "secondary-token-0123456789abcde"
SUB_TOKEN = "subaccount-token-0123456789abcd"
SHARED_ID = "webhooks_sharedkey_1"
SHARED_SECRET = "shared-secret-0123456789abcdef0"
SECRETS = (PRIMARY, SECONDARY, SUB_TOKEN, SHARED_SECRET)
BASE = "http://testserver"


def settings(db_url: str, public_url: str | None = None) -> Settings:
    return Settings(
        database_url=db_url,
        twilio_auth_token=PRIMARY,
        public_url=public_url,
        twilio_account_sid=MAIN,
        twilio_auth_token_secondary=SECONDARY,
        twilio_subaccount_tokens=((SUB, SUB_TOKEN),),
        twilio_shared_keys=((SHARED_ID, SHARED_SECRET),),
    )


class Site:
    def __init__(self, client: httpx.AsyncClient, store: ConsentStore) -> None:
        self.client = client
        self.store = store

    def twilio(self, token: str, account_sid: str = MAIN, **signing: str) -> TwilioEmulator:
        return TwilioEmulator(self.client, BASE, token, account_sid, **signing)

    async def events(self) -> int:
        return (await self.store.verify()).count


@pytest.fixture
async def site(db_url: str) -> AsyncIterator[Site]:
    app = create_app(settings(db_url))
    async with app.router.lifespan_context(app):
        store = app.state.runtime.store
        await add_business(store, "Acme", [ACME_NUMBER], ["delivery updates"])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            yield Site(client, store)


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ivr.twilio.webhooks" and r.levelno >= logging.WARNING
    ]


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture) -> None:
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.parametrize(
    ("token", "account_sid", "signing"),
    [
        pytest.param(PRIMARY, MAIN, {}, id="primary"),
        pytest.param(SECONDARY, MAIN, {}, id="secondary"),
        pytest.param(SUB_TOKEN, SUB, {}, id="subaccount-token-for-its-account"),
        pytest.param(SHARED_SECRET, MAIN, {"shared_key": SHARED_ID}, id="shared-key-hmac-sha256"),
        pytest.param(
            SHARED_SECRET, SUB, {"shared_key": SHARED_ID, "algorithm": "HMAC_SHA1"}, id="shared-sha1"
        ),
    ],
)
async def test_a_call_signed_by_any_configured_secret_is_taken_and_recorded(
    site: Site, token: str, account_sid: str, signing: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    before = await site.events()
    call = await site.twilio(token, account_sid, **signing).call(ACME_NUMBER, CALLER, ["1"])
    assert call.ended_by == "hangup" and all(status < 300 for _, status in call.responses)
    assert await site.events() > before
    standing = await site.store.standing(CALLER, "Acme")
    assert standing is not None and standing.action == "opt_in"
    assert refusals(caplog) == []


def sha512_signature(url: str, params: dict[str, str]) -> str:
    text = url + "".join(k + v for k, v in sorted(params.items()))
    return base64.b64encode(hmac.new(SHARED_SECRET.encode(), text.encode(), hashlib.sha512).digest()).decode()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "unknown-token",
            ["AccountSid " + MAIN, "primary, secondary (HMAC_SHA1)", "no configured secret matches"],
        ),
        (
            "subaccount-token-for-main",
            ["AccountSid " + MAIN, "primary, secondary", f"signed with {SUB}'s token"],
        ),
        (
            "main-token-for-subaccount",
            ["AccountSid " + SUB, f"{SUB}'s token (HMAC_SHA1)", "signed with primary"],
        ),
        ("stranger-account", [f"AccountSid {STRANGER!r}", "no secret", "has no token configured"]),
        (
            "unknown-key",
            ["shared key 'another-key'", "no secret", "TWILIO_SHARED_KEYS (configured: " + SHARED_ID],
        ),
        ("unknown-algorithm", ["algorithm 'HMAC_SHA512'", "no secret", "HMAC_SHA256"]),
        (
            "shared-secret-without-header",
            ["primary, secondary", f"signed with shared key {SHARED_ID} but without"],
        ),
        ("missing-signature", ["missing X-Twilio-Signature", "primary, secondary"]),
    ],
)
async def test_a_request_not_signed_for_its_account_is_refused_logged_and_writes_nothing(
    site: Site, case: str, expected: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{BASE}/twilio/voice"
    twilio = {
        "unknown-token": lambda: site.twilio("a-token-nobody-configured-0123"),
        "subaccount-token-for-main": lambda: site.twilio(SUB_TOKEN, MAIN),
        "main-token-for-subaccount": lambda: site.twilio(PRIMARY, SUB),
        "stranger-account": lambda: site.twilio(PRIMARY, STRANGER),
        "unknown-key": lambda: site.twilio(SHARED_SECRET, shared_key="another-key"),
        "unknown-algorithm": lambda: site.twilio(SHARED_SECRET, shared_key=SHARED_ID),
        "shared-secret-without-header": lambda: site.twilio(SHARED_SECRET),
        "missing-signature": lambda: site.twilio(PRIMARY),
    }[case]()
    params = twilio.call_params("CA" + "7" * 32, ACME_NUMBER, CALLER)
    headers = twilio.signature_headers(url, params)
    if case == "unknown-algorithm":
        headers = {
            "X-Twilio-Signature": sha512_signature(url, params),
            "X-Twilio-Webhooks-Signature-Settings": f"key={SHARED_ID},algorithm=HMAC_SHA512",
        }
    if case == "missing-signature":
        del headers["X-Twilio-Signature"]
    before = await site.events()
    with caplog.at_level(logging.INFO):
        response = await site.client.post(url, data=params, headers=headers)
    assert response.status_code == 403
    assert await site.events() == before
    [line] = refusals(caplog)
    assert "refused POST /twilio/voice" in line and f"checked {url} " in line
    for part in expected:
        assert part in line
    assert_no_secret_logged(caplog)


async def test_a_refusal_says_when_the_host_twilio_called_would_have_validated(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings(db_url, public_url="https://ivr.example.com"))
    async with app.router.lifespan_context(app):
        await add_business(app.state.runtime.store, "Acme", [ACME_NUMBER], ["offers"])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            twilio = TwilioEmulator(client, BASE, PRIMARY, MAIN)  # Twilio was pointed at the host itself
            with pytest.raises(Exception, match="403"):
                await twilio.call(ACME_NUMBER, CALLER, ["1"])
    [line] = refusals(caplog)
    assert "checked https://ivr.example.com/twilio/voice for AccountSid " + MAIN in line
    assert (
        "IVR_PUBLIC_URL (https://ivr.example.com) differs from the host Twilio called (http://testserver)"
        in line
    )
    assert_no_secret_logged(caplog)


async def test_a_get_callback_refusal_names_the_url_without_its_query(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    from urllib.parse import urlencode

    twilio = site.twilio(SUB_TOKEN, MAIN)
    params = twilio.call_params("CA" + "8" * 32, ACME_NUMBER, CALLER, "completed")
    url = f"{BASE}/twilio/status?{urlencode(params)}"
    response = await site.client.get(url, headers=twilio.signature_headers(url, {}))
    assert response.status_code == 403
    [line] = refusals(caplog)
    assert f"checked {BASE}/twilio/status?... for AccountSid {MAIN}" in line
    assert CALLER not in line and CALLER.replace("+", "%2B") not in line


async def test_without_twilio_account_sid_one_token_signs_for_any_account(db_url: str) -> None:
    app = create_app(Settings(database_url=db_url, twilio_auth_token=PRIMARY))
    async with app.router.lifespan_context(app):
        await add_business(app.state.runtime.store, "Acme", [ACME_NUMBER], ["offers"])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            for account in (MAIN, STRANGER):
                call = await TwilioEmulator(client, BASE, PRIMARY, account).call(ACME_NUMBER, CALLER, ["2"])
                assert call.ended_by == "hangup"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TWILIO_ACCOUNT_SID": "AC123"}, "TWILIO_ACCOUNT_SID: 'AC123' is not a Twilio SID"),
        ({"TWILIO_SUBACCOUNT_TOKENS": f"{SUB}:{SUB_TOKEN}"}, "TWILIO_SUBACCOUNT_TOKENS: entry 1"),
        ({"TWILIO_SUBACCOUNT_TOKENS": f"ACnope={SUB_TOKEN}"}, "TWILIO_SUBACCOUNT_TOKENS: 'ACnope' is not"),
        (
            {"TWILIO_ACCOUNT_SID": MAIN, "TWILIO_SUBACCOUNT_TOKENS": f"{MAIN}={SUB_TOKEN}"},
            "TWILIO_SUBACCOUNT_TOKENS: " + MAIN + " is TWILIO_ACCOUNT_SID",
        ),
        (
            {"TWILIO_SHARED_KEYS": f"k1={SHARED_SECRET},k1={PRIMARY}"},
            "TWILIO_SHARED_KEYS: 'k1' is listed twice",
        ),
        ({"TWILIO_SHARED_KEYS": f"={SHARED_SECRET}"}, "TWILIO_SHARED_KEYS: entry 1"),
        ({"TWILIO_API_KEY": "SK" + "0" * 32}, "TWILIO_API_KEY and TWILIO_API_SECRET go together"),
        ({"IVR_TWILIO_API_URL": "api.twilio.com"}, "IVR_TWILIO_API_URL 'api.twilio.com' must start with"),
    ],
)
def test_a_malformed_twilio_variable_stops_the_start_naming_it_and_no_secret(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        Settings.from_env(env)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    for secret in SECRETS:
        assert secret not in str(raised.value)


def test_the_twilio_variables_are_read_once_into_settings() -> None:
    read = Settings.from_env(
        {
            "TWILIO_ACCOUNT_SID": MAIN,
            "TWILIO_AUTH_TOKEN_SECONDARY": SECONDARY,
            "TWILIO_SUBACCOUNT_TOKENS": f" {SUB}={SUB_TOKEN} ,",
            "TWILIO_SHARED_KEYS": f"{SHARED_ID}={SHARED_SECRET}",
            "IVR_TWILIO_API_URL": "http://127.0.0.1:9999/",
        }
    )
    assert read.twilio_account_sid == MAIN and read.twilio_auth_token_secondary == SECONDARY
    assert read.twilio_subaccount_tokens == ((SUB, SUB_TOKEN),)
    assert read.twilio_shared_keys == ((SHARED_ID, SHARED_SECRET),)
    assert read.twilio_api_url == "http://127.0.0.1:9999"
    assert Settings.from_env({}).twilio_api_url == "https://api.twilio.com"
