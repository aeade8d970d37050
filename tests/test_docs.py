"""The README cannot drift from the code: commands, routes, columns, the CI command, the audit script."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from ivr.api.consent import routes as api_routes
from ivr.api.opt_outs import routes as opt_outs_routes
from ivr.cli.main import cli
from ivr.evidence.export import COLUMNS
from ivr.pages.audit import routes as audit_routes
from ivr.pages.auth import routes as auth_routes
from ivr.pages.businesses_admin import routes as businesses_routes
from ivr.pages.manage import routes as manage_routes
from ivr.pages.try_phone import routes as try_routes
from ivr.pages.users_admin import routes as users_routes
from ivr.pages.web import routes as page_routes
from ivr.quality.page import routes as quality_routes
from ivr.twilio.messaging import routes as messaging_routes
from ivr.twilio.webhooks import routes as webhook_routes
from tests.conftest import ACME_NUMBER, CALLER, Service
from voice_scripts import RULES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOC_FILES = sorted((ROOT / "docs").glob("*.md"))
# The README is for a newcomer's first minutes; the reference lives in docs/. Both count.
DOCS = "\n".join([README, *(path.read_text(encoding="utf-8") for path in DOC_FILES)])


def command_paths(group: click.Group, prefix: str = "ivr") -> list[str]:
    paths = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            paths += command_paths(command, path)
        else:
            paths.append(path)
    return paths


@pytest.mark.parametrize("path", command_paths(cli))
def test_every_cli_command_is_in_the_readme(path: str) -> None:
    assert f"`{path}" in DOCS


@pytest.mark.parametrize(
    "path",
    sorted(
        {
            r.path
            for r in [
                *webhook_routes,
                *page_routes,
                *try_routes,
                *auth_routes,
                *manage_routes,
                *api_routes,
                *audit_routes,
                *quality_routes,
                *users_routes,
                *businesses_routes,
                *messaging_routes,
                *opt_outs_routes,
            ]
        }
        - {"/static"}
    ),
)
def test_every_route_is_in_the_readme(path: str) -> None:
    assert f" {path}`" in DOCS


@pytest.mark.parametrize("column", COLUMNS)
def test_every_export_column_is_in_the_readme(column: str) -> None:
    assert f"`{column}`" in DOCS


# Every variable the settings read (their names as string literals in ivr/settings.py).
SETTINGS_VARIABLES = sorted(
    set(re.findall(r'"((?:IVR|TWILIO)_[A-Z_]+)"', (ROOT / "ivr" / "settings.py").read_text(encoding="utf-8")))
)


def test_the_settings_read_the_contract_variables() -> None:
    contract = {"IVR_DATABASE_URL", "TWILIO_AUTH_TOKEN", "IVR_PUBLIC_URL", "IVR_SECRET_KEY"}
    assert contract <= set(SETTINGS_VARIABLES)


@pytest.mark.parametrize("variable", SETTINGS_VARIABLES)
def test_every_environment_variable_is_in_the_readme(variable: str) -> None:
    assert f"`{variable}`" in README


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    test_command = next(b.strip() for b in blocks if "pytest" in b)
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_lint_rule_is_in_the_readme(rule: str) -> None:
    assert f"| `{rule}` |" in DOCS


async def test_the_readme_audit_script_verifies_a_real_chain(service: Service, tmp_path: Path) -> None:
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    script = re.search(r"```python\n(.*?)```", DOCS, re.S)
    assert script is not None
    db_path = service.db_url.removeprefix("sqlite:///")
    code = script.group(1).replace('"ivr.db"', repr(db_path))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    head = (await service.store.verify()).head
    assert result.stdout.strip() == f"intact, head {head}"


def test_the_readme_is_short_and_links_every_doc() -> None:
    assert len(README.splitlines()) <= 170  # a newcomer's five minutes; the rest is in docs/
    for path in DOC_FILES:
        assert f"(docs/{path.name})" in README, path.name


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.name)
def test_every_doc_links_back_and_its_links_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+\.md)\)", text):
        assert (path.parent / target).exists(), target
