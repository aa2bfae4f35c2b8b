"""bench/e2e.py pieces work end to end (figures are the benchmark's, not asserted)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from bench import e2e
from tests.e2e.coreproc import REPO


def test_echo_open_loop_and_sustained(tmp_path: Path) -> None:
    echo = subprocess.Popen(
        [sys.executable, "-m", "bench.e2e", "--echo-server"],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    core, gw, keys = e2e.start_stack(tmp_path, "async", 2)
    try:
        assert echo.stdout is not None
        port = json.loads(echo.stdout.readline())["port"]
        e = e2e.echo_rtt(port, 50, 1000)
        assert e["count"] == 50 and 0 < e["p50_ns"] <= e["p99_ns"]
        s = e2e.Session(gw.port, keys[0])
        p = e2e.open_loop(s, 1000, 100)
        assert p["count"] == 100 and p["p50_ns"] > 0
        # Echo and acks in alternating blocks: each gets its full count, the last block
        # cut to what is left.
        esock = e2e.echo_connect(port)
        ei, ai = e2e.interleaved(esock, s, 70, 1000, block=30)
        esock.close()
        assert ei["count"] == ai["count"] == 70 == len(ei["latencies"]) == len(ai["latencies"])
        assert (ei["latencies"] > 0).all() and (ai["latencies"] > 0).all()
        assert gw.proc is not None
        cpu0 = e2e.process_cpu_s(gw.proc.pid)
        assert e2e.sustained([s, e2e.Session(gw.port, keys[1])], 0.5, 100) > 0
        assert e2e.process_cpu_s(gw.proc.pid) > cpu0  # the gateway's CPU time is read
    finally:
        echo.kill()
        echo.wait()
        gw.cleanup()
        core.cleanup()


def test_sustained_repeat_reports_each_run_of_one_gateway(tmp_path: Path) -> None:
    # A small order map, so the probe's second run evicts: the per-run rows follow one
    # gateway (orders counted across runs, the map held at its bound).
    args = argparse.Namespace(
        dir=str(tmp_path), sustained_repeat=2, sustained_s=0.5, max_orders_in_memory=500,
        json=True,
    )  # fmt: skip
    rows = e2e.sustained_repeat(args)
    assert [r["run"] for r in rows] == [1, 2]
    for r in rows:
        assert r["orders_per_s"] > 0 and r["orders"] > 0
        assert r["gateway_cpu_us_per_order"] > 0 and r["core_cpu_us_per_order"] > 0
        assert r["written_b_per_order"] > 0 and r["gateway_rss_mb"] > 0
        assert r["orders_in_memory"] <= 500 + 4 * 2000  # the bound, plus what is in flight
    assert rows[1]["orders_evicted"] > rows[0]["orders_evicted"] > 0
    assert (
        rows[1]["orders_evicted"] + rows[1]["orders_in_memory"]
        == rows[0]["orders"] + rows[1]["orders"]
    )
