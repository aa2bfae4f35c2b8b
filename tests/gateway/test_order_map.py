"""The bounded order map end to end: a real gateway holding at most 8 orders in
memory serves ended orders from SQLite (status, duplicate ids, modify of an ended
order), before and after a restart, and keeps every open one."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bindings.gateway_client import GatewayClient
from bursa_wire.gw_layout import STATE_CANCELED, STATE_FILLED, STATE_OPEN
from gateway.wire.codes import GwReason
from pyx.enums import Side
from tests.e2e.coreproc import CoreProcess
from tests.gateway.gwproc import GatewayProcess, make_key
from tests.gateway.test_kill9 import login

BOUND = 8


@pytest.fixture
def small_gw(core: CoreProcess, tmp_path: Path) -> Iterator[GatewayProcess]:
    g = GatewayProcess(
        core, tmp_path / "gw.db", tmp_path / "logs", "--max-orders-in-memory", str(BOUND),
        "--metrics", "127.0.0.1:0",
    )  # fmt: skip
    g.start(port=0)
    yield g
    g.cleanup()


def metric(gw: GatewayProcess, name: str) -> float:
    with urllib.request.urlopen(gw.ready["metrics"], timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def evicted(gw: GatewayProcess) -> float:
    return metric(gw, "bursa_gateway_orders_evicted_total")


def next_named(c: GatewayClient, name: str) -> object:
    while True:
        m = c.recv(timeout=10)
        if m.name == name:
            return m


def status(c: GatewayClient, cl: int) -> tuple[int, int, int]:
    c.order_status(cl)
    m = next_named(c, "ORDER_STATUS_REPLY")
    return m.state, m.filled_lots, m.reason  # type: ignore[attr-defined]


def test_ended_orders_are_served_from_sqlite(
    small_gw: GatewayProcess, core: CoreProcess, tmp_path: Path
) -> None:
    gw = small_gw
    a = login(gw, make_key(gw.db, tmp_path / "k1.key", 1))
    b = login(gw, make_key(gw.db, tmp_path / "k2.key", 2))
    for cl in range(1, 21):  # 20 pairs that fill each other: 40 ended orders
        a.enter_order(cl, symbol_id=1, side=Side.SELL, price_ticks=1000, qty_lots=1)
        assert next_named(a, "ACCEPTED").cl_ord_id == cl  # type: ignore[attr-defined]
        b.enter_order(cl, symbol_id=1, side=Side.BUY, price_ticks=1000, qty_lots=1)
        next_named(b, "EXECUTED")
        next_named(a, "EXECUTED")
    a.enter_order(100, symbol_id=1, side=Side.SELL, price_ticks=2000, qty_lots=1)  # stays open
    next_named(a, "ACCEPTED")
    a.enter_order(101, symbol_id=1, side=Side.SELL, price_ticks=2001, qty_lots=1)
    next_named(a, "ACCEPTED")
    a.cancel(101)
    next_named(a, "CANCELED")
    # Evicted after the commit that stores their final state: the ticker's, which fills
    # SQLite from the turn file within 50 ms (docs/gateway.md, "Replay design").
    deadline = time.monotonic() + 10.0
    while evicted(gw) < 40 - BOUND and time.monotonic() < deadline:
        time.sleep(0.05)
    assert evicted(gw) >= 40 - BOUND
    # Each LIMIT order's ACCEPTED came from its reply or its event: both sources counted.
    assert 0 <= metric(gw, "bursa_gateway_acks_from_reply_total") <= 42
    assert status(a, 1) == (STATE_FILLED, 1, 0)  # evicted long ago: from SQLite
    assert status(a, 100)[0] == STATE_OPEN
    assert status(a, 50)[2] == GwReason.UNKNOWN_CL_ORD_ID
    a.enter_order(1, symbol_id=1, side=Side.SELL, price_ticks=1000, qty_lots=1)  # reused id
    m = next_named(a, "REJECTED")
    assert (m.cl_ord_id, m.reason) == (1, GwReason.DUPLICATE_CL_ORD_ID)  # type: ignore[attr-defined]
    a.cancel(2)
    m = next_named(a, "CANCEL_REJECTED")
    assert (m.cl_ord_id, m.reason) == (2, GwReason.ORDER_NOT_OPEN)  # type: ignore[attr-defined]
    a.close()
    b.close()
    gw.stop()
    gw.start()  # a restart loads only the open orders
    a = login(gw, tmp_path / "k1.key", next_seq=0)
    assert status(a, 3) == (STATE_FILLED, 1, 0)
    assert status(a, 101)[0] == STATE_CANCELED
    a.cancel(100)  # the open one is still known and live
    assert next_named(a, "CANCELED").cl_ord_id == 100  # type: ignore[attr-defined]
    a.enter_order(20, symbol_id=1, side=Side.SELL, price_ticks=1000, qty_lots=1)
    assert next_named(a, "REJECTED").reason == GwReason.DUPLICATE_CL_ORD_ID  # type: ignore[attr-defined]
