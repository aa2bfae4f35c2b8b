"""Smoke test of the market-data benchmark (bench/marketdata.py) on a tiny stream.

No timing is asserted: it runs end to end through a real core, a real
marketdata process and a subscriber process, and its last line carries the keys
issue 18 names.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import marketdata

ROOT = Path(__file__).resolve().parents[2]


def test_stream_is_seeded_and_has_events() -> None:
    a = marketdata.order_stream(500, 10, 3)
    assert (a == marketdata.order_stream(500, 10, 3)).all()
    assert marketdata.events_per_command(marketdata.setup_commands(10), a) >= 1.0


def test_quick_run_prints_the_keys() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.marketdata", "--json", "--quick", "--subs", "1",
         "--burst-commands", "500"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, check=True,
    )  # fmt: skip
    r = json.loads(out.stdout.strip().splitlines()[-1])
    for k in ("fanout_msgs_per_s", "p50_us_at_100k", "p99_us_at_100k", "subscribers",
              "planned_p99_us_at_100k"):  # fmt: skip
        assert k in r
    assert r["subscribers"] == [1]
    assert all(run["msgs_received"] > 0 for run in r["runs"])
