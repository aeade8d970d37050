"""Signatures: a request Twilio did not sign gets 403 and writes nothing."""

from __future__ import annotations

import httpx
import pytest

from ivr.app import create_app
from ivr.businesses import add_business
from ivr.twilio.emulator import TwilioEmulator
from tests.conftest import ACME_NUMBER, AUTH_TOKEN, CALLER, Service, make_settings


async def event_count(service: Service) -> int:
    return (await service.store.verify()).count


@pytest.mark.parametrize(
    "path", ["/twilio/voice", "/twilio/gather?step=language&n=1&r=0", "/twilio/recording", "/twilio/status"]
)
@pytest.mark.parametrize("signature", [None, "bm90IGEgc2lnbmF0dXJl"])
async def test_unsigned_or_badly_signed_requests_get_403_and_write_nothing(
    service: Service, path: str, signature: str | None
) -> None:
    before = await event_count(service)
    params = service.twilio.call_params("CA" + "2" * 32, ACME_NUMBER, CALLER) | {
        "Digits": "1",
        "RecordingSid": "RE" + "3" * 32,
        "RecordingStatus": "completed",
    }
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    response = await service.client.post(path, data=params, headers=headers)
    assert response.status_code == 403
    assert await event_count(service) == before


async def test_forged_decision_with_tampered_parameters_is_refused(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["-", "-", "-"])
    gather_url = next(url for url, _ in call.responses if "step=consent" in url)
    params = service.twilio.call_params(call.call_sid, ACME_NUMBER, CALLER) | {"Digits": "2"}
    signature = service.twilio.sign(gather_url, params)
    forged = params | {"Digits": "1"}  # signed for 2, sent with 1
    before = await event_count(service)
    response = await service.twilio.post(gather_url, forged, signature=signature)
    assert response.status_code == 403
    assert await event_count(service) == before


async def test_signature_for_another_token_is_refused(service: Service) -> None:
    stranger = TwilioEmulator(service.client, "http://testserver", "some-other-accounts-token")
    before = await event_count(service)
    with pytest.raises(Exception, match="403"):
        await stranger.call(ACME_NUMBER, CALLER, ["1"])
    assert await event_count(service) == before


async def test_behind_a_tls_proxy_requests_are_checked_against_ivr_public_url(db_url: str) -> None:
    app = create_app(make_settings(db_url, public_url="https://ivr.example.com"))
    async with app.router.lifespan_context(app):
        await add_business(app.state.runtime.store, "Acme", [ACME_NUMBER], ["offers"])
        await app.state.runtime.catalog.refresh()  # beside the running app: the catalog race
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as client:
            public = TwilioEmulator(client, "https://ivr.example.com", AUTH_TOKEN)
            params = public.call_params("CA" + "4" * 32, ACME_NUMBER, CALLER)
            signature = public.sign("https://ivr.example.com/twilio/voice", params)
            response = await client.post(
                "/twilio/voice", data=params, headers={"X-Twilio-Signature": signature}
            )
            assert response.status_code == 200
            assert "https://ivr.example.com/twilio/gather?" in response.text
            assert 'recordingStatusCallback="https://ivr.example.com/twilio/recording"' in response.text
            # Signed for the internal URL instead: refused.
            internal = public.sign("http://internal:8000/twilio/voice", params)
            response = await client.post(
                "/twilio/voice", data=params, headers={"X-Twilio-Signature": internal}
            )
            assert response.status_code == 403


async def test_unknown_number_hears_a_polite_message_and_nothing_is_written(service: Service) -> None:
    before = await event_count(service)
    call = await service.twilio.call("+15559999999", CALLER, ["1"], status_callback=False)
    assert call.transcript == "Sorry, this number is not set up to take calls. Goodbye."
    assert call.ended_by == "hangup" and call.recording_callback is None
    assert await event_count(service) == before


@pytest.mark.parametrize("caller", ["anonymous", "", "+0123", "5550123"])
async def test_withheld_caller_is_told_why_and_nothing_is_recorded(service: Service, caller: str) -> None:
    before = await event_count(service)
    call = await service.twilio.call(ACME_NUMBER, caller, ["1"], status_callback=False)
    assert "your phone number is hidden" in call.transcript and call.ended_by == "hangup"
    assert await event_count(service) == before


async def test_missing_call_sid_is_a_400(service: Service) -> None:
    params = {"From": CALLER, "To": ACME_NUMBER}
    response = await service.twilio.post("/twilio/voice", params)
    assert response.status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "step=bogus",
        "step=consent&n=1&r=0",
        "step=language&n=9&r=0",
        "step=consent&n=1&r=0&locale=fr-FR&v=1&h=abc",
        "step=language&n=x",
    ],
)
async def test_gather_with_a_state_we_never_issued_is_a_400(service: Service, query: str) -> None:
    params = service.twilio.call_params("CA" + "5" * 32, ACME_NUMBER, CALLER) | {"Digits": "1"}
    # In name order, as the emulator (like Twilio) requests it: signed, so only the state is wrong.
    query = "&".join(sorted(query.split("&"), key=lambda pair: pair.partition("=")[0]))
    response = await service.twilio.post(f"http://testserver/twilio/gather?{query}", params)
    assert response.status_code == 400
    assert await event_count(service) == 2  # the two businesses only


async def test_healthz_answers_when_the_store_does(service: Service) -> None:
    response = await service.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_a_get_status_callback_is_checked_against_its_query_string(service: Service) -> None:
    from urllib.parse import urlencode

    call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"], status_callback=False)
    params = service.twilio.call_params(call.call_sid, ACME_NUMBER, CALLER, "completed") | {
        "CallDuration": "12"
    }
    url = f"http://testserver/twilio/status?{urlencode(params)}"
    before = await event_count(service)
    forged = url.replace("completed", "busy")
    refused = await service.client.get(forged, headers={"X-Twilio-Signature": service.twilio.sign(url, {})})
    assert refused.status_code == 403 and await event_count(service) == before
    accepted = await service.client.get(url, headers={"X-Twilio-Signature": service.twilio.sign(url, {})})
    assert accepted.status_code == 204 and await event_count(service) == before + 1


@pytest.mark.parametrize(
    ("signed_for", "public"),
    [
        ("https://ivr.example.com:443/twilio/voice", "https://ivr.example.com"),
        ("https://ivr.example.com/twilio/voice", "https://ivr.example.com:443"),
        ("https://ivr.example.com:8443/twilio/voice", "https://ivr.example.com:8443"),
    ],
)
async def test_signatures_hold_with_and_without_the_default_port(
    db_url: str, signed_for: str, public: str
) -> None:
    app = create_app(make_settings(db_url, public_url=public))
    async with app.router.lifespan_context(app):
        await add_business(app.state.runtime.store, "Acme", [ACME_NUMBER], ["offers"])
        await app.state.runtime.catalog.refresh()  # beside the running app: the catalog race
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://internal") as client:
            twilio = TwilioEmulator(client, public, AUTH_TOKEN)
            params = twilio.call_params("CA" + "9" * 32, ACME_NUMBER, CALLER)
            response = await client.post(
                "/twilio/voice", data=params, headers={"X-Twilio-Signature": twilio.sign(signed_for, params)}
            )
            assert response.status_code == 200
