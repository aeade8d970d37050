"""Hostile and malformed webhook input: always a 4xx or valid TwiML, never a 500, never a consent
record the caller did not give (Hypothesis)."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import FormData

from consent_store import ExportFilter
from tests.conftest import ACME_NUMBER, CALLER, Service

FIELDS = [
    "CallSid",
    "From",
    "To",
    "Digits",
    "CallStatus",
    "RecordingSid",
    "RecordingStatus",
    "RecordingUrl",
    "RecordingDuration",
    "CallDuration",
    "AccountSid",
]
hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "anonymous",
            "+0",
            "+1",
            "11",
            "#",
            "*",
            "abc",
            "\x00",
            "1\x00",
            "+15550001111",
            "+" + "9" * 40,
            "x" * 5000,
            "١",
            "१",
            "𝟙",
            "１",
        ]
    ),
)
params = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), hostile_text, max_size=8)
paths = st.sampled_from(
    [
        "/twilio/voice",
        "/twilio/recording",
        "/twilio/status",
        "/twilio/gather?step=language&n=1&r=0",
        "/twilio/gather?step=consent&n=1&r=0",
        "/twilio/gather?step=consent&n=2&r=0&locale=en-US&v=1&h=0000000000000000",
        "/twilio/gather",
        "/twilio/gather?step=language&n=-1&r=99",
    ]
)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_sids = itertools.count()


def assert_safe(status: int, body: str) -> None:
    assert status in (200, 204, 400, 403, 413), (status, body[:300])
    if status == 200:
        assert ET.fromstring(body).tag == "Response"


@SETTINGS
@given(path=paths, fields=params)
async def test_signed_random_parameters_never_cause_a_500(service: Service, path: str, fields: dict) -> None:  # type: ignore[type-arg]
    response = await service.twilio.post(f"http://testserver{path}", fields)
    assert_safe(response.status_code, response.text)


@SETTINGS
@given(digits=hostile_text)
async def test_only_the_offered_keys_record_a_decision(service: Service, digits: str) -> None:
    """A real call reaches the consent prompt; a forged-but-signed Digits value records only if offered."""
    call_sid = f"CA{next(_sids):032d}"
    call = await service.twilio.call(
        ACME_NUMBER, CALLER, [], call_sid=call_sid, status_callback=False, recording="none"
    )
    gather_url = next(url for url, _ in call.responses if "step=consent" in url)
    fields = service.twilio.call_params(call_sid, ACME_NUMBER, CALLER) | {"Digits": digits}
    response = await service.twilio.post(gather_url, fields)
    assert_safe(response.status_code, response.text)
    rows = [r async for r in service.store.export_decisions(ExportFilter(call_sid=call_sid))]
    expected = {"1": "opt_in", "2": "declined"}.get(digits)
    assert [r.action for r in rows] == ([expected] if expected else [])


@SETTINGS
@given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH"]),
    path=st.sampled_from(["/twilio/voice", "/twilio/gather", "/twilio/recording", "/twilio/status"]),
)
async def test_other_methods_on_webhooks_are_405_or_refused(service: Service, method: str, path: str) -> None:
    response = await service.client.request(method, path)
    callback_get = method == "GET" and path in ("/twilio/recording", "/twilio/status")
    assert response.status_code == (403 if callback_get else 405)  # unsigned GET callbacks: refused


@SETTINGS
@given(
    content_type=st.sampled_from(
        ["application/json", "text/plain", "multipart/form-data; boundary=x", "application/xml", ""]
    ),
    body=st.binary(max_size=500),
)
async def test_wrong_content_types_are_refused_without_writing(
    service: Service, content_type: str, body: bytes
) -> None:
    before = (await service.store.verify()).count
    response = await service.client.post(
        "/twilio/voice",
        content=body,
        headers={"content-type": content_type, "X-Twilio-Signature": "c2lnbmF0dXJl"},
    )
    assert response.status_code in (400, 403)
    assert (await service.store.verify()).count == before


async def test_repeated_keys_are_signed_and_read_like_twilio(service: Service) -> None:
    fields = service.twilio.call_params("CA" + "8" * 32, ACME_NUMBER, CALLER)
    body = "&".join(f"{k}={v}" for k, v in fields.items()).replace("+", "%2B") + "&To=%2B15559999999"
    repeated = FormData([*fields.items(), ("To", "+15559999999")])
    signature = service.twilio.validator.compute_signature("http://testserver/twilio/voice", repeated)
    response = await service.client.post(
        "/twilio/voice",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert_safe(response.status_code, response.text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=12)), max_size=6))
def test_the_fast_form_parser_reads_exactly_what_parse_qsl_reads(pairs: list[tuple[str, str]]) -> None:
    from urllib.parse import parse_qsl, urlencode

    from ivr.twilio.webhooks import parse_urlencoded

    body = urlencode(pairs)
    assert parse_urlencoded(body) == parse_qsl(body, keep_blank_values=True)


@settings(max_examples=400, deadline=None)
@given(
    # Keys longer than a block (64 bytes) too: those are hashed first.
    key=st.one_of(st.binary(max_size=64), st.binary(min_size=65, max_size=200)),
    url=st.text(max_size=40),
    pairs=st.lists(
        st.tuples(st.sampled_from(["To", "ToCountry", "From", "a", ""]), st.text(max_size=6)), max_size=8
    ),
    algorithm=st.sampled_from(["HMAC-SHA1", "HMAC-SHA256"]),
)
def test_the_fast_signature_is_twilio_pythons(
    key: bytes, url: str, pairs: list[tuple[str, str]], algorithm: str
) -> None:
    """expected_signature (keyed hashes kept, pairs sorted without a set) signs exactly as
    twilio-python's RequestValidator: names that prefix others, repeated names and repeated pairs."""
    from twilio.request_validator import HMAC_SHA1, HMAC_SHA256, RequestValidator

    from ivr.twilio.signature import expected_signature

    chosen = HMAC_SHA1 if algorithm == "HMAC-SHA1" else HMAC_SHA256
    validator = RequestValidator(key.decode("latin-1"))
    validator.token = key  # bytes as they are (the validator encodes a str token as UTF-8)
    form = FormData(list(pairs))
    assert expected_signature(key, url, pairs, chosen) == validator.compute_signature(url, form, chosen)


percent_soup = st.lists(
    st.one_of(
        st.sampled_from(["%", "%2", "%2B", "%C3", "%A9", "%E2%82", "%e2%82%ac", "%F0%9F", "%zz", "+", "%25"]),
        st.text(max_size=3),
    ),
    max_size=10,
).map("".join)


@settings(max_examples=600, deadline=None)
@given(value=percent_soup)
def test_the_fast_unquote_is_unquote_plus(value: str) -> None:
    """Escapes cut short, invalid and partial UTF-8, non-ASCII text beside escapes, plus signs."""
    from urllib.parse import unquote_plus

    from ivr.twilio.inbound import unquote_form_value

    assert unquote_form_value(value) == unquote_plus(value)


@settings(max_examples=400, deadline=None)
@given(host=st.text(alphabet="ab1:.[]/?#@ \\%-", min_size=1, max_size=12))
def test_a_host_header_that_would_change_the_url_is_never_used_as_it_is(host: str) -> None:
    """base_url_of takes a plain Host header as it is (the URL Twilio signed has it); one with a
    character that would move the URL's path, query, fragment or user part falls back to
    Starlette's rules, which validate it."""
    from starlette.datastructures import URL

    from ivr.twilio.inbound import base_url_of

    scope = {"type": "http", "scheme": "https", "path": "/twilio/voice", "query_string": b"", "root_path": "",
             "server": ("10.0.0.1", 8000), "headers": [(b"host", host.encode("latin-1"))]}  # fmt: skip
    if any(c in host for c in "/?#@ \\"):
        url = URL(scope=scope)
        assert base_url_of(scope, None) == f"{url.scheme}://{url.netloc}"
    else:
        assert base_url_of(scope, None) == f"https://{host}"
