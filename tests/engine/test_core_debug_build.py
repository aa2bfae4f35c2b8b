"""A long seeded stream of random good and bad commands through the DEBUG build of the
core (bounds, wraparound and overflow checks, C asserts on): nothing trips, and
conservation, hold accounting and the event-ledger rebuild hold at the end.

``make test`` builds build/debug/ first (``make debug``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "build" / "debug"

SCRIPT = """
import random
import pyx.core
assert "build/debug" in pyx.core.__file__, pyx.core.__file__
from engine.core import Core
from tests.engine.test_core_properties import Flow, _exchange
trades = 0
for seed in range(12):
    ex = _exchange()
    flow = Flow(random.Random(1000 + seed), ex)
    for _ in range(400):
        ev, rep = ex.run(flow())
        trades += int((ev["kind"] == 3).sum())
    ex.check()
    twin = Core.from_snapshot(ex.core.to_snapshot())
    assert twin.state_hash() == ex.core.state_hash()
print("trades", trades)
"""


def test_random_stream_through_the_debug_build(tmp_path: Path) -> None:
    assert (DEBUG / "pyx").is_dir(), "build/debug is missing: run `make debug` first"
    env = dict(os.environ, PYTHONPATH=f"{DEBUG}{os.pathsep}{ROOT}")
    # cwd outside the repo: sys.path[0] must not shadow build/debug with ./pyx
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    assert int(out.stdout.split()[-1]) > 100  # the stream really trades
