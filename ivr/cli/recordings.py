"""`ivr recordings ...` and `ivr business retention`: reconciling recordings with Twilio, getting
one out of the archive, purging expired audio, and legal holds (docs/recordings-retention.md).

Every command maps errors to one line and an exit code (ivr/cli/support.py): 2 for bad input,
1 when something failed that may succeed later (Twilio, the archive).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import click

from consent_store import ConsentStore
from consent_store.recording_holds import (
    change_legal_hold,
    hold_records,
    set_recording_retention,
)
from ivr.cli.admin import region_option, typed_phone
from ivr.cli.support import settings_from_env, with_store
from ivr.exceptions import CliFailure
from ivr.recordings.archive import RecordingArchive, open_archive
from ivr.recordings.exceptions import DeletionNotConfigured, RecordingError, RecordingMissing
from ivr.recordings.retention import purge, twilio_for_deletion
from ivr.recordings.sync import DEFAULT_OLDER_THAN_SECONDS, reconcile, reconciliation_deps
from ivr.recordings.twilio_recordings import check_call_sid
from ivr.settings import Settings

PRIVATE_FILE_MODE = 0o600


def _archive(settings: Settings) -> RecordingArchive:
    try:
        return open_archive(settings)
    except ValueError as exc:
        raise CliFailure(str(exc), 2) from None


def _call_sid(value: str) -> str:
    try:
        return check_call_sid(value.strip())
    except ValueError as exc:
        raise CliFailure(f"--call-sid {exc}", 2) from None


@click.group()
def recordings() -> None:
    """Reconcile recordings with Twilio, get one from the archive, purge, legal holds."""


@recordings.command("sync")
@click.option(
    "--older-than",
    type=click.IntRange(min=0, max=10**8),
    default=DEFAULT_OLDER_THAN_SECONDS,
    show_default=True,
    help="Ask about decisions at least this many seconds old with no completed recording.",
)
def sync(older_than: int) -> None:
    """Ask Twilio's Recordings list about decisions whose recording never arrived; attach and
    archive what it finds (chained as found by reconciliation)."""
    settings = settings_from_env()
    archive = _archive(settings)

    async def work(store: ConsentStore) -> str:
        async with reconciliation_deps(store, settings, archive) as deps:
            try:
                report = await reconcile(deps, settings, older_than)
            except RecordingError as exc:
                raise CliFailure(str(exc), 2) from None
        if report.errors:
            raise CliFailure(report.summary(), 1)
        return report.summary()

    click.echo(with_store(work))


def _write_atomically(path: Path, data: bytes) -> None:
    """`data` at `path` whole or not at all: a private temporary file beside it, fsynced, renamed."""
    folder = path.parent
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".partial")
    temporary = Path(name)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        with open(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(folder_fd)
        finally:
            os.close(folder_fd)


def _output(value: str) -> Path:
    if not value or "\x00" in value:
        raise CliFailure("-o needs a file name", 2)
    path = Path(value)
    if path.is_dir():
        raise CliFailure(f"-o {value!r} is a folder: name a file", 2)
    if not path.parent.is_dir():
        raise CliFailure(f"-o {value!r}: there is no folder {str(path.parent)!r}", 2)
    return path


@recordings.command("get")
@click.option("--call-sid", required=True, help="The call (CA + 32 hex digits).")
@click.option(
    "-o", "--output", "output", required=True, help="Write the audio to FILE (replaced atomically)."
)
def get(call_sid: str, output: str) -> None:
    """Write a call's archived recording to FILE, after checking its SHA-256 against the chain."""
    call_sid = _call_sid(call_sid)
    path = _output(output)
    settings = settings_from_env()
    archive = _archive(settings)

    async def work(store: ConsentStore) -> str:
        archived = await store.archived_recording(call_sid)
        if archived is None:
            raise CliFailure(f"no archived recording for call {call_sid}", 2)
        deleted = (await store.deleted_recordings()).get(archived.recording_sid)
        if deleted is not None:
            raise CliFailure(
                f"recording {archived.recording_sid} was deleted from the archive ({deleted})", 2
            )
        try:
            data = await archive.get(archived.sha256)
        except RecordingMissing as exc:
            raise CliFailure(f"{exc}: run 'ivr verify'", 1) from None
        except RecordingError as exc:
            raise CliFailure(str(exc), 1) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != archived.sha256:
            raise CliFailure(
                f"recording {archived.recording_sid} does not match the chain: its bytes hash to"
                f" {actual[:16]}..., the chain holds {archived.sha256[:16]}...; nothing was written",
                1,
            )
        try:
            _write_atomically(path, data)
        except OSError as exc:
            raise CliFailure(f"-o {output!r}: {exc.strerror or exc}", 1) from None
        return f"Wrote {len(data)} bytes of recording {archived.recording_sid} to {path} (SHA-256 {actual})."

    click.echo(with_store(work))


@recordings.command("purge")
def purge_command() -> None:
    """Delete archived audio older than its business's retention period (ivr business retention),
    except under a legal hold; chained. The hashes stay, so the chain still verifies."""
    settings = settings_from_env()
    archive = _archive(settings)

    async def work(store: ConsentStore) -> str:
        try:
            async with twilio_for_deletion(settings) as twilio:
                report = await purge(store, archive, "cli", twilio=twilio)
        except DeletionNotConfigured as exc:
            raise CliFailure(str(exc), 2) from None
        except RecordingError as exc:
            raise CliFailure(str(exc), 1) from None
        line = f"Purged {len(report.from_archive)} recording(s) from the archive"
        if twilio is not None:
            line += f" and {len(report.at_twilio)} at Twilio"
        if report.held:
            line += f"; kept {len(report.held)} under a legal hold"
        if report.errors:
            raise CliFailure(f"{line}; {len(report.errors)} error(s), first: {report.errors[0]}", 1)
        return line + "."

    click.echo(with_store(work))


def _target(phone: str | None, business: str | None, region: str | None) -> tuple[str | None, str | None]:
    if (phone is None) == (business is None):
        raise CliFailure("name one of --phone or --business", 2)
    return (typed_phone("--phone", phone, region) if phone is not None else None), business


def _hold_command(held: bool) -> click.Command:
    verb = "Place" if held else "Release"

    @click.option("--phone", help="A caller's number: every recording of theirs.")
    @click.option("--business", help="A business: every recording of its calls.")
    @region_option
    @click.option("--reason", default="legal hold", show_default=True, help="Why, kept in the chained event.")
    def command(phone: str | None, business: str | None, region: str | None, reason: str) -> None:
        phone, business = _target(phone, business, region)
        what = phone or f"business {business!r}"

        async def work(store: ConsentStore) -> str:
            event = await change_legal_hold(
                store, held=held, author="cli", reason=reason, phone=phone, business=business
            )
            if event is None:
                return f"{what} is already under a legal hold."
            state = "is under a legal hold" if held else "is no longer under a legal hold"
            return f"{what} {state}: record {event.hash[:16]}... in the chain."

        click.echo(with_store(work))

    command.__doc__ = f"{verb} a legal hold on a phone or a business (chained): " + (
        "purge keeps its audio and 'ivr forget' refuses." if held else "purge and erasure apply again."
    )
    return click.command("hold" if held else "release")(command)


recordings.add_command(_hold_command(True))
recordings.add_command(_hold_command(False))


@recordings.command("holds")
def holds() -> None:
    """List the legal holds in place."""

    async def work(store: ConsentStore) -> list[str]:
        return [
            f"{r.recorded_at}  {r.target:8}  {r.phone or r.business or '(phone erased)'}"
            f"  by {r.author}: {r.reason}"
            for r in await hold_records(store)
        ]

    lines = with_store(work)
    click.echo("\n".join(lines) if lines else "No legal holds.")


@click.command("retention")
@click.option("--name", required=True, help="Business name.")
@click.option(
    "--years",
    type=click.IntRange(min=0, max=100),
    required=True,
    help="Keep its recordings this many years after the decision; 0 keeps them for ever.",
)
def business_retention(name: str, years: int) -> None:
    """Set how long a business's recordings are kept (chained); 'ivr recordings purge' applies it."""

    async def work(store: ConsentStore) -> str:
        event = await set_recording_retention(store, name, years or None, author="cli")
        kept = f"{years} year(s) after the decision" if years else "for ever"
        return f"Recordings of {name} are kept {kept}: record {event.hash[:16]}... in the chain."

    click.echo(with_store(work))
