"""Managers rehearse calls to their real businesses on /try, with the published or draft script;
a rehearsal records nothing, so nobody can write consent for another person's number."""

from __future__ import annotations

import re

import httpx

from tests.conftest import ACME, ACME_NUMBER, Service
from tests.test_manage_http import PASSWORD, sign_in
from tests.user_hashes import quick_hash


async def rehearse(client: httpx.AsyncClient, token: str, draft: bool = False) -> list[dict]:  # type: ignore[type-arg]
    started = await client.post(
        "/try/api/calls",
        json={"to": ACME_NUMBER, "from": "+14155550123", "draft": draft},
        headers={"X-CSRF-Token": token},
    )
    assert started.status_code == 200, started.text
    steps = [started.json()]
    pressed = await client.post(
        f"/try/api/calls/{steps[0]['id']}/keys", json={"key": "1"}, headers={"X-CSRF-Token": token}
    )
    steps.append(pressed.json())
    return steps


async def test_a_manager_rehearsal_plays_the_call_and_records_nothing(service: Service) -> None:
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    anonymous = await service.client.post("/try/api/calls", json={"to": ACME_NUMBER, "from": "+14155550123"})
    assert anonymous.status_code == 403
    await sign_in(service.client, "mia")
    page = await service.client.get("/try")
    assert "Acme Parcels" in page.text and "rehearsal, nothing recorded" in page.text
    token = re.search(r'data-csrf="([^"]+)"', page.text)
    assert token is not None
    no_csrf = await service.client.post("/try/api/calls", json={"to": ACME_NUMBER, "from": "+14155550123"})
    assert no_csrf.status_code == 403

    before = (await service.store.verify()).count
    first, last = await rehearse(service.client, token[1])
    assert any(
        "To agree to receive WhatsApp messages from Acme Parcels" in s["text"] for s in first["spoken"]
    )
    assert last["state"] == "ended" and last["rehearsal"] is True and last["receipt"] is None
    said = " ".join(s["text"] for s in last["spoken"])
    assert (
        "This was a rehearsal: nothing was recorded." in said and "you will receive delivery updates" in said
    )
    assert (await service.store.verify()).count == before
    assert await service.store.standing("+14155550123", ACME) is None


async def test_a_rehearsal_can_play_the_unpublished_draft(service: Service) -> None:
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    text = (await service.store.script_version(ACME, "en-US")).text
    await service.store.save_draft(
        ACME, "en-US", text.replace("Hello, thank you for calling", "Good evening, this is"), "mia"
    )
    await sign_in(service.client, "mia")
    page = await service.client.get("/try")
    token = re.search(r'data-csrf="([^"]+)"', page.text)
    assert token is not None
    before = (await service.store.verify()).count
    first, last = await rehearse(service.client, token[1], draft=True)
    assert any("Good evening, this is Acme Parcels" in s["text"] for s in first["spoken"])
    assert "you will receive delivery updates" in " ".join(s["text"] for s in last["spoken"])
    published, _ = await rehearse(service.client, token[1], draft=False)
    assert any("Hello, thank you for calling Acme Parcels" in s["text"] for s in published["spoken"])
    assert [v.version for v in await service.store.script_versions(ACME, "en-US")] == [1]
    assert (await service.store.verify()).count == before  # rehearsals wrote nothing
