"""Smoke test of the core benchmark (bench/core.py) on a tiny stream.

No timing is asserted; this checks that the benchmark runs end to end through the
in-process core, the sequencer in every durability mode, the open-loop ack run
and the real process, and that its last line carries the keys issue 4 names.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = (
    "inproc_cmds_per_s",
    "fsync_cmds_per_s",
    "async_cmds_per_s",
    "fsync_ack_p50_us",
    "fsync_ack_p99_us",
    "fdatasync_p50_us",
    "fsync_ack_p50_over_fdatasync_p50",
    "process_fsync_ack_p50_us",
    "python",
    "cpu",
    "state_hash",
    "durability",
    "recovery_s_per_10m_cmds",
    "recovery_from_snapshot_s",
)


def test_bench_core_prints_one_json_line(tmp_path):
    out = subprocess.run(
        [
            sys.executable, "-m", "bench.core", "--json", "--commands", "3000", "--users", "50",
            "--repeats", "3", "--fdatasync-samples", "20", "--ack-commands", "300",
            "--ack-rate", "20000", "--process-commands", "200", "--process-rate", "2000",
            "--dir", str(tmp_path), "--recovery-commands", "20000", "--repeats-recovery", "1",
            "--alone-commands", "30",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for key in REQUIRED:
        assert key in result, key
    assert result["workload"]["users"] == 50
    assert result["fsync_syncs"] == result["fsync_batches"] > 0
    assert result["async_syncs"] == 0
    # The core alone and its transport floor, in the same run (issue 17).
    for key in ("zmq_echo_rtt", "core_async_ack", "core_fsync_ack", "core_fdatasync_paced"):
        assert result[f"{key}_p50_us"] > 0, key
    assert result["core_fsync_ack_p50_minus_fdatasync_p50_us"] == round(
        result["core_fsync_ack_p50_us"] - result["core_fdatasync_p50_us"], 1
    )
    assert list(tmp_path.iterdir()) == []  # every journal directory removed
    # Headlines are medians; the best run and the spread are extra keys (issue 16).
    for key in ("inproc", "fsync", "async", "none"):
        rate = result[f"{key}_cmds_per_s"]
        assert 0 < rate <= result[f"{key}_cmds_per_s_best"], key
        assert result[f"{key}_cmds_per_s_spread"] >= 0, key
        assert f"{key}_cmds_per_s_median" not in result, key
