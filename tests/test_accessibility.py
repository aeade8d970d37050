"""axe-core (from npm, tests/axe) in Chromium on every page the app serves, as every role and
signed out: no serious or critical violation. The pages come from the app's route table
(tests/page_walk.py), so a page added later is checked too."""

from __future__ import annotations

from typing import Any

import pytest

from tests.page_walk import ROLES, World, axe_source, get_routes, is_machine, walk, world

pytestmark = pytest.mark.slow
__all__ = ["world"]  # the fixture

BLOCKING = ("serious", "critical")


def _violations(page: Any, source: str) -> list[str]:
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    found = []
    for violation in results["violations"]:
        if violation["impact"] not in BLOCKING:
            continue
        nodes = "; ".join(
            f"{', '.join(node['target'])}: {node['html'][:160]}" for node in violation["nodes"][:4]
        )
        found.append(f"{violation['impact']} {violation['id']} ({violation['help']}): {nodes}")
    return found


def test_every_page_passes_axe_core_as_every_role(browser: Any, world: World) -> None:  # noqa: F811
    source = axe_source()
    seen, problems = walk(browser, world, lambda page, role, url: _violations(page, source))
    assert not problems, f"{len(problems)} serious or critical axe-core violation(s):\n" + "\n".join(problems)
    never = [path for path in get_routes() if not is_machine(path) and not seen.get(path)]
    assert not never, f"routes that answered no role with a page (give them a real query): {never}"
    pages_for = {role: sorted(p for p, roles in seen.items() if role in roles) for role in ROLES}
    assert "/manage/users" in pages_for["admin"] and "/manage/users" not in pages_for["manager"]
    assert "/manage/business" in pages_for["auditor"] and "/login" in pages_for["signed-out"]
    assert len(pages_for["admin"]) >= 12, pages_for


def test_axe_core_finds_a_violation_when_there_is_one(browser: Any, world: World) -> None:  # noqa: F811
    """The check can fail: a page with an unlabelled field and a blank button is caught."""
    page = browser.new_page()
    page.set_content('<html lang="en"><body><main><input id="x"><button></button></main></body></html>')
    found = _violations(page, axe_source())
    page.close()
    assert any("button-name" in f for f in found) and any("label" in f for f in found), found
