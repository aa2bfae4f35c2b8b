"""Tests of the benchmark runner (bench/run_all.py): discovery, output parsing, the table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.run_all import (
    BENCH_DIR,
    discover,
    headline,
    kill_group,
    last_json,
    run_module,
    table,
    verdict,
)


def test_discovers_real_benchmarks_not_helpers() -> None:
    names = discover(BENCH_DIR)
    assert "engine" in names
    assert not {"workload", "run_all", "meta", "__init__", "report", "plots"} & set(names)


def test_discovers_any_module_with_main(tmp_path: Path) -> None:
    (tmp_path / "core.py").write_text("def main(argv=None):\n    return 0\n")
    (tmp_path / "sim.py").write_text("import sys\n\n\ndef main():\n    return 0\n")
    (tmp_path / "util.py").write_text("def helper():\n    return 0\n")
    (tmp_path / "workload.py").write_text("def main():\n    return 0\n")
    (tmp_path / "_private.py").write_text("def main():\n    return 0\n")
    (tmp_path / "nested.py").write_text("class A:\n    def main(self):\n        return 0\n")
    assert discover(tmp_path) == ["core", "sim"]


def test_last_json_takes_the_last_line() -> None:
    out = 'progress 1\n{"not": "this"}\nmore text\n{"commands": 5, "p99_ns": 700}\n\n'
    assert last_json(out) == {"commands": 5, "p99_ns": 700}
    with pytest.raises(ValueError):
        last_json("")
    with pytest.raises(ValueError):
        last_json("[1, 2]\n")


def test_verdict_direction_by_unit() -> None:
    assert verdict("batch_cmds_per_s", 11, 10) == "PASS"
    assert verdict("batch_cmds_per_s", 9, 10) == "MISS"
    assert verdict("p99_ns", 900, 1000) == "PASS"
    assert verdict("p99_ns", 1001, 1000) == "MISS"
    assert verdict("p99_ns", 900, None) == ""
    assert verdict("fsync_ack_p99_us", 1.5, 2.0) == "PASS"
    assert verdict("fsync_ack_p50_over_fdatasync_p50", 2.5, 2.0) == "MISS"
    # A percentile or a unit inside the name is a time too (marketdata's keys).
    assert verdict("p99_us_at_100k", 103_415.8, 200) == "MISS"
    assert verdict("p99_us_at_100k", 150.0, 200) == "PASS"
    assert verdict("ack_p99_at_10k", 150.0, 200) == "PASS"
    # A target of 0 counts bad things: any at all is a miss.
    assert verdict("acked_lost", 0, 0) == "PASS"
    assert verdict("acked_lost", 1, 0) == "MISS"
    assert verdict("broken_variants_caught", 4, 5) == "MISS"
    # The JSON may state the direction itself.
    r = {"lower_is_better": ["queue_depth"], "higher_is_better": ["ok_ns"]}
    assert verdict("queue_depth", 7, 5, r) == "MISS"
    assert verdict("ok_ns", 7, 5, r) == "PASS"


def test_headline_and_table() -> None:
    r = {
        "headline": ["per_call_cmds_per_s", "p99_ns", "absent"],
        "per_call_cmds_per_s": 3_500_000,
        "target_per_call_cmds_per_s": 3_000_000,
        "p99_ns": 1_200,
        "target_p99_ns": 1_000,
        "state_hash": "00112233445566778899aabbccddeeff",
    }
    assert headline(r) == ["per_call_cmds_per_s", "p99_ns"]
    assert headline({"a_per_s": 1, "b_ns": 2, "target_b_ns": 3, "pass_b": True, "c": 4}) == [
        "a_per_s",
        "b_ns",
    ]
    t = table({"engine": r, "core": None}, {"core": "exit 1\nTraceback"})
    lines = t.splitlines()
    assert lines[0].split() == ["module", "metric", "value", "target"]
    assert any("3,500,000" in ln and ">= 3,000,000" in ln and "PASS" in ln for ln in lines)
    assert any("p99_ns" in ln and "<= 1,000" in ln and "MISS" in ln for ln in lines)
    assert any(ln.startswith("core") and "FAILED" in ln and "exit 1" in ln for ln in lines)
    assert any("0011223344556677" in ln for ln in lines)


def test_a_timed_out_module_is_killed_with_its_children() -> None:
    r, err, info = run_module("por", [], timeout_s=0)
    assert r is None and err == "timed out after 0 s"
    assert info["exit_code"] == -signal.SIGKILL
    # kill_group takes the processes a module started along (they share its group).
    p = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\n"
         "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
         "print(c.pid, flush=True)\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert p.stdout is not None
    child = int(p.stdout.readline())
    kill_group(p)
    for _ in range(100):  # the child is reaped by init shortly after it dies
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"child {child} survived kill_group")
