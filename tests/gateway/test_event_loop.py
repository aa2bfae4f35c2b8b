"""Config ``event_loop``: the gateway runs on uvloop (default) or the standard asyncio
loop, each serving a session end to end; any other value is refused at start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyx.enums import Side
from tests.e2e.coreproc import REPO, CoreProcess
from tests.gateway.gwproc import GatewayProcess, make_key
from tests.gateway.test_kill9 import login


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_each_event_loop_serves_orders(core: CoreProcess, tmp_path: Path, loop: str) -> None:
    gw = GatewayProcess(core, tmp_path / "gw.db", tmp_path / "logs", "--event-loop", loop)
    try:
        gw.start(port=0)
        assert gw.ready["config"]["event_loop"] == loop
        a = login(gw, make_key(gw.db, tmp_path / "k1.key", 1))
        a.enter_order(1, symbol_id=1, side=Side.SELL, price_ticks=1000, qty_lots=1)
        m = a.recv(timeout=10)
        assert (m.name, m.cl_ord_id) == ("ACCEPTED", 1)
    finally:
        gw.cleanup()


def test_unknown_event_loop_is_refused(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bursa", "gateway", "--event-loop", "trio",
         "--db-path", str(tmp_path / "gw.db")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and "event_loop" in r.stderr
