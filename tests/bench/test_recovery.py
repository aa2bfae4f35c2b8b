"""The recovery benchmark's data directories (bench/_recovery.py) are real core data:
the journal recovers to the state of the same commands applied in memory, the
snapshot sits where asked, and ``bursa core`` starts on them at the journal's end;
``bench.core --quick`` says it scaled the journal down."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench import _recovery
from engine.core import Core
from engine.recovery import recover
from engine.snapshot import list_snapshots
from engine.storage import FileStorage
from engine.wire.commands import stamp

ROOT = Path(__file__).resolve().parents[2]
N = 30_000


def test_data_dir_is_a_real_core_journal(tmp_path: Path) -> None:
    built = _recovery.build_data_dir(str(tmp_path / "d"), N, snapshot_before_end=5_000)
    stream = np.concatenate([_recovery.setup_commands(), _recovery.generate_commands(N)])
    ref = Core()
    _ev, rep = ref.apply(stamp(stream.copy(), 1, 1))
    assert (rep["status"] == 1).sum() > N // 2  # most commands apply (the rest: cancels
    # of filled orders), and they trade
    assert built["last_seq"] == len(stream)
    storage = FileStorage(str(tmp_path / "d"))
    try:
        assert [s for s, _ in list_snapshots(storage)] == [len(stream) - 5_000]
        core, report = recover(storage, use_snapshots=False, repair=False)
        assert core.last_seq == len(stream) and report.snapshot_seq == 0
        assert core.state_hash() == ref.state_hash()  # the journal holds every command
        from_snap, report = recover(storage, repair=False)
        assert report.snapshot_seq == len(stream) - 5_000
        assert from_snap.state_hash() == ref.state_hash()
    finally:
        storage.close()
    seconds, ready = _recovery.time_restart(str(tmp_path / "d"))
    assert ready["last_seq"] == len(stream) and seconds > 0


def test_bench_core_quick_says_it_scaled_down(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable, "-m", "bench.core", "--json", "--commands", "2000", "--users", "20",
            "--repeats", "1", "--fdatasync-samples", "10", "--ack-commands", "100",
            "--no-process", "--no-alone", "--dir", str(tmp_path), "--recovery-commands", "40000",
            "--quick",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["recovery_quick"] is True and r["recovery_commands"] == 4_000
    assert "--quick" in r["recovery_mode"]
    assert r["recovery_s_per_10m_cmds"] > 0 and r["recovery_from_snapshot_s"] > 0
    assert r["target_recovery_s_per_10m_cmds"] == 10.0
