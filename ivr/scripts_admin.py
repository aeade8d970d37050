"""Checking and publishing voice scripts: shared by `ivr script publish` and the web editor."""

from __future__ import annotations

from dataclasses import dataclass

from consent_store import Business, ConsentStore, ScriptVersion
from voice_scripts import Finding, ScriptFormatError, errors, lint_script, parse_script


class ScriptRejected(ValueError):
    """The script breaks the opt-in policy or is not a valid script; nothing was published."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"script not published: {len(problems)} problem(s): " + "; ".join(problems))


@dataclass(frozen=True)
class ScriptCheck:
    findings: list[Finding]
    format_error: str | None = None

    @property
    def problems(self) -> list[str]:
        """Everything that blocks publishing, one line each."""
        if self.format_error is not None:
            return [f"error: {self.format_error}"]
        return [str(f) for f in errors(self.findings)]


def check_script(business: Business, locale: str, text: str) -> ScriptCheck:
    """Parse and lint a script as it would be spoken for this business."""
    try:
        script = parse_script(text)
    except ScriptFormatError as exc:
        return ScriptCheck([], exc.problem)
    if script.locale != locale:
        return ScriptCheck([], f"the file is for locale {script.locale!r}, not {locale!r}")
    return ScriptCheck(lint_script(script, business.name, business.message_types))


async def publish_checked(
    store: ConsentStore, business: Business, locale: str, text: str, author: str, note: str = "published"
) -> ScriptVersion:
    """Lint, then publish as the next version; ScriptRejected lists every problem."""
    if locale not in business.locales:
        raise ScriptRejected(
            [
                f"error: {business.name!r} has no locale {locale!r} "
                f"(its locales: {', '.join(business.locales)})"
            ]
        )
    check = check_script(business, locale, text)
    if check.problems:
        raise ScriptRejected(check.problems)
    return await store.publish_script(business.name, locale, text, author, note)
