"""Every page at 390 px wide (a phone), as every role and signed out: no horizontal scroll, and
the heading and every form control of the page are on screen without scrolling sideways."""

from __future__ import annotations

from typing import Any

import pytest

from tests.page_walk import DOC_IMAGES, World, walk, world

pytestmark = pytest.mark.slow
__all__ = ["world"]  # the fixture

WIDTH = 390
# The page's own width, and each control of <main> that is shown but does not fit in the screen.
MEASURE = """(width) => {
  const offscreen = [];
  const shown = (el) => {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return box.width > 1 && box.height > 1 && style.visibility !== "hidden";
  };
  for (const el of document.querySelectorAll(
      "main h1, main button, main input:not([type=hidden]), main select, main textarea, main a.button")) {
    if (!shown(el)) continue;
    const box = el.getBoundingClientRect();
    if (box.left < -1 || box.right > width + 1) {
      const what = (el.textContent || el.name || "").trim().slice(0, 40);
      const where = `${Math.round(box.left)}..${Math.round(box.right)}px`;
      offscreen.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""} "${what}" at ${where}`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, offscreen};
}"""

SHOT_OF = {("admin", "/manage/business?name=Demo+Bakery"): "phone-business.png"}


def _fits(page: Any, role: str, url: str) -> list[str]:
    measured = page.evaluate(MEASURE, WIDTH)
    problems = []
    if measured["scrollWidth"] > WIDTH:
        problems.append(f"scrolls sideways: the page is {measured['scrollWidth']} px wide")
    problems += [f"off screen: {where}" for where in measured["offscreen"]]
    shot = SHOT_OF.get((role, url))
    if shot:
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOC_IMAGES / shot))
    return problems


def test_every_page_fits_a_phone_screen(browser: Any, world: World) -> None:  # noqa: F811
    seen, problems = walk(browser, world, _fits, viewport={"width": WIDTH, "height": 844})
    assert not problems, f"{len(problems)} problem(s) at {WIDTH} px:\n" + "\n".join(problems)
    assert len([path for path, roles in seen.items() if "manager" in roles]) >= 8, seen


def test_the_check_fails_on_a_page_wider_than_the_phone(browser: Any) -> None:
    page = browser.new_page(viewport={"width": WIDTH, "height": 844})
    page.set_content('<main><h1>x</h1><div style="width:600px"><button>far</button></div></main>')
    page.evaluate("() => document.querySelector('button').style.marginLeft = '500px'")
    problems = _fits(page, "nobody", "/")
    page.close()
    assert any("scrolls sideways" in p for p in problems) and any('"far"' in p for p in problems), problems
