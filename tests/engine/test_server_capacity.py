"""A real ``bursa core`` sized from its config (``capacity_*`` keys): a workload within
the configured sizes never grows a table (``capacity_growths`` 0 in the ready line and
the status, also after a kill -9 and recovery); below them the fallback grows, counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.wire import commands as cmd
from engine.wire.commands import ReplyStatus
from pyx.enums import Side
from tests.e2e.coreproc import CoreProcess

USERS = 200
ORDERS_PER_USER = 20  # 4,000 resting orders over 4 books: above the tables' defaults
SYMBOLS = (1, 2, 3, 4)
FRAME = 500

ENOUGH = {
    "capacity_users": 1_000,
    "capacity_assets": 8,
    "capacity_symbols": 8,
    "capacity_orders": 8_000,
    "capacity_book_orders": 2_000,
    "capacity_events": 65_536,
}
TOO_SMALL = {**ENOUGH, "capacity_orders": 1, "capacity_book_orders": 1}


def _workload() -> list[np.ndarray]:
    quote = len(SYMBOLS) + 1
    setup = cmd.CmdBatch()
    for asset in range(1, quote + 1):
        setup.add(cmd.add_asset(asset, 6))
    setup.add(cmd.add_fee_tier(0, 1_000, 2_000))
    for sid in SYMBOLS:
        setup.add(cmd.add_symbol(sid, sid, quote, max_price_ticks=1_000_000))
    for uid in range(1, USERS + 1):
        setup.add(cmd.add_user(uid))
        for asset in range(1, quote + 1):
            setup.add(cmd.deposit(10 * uid + asset, uid, asset, 10**12))
    orders = cmd.CmdBatch()
    for uid in range(1, USERS + 1):
        for k in range(ORDERS_PER_USER):
            buy = k % 2 == 0
            px = 100_000 - uid - k * USERS if buy else 100_000 + uid + k * USERS
            side = Side.BUY if buy else Side.SELL
            orders.add(cmd.new_limit(k + 1, uid, SYMBOLS[k % len(SYMBOLS)], side, px, 1))
    arr = orders.to_array()
    return [setup.to_array()] + [arr[i : i + FRAME] for i in range(0, len(arr), FRAME)]


def _config(tmp_path: Path, values: dict[str, int]) -> str:
    path = tmp_path / "core.toml"
    path.write_text("".join(f"{k} = {v}\n" for k, v in values.items()))
    return str(path)


def _run(tmp_path: Path, values: dict[str, int]) -> tuple[CoreProcess, int]:
    core = CoreProcess(tmp_path / "data", tmp_path, "fsync", "--config", _config(tmp_path, values))
    ready = core.start()
    assert ready["capacity_growths"] == 0  # nothing grows while starting empty
    assert ready["config"]["capacity_orders"] == values["capacity_orders"]
    client = core.client()
    try:
        for frame in _workload():
            rep = client.request(frame)
            assert (rep["status"] == ReplyStatus.APPLIED).all()
        growths = int(client.control("status")["capacity_growths"])
    finally:
        client.close()
    return core, growths


def test_core_within_configured_capacity_never_grows(tmp_path: Path) -> None:
    core, growths = _run(tmp_path, ENOUGH)
    try:
        assert growths == 0
        core.kill9()
        ready = core.start()  # recovery replays the journal into the sized tables
        assert ready["capacity_growths"] == 0
    finally:
        core.stop()


def test_core_below_configured_capacity_grows_and_counts(tmp_path: Path) -> None:
    core, growths = _run(tmp_path, TOO_SMALL)
    try:
        assert growths > 0
    finally:
        core.stop()
