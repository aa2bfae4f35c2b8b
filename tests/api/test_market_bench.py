"""bench.api_ws runs end to end on a small scale and reports what it measured."""

from __future__ import annotations

from bench.api_ws import N_SYMBOLS, measure


def test_ws_depth_bench_small() -> None:
    """20 clients x 10 depth streams for 1 s: every client receives, none is dropped."""
    r = measure(True, clients=20, seconds=1.0)
    assert r["ws_depth_clients"] == 20
    assert r["ws_depth_expected_msgs_per_s"] == 20 * N_SYMBOLS * 10
    assert r["ws_depth_msgs_per_s"] > 0 and r["ws_depth_min_client_msgs_per_s"] > 0
    assert r["ws_depth_slow_dropped"] == 0
    assert r["ws_depth_lag_samples"] > 0
    assert r["ws_depth_conditions"]["symbols"] == N_SYMBOLS
