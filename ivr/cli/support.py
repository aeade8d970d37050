"""What every `ivr` command shares: settings, opening the store, mapping errors to exit codes.

Commands that only read (READ_ONLY_COMMANDS) never create a database: on a SQLite URL
whose file does not exist they stop with one line naming the path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from consent_store import ConsentStore, StoreError, StoreUnavailable, open_store
from consent_store.exceptions import BadDatabaseURL, DatabaseMissing, SchemaTooNew
from consent_store.url import parse_database_url
from ivr.exceptions import CliFailure, EmulatorError
from ivr.settings import Settings

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# By command path below `ivr`. `ivr call` writes a decision, but only into a store that
# already holds the business called: a missing file is a wrong folder, not a new store.
READ_ONLY_COMMANDS = frozenset({"verify", "export", "stats", "business list", "call"})


def settings_from_env() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise CliFailure(str(exc), 2) from exc


def _command_path() -> str:
    """The running command below `ivr` ('business list'); '' outside a command."""
    ctx = click.get_current_context(silent=True)
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(reversed(names))


def database_read() -> str:
    """The database a read-only command reads (path or host:port/db); CliFailure if there is none."""
    try:
        return parse_database_url(settings_from_env().database_url).require_existing().where
    except (BadDatabaseURL, DatabaseMissing) as exc:
        raise CliFailure(str(exc), 2) from exc


def with_store(work: Callable[[ConsentStore], Awaitable[T]]) -> T:
    """Open the store named by IVR_DATABASE_URL, run `work`, close it; map errors to CliFailure."""

    async def run() -> T:
        store = open_store(settings_from_env().database_url)
        async with store:
            return await work(store)

    return with_store_errors(run)


def with_store_errors(run: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion, mapping store and input errors to CliFailure."""
    if _command_path() in READ_ONLY_COMMANDS:
        database_read()
    try:
        return asyncio.run(run())  # type: ignore[arg-type]
    except (BadDatabaseURL, SchemaTooNew, DatabaseMissing) as exc:
        raise CliFailure(str(exc), 2) from exc
    except StoreUnavailable as exc:
        raise CliFailure(str(exc), 1) from exc
    except (StoreError, ValueError) as exc:  # ivr.exceptions.InvalidBusiness is a ValueError
        raise CliFailure(str(exc), 2) from exc
    except Exception as exc:
        # Imported here: voice_scripts loads its linter and Jinja2, which `ivr --version` and
        # the read-only commands do not need at start-up.
        from voice_scripts import ScriptError

        if isinstance(exc, ScriptError):
            raise CliFailure(str(exc), 2) from exc
        raise


_TIME_HELP = "ISO-8601; naive means UTC."


def report_options(counted: str) -> Callable[[F], F]:
    """The options of a per-business report (`ivr stats`, `ivr compliance`): --business,
    --since and --until bounding what is `counted` ("Calls recorded"), --format table|json."""

    def decorate(command: F) -> F:
        for option in reversed(
            (
                click.option("--business", required=True, help="Business name."),
                click.option("--since", help=f"{counted} from this time (inclusive), {_TIME_HELP}"),
                click.option("--until", help=f"{counted} before this time (exclusive), {_TIME_HELP}"),
                click.option(
                    "--format",
                    "output",
                    type=click.Choice(["table", "json"]),
                    default="table",
                    show_default=True,
                ),
            )
        ):
            command = option(command)
        return command

    return decorate


def period_options(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    """--since and --until in the store's form (None when not given); CliFailure, exit 2, naming
    the bad one."""
    from ivr.evidence.export import parse_period  # loads consent_store's columns: only when used

    try:
        return parse_period(since, until, "--")
    except ValueError as exc:
        raise CliFailure(str(exc), 2) from exc


# `ivr call` and `ivr message`: requests signed like Twilio's, in-process or to a running server.
server_url_option = click.option(
    "--url", help="A running server (e.g. http://127.0.0.1:8000); default: in-process on IVR_DATABASE_URL."
)


def simulate(run: Callable[[], Awaitable[T]], url: str | None, command: str, failed: str) -> T:
    """Run the simulated Twilio request of `command` ("ivr call"): store errors mapped as in
    with_store_errors; one line, exit 1, when nothing answers at `url`, the server refuses the
    signature, or the emulator fails (`failed` says what: "the call failed")."""
    import httpx  # only these two commands talk HTTP

    logging.getLogger("ivr.runtime").setLevel(logging.ERROR)  # the local-token warning is for servers
    try:
        return with_store_errors(run)
    except httpx.TransportError as exc:
        raise CliFailure(
            f"nothing answers at {url} ({type(exc).__name__}): is `ivr serve` running there? "
            f"(or leave out --url to run {command} in-process)",
            1,
        ) from exc
    except (EmulatorError, OSError) as exc:
        if "HTTP 403" in str(exc):
            raise signature_refused(command) from exc
        raise CliFailure(f"{failed}: {exc}", 1) from exc


def signature_refused(command: str) -> CliFailure:
    """The one line when a server refuses the signature of `command` ("ivr call")."""
    return CliFailure(
        f"the server refused the signature: run {command} with the server's TWILIO_AUTH_TOKEN, "
        "or with its IVR_DATABASE_URL when the server uses the local token",
        1,
    )
