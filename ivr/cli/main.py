"""The `ivr` command line: serve, business, export, verify.

Every command reads IVR_DATABASE_URL. Errors are one line on stderr.
Exit codes: 0 success, 1 the operation failed (store unavailable, chain
broken, `ivr serve`'s port already in use, a server or Twilio that does not
answer), 2 bad input (usage, bad value, unknown business, bad database URL).
"""

from __future__ import annotations

import logging
import logging.config
import sys

import click

from consent_store import (
    ConsentStore,
    open_store,
)
from ivr import __version__
from ivr.cli.lazy import LazyCommands
from ivr.cli.support import server_url_option, settings_from_env, simulate, with_store, with_store_errors
from ivr.exceptions import CliFailure


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ivr")
def cli() -> None:
    """WhatsApp opt-in consent by phone: a Twilio IVR with tamper-evident evidence.

    Every command reads the database from IVR_DATABASE_URL (default sqlite:///ivr.db).
    """


# Commands defined in other modules, imported when used (ivr/cli/lazy.py): start-up stays light.
cli.commands = LazyCommands(
    {
        "business": "ivr.cli.business:business",
        "export": "ivr.cli.evidence:export",
        "verify": "ivr.cli.evidence:verify",
        "script": "ivr.cli.admin:script",
        "user": "ivr.cli.admin:user",
        "forget": "ivr.cli.admin:forget",
        "token": "ivr.cli.admin:token",
        "stats": "ivr.cli.stats:stats",
        "compliance": "ivr.cli.compliance:compliance",
        "twilio": "ivr.cli.twilio:twilio",
        "message": "ivr.cli.message:message",
        "recordings": "ivr.cli.recordings:recordings",
    }
)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option("--access-log", is_flag=True, help="Log every HTTP request (off by default: it costs latency).")
@click.option(
    "--forwarded-allow-ips",
    envvar="IVR_FORWARDED_ALLOW_IPS",
    default="127.0.0.1",
    show_default=True,
    help="Comma-separated proxy addresses (or '*') whose X-Forwarded-For and X-Forwarded-Proto "
    "are trusted; env IVR_FORWARDED_ALLOW_IPS.",
)
@click.option(
    "--request-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds a client may take to send a request's headers, and again its body (408).",
)
def serve(host: str, port: int, access_log: bool, forwarded_allow_ips: str, request_timeout: float) -> None:
    """Run the web service (Twilio webhooks, pages, API)."""
    import uvicorn

    from ivr.app import create_app
    from ivr.safe_logging import log_config
    from ivr.twilio.status_protocol import status_callback_protocol

    settings = settings_from_env()
    _check_port_free(host, port)

    from ivr.businesses import ensure_demo_business

    async def check(store: ConsentStore) -> list[str]:
        await ensure_demo_business(store)
        return [
            f"{b.name}{' (DEMO: records flagged demo, left out of exports)' if b.demo else ''}: "
            f"{', '.join(b.numbers)}"
            for b in await store.list_businesses()
        ]

    businesses = with_store(check)
    logging.getLogger("consent_store").setLevel(logging.NOTSET)
    # Request values in the log are escaped and cut (ivr.safe_logging), in ours and uvicorn's lines.
    logging.config.dictConfig(log_config())
    click.echo(f"ivr {__version__} on {settings.database_url}, listening on http://{host}:{port}", err=True)
    click.echo(f"Voice URL: {settings.public_url or f'http://{host}:{port}'}/twilio/voice", err=True)
    for line in businesses:
        click.echo(f"  {line}", err=True)
    if settings.public_url is None and not _is_loopback(host):
        click.echo(
            "warning: IVR_PUBLIC_URL is not set: behind a proxy or tunnel Twilio's signatures will not "
            "validate (403); set it to the URL Twilio calls",
            err=True,
        )
    if settings.try_phone:
        click.echo(f"Try a call: http://{host}:{port}/try in a browser, or 'ivr call --to NUMBER'", err=True)
    else:
        click.echo("Try a call: 'ivr call --to NUMBER' (the browser phone is off: IVR_TRY=off)", err=True)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        # The header deadline, and status callbacks answered in the protocol (docs/performance.md).
        http=status_callback_protocol(request_timeout),
        access_log=access_log,
        log_config=log_config(),
        server_header=False,  # no "server: uvicorn": what runs here is nobody else's business
    )


def _is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.1, ::1, localhost)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may be reached from outside
        return False


def _check_port_free(host: str, port: int) -> None:
    """Fail in one line, before anything starts, when the address cannot be listened on."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CliFailure(
                f"port {port} on {host} is already in use (another `ivr serve`?): stop that process, "
                "or choose another port with --port",
                1,
            ) from exc
        raise CliFailure(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another with --port/--host)", 1
        ) from exc


@cli.command()
@click.option("--to", "to", required=True, help="The business's number to call (spaces and dashes are fine).")
@click.option("--from", "from_", default="+15005550006", show_default=True, help="The caller's number.")
@click.option(
    "--keys",
    help="Keys to press, one per prompt ('1', '21', '1,-,*'; '-' = no input). "
    "Without it the call is interactive.",
)
@server_url_option
@click.option(
    "--record",
    is_flag=True,
    help="Record the call's consent, flagged simulated. Without it a call to a real "
    "business is a rehearsal that records nothing (a demo business's calls always record).",
)
def call(to: str, from_: str, keys: str | None, url: str | None, record: bool) -> None:
    """Place a simulated call, signed like Twilio, and show what was recorded."""
    from ivr.cli.admin import typed_phone
    from ivr.twilio.simulated_call import parse_keys, place_call

    to, from_ = typed_phone("--to", to, None), typed_phone("--from", from_, None)
    pressed = parse_keys(keys) if keys is not None else None
    result, outcome = simulate(
        lambda: place_call(settings_from_env(), to, from_, pressed, url, record),
        url,
        "ivr call",
        "the call failed",
    )
    click.echo(f"Call {result.call_sid} ended ({result.ended_by}). {outcome}")


@cli.command("copy")
@click.option("--from", "source_url", required=True, help="Database to copy from, e.g. sqlite:///ivr.db.")
@click.option(
    "--to", "target_url", required=True, help="An EMPTY database to copy into, e.g. postgresql://..."
)
def copy_command(source_url: str, target_url: str) -> None:
    """Copy the whole consent log, hashes included, into an empty database, and verify it there."""
    from consent_store.postgres.copy import CopyReport, copy_log

    async def run() -> CopyReport:
        async with open_store(source_url) as source, open_store(target_url) as target:
            return await copy_log(source, target)

    report = with_store_errors(run)
    click.echo(f"ok: copied {report.events} records, chain intact, head {report.head}")


@cli.command()
def migrate() -> None:
    """Create or upgrade the schema of IVR_DATABASE_URL (every process also does this when it starts)."""

    async def work(store: ConsentStore) -> None:
        return None

    with_store(work)
    click.echo("ok: schema up to date")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one-line errors, documented exit codes."""
    # Commands report problems themselves, in one line; the server turns logging back on.
    logging.getLogger("consent_store").setLevel(logging.CRITICAL)
    try:
        cli.main(args=argv, prog_name="ivr", standalone_mode=False)
    except CliFailure as exc:
        click.echo(f"ivr: error: {exc}", err=True)
        sys.exit(exc.code)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "ivr"
        click.echo(f"{command}: error: {exc.format_message()} (see --help)", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"ivr: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("ivr: aborted", err=True)
        sys.exit(130)
    sys.exit(0)
