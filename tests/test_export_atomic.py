"""`ivr export -o FILE` replaces FILE and its manifest only once the new export is whole.

A temporary file in the same folder is renamed onto FILE at the end, then the manifest;
an export that fails (a full disk) or is interrupted (Ctrl-C, a kill) leaves the previous
file and manifest exactly as they were, and `ivr verify --export` still proves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import pytest

from bench.fill import fill_store
from consent_store import Business, ConsentDecision, open_store, text_sha256
from ivr.cli import evidence as cli_evidence
from ivr.cli.main import main

ACME = "Acme Parcels"


def env_for(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    return env | {"IVR_DATABASE_URL": f"sqlite:///{db}"}


def ivr(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args], env=env_for(db), capture_output=True, text=True, timeout=120
    )


async def add_decisions(db: Path, first: int, count: int) -> None:
    async with open_store(f"sqlite:///{db}") as store:
        if first == 0:
            await store.add_business(
                Business(ACME, ("+15550001111",), ("updates",), ("en-US",)), {"en-US": "hi"}, "t"
            )
        for n in range(first, first + count):
            await store.record_decision(
                ConsentDecision(
                    f"CA{n:032d}",
                    f"+1415555{n:04d}",
                    ACME,
                    "opt_in",
                    ("updates",),
                    "1",
                    "en-US",
                    1,
                    text_sha256("hi"),
                    "hi",
                )
            )


def pair(out: Path) -> tuple[bytes, bytes]:
    return out.read_bytes(), out.with_name(out.name + ".manifest.json").read_bytes()


def leftovers(folder: Path, db: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(db.name))


@pytest.fixture
async def exported(tmp_path: Path) -> AsyncIterator[tuple[Path, Path, tuple[bytes, bytes]]]:
    """A store with 3 decisions exported to out.csv, and 2 more decisions since."""
    db, out = tmp_path / "ivr.db", tmp_path / "out.csv"
    await add_decisions(db, 0, 3)
    done = await asyncio.to_thread(ivr, db, "export", "-o", str(out))
    assert done.returncode == 0, done.stderr
    before = pair(out)
    await add_decisions(db, 3, 2)
    yield db, out, before


def test_a_failed_export_leaves_the_previous_file_and_manifest(
    exported: tuple[Path, Path, tuple[bytes, bytes]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db, out, before = exported

    async def disk_fills_up(chunks: AsyncIterator[object], sink: BinaryIO, progress: object) -> None:
        sink.write(b"recorded_at,phone\n2026-")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setenv("IVR_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setattr(cli_evidence, "write_csv_chunks", disk_fills_up)
    with pytest.raises(SystemExit) as exited:
        main(["export", "-o", str(out)])
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"ivr: error: cannot write {out}: No space left on device\n"
    assert pair(out) == before
    assert leftovers(out.parent, db) == ["out.csv", "out.csv.manifest.json"]
    monkeypatch.undo()
    proved = ivr(db, "verify", "--export", str(out))
    assert proved.returncode == 0 and "3 rows" in proved.stdout, proved.stderr


def test_a_successful_export_replaces_both_and_leaves_no_temporary_file(
    exported: tuple[Path, Path, tuple[bytes, bytes]],
) -> None:
    db, out, before = exported
    assert ivr(db, "export", "-o", str(out)).returncode == 0
    assert pair(out)[0] != before[0] and pair(out)[1] != before[1]
    assert leftovers(out.parent, db) == ["out.csv", "out.csv.manifest.json"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o600)
    assert "5 rows" in ivr(db, "verify", "--export", str(out)).stdout


def _partial_bytes(folder: Path) -> int:
    """The size of an export's temporary file in `folder`, 0 if none (it may be renamed meanwhile)."""
    for path in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if path.name.endswith(".partial"):
                return path.stat().st_size
    return 0


@pytest.fixture(scope="module")
def big_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a store of 30,000 decisions (big.db and its chain head) and its JSONL export
    with manifest (out.jsonl): made once, each interrupted export works on a copy of the folder."""
    folder = tmp_path_factory.mktemp("big")
    fill_store(folder / "big.db", 30_000)
    first = ivr(folder / "big.db", "export", "--format", "jsonl", "-o", str(folder / "out.jsonl"))
    assert first.returncode == 0, first.stderr
    return folder


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_export_interrupted_midway_leaves_the_previous_pair(
    big_export: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    shutil.copytree(big_export, tmp_path, dirs_exist_ok=True)
    db, out = tmp_path / "big.db", tmp_path / "out.jsonl"
    assert leftovers(tmp_path, db) == ["out.jsonl", "out.jsonl.manifest.json"]
    # The signal goes while under half the rows are written: once all are, the export only syncs
    # and renames (no await left to interrupt) and rightly completes. On a loaded machine the
    # window can be missed (the export completes, exit 0): then it is tried again, at most 5 times.
    for _ in range(5):
        before = pair(out)
        process = subprocess.Popen(
            [sys.executable, "-m", "ivr", "export", "--format", "jsonl", "-o", str(out)],
            env=env_for(db),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            # A shell without job control starts background jobs with SIGINT ignored, and children
            # inherit that: the export must get SIGINT's default whatever started pytest.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 60
        # Wait until the new export is being written (its temporary file has some of the rows).
        while process.poll() is None and not 0 < _partial_bytes(tmp_path) < len(before[0]) // 2:
            assert time.monotonic() < deadline
            time.sleep(0.0005)
        process.send_signal(sig)
        _, error = process.communicate(timeout=60)
        if process.returncode != 0:
            break
    assert process.returncode != 0, "5 exports in a row finished before they could be interrupted"
    if sig == signal.SIGINT:
        assert process.returncode == 130 and error.strip().endswith("ivr: aborted")
    assert pair(out) == before
    left = leftovers(tmp_path, db)
    if sig == signal.SIGINT:  # a kill cannot clean up: its temporary file stays, hidden, beside
        assert left == ["out.jsonl", "out.jsonl.manifest.json"]
    proved = ivr(db, "verify", "--export", str(out))
    assert proved.returncode == 0, proved.stderr
