"""The script editor over HTTP: the form posts into the TOML, a publish refused names the box, the
same text is not published twice, the changes before publishing and the side-by-side compare of two
versions (changed words marked, every word escaped, each version's figures), and hostile input."""

from __future__ import annotations

import html
import re

import pytest

from tests.conftest import ACME, ACME_NUMBER, BILINGUAL, CALLER, Service
from tests.test_manage_http import PASSWORD, csrf_of, sign_in
from tests.user_hashes import quick_hash

SCRIPT = {"business": ACME, "locale": "en-US"}
OPT_OUT = "You can stop these WhatsApp messages at any time: call this number again and press [opt-out key]."


@pytest.fixture
async def mia(service: Service) -> tuple[Service, str]:
    """Signed in as a manager of every business: the service and the CSRF token."""
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "mia")
    page = await service.client.get("/manage/script", params=SCRIPT)
    return service, csrf_of(page)


def _field(page: str, name: str) -> str:
    found = re.search(rf'<textarea id="[^"]+" name="{re.escape(name)}"[^>]*>(.*?)</textarea>', page, re.S)
    assert found is not None, name
    return html.unescape(found[1])


async def _post(service: Service, csrf: str, **fields: str) -> tuple[int, str]:
    published = (await service.store.script_version(ACME, "en-US")).text
    data = {**SCRIPT, "csrf_token": csrf, "text": published, **fields}
    response = await service.client.post("/manage/script", data=data)
    return response.status_code, html.unescape(response.text)


async def test_the_form_shows_prompts_as_plain_text_and_publishes_them_as_templates(
    mia: tuple[Service, str],
) -> None:
    service, csrf = mia
    page = html.unescape((await service.client.get("/manage/script", params=SCRIPT)).text)
    consent = _field(page, "prompt.consent")
    assert "[message types]" in consent and "{{" not in consent
    assert 'id="text"' in page and "hidden" in page.split('id="toml-view"')[1][:80]  # TOML behind the switch
    edited = consent.replace("We would like to send you", "Good news: we can send you")
    # A browser posts line breaks as CRLF.
    status, text = await _post(
        service, csrf, view="form", action="publish", **{"prompt.consent": edited.replace("\n", "\r\n")}
    )
    assert status == 200 and "Published version 2" in text
    published = (await service.store.script_version(ACME, "en-US")).text
    assert "Good news: we can send you {{ message_types | spoken_list }} on WhatsApp" in published
    assert "\r" not in published
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["2"])
    assert "Good news: we can send you delivery updates and appointment reminders" in call.transcript
    # The same text again is no new version, and says so.
    status, text = await _post(service, csrf, view="form", action="publish", **{"prompt.consent": edited})
    assert status == 200 and "Nothing to publish" in text
    assert len(await service.store.script_versions(ACME, "en-US")) == 2


async def test_a_publish_without_the_opt_out_sentence_is_refused_naming_the_box(
    mia: tuple[Service, str],
) -> None:
    service, csrf = mia
    page = html.unescape((await service.client.get("/manage/script", params=SCRIPT)).text)
    consent = _field(page, "prompt.consent")
    assert OPT_OUT in consent
    status, text = await _post(
        service, csrf, view="form", action="publish", **{"prompt.consent": consent.replace(OPT_OUT, "")}
    )
    assert status == 422
    assert "Not published: Consent prompt: must say how to stop the messages" in text
    assert (
        'id="prompt-consent"' in text and 'aria-invalid="true"' in text.split('id="prompt-consent"')[1][:400]
    )
    assert len(await service.store.script_versions(ACME, "en-US")) == 1
    draft = await service.store.script_draft(ACME, "en-US")
    assert draft is not None and OPT_OUT.split(":")[0] not in draft.text  # kept as a draft, not lost


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"key.opt_out": "1"}, "Opt-out key: 1 is already the opt-in key"),
        ({"prompt.goodbye": "Bye from [mesage types]."}, "Goodbye: would say '[mesage types]' aloud"),
        ({"key.repeat": "#"}, "Repeat key: '#' is not a key"),
    ],
)
async def test_what_the_form_refuses_is_said_in_words_beside_its_box(
    mia: tuple[Service, str], fields: dict[str, str], words: str
) -> None:
    service, csrf = mia
    status, text = await _post(service, csrf, view="form", action="publish", **fields)
    assert status == 422 and words in text
    assert len(await service.store.script_versions(ACME, "en-US")) == 1


async def test_a_form_post_over_toml_that_does_not_parse_is_refused_and_loses_nothing(
    mia: tuple[Service, str],
) -> None:
    service, csrf = mia
    status, text = await _post(
        service, csrf, view="form", action="save", text="not = [toml", **{"prompt.goodbye": "Bye."}
    )
    assert status == 422 and "fix it in the Advanced view first" in text
    assert "not = [toml" in text  # what was typed is shown again
    assert await service.store.script_draft(ACME, "en-US") is None


async def test_the_lint_api_converts_both_ways_and_names_boxes_and_lines(mia: tuple[Service, str]) -> None:
    service, csrf = mia
    headers = {"X-CSRF-Token": csrf}
    text = (await service.store.script_version(ACME, "en-US")).text
    body = {
        **SCRIPT,
        "text": text,
        "view": "form",
        "fields": {"frequency": "once a week", "key.opt_out": "2"},
    }
    checked = (await service.client.post("/manage/api/lint", json=body, headers=headers)).json()
    assert 'frequency = "once a week"' in checked["text"] and checked["form"]["keys"]["opt_out"] == "2"
    boxes = {(n["box"], n["rule"]) for n in checked["notes"]}
    assert ("key-opt_out", "form") in boxes and checked["blocked"] is True
    # From the TOML view: the form is read from the text, and notes carry the line.
    toml = text.replace('opt_out = "9"', 'opt_out = "2"')
    checked = (
        await service.client.post("/manage/api/lint", json={**SCRIPT, "text": toml}, headers=headers)
    ).json()
    assert checked["form"]["keys"]["opt_out"] == "2"
    keys = [n for n in checked["notes"] if n["rule"] == "keys-distinct"]
    assert keys and keys[0]["line"] == toml.splitlines().index("[keys]") + 1


@pytest.mark.parametrize(
    "body",
    [
        {**SCRIPT, "text": "x", "fields": ["not", "a", "dict"]},
        {**SCRIPT, "text": "x", "fields": {f"f{i}": "v" for i in range(500)}},
        {**SCRIPT, "text": "x" * 200_000},
        {"business": BILINGUAL + "x", "locale": "es-ES", "text": "x"},
    ],
)
async def test_hostile_editor_api_bodies_are_refused_without_a_draft(
    mia: tuple[Service, str], body: dict[str, object]
) -> None:
    service, csrf = mia
    for path in ("/manage/api/lint", "/manage/api/draft", "/manage/api/changes"):
        response = await service.client.post(path, json=body, headers={"X-CSRF-Token": csrf})
        assert response.status_code in (400, 404, 413), (path, response.status_code)
    assert await service.store.script_draft(ACME, "en-US") is None


async def test_draft_and_changes_need_the_csrf_token_and_drafts_need_a_manager(
    mia: tuple[Service, str],
) -> None:
    service, csrf = mia
    text = (await service.store.script_version(ACME, "en-US")).text.replace("Hello,", "Hi,")
    body = {**SCRIPT, "text": text}
    for path in ("/manage/api/draft", "/manage/api/changes"):
        assert (await service.client.post(path, json=body)).status_code == 403
        assert (
            await service.client.post(path, json=body, headers={"X-CSRF-Token": "forged"})
        ).status_code == 403
    saved = await service.client.post("/manage/api/draft", json=body, headers={"X-CSRF-Token": csrf})
    assert saved.json()["saved"] is True
    assert (draft := await service.store.script_draft(ACME, "en-US")) is not None and draft.text == text
    service.client.cookies.clear()
    await sign_in(service.client, "aldo")
    page = await service.client.get("/manage/script", params=SCRIPT)
    auditor = await service.client.post(
        "/manage/api/draft", json=body, headers={"X-CSRF-Token": csrf_of(page)}
    )
    assert auditor.status_code == 403


async def test_changes_before_publishing_are_escaped_words_prompt_by_prompt(mia: tuple[Service, str]) -> None:
    service, csrf = mia
    headers = {"X-CSRF-Token": csrf}
    published = (await service.store.script_version(ACME, "en-US")).text
    same = await service.client.post(
        "/manage/api/changes", json={**SCRIPT, "text": published}, headers=headers
    )
    assert same.json() == {"same": True, "version": 1, "prompts": [], "settings": []}
    text = published.replace("Thank you. Your choice", "<b>Thanks</b> & your choice")
    changes = (
        await service.client.post("/manage/api/changes", json={**SCRIPT, "text": text}, headers=headers)
    ).json()
    assert [p["label"] for p in changes["prompts"]] == ["Confirmation"]
    assert "<ins>&lt;b&gt;Thanks&lt;/b&gt; &amp; your</ins>" in changes["prompts"][0]["new"]
    assert "<del>Thank you. Your</del>" in changes["prompts"][0]["old"]


async def test_compare_shows_two_versions_with_changed_words_and_their_figures(
    mia: tuple[Service, str],
) -> None:
    service, csrf = mia
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])  # heard version 1
    published = (await service.store.script_version(ACME, "en-US")).text
    edited = published.replace("No problem.", "<script>alert(1)</script> Fine.")
    await service.client.post(
        "/manage/script", data={**SCRIPT, "csrf_token": csrf, "text": edited, "action": "publish"}
    )
    await service.twilio.call(ACME_NUMBER, "+14155550999", ["2"])  # heard version 2
    page = await service.client.get("/manage/script/compare", params={**SCRIPT, "a": "1", "b": "2"})
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "<ins>&lt;script&gt;alert(1)&lt;/script&gt; Fine.</ins>" in page.text
    assert "<del>No problem.</del>" in page.text
    figures = html.unescape(page.text.split('id="figures-heading"')[1].split("</table>")[0])
    assert re.search(r"Opted in</th>\s*<td>100%</td>\s*<td>0%</td>", figures), figures
    assert re.search(r"Declined</th>\s*<td>0%</td>\s*<td>100%</td>", figures), figures
    # Without a and b: the last two versions.
    assert (
        "version 1 beside version 2"
        in (await service.client.get("/manage/script/compare", params=SCRIPT)).text
    )


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({**SCRIPT, "a": "1", "b": "9"}, 404),
        ({**SCRIPT, "a": "x", "b": "1"}, 400),
        ({"business": ACME, "locale": "fr-FR", "a": "1", "b": "1"}, 404),
        ({"business": "Nobody", "locale": "en-US", "a": "1", "b": "1"}, 404),
    ],
)
async def test_compare_refuses_what_does_not_exist(
    mia: tuple[Service, str], params: dict[str, str], status: int
) -> None:
    service, _ = mia
    assert (await service.client.get("/manage/script/compare", params=params)).status_code == status
