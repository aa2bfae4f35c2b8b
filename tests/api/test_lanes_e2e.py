"""Issue #22, order-id lanes end to end: one user trades through the Binance API (ids
2**39 and up) and the gateway (clock ids below 2**39) against one real core.  Before
lanes the core kept one forgotten floor per user: after 32 API orders it was above every
gateway id and the user's gateway orders were refused ORDER_ID_TOO_OLD."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from binance import Client

from bindings.gateway_client import GatewayClient
from gateway import keys
from gateway.wire.codes import reason_name
from pyx.core import ORDER_ID_LANE_SHIFT
from pyx.enums import Side
from tests.api.apiproc import SYMBOL, ApiProcess
from tests.api.fixtures import api, core, key1  # noqa: F401  (fixtures)
from tests.api.test_binance_client import client_class
from tests.e2e.coreproc import CoreProcess
from tests.gateway.gwproc import GatewayProcess, make_key

pytestmark = pytest.mark.timeout(300)

N_ORDERS = 40  # more than the 32 NEWs the core remembers per user
PRICE_TICKS = 10_000  # 100.00 USDT (tick 0.01); one lot is 0.001 BTC


@pytest.fixture
def gw(core: CoreProcess, tmp_path: Path) -> Iterator[GatewayProcess]:  # noqa: F811
    """A running gateway in front of the API's core."""
    g = GatewayProcess(core, tmp_path / "gw.db", tmp_path / "logs", "--heartbeat-ms", "500")
    g.start(port=0)
    yield g
    g.cleanup()


@pytest.fixture
def gw1(gw: GatewayProcess, tmp_path: Path) -> Iterator[GatewayClient]:
    """A logged-in gateway session of user 1."""
    c = GatewayClient("127.0.0.1", gw.port, key_file=str(make_key(gw.db, tmp_path / "k1", 1)))
    c.login()
    yield c
    c.close()


def _rest(api: ApiProcess, key: keys.ApiKey) -> Any:  # noqa: F811
    return client_class(Client, api)(key.api_key, api.secrets[key.api_key].decode())


def _api_orders(rest: Any, n: int) -> list[int]:
    """``n`` resting API BUYs of 0.001 BTC; their core order ids (all in lane 1)."""
    ids = []
    for i in range(n):
        o = rest.order_limit_buy(symbol="BTCUSDT", quantity="0.001", price=f"{90 + i % 5}.00")
        assert o["status"] == "NEW", o
        ids.append(int(o["orderId"]))
    assert all(oid >> ORDER_ID_LANE_SHIFT == 1 for oid in ids)
    return ids


def _gateway_orders(c: GatewayClient, first_cl: int, n: int) -> None:
    """``n`` resting gateway BUYs, each ACCEPTED by the core (not ORDER_ID_TOO_OLD)."""
    for cl in range(first_cl, first_cl + n):
        c.enter_order(cl, symbol_id=SYMBOL, side=Side.BUY, price_ticks=PRICE_TICKS, qty_lots=1)
        m = c.recv(timeout=30)
        assert m.name == "ACCEPTED", (m.name, reason_name(int(getattr(m, "reason", 0))))


def _open_order_ids(rest: Any, want: int) -> list[int]:
    """The API's open orders of the user once it has followed ``want`` of them."""
    deadline = time.monotonic() + 60
    while True:
        got = [int(o["orderId"]) for o in rest.get_open_orders(symbol="BTCUSDT")]
        if len(got) >= want or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_forty_api_orders_then_gateway_orders(
    api: ApiProcess,  # noqa: F811
    key1: keys.ApiKey,  # noqa: F811
    gw1: GatewayClient,
) -> None:
    rest = _rest(api, key1)
    api_ids = _api_orders(rest, N_ORDERS)
    _gateway_orders(gw1, 1, 3)  # refused ORDER_ID_TOO_OLD before lanes
    # the API sees the gateway's orders too (lane 0 ids, from the core's events)
    ids = _open_order_ids(rest, N_ORDERS + 3)
    assert len(ids) == N_ORDERS + 3 and set(api_ids) < set(ids)
    assert sum(oid >> ORDER_ID_LANE_SHIFT == 0 for oid in ids) == 3
    _api_orders(rest, 1)  # and the API goes on


def test_forty_gateway_orders_then_api_orders_then_gateway(
    api: ApiProcess,  # noqa: F811
    key1: keys.ApiKey,  # noqa: F811
    gw1: GatewayClient,
) -> None:
    rest = _rest(api, key1)
    _gateway_orders(gw1, 1, N_ORDERS)
    _api_orders(rest, N_ORDERS)  # API ids are above every gateway id: always accepted
    _gateway_orders(gw1, 1_000, 2)  # refused ORDER_ID_TOO_OLD before lanes
    assert len(_open_order_ids(rest, 2 * N_ORDERS + 2)) == 2 * N_ORDERS + 2
