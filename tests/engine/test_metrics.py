"""The core's Prometheus endpoint: counters from the loop, read at scrape time."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bursa_wire.layout import REPLY_DTYPE
from engine.metrics import ACK_BOUNDS_S, Buckets, CoreMetrics
from engine.metrics_http import Collector
from engine.wire import commands
from engine.wire.frames import STATUS_REJECTED
from tests.e2e.coreproc import CoreProcess


def samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(name, labels) -> value of one scrape."""
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def value(
    got: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return got.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.parametrize(
    "values",
    [
        [0.0],
        [0.00005, 0.0001, 0.00011],
        [1e-9, 0.3, 0.3, 2.0, 99.0],
        [0.001 * i for i in range(50)],
    ],
)
def test_buckets_export_what_a_prometheus_histogram_exports(values: list[float]) -> None:
    """The loop's bucket counters give the same exposition as prometheus_client's Histogram."""
    ref_reg = CollectorRegistry()
    ref = Histogram("h_seconds", "doc", buckets=ACK_BOUNDS_S, registry=ref_reg)
    ours = Buckets(ACK_BOUNDS_S)
    for v in values:
        ref.observe(v)
        ours.observe(v)
    reg = CollectorRegistry()
    reg.register(Collector(lambda: [ours.family("h_seconds", "doc")]))
    assert _table(reg) == pytest.approx(_table(ref_reg))
    assert b"# TYPE h_seconds histogram" in generate_latest(reg)


def _table(r: CollectorRegistry) -> dict[tuple[str, str], float]:
    """(sample name, le) -> value, without the library's ``_created`` timestamp."""
    return {
        (s.name, s.labels.get("le", "")): s.value
        for fam in r.collect()
        for s in fam.samples
        if not s.name.endswith("_created")
    }


def test_core_serves_commands_rejects_latency_and_fdatasync(tmp_path: Path) -> None:
    core = CoreProcess(tmp_path / "data", tmp_path, "fsync", "--metrics", "127.0.0.1:0")
    try:
        ready = core.start()
        url = ready["metrics"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        with core.client() as c:
            c.request(commands.add_asset(1, 8))
            c.request(commands.add_asset(1, 8))  # already exists: rejected
            c.request(commands.add_fee_tier(0, 0, 0))
            c.request(commands.add_user(7, 0))
            c.request(commands.deposit(1, 7, 1, 500))
            c.request(commands.deposit(2, 7, 99, 500))  # unknown asset: rejected
        # The core counts a turn after sending its replies: wait for the last one.
        deadline = time.monotonic() + 30
        while value(got := samples(url), "bursa_core_ack_latency_seconds_count") < 6:
            assert time.monotonic() < deadline, got
            time.sleep(0.05)
        assert value(got, "bursa_core_commands_total", kind="ADD_ASSET") == 2
        assert value(got, "bursa_core_commands_total", kind="DEPOSIT") == 2
        rejects = {
            (dict(lab)["kind"], dict(lab)["reason"]): v
            for (n, lab), v in got.items()
            if n == "bursa_core_rejects_total"
        }
        assert set(rejects) == {("ADD_ASSET", "ASSET_EXISTS"), ("DEPOSIT", "UNKNOWN_ASSET")}, (
            rejects
        )
        assert set(rejects.values()) == {1}
        assert value(got, "bursa_core_ack_latency_seconds_count") == 6
        assert value(got, "bursa_core_ack_latency_seconds_bucket", le="+Inf") == 6
        # fsync mode: every batch's journal append was fdatasync'd and timed
        assert value(got, "bursa_core_fdatasync_seconds_count", file="journal") >= 6
        assert value(got, "bursa_core_fdatasync_seconds_sum", file="journal") > 0
        assert value(got, "bursa_core_batch_commands_count") == 6
        assert value(got, "bursa_core_last_seq") == ready["last_seq"] + 6
        assert value(got, "bursa_core_pub_frames_total") >= 1
        assert value(got, "bursa_core_capacity_growths_total") == ready["capacity_growths"] == 0
        with core.client() as c:
            assert c.control("snapshot")["ok"]
        got = samples(url)
        assert value(got, "bursa_core_snapshot_seconds_count", how="inline") == 1
        assert core.stop() == 0
    finally:
        core.cleanup()


def test_core_logs_json_with_seq_and_metrics_off(tmp_path: Path) -> None:
    core = CoreProcess(
        tmp_path / "data", tmp_path, "fsync", "--metrics", "off", "--log-format", "json"
    )
    try:
        ready = core.start()
        assert ready["metrics"] is None
        assert core.stop() == 0
    finally:
        core.cleanup()
    lines = core.err_path.read_text().splitlines()
    assert lines, "no log lines"
    recs = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"ts", "level", "process", "msg"} <= set(r) for r in recs), recs
    assert all(r["process"] == "core" for r in recs)
    ready_rec = next(r for r in recs if r["msg"].startswith("core ready"))
    assert ready_rec["seq"] == ready["last_seq"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.sampled_from([1, 2, 3]), st.integers(0, 65535)),
        min_size=1,
        max_size=600,
    )
)
def test_turn_counts_commands_and_rejects_by_kind_and_reason(
    recs: list[tuple[int, int, int]],
) -> None:
    """Small turns (a Python loop) and large ones (numpy) count the same as a Counter."""
    rep = np.zeros(len(recs), dtype=REPLY_DTYPE)
    rep["kind"], rep["status"], rep["reason"] = zip(*recs, strict=True)
    m = CoreMetrics()
    m.turn_done(time.perf_counter_ns(), len(recs), 1, rep.tobytes(), False)
    m.turn_done(time.perf_counter_ns(), len(recs), 1, rep.tobytes(), True)
    kinds = Counter(k for k, _, _ in recs)
    assert {k: n for k, n in enumerate(m.commands_by_kind) if n} == {
        k: 2 * n for k, n in kinds.items()
    }
    rejects = Counter((k, r) for k, s, r in recs if s == STATUS_REJECTED)
    assert m.rejects_by == {key: 2 * n for key, n in rejects.items()}
    assert m.ack.count == 2 * len(recs) and m.batch.count == 2 and m.full_turns == 1
