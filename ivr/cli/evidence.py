"""`ivr export` and `ivr verify`: the evidence commands auditors run.

Exports stream decisions with a manifest beside the file; verify re-computes the chain
and proves an export against the store. Errors are one line (see ivr.cli.main).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import click

from consent_store import ACTIONS, ConsentStore, ExportFilter, VerifyResult
from ivr import __version__
from ivr.cli.support import database_read, with_store
from ivr.evidence.export import (
    EXPORT_FORMATS,
    ExportFormat,
    ExportResult,
    parse_timestamp,
    write_csv_chunks,
    write_export,
)
from ivr.evidence.export_check import ExportCheck, check_export
from ivr.evidence.manifest import ExportManifest, manifest_path, read_manifest, staged_manifest
from ivr.exceptions import CliFailure, ManifestError
from ivr.progress import Progress
from ivr.recordings.verify import RecordingsCheck, archive_from_env, recordings_line, verify_recordings

PRIVATE_FILE_MODE = 0o600


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """A new file only the user can read, in `path`'s folder (so a rename onto `path` is atomic);
    removed on the way out unless it was renamed."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    temporary = Path(name)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        with open(fd, "wb") as out:
            yield temporary, out
    finally:
        temporary.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """Make the renames in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _timestamp(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else parse_timestamp(value, f"--{param.name}")
    except ValueError as exc:
        raise click.BadParameter(str(exc).split(" ", 1)[1]) from exc


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    default="csv",
    show_default=True,
    help="csv: a header, then one row per decision; jsonl: one JSON object per line; "
    "receipts: one JSON consent receipt per line.",
)
@click.option("--business", "business_name", help="Only this business.")
@click.option("--action", type=click.Choice(ACTIONS), help="Only this action.")
@click.option("--since", callback=_timestamp, help="From this time (ISO-8601; naive = UTC; inclusive).")
@click.option("--until", callback=_timestamp, help="Before this time (ISO-8601; naive = UTC; exclusive).")
@click.option(
    "-o",
    "--output",
    "output",
    metavar="FILE",
    help="Write to FILE, and its manifest to FILE.manifest.json, instead of standard output.",
)
@click.option("--include-demo", is_flag=True, help="Include demo businesses' records (left out by default).")
@click.option("-q", "--quiet", is_flag=True, help="No progress line and no summary on standard error.")
def export(
    fmt: ExportFormat,
    business_name: str | None,
    action: str | None,
    since: str | None,
    until: str | None,
    output: str | None,
    include_demo: bool,
    quiet: bool,
) -> None:
    """Export decisions, one row per decision, oldest first, streamed.

    With -o FILE a manifest is written beside it, FILE.manifest.json (rows, SHA-256 of
    the file, first and last record hash, the chain head), which 'ivr verify --export
    FILE' proves against the store. An export to standard output gets no manifest.
    """
    where = ExportFilter(
        business=business_name,
        action=action,  # type: ignore[arg-type]
        since=since,
        until=until,
        include_demo=include_demo or business_name is not None,
    )
    path = None if output is None or output == "-" else Path(output)
    # The store's reader thread reads the next chunk (its SQL runs without the GIL) while
    # this thread formats the current one, but needs the GIL for a moment at each hand-over:
    # let it in within 0.1 ms rather than the default 5 ms (1.5x faster on 2 cores).
    sys.setswitchinterval(0.0001)

    async def work(store: ConsentStore) -> ExportResult:
        if business_name is not None:
            await store.get_business(business_name)
        # On a terminal the rows themselves would collide with a progress line: only for files.
        shown = not quiet and path is not None and sys.stderr.isatty()
        # Counting reads every decision once more (0.2 s a million): only for a progress bar.
        progress = Progress("export", await store.count_decisions(where) if shown else None, quiet=not shown)
        heads: list[tuple[int, str | None]] = []

        def on_snapshot(seq: int, digest: str | None) -> None:
            heads.append((seq, digest))

        async def write(out: BinaryIO) -> ExportResult:
            if fmt == "csv":  # each store builds its CSV lines its own way (SQLite mostly in SQL)
                chunks = store.export_csv_chunks(where, on_snapshot=on_snapshot)
                return await write_csv_chunks(chunks, out, progress.update)
            rows = store.export_decisions(where, on_snapshot=on_snapshot)
            return await write_export(rows, out, fmt, progress.update)

        if path is None:
            result = await write(sys.stdout.buffer)
        else:
            # Written under a temporary name beside FILE and renamed only once whole, then its
            # manifest: an export that fails or is interrupted leaves the previous pair as it was.
            with _temporary_beside(path) as (temporary, out):
                result = await write(out)
                out.flush()
                os.fsync(out.fileno())
                [(head_seq, head_hash)] = heads
                assert head_hash is not None  # the head of the snapshot itself always exists
                manifest = manifest_path(path)
                staged = staged_manifest(
                    manifest,
                    ExportManifest.for_export(path, fmt, where, result, (head_seq, head_hash), __version__),
                    PRIVATE_FILE_MODE,
                )
                try:
                    os.replace(temporary, path)
                    os.replace(staged, manifest)
                finally:
                    staged.unlink(missing_ok=True)
                _sync_folder(path.parent)
        progress.update(result.rows)
        progress.finish()
        return result

    database = database_read()
    if not quiet and sys.stderr.isatty():
        click.echo(f"ivr: exporting from {database}", err=True)
    try:
        result = with_store(work)
    except OSError as exc:
        raise CliFailure(f"cannot write {output}: {exc.strerror}", 2) from exc
    if path is not None and not quiet:
        click.echo(f"Exported {result.rows} decision{'' if result.rows == 1 else 's'} to {output}.", err=True)


@click.command()
@click.option(
    "--reanchor",
    is_flag=True,
    help="After a deliberate restore: check against the checkpoints only and, if intact, "
    "write the chain head file anew. Run it with the service stopped.",
)
@click.option(
    "--export",
    "export_file",
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also prove that FILE, written by 'ivr export -o FILE' (by this or an older version), "
    "matches the store, using FILE.manifest.json beside it.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress line and no warnings; errors still print.")
@click.option(
    "--skip-recordings",
    is_flag=True,
    help="Check the chain only: do not re-hash the archived recordings.",
)
def verify(reanchor: bool, export_file: Path | None, quiet: bool, skip_recordings: bool) -> None:
    """Re-compute the hash chain; exit 0 if intact, 1 naming the first bad record.

    Then re-hash every archived recording against its chained SHA-256 (unless
    --skip-recordings); exit 1 naming each one whose bytes changed or that is missing.

    With --export FILE, then prove the export against the store: its bytes against the
    same decisions rendered again, its manifest's SHA-256, rows, first and last record
    hash, and its chain head against the chain; exit 1 naming the first row that differs.
    An export written before some columns existed (a prefix of today's columns, read
    from its header) is proved with exactly its columns.
    """
    if reanchor and export_file is not None:
        raise click.UsageError("--reanchor and --export cannot be used together")
    manifest = None
    if export_file is not None:
        try:
            manifest = read_manifest(manifest_path(export_file))
        except ManifestError as exc:
            raise CliFailure(f"cannot prove export {export_file}: {exc}", 1) from exc

    database = database_read()
    if not quiet and sys.stderr.isatty():
        click.echo(f"ivr: verifying {database}", err=True)
    sys.setswitchinterval(0.0001)  # as in `export`: the store's reader thread takes its turns promptly

    archive = None if reanchor or skip_recordings else archive_from_env()
    recordings: RecordingsCheck | None = None

    async def work(store: ConsentStore) -> tuple[VerifyResult, ExportCheck | None]:
        nonlocal recordings
        if reanchor:
            return await store.reanchor_head_file(), None
        progress = Progress("verify", await store.event_count(), quiet=quiet, unit="records")
        result = await store.verify(progress.update)
        progress.update(result.count)
        progress.finish()
        if archive is not None and result.intact:
            progress = Progress(
                "verify recordings", await store.archived_count(), quiet=quiet, unit="recordings"
            )
            recordings = await verify_recordings(store, archive, progress.update)
            progress.finish()
        if export_file is None or manifest is None or not result.intact:
            return result, None
        progress = Progress("verify export", manifest.rows, quiet=quiet)
        check = await check_export(store, export_file, manifest, progress.update)
        progress.update(check.rows)
        progress.finish()
        return result, check

    try:
        result, check = with_store(work)
    except OSError as exc:
        raise CliFailure(f"cannot read {export_file}: {exc.strerror}", 2) from exc
    for warning in () if quiet else result.warnings:
        click.echo(f"ivr: warning: {warning}", err=True)
    if not result.intact:
        if result.first_bad_seq is not None and result.first_bad_seq > result.count:
            raise CliFailure(
                f"chain broken at record {result.first_bad_seq}: {result.problem} "
                f"({result.count} records verified before it)",
                1,
            )
        # The chain verified past the record: what broke is the phone it stands for (subject_check).
        where = f"record {result.first_bad_seq}" if result.first_bad_seq is not None else "the subjects table"
        raise CliFailure(
            f"caller's phone not bound at {where}: {result.problem} "
            f"(the chain itself is intact, {result.count} records)",
            1,
        )
    if recordings is not None and not recordings.intact:
        for problem in recordings.problems:
            click.echo(f"ivr: {problem}", err=True)
        raise CliFailure(
            f"{len(recordings.problems)} of {recordings.checked} archived recordings do not match the chain,"
            f" first: {recordings.problems[0]} (the chain itself is intact, {result.count} records)",
            1,
        )
    noun = "record" if result.count == 1 else "records"
    if check is not None and manifest is not None:
        if not check.matches:
            raise CliFailure(f"export {export_file} does not match the store: {check.problem}", 1)
        click.echo(
            f"ok: export {export_file} matches the store: {check.rows} row{'' if check.rows == 1 else 's'}, "
            f"sha256 {check.sha256}, taken at record {manifest.event_count}; "
            f"chain intact, {result.count} {noun}, head {result.head}"
        )
        return
    click.echo(f"ok: {result.count} {noun}, chain intact, head {result.head}{recordings_line(recordings)}")
    if reanchor:
        click.echo("The chain head file now records this head.", err=True)
