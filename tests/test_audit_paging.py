"""/audit pages through every match, filters unattested caller IDs, badges and hides demo and
simulated decisions, and offers downloads whose manifest `ivr verify --export` proves."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import re
from pathlib import Path

import pytest

from consent_store import Business, ConsentDecision, ConsentStore, ExportFilter, text_sha256
from tests.cli_runner import run_ivr
from tests.conftest import ACME, Service
from tests.test_manage_http import PASSWORD, sign_in
from tests.user_hashes import quick_hash

pytest_plugins = ["tests.pg_server"]

DEMO = "Demo Bakery"
SPOKEN = "Acme Parcels would like to send you delivery updates over WhatsApp. Press 1 to opt in."
# StirVerstat as Twilio may send it; only the exact A attestation counts as attested.
VERSTATS = [
    "TN-Validation-Passed-A",
    None,
    "TN-Validation-Passed-B",
    "TN-Validation-Passed-C",
    "TN-Validation-Failed-A",
    "tn-validation-passed-a",
    "TN-Validation-Passed-A ",
    "No-TN-Validation",
]


def decision(n: int, business: str = ACME, **fields: object) -> ConsentDecision:
    made = ConsentDecision(
        call_sid=f"CA{n:032x}",
        phone=f"+1415555{n:04d}",
        business=business,
        action="opt_in",
        message_types=("delivery updates",),
        digits="1",
        locale="en-US",
        script_version=1,
        script_sha256=text_sha256(SPOKEN),
        spoken_text=SPOKEN,
        stir_verstat="TN-Validation-Passed-A",
    )
    return dataclasses.replace(made, **fields)  # type: ignore[arg-type]


@pytest.fixture
def store(acme_store: ConsentStore) -> ConsentStore:
    return acme_store


async def test_the_filters_select_unattested_simulated_and_later_decisions(store: ConsentStore) -> None:
    for n, verstat in enumerate(VERSTATS, start=1):
        await store.record_decision(decision(n, stir_verstat=verstat))
    await store.record_decision(decision(20, simulated=True))
    await store.record_decision(decision(21, caller_name='x","simulated":true,"y":"'))

    async def suffixes(where: ExportFilter) -> list[int]:
        return [int(row.call_sid[2:], 16) async for row in store.export_decisions(where)]

    assert await suffixes(ExportFilter(unattested=True)) == [2, 3, 4, 5, 6, 7, 8]
    assert await suffixes(ExportFilter(simulated=True)) == [20]
    assert await suffixes(ExportFilter(simulated=False)) == [1, 2, 3, 4, 5, 6, 7, 8, 21]
    assert await store.count_decisions(ExportFilter(simulated=False, unattested=True)) == 7
    fifth = [row async for row in store.export_decisions(ExportFilter())][4].seq
    assert await suffixes(ExportFilter(after_seq=fifth)) == [6, 7, 8, 20, 21]
    figures = await store.opt_in_quality(ACME, ("en-US",))
    assert sum(s.opt_in for s in figures.scripts) == 9  # all but the simulated one


@pytest.fixture
async def auditor(service: Service) -> Service:
    await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "aldo")
    return service


def _call_sids(page: str) -> list[str]:
    return re.findall(r"receipt\?call_sid=(CA[0-9a-f]{32})", page)


async def test_the_search_pages_through_450_decisions_by_record(auditor: Service) -> None:
    await asyncio.gather(*(auditor.store.record_decision(decision(n)) for n in range(1, 451)))
    seen: list[str] = []
    url: str | None = "/audit?business=" + ACME.replace(" ", "+")
    pages = 0
    while url is not None:
        page = await auditor.client.get(url)
        assert page.status_code == 200 and "450 decisions found" in page.text
        seen += _call_sids(page.text)
        pages += 1
        link = re.search(r'id="next-page" href="([^"]+)"', page.text)
        url = html.unescape(link.group(1)) if link else None
    assert pages == 3
    assert len(seen) == len(set(seen)) == 450
    assert set(seen) == {f"CA{n:032x}" for n in range(1, 451)}
    last = await auditor.client.get(f"/audit?business={ACME}&after=" + "9" * 5)
    assert "450 decisions found" in last.text and _call_sids(last.text) == []


async def test_the_attestation_filter_shows_exactly_the_unattested(auditor: Service) -> None:
    for n, verstat in enumerate(VERSTATS, start=1):
        await auditor.store.record_decision(decision(n, stir_verstat=verstat))
    page = await auditor.client.get("/audit", params={"unattested": "1"})
    assert "7 decisions found" in page.text
    assert sorted(_call_sids(page.text)) == [f"CA{n:032x}" for n in range(2, 9)]


async def test_demo_and_simulated_decisions_are_badged_and_hidden_unless_included(auditor: Service) -> None:
    await auditor.store.add_business(
        Business(DEMO, ("+15550100100",), ("order updates",), ("en-US",), demo=True), {"en-US": SPOKEN}, "t"
    )
    await auditor.store.record_decision(decision(1))
    await auditor.store.record_decision(decision(2, business=DEMO))
    await auditor.store.record_decision(decision(3, simulated=True))
    hidden = await auditor.client.get("/audit", params={"since": "2000-01-01"})
    assert "1 decision found" in hidden.text and 'class="badge"' not in hidden.text.split("<table")[-1]
    shown = await auditor.client.get("/audit", params={"since": "2000-01-01", "include": "1"})
    assert "3 decisions found" in shown.text
    rows = shown.text.split("<tbody>")[1].split("</tr>")
    assert '<span class="badge">demo</span>' in rows[1] and "simulated</span>" in rows[2]
    assert "badge" not in rows[0]
    named = await auditor.client.get("/audit", params={"business": DEMO})  # as ivr export --business
    assert "1 decision found" in named.text
    receipt = await auditor.client.get("/audit/receipt", params={"call_sid": f"CA{3:032x}"})
    assert ">simulated</span>" in receipt.text
    demo_receipt = await auditor.client.get("/audit/receipt", params={"call_sid": f"CA{2:032x}"})
    assert '<span class="badge">demo</span>' in demo_receipt.text and ">simulated<" not in demo_receipt.text


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "receipts"])
async def test_a_pinned_download_and_its_manifest_verify_with_the_cli(
    auditor: Service, tmp_path: Path, fmt: str
) -> None:
    for n in range(1, 6):
        await auditor.store.record_decision(
            decision(n, stir_verstat=None if n % 2 else "TN-Validation-Passed-A")
        )
    page = await auditor.client.get("/audit", params={"unattested": "1", "include": "1"})
    links = re.findall(rf'href="(/audit/export[^"]*format={fmt})"', page.text)
    file_url, manifest_url = (html.unescape(u) for u in links[-2:])
    assert "through=" in file_url and manifest_url.startswith("/audit/export.manifest?")
    await auditor.store.record_decision(decision(9, stir_verstat=None))  # the log grows meanwhile
    download = await auditor.client.get(file_url)
    manifest = await auditor.client.get(manifest_url)
    assert download.status_code == manifest.status_code == 200
    name = re.search(r'filename="([^"]+)"', download.headers["content-disposition"])
    assert name is not None and manifest.json()["file"] == name.group(1) and manifest.json()["rows"] == 3
    exported = tmp_path / name.group(1)
    exported.write_bytes(download.content)
    (tmp_path / f"{name.group(1)}.manifest.json").write_bytes(manifest.content)
    env, drop = {"IVR_DATABASE_URL": auditor.db_url}, ("IVR_", "TWILIO_")
    verify = await asyncio.to_thread(run_ivr, "verify", "--export", str(exported), env=env, drop=drop)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    exported.write_bytes(download.content.replace(b"+1415555", b"+1415556", 1))
    tampered = await asyncio.to_thread(run_ivr, "verify", "--export", str(exported), env=env, drop=drop)
    assert tampered.returncode != 0
