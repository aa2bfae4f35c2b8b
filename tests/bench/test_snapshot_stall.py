"""Smoke test of bench/snapshot_stall.py (issue 16): runs end to end on a tiny state.

No timing is asserted (figures live in the benchmark's output); this checks the
three runs happen, the forked snapshots are really taken during the measured
window, and the JSON carries the headline keys.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_snapshot_stall_bench_json(tmp_path) -> None:
    args = ["--json", "--orders", "3000", "--users", "300", "--seconds", "1.5"]
    args += ["--every-ms", "300", "--rate", "1000", "--dir", str(tmp_path)]
    p = subprocess.run(
        [sys.executable, "-m", "bench.snapshot_stall", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    for key in r["headline"]:
        assert r[key] > 0, key
    assert r["background_snapshots_during_snapshot"] >= 1
    assert r["background_snapshots_no_snapshot"] == 0
    assert r["resting_orders"] == 3000 and r["durability"] == "fsync"
    assert list(tmp_path.iterdir()) == []  # every data directory removed
