"""Checking and publishing voice scripts: shared by `ivr script publish` and the web editor.

Checks that other people's templates can make slow run in the lint worker (ivr/lint_worker.py),
never on the event loop: a check past its deadline is one lint error, and nothing is published.
"""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from consent_store import Business, ConsentStore, ScriptVersion
from ivr.exceptions import LintTimeout, ScriptRejected
from ivr.lint_worker import WORKER
from ivr.twilio.call_flow import CallContext, LoadedScript, consent_prompt_twiml
from voice_scripts import (
    Finding,
    RenderContext,
    ScriptError,
    ScriptFormatError,
    default_script_text,
    errors,
    lint_script,
    offered_locales,
    parse_script,
    render_all,
)
from voice_scripts.sandbox import render_budget


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


def _too_slow(exc: LintTimeout | BrokenProcessPool) -> str:
    if isinstance(exc, LintTimeout):
        return (
            f"this script takes too long to render (stopped after {exc.seconds:g} s); simplify its templates"
        )
    return "checking this script stopped the checker (out of memory?); simplify its templates"


async def check_script_off_loop(business: Business, locale: str, text: str) -> ScriptCheck:
    """check_script in the lint worker, with its deadline."""
    try:
        return await WORKER.run(check_script, business, locale, text)
    except (LintTimeout, BrokenProcessPool) as exc:
        return ScriptCheck([Finding("error", "renders", "all prompts", _too_slow(exc))])


@dataclass(frozen=True)
class ScriptPreview:
    """What the editor shows for a script text: problems, the rendered prompts, the consent TwiML;
    the findings themselves (for the form to show beside their box) and the TOML error if any."""

    problems: list[str]
    prompts: dict[str, str]
    twiml: str
    findings: tuple[Finding, ...] = ()
    format_error: str | None = None


def preview_script(business: Business, locale: str, text: str, base_url: str) -> ScriptPreview:
    """Lint, render and build the consent TwiML within one render budget (never raises)."""
    with render_budget():
        check = check_script(business, locale, text)
        problems = check.problems + [str(f) for f in check.findings if f.severity == "warning"]
        findings = tuple(check.findings)
        if check.format_error is not None:
            return ScriptPreview(problems, {}, "", findings, check.format_error)
        try:
            script = parse_script(text)
            prompts = render_all(script, RenderContext(business.name, business.message_types))
            ctx = CallContext(business, {locale: LoadedScript(script, 0)}, False, base_url)
            return ScriptPreview(problems, prompts, consent_prompt_twiml(ctx, locale), findings)
        except ScriptError:
            return ScriptPreview(problems, {}, "", findings)


async def preview_script_off_loop(business: Business, locale: str, text: str, base_url: str) -> ScriptPreview:
    """preview_script in the lint worker, with its deadline."""
    try:
        return await WORKER.run(preview_script, business, locale, text, base_url)
    except (LintTimeout, BrokenProcessPool) as exc:
        finding = Finding("error", "renders", "all prompts", _too_slow(exc))
        return ScriptPreview([str(finding)], {}, "", (finding,))


def render_versions(business: Business, texts: tuple[str, ...]) -> list[dict[str, str] | str]:
    """Each script text's prompts as spoken for this business, or why it cannot be rendered."""
    rendered: list[dict[str, str] | str] = []
    for text in texts:
        with render_budget():
            try:
                rendered.append(
                    render_all(parse_script(text), RenderContext(business.name, business.message_types))
                )
            except ScriptError as exc:
                rendered.append(str(exc))
    return rendered


async def render_versions_off_loop(business: Business, texts: tuple[str, ...]) -> list[dict[str, str] | str]:
    """render_versions in the lint worker, with its deadline."""
    try:
        return await WORKER.run(render_versions, business, texts)
    except (LintTimeout, BrokenProcessPool) as exc:
        return [_too_slow(exc) for _ in texts]


def warm_up() -> None:
    """Run in a new lint worker before its first check (ivr.lint_worker): every default script is
    checked and previewed once, so the imports, data files and template compiler are ready."""
    try:
        locales = offered_locales()
    except ScriptError:  # a wrong language file: each check that reads it says so (locale-data)
        locales = ()
    for locale in locales:
        business = Business("Warm-up", ("+15550100199",), ("updates",), (locale,))
        preview_script(business, locale, default_script_text(locale), "http://localhost")


async def publish_checked(
    store: ConsentStore, business: Business, locale: str, text: str, author: str, note: str = "published"
) -> ScriptVersion:
    """Lint (in the lint worker), then publish as the next version; ScriptRejected lists every problem."""
    if locale not in business.locales:
        raise ScriptRejected(
            [
                f"error: {business.name!r} has no locale {locale!r} "
                f"(its locales: {', '.join(business.locales)})"
            ]
        )
    check = await check_script_off_loop(business, locale, text)
    if check.problems:
        raise ScriptRejected(check.problems)
    return await store.publish_script(business.name, locale, text, author, note)
