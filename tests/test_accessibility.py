"""axe-core (from npm, tests/axe) in Chromium on every page the app serves, as every role and
signed out: no serious or critical violation. The pages come from the app's route table
(tests/page_walk.py), so a page added later is checked too."""

from __future__ import annotations

from typing import Any

import pytest

from tests.live_server import SITE_PASSWORD
from tests.page_walk import ROLES, World, axe_source, get_routes, is_machine, serious_violations, walk, world

pytestmark = pytest.mark.slow
__all__ = ["world"]  # the fixture


def test_every_page_passes_axe_core_as_every_role(browser: Any, world: World) -> None:  # noqa: F811
    source = axe_source()
    loading_axe: list[Any] = []  # the browser contexts that load axe-core into every page themselves

    def check(page: Any, role: str, url: str) -> list[str]:
        # axe-core is 650 kB of script: sent to the browser once per role, not once per page.
        if page.context not in loading_axe:
            page.context.add_init_script(source)
            loading_axe.append(page.context)
        return serious_violations(page, source)

    seen, problems = walk(browser, world, check)
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
    found = serious_violations(page, axe_source())
    page.close()
    assert any("button-name" in f for f in found) and any("label" in f for f in found), found


def _tab_to(page: Any, selector: str, most: int = 120) -> None:
    """Press Tab (only Tab) until the focused element matches `selector`."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is never reached with Tab (focus is on {_focused(page)})")


def _focused(page: Any) -> str:
    return str(
        page.evaluate("() => document.activeElement ? document.activeElement.outerHTML.slice(0, 120) : ''")
    )


def _sign_in_by_keyboard(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/login?next=/manage")
    _tab_to(page, "#name")
    page.keyboard.type(name)
    _tab_to(page, "#password")
    page.keyboard.type(SITE_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/manage")


def test_the_browser_phone_and_the_editor_work_with_the_keyboard_alone(
    browser: Any,
    world: World,  # noqa: F811
) -> None:
    """No mouse: a call on /try (Tab to Call, Enter; Space on the keys) ends with its receipt, and
    a manager signs in, edits the consent prompt, inserts a chip and saves a draft."""
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(f"{world.base}/try")
    _tab_to(page, "#speak")
    page.keyboard.press("Space")  # no speech: the countdown starts when the words are shown
    assert not page.is_checked("#speak")
    _tab_to(page, "#call")
    page.keyboard.press("Enter")
    page.locator("#transcript li", has_text="English").first.wait_for()
    page.wait_for_function("() => document.activeElement.dataset.key === '1'")  # focus on key 1
    page.keyboard.press("Space")  # English, from the language menu
    page.locator("#transcript li", has_text="WhatsApp").first.wait_for()
    page.wait_for_function(
        "() => document.activeElement.dataset.key === '1' && !document.activeElement.disabled"
    )
    page.keyboard.press("Space")  # agree
    page.locator("#status", has_text="opt_in recorded").wait_for()
    assert page.locator("#receipt").is_visible()
    page.close()

    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    _sign_in_by_keyboard(page, world.base, "alice")
    _tab_to(page, 'a[href*="/manage/script?business=Demo"][href$="locale=en-US"]')
    page.keyboard.press("Enter")
    page.wait_for_url("**/manage/script?*")
    _tab_to(page, "#prompt-consent")
    page.keyboard.press("Control+End")
    page.keyboard.type(" Thank you for listening to ")
    _tab_to(page, 'button.insert[data-target="prompt-consent"][data-insert="[message types]"]')
    page.keyboard.press("Enter")
    value = page.input_value("#prompt-consent")
    assert "Thank you for listening to [message types]" in value, value[-200:]
    _tab_to(page, 'button[value="save"]')
    page.keyboard.press("Enter")
    page.locator("#message, [role=status]", has_text="Draft saved").first.wait_for()
    page.reload()  # the draft is kept: it comes back with the page
    assert "Thank you for listening to [message types]" in page.input_value("#prompt-consent")
    context.close()
