"""`ivr script show|publish` and `ivr user add` from a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_ivr


def ivr(db: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`ivr ARGS` in this process (tests/cli_runner.py), without IVR_* and TWILIO_* but the database."""
    return run_ivr(*args, env={"IVR_DATABASE_URL": f"sqlite:///{db}"}, drop=("IVR_", "TWILIO_"), stdin=stdin)


def ivr_process(db: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m ivr ARGS` for real, for the tests whose point is the process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env["IVR_DATABASE_URL"] = f"sqlite:///{db}"
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args],
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ivr.db"
    assert (
        ivr(
            path,
            "business",
            "add",
            "--name",
            "Acme",
            "--number",
            "+15550001111",
            "--message-type",
            "delivery updates",
            "--locale",
            "en-US",
            "--locale",
            "es-ES",
        ).returncode
        == 0
    )
    return path


def test_script_show_prints_the_published_toml(db: Path) -> None:
    shown = ivr(db, "script", "show", "--business", "Acme", "--locale", "es-ES")
    assert shown.returncode == 0 and 'locale = "es-ES"' in shown.stdout and "[prompts]" in shown.stdout


def test_script_publish_lints_then_publishes_the_next_version(db: Path, tmp_path: Path) -> None:
    text = ivr(db, "script", "show", "--business", "Acme", "--locale", "en-US").stdout
    good = tmp_path / "good.toml"
    good.write_text(text.replace("Hello, thank you for calling", "Hi, thanks for calling"))
    published = ivr(db, "script", "publish", "--business", "Acme", "--locale", "en-US", str(good))
    assert published.returncode == 0 and "version 2" in published.stdout
    assert "Hi, thanks for calling" in ivr(db, "call", "--to", "+15550001111", "--keys", "1-").stdout
    old = ivr(db, "script", "show", "--business", "Acme", "--locale", "en-US", "--version", "1")
    assert "Hello, thank you for calling" in old.stdout


def test_script_publish_refuses_a_script_breaking_the_policy_listing_each_problem(
    db: Path, tmp_path: Path
) -> None:
    text = ivr(db, "script", "show", "--business", "Acme", "--locale", "en-US").stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("WhatsApp", "SMS").replace('opt_in = "1"', 'opt_in = "2"'))
    result = ivr(db, "script", "publish", "--business", "Acme", "--locale", "en-US", str(bad))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any("[whatsapp]" in line for line in lines) and any("[keys-distinct]" in line for line in lines)
    assert lines[-1].startswith("ivr: error:") and "nothing was published" in lines[-1]
    shown = ivr(db, "script", "show", "--business", "Acme", "--locale", "en-US", "--version", "2")
    assert shown.returncode == 2 and "no en-US script version 2" in shown.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--business", "Nope", "--locale", "en-US", "-"], 2),
        (["--business", "Acme", "--locale", "fr-FR", "-"], 1),
        (["--business", "Acme", "--locale", "en-US", "/no/such/file.toml"], 2),
    ],
)
def test_script_publish_bad_input_exits_non_zero_with_a_message(db: Path, args: list[str], code: int) -> None:
    result = ivr(db, "script", "publish", *args, stdin="")
    assert result.returncode == code and result.stderr.strip()
    assert "Traceback" not in result.stderr


def test_user_add_reads_the_password_from_stdin_and_refuses_short_ones(db: Path) -> None:
    """A real process (the admin family's one): the password comes through a real stdin pipe."""
    created = ivr_process(db, "user", "add", "mia", "--role", "manager", stdin="a long enough password\n")
    assert created.returncode == 0 and "Created manager 'mia'" in created.stdout
    again = ivr_process(db, "user", "add", "mia", "--role", "auditor", stdin="a long enough password\n")
    assert again.returncode == 2 and "already exists" in again.stderr
    short = ivr(db, "user", "add", "leo", "--role", "auditor", stdin="short\n")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr


STRONG = "correct horse battery staple"


@pytest.mark.parametrize(
    ("name", "password", "says"),
    [
        ("<script>", STRONG, "user name"),
        ("a b", STRONG, "user name"),
        ("carol", "aaaaaaaaaaaa", "too easy to guess"),
        ("carol", "password1234", "too easy to guess"),
        ("carol", "short", "at least 12"),
    ],
)
def test_user_add_refuses_unsafe_names_and_weak_passwords_in_one_line(
    db: Path, name: str, password: str, says: str
) -> None:
    result = ivr(db, "user", "add", name, "--role", "auditor", stdin=password + "\n")
    assert result.returncode == 2 and says in result.stderr and result.stderr.count("\n") == 1
    assert "carol" not in ivr(db, "user", "list").stdout


def test_user_names_are_normalised_so_carol_is_one_user(db: Path) -> None:
    assert ivr(db, "user", "add", "Carol", "--role", "auditor", stdin=STRONG + "\n").returncode == 0
    again = ivr(db, "user", "add", " carol", "--role", "manager", stdin=STRONG + "\n")
    assert again.returncode != 0 and "already exists" in again.stderr
    assert ivr(db, "user", "list").stdout.startswith("carol\tauditor\tactive\tevery business")


def test_user_limited_to_a_business_passwd_disable_enable_and_sessions_end(db: Path) -> None:
    added = ivr(db, "user", "add", "dora", "--role", "auditor", "--business", "Acme", stdin=STRONG + "\n")
    assert added.returncode == 0 and "for Acme" in added.stdout
    unknown = ivr(db, "user", "add", "eve", "--role", "auditor", "--business", "Nope", stdin=STRONG + "\n")
    assert unknown.returncode != 0 and "Nope" in unknown.stderr
    assert "dora\tauditor\tactive\tAcme" in ivr(db, "user", "list").stdout
    assert ivr(db, "user", "passwd", "dora", stdin="another fine passphrase here\n").returncode == 0
    assert ivr(db, "user", "disable", "dora").returncode == 0
    assert "dora\tauditor\tdisabled" in ivr(db, "user", "list").stdout
    assert ivr(db, "user", "enable", "dora").returncode == 0
    assert ivr(db, "user", "sessions", "end", "dora").returncode == 0
    missing = ivr(db, "user", "disable", "nobody")
    assert missing.returncode != 0 and "nobody" in missing.stderr
    verified = ivr(db, "verify")
    assert verified.returncode == 0, verified.stderr  # every change was chained


def test_token_add_limited_to_a_business(db: Path) -> None:
    assert ivr(db, "token", "add", "crm", "--business", "Acme").returncode == 0
    unknown = ivr(db, "token", "add", "crm2", "--business", "Nope")
    assert unknown.returncode != 0 and "Nope" in unknown.stderr
