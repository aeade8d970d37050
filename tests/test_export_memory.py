"""`ivr export` streams: its memory stays flat whether it writes 20,000 rows or 200,000.

Stores are filled directly with bench.fill.fill_store (the writer's exact chained rows).
The peak RSS is the export process's own, from /proc, counted from after its imports
(start-up allocates and frees more than the export itself uses).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.fill import fill_store
from bench.workload import BUSINESSES

# Measured growth from 20,000 to 200,000 rows: 2.4-5.1 MB alone (December 2026), 8.1 MB once in a
# whole parallel run (the worker's bounded frames and SQLite's page caches filling as scheduling
# allows). 12 MB still fails anything that keeps 70 bytes per row: a CSV row is about 300.
ALLOWED_GROWTH_KB = 12 * 1024

# Runs `ivr ARGS` and reports its peak RSS (VmHWM) on standard error at exit; the peak is
# reset once the imports are done.
MEASURED_IVR = """
import atexit, sys
from ivr.cli.main import main

def report():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    sys.stderr.write(f"peak-rss-kb {peak}\\n")

with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
atexit.register(report)
main(sys.argv[1:])
"""


def export_peak_rss_kb(db: Path, out: Path, fmt: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")} | {
        "IVR_DATABASE_URL": f"sqlite:///{db}"
    }
    result = subprocess.run(
        [sys.executable, "-c", MEASURED_IVR, "export", "-q", "--format", fmt, "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found = re.search(r"peak-rss-kb (\d+)", result.stderr)
    assert found, result.stderr
    return int(found.group(1))


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Stores of 20,000 and 200,000 decisions (each decision's data differs: timing fields)."""
    found = {}
    for decisions in (20_000, 200_000):
        db = tmp_path_factory.mktemp("memory") / f"{decisions}.db"
        fill_store(db, decisions + len(BUSINESSES))
        found[decisions] = db
    return found


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_memory_stays_flat_from_20k_to_200k_decisions(
    stores: dict[int, Path], tmp_path: Path, fmt: str
) -> None:
    peaks = {}
    for decisions, db in stores.items():
        out = tmp_path / f"{decisions}.{fmt}"
        peaks[decisions] = export_peak_rss_kb(db, out, fmt)
        assert out.read_bytes().count(b"\n") == decisions + (fmt == "csv")
    assert peaks[200_000] - peaks[20_000] < ALLOWED_GROWTH_KB, peaks
