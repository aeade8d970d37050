"""The security review's low findings, each tried from outside: hostile JSON in pages, script
links, file modes, raw values in the log, /try abuse, slow clients and forwarded addresses."""

from __future__ import annotations

import html
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from consent_store import open_store
from ivr import web
from ivr.auth import hash_password
from ivr.businesses import add_business
from tests.conftest import ACME, ACME_NUMBER, CALLER, Service
from tests.live_server import ivr
from tests.test_manage_http import PASSWORD, csrf_of, sign_in

TEMPLATES = Path(web.__file__).parent / "templates"
HOSTILE = "<!--<script>alert(1)</script>-->&"


def embedded_json(page: str, element_id: str) -> str:
    """The text of a <script type="application/json"> element, as an HTML parser ends it."""
    start = re.search(rf'<script type="application/json" id="{element_id}">', page)
    assert start is not None, f"no #{element_id} in the page"
    return page[start.end() : page.index("</script", start.end())]


async def test_script_editor_json_survives_script_and_comment_markup_in_a_draft(service: Service) -> None:
    await service.store.add_user("mia", "manager", hash_password(PASSWORD), author="test")
    await sign_in(service.client, "mia")
    script = {"business": ACME, "locale": "en-US"}
    page = await service.client.get("/manage/script", params=script)
    text = re.sub(
        r'^consent = """',
        f'consent = """{HOSTILE} ',
        (await service.store.script_version(ACME, "en-US")).text,
        count=1,
        flags=re.M,
    )
    saved = await service.client.post(
        "/manage/script", data={**script, "text": text, "action": "save", "csrf_token": csrf_of(page)}
    )
    assert saved.status_code == 200
    for response in (saved, await service.client.get("/manage/script", params=script)):
        raw = embedded_json(response.text, "script-context")
        # Nothing in it may end the element or open a comment that swallows the real </script>.
        assert not re.search(r"<!--|<script|</", raw, re.I)
        assert HOSTILE in json.loads(raw)["consent"]
        assert 'static/manage.js" defer></script>' in response.text[response.text.index(raw) :]


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_templates_embed_json_only_through_the_html_safe_helper(template: Path) -> None:
    text = template.read_text()
    assert "tojson" not in text, "use json_for_html"
    for inside in re.findall(r"<script[^>]*>(.*?)</script>", text, re.S):
        for value in re.findall(r"{{(.*?)}}", inside):
            assert re.search(r"\|\s*json_(text_)?for_html\s*$", value), f"{{{{{value}}}}} in a <script>"


async def test_recording_link_is_only_for_https_urls(service: Service) -> None:
    await service.store.add_user("aldo", "auditor", hash_password(PASSWORD), author="test")
    await sign_in(service.client, "aldo")
    shown = {}
    urls = ["javascript:alert(document.cookie)", "https://api.twilio.com/Recordings/RE1"]
    for url, caller in zip(urls, [CALLER, "+14155550124"], strict=True):
        call = await service.twilio.call(ACME_NUMBER, caller, ["1"], recording="none")
        assert call.recording_callback is not None
        params = {
            "AccountSid": service.twilio.account_sid,
            "CallSid": call.call_sid,
            "RecordingSid": "RE" + call.call_sid[2:],
            "RecordingStatus": "completed",
            "RecordingUrl": url,
            "RecordingDuration": "31",
        }
        assert (await service.twilio.post(call.recording_callback, params)).status_code == 204
        shown[url] = (await service.client.get("/audit/receipt", params={"call_sid": call.call_sid})).text
    hostile = shown["javascript:alert(document.cookie)"]
    assert "javascript:" not in " ".join(re.findall(r'href="([^"]*)"', hostile))
    assert "not an https link" in html.unescape(hostile)
    assert '<a href="https://api.twilio.com/Recordings/RE1"' in shown["https://api.twilio.com/Recordings/RE1"]


@pytest.mark.parametrize("url", ["http://api.twilio.com/x", " javascript:alert(1)", "data:text/html,x"])
def test_only_https_urls_count_as_links(url: str) -> None:
    from ivr.web import is_https_url

    assert not is_https_url(url)
    assert is_https_url("https://api.twilio.com/x")


def private_modes(folder: Path) -> dict[str, str]:
    return {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, whatever the test runner's: files would be created 0644."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_database_wal_shm_and_head_file_are_created_private(tmp_path: Path, umask_022: None) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    async with open_store(f"sqlite:///{folder / 'ivr.db'}") as store:
        await add_business(store, ACME, [ACME_NUMBER], ["delivery updates"])
        assert {"ivr.db", "ivr.db-wal", "ivr.db-shm"} <= set(private_modes(folder))
        assert set(private_modes(folder).values()) == {"0o600"}
    assert "ivr.db.chainhead" in private_modes(folder)
    assert set(private_modes(folder).values()) == {"0o600"}, private_modes(folder)


def test_serve_and_export_create_private_files(
    umask_022: None, site: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, env = site
    files = private_modes(tmp_path)
    assert {"ivr.db", "ivr.db-wal", "ivr.db-shm"} <= set(files)
    assert all(mode == "0o600" for name, mode in files.items() if name.startswith("ivr.db")), files
    out = tmp_path / "export"
    out.mkdir()
    exported = ivr(env, "export", "--include-demo", "-o", str(out / "consent.csv"))
    assert exported.returncode == 0, exported.stderr
    assert private_modes(out) == {"consent.csv": "0o600", "consent.csv.manifest.json": "0o600"}
