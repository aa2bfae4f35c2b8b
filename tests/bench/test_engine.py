"""Smoke test of the order-book benchmark (bench/engine.py) on a tiny stream.

No timing is asserted (performance lives in the benchmark's own output); this
checks that the benchmark runs end to end, that its JSON carries the keys the
issue names, and that every API ended on the same book (the benchmark asserts
the state hashes itself and exits non-zero otherwise).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sim.bookflow import WorkloadConfig, generate

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = (
    "commands",
    "trades",
    "resting_orders_end",
    "per_call_cmds_per_s",
    "batch_cmds_per_s",
    "p50_ns",
    "p99_ns",
    "p999_ns",
    "python",
    "cpu",
    "numpy",
    "cython",
    "seed",
    "state_hash",
    "durability",
    "pass_per_call",
    "pass_batch",
    "pass_p99",
)


def test_engine_bench_json() -> None:
    args = ["--json", "--commands", "3000", "--seed", "4", "--repeats", "1"]
    args += ["--latency-commands", "500", "--chunk", "512"]
    p = subprocess.run(
        [sys.executable, "-m", "bench.engine", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert not [k for k in REQUIRED if k not in r]
    wl = generate(WorkloadConfig(commands=3000, seed=4))
    assert r["commands"] == 3000
    assert r["trades"] == wl.trades
    assert r["resting_orders_end"] == wl.resting_orders_end
    assert r["seed"] == 4
    assert len(bytes.fromhex(r["state_hash"])) == 16
    assert r["latency"]["count"] == 500
    # The per-call headline is the realistic loop (seq stamped, events read back);
    # the bare loop is an extra key (issue 16).
    assert "events read back" in r["per_call_mode"] and "seq" in r["per_call_mode"]
    assert r["per_call_bare_cmds_per_s"] > 0 and r["per_call_over_bare"] > 0
    assert set(r["runs_cmds_per_s"]) >= {"per_call", "per_call_bare", "per_call_stamped"}
    assert r["target_per_call_cmds_per_s"] == 3_000_000
    assert r["target_batch_cmds_per_s"] == 10_000_000
    assert r["target_p99_ns"] == 1_000
