"""bench.api_ws runs end to end on a small scale and reports what it measured."""

from __future__ import annotations

from bench.api_ws import N_SYMBOLS, fanout_python_cost, measure


def test_ws_depth_bench_small() -> None:
    """20 clients x 10 depth streams for 1 s: every client receives, none is dropped."""
    r = measure(True, clients=20, seconds=1.0)
    assert r["ws_depth_clients"] == 20
    assert r["ws_depth_expected_msgs_per_s"] == 20 * N_SYMBOLS * 10
    assert r["ws_depth_msgs_per_s"] > 0 and r["ws_depth_min_client_msgs_per_s"] > 0
    assert r["ws_depth_slow_dropped"] == 0
    assert r["ws_depth_lag_samples"] > 0
    c = r["ws_depth_conditions"]
    assert c["symbols"] == N_SYMBOLS
    # The server's CPU split is measured (the fan-out's writes are part of the whole).
    assert 0 < c["server_fanout_us_per_msg"] <= c["server_cpu_us_per_msg"]
    assert c["server_other_cpu_ms_per_s"] >= 0 and c["fanout_python_us_per_msg"] > 0


def test_fanout_python_cost_writes_every_message() -> None:
    """The null-transport fan-out writes clients x streams x turns messages."""
    r = fanout_python_cost(clients=30, turns=4)
    assert r["msgs"] == 30 * N_SYMBOLS * 4 and r["us_per_msg"] > 0
