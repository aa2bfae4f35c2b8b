"""Order state: idempotent clientOrderIds, the id split with the gateway, orders from
other doors, kill -9 and restart, rebuild from the core, SIGTERM."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest

from bindings.client import CoreClient
from gateway import keys
from gateway.store import clock_order_id
from pyx.enums import Side
from tests.api.apiproc import SYMBOL, ApiProcess
from tests.api.fixtures import api, core, key1, key2  # noqa: F401  (fixtures)
from tests.api.signing import Signer
from tests.e2e.coreproc import CoreProcess

pytestmark = pytest.mark.timeout(300)


def _signer(api: ApiProcess, key: keys.ApiKey) -> Signer:  # noqa: F811
    return Signer(api.url, key, api.secrets[key.api_key])


def _order(price: str, qty: str, side: str = "BUY", **kw: Any) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "side": side, "type": "LIMIT", "timeInForce": "GTC",
            "price": price, "quantity": qty, **kw}  # fmt: skip


def test_same_client_order_id_one_effect(api: ApiProcess, key1: keys.ApiKey) -> None:  # noqa: F811
    """Eight concurrent sends of one order: one order, eight identical answers; the
    same id with other fields is -2010; a new id is a new order."""
    s = _signer(api, key1)
    body = _order("50.00", "0.100", newClientOrderId="retry-1")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: Signer.request(
            Signer(api.url, key1, api.secrets[key1.api_key]), "POST", "/api/v3/order", body
        ).json(), range(8)))  # fmt: skip
    ids = {a["orderId"] for a in answers}
    assert len(ids) == 1 and answers[0]["status"] == "NEW", answers
    assert all(a["clientOrderId"] == "retry-1" for a in answers)
    orders = s.request("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"}).json()
    assert [o["orderId"] for o in orders] == list(ids)
    r = s.request("POST", "/api/v3/order", _order("51.00", "0.100", newClientOrderId="retry-1"))
    assert (r.status_code, r.json()) == (400, {"code": -2010, "msg": "Duplicate order sent."})
    r = s.request("POST", "/api/v3/order", _order("50.00", "0.100", newClientOrderId="x" * 37))
    assert r.json()["code"] == -1100  # longer than 36 characters
    acct = s.request("GET", "/api/v3/account").json()
    usdt = next(b for b in acct["balances"] if b["asset"] == "USDT")
    assert usdt["locked"] == "5.010000"  # one order's hold (5 USDT + 0.2 % fee), not two


def test_orders_of_other_doors_and_id_split(
    api: ApiProcess,  # noqa: F811
    core: CoreProcess,  # noqa: F811
    key1: keys.ApiKey,  # noqa: F811
) -> None:
    """An order entered on the trade socket with a gateway-style id (ms since 2025) is
    the user's order here too; the API's own ids have bit 39 set, above any of those."""
    s = _signer(api, key1)
    gw_id = clock_order_id()
    with CoreClient(str(core.ready["trade"])) as trade:
        rep = trade.new_limit(gw_id, 1, SYMBOL, Side.SELL, 20_000, 5)
        assert int(rep["status"]) == 1
    mine = s.request("POST", "/api/v3/order", _order("150.00", "0.001", side="SELL")).json()
    assert mine["orderId"] >= 2**39 > gw_id
    for _ in range(100):
        opened = s.request("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}).json()
        if len(opened) == 2:
            break
    by_id = {o["orderId"]: o for o in opened}
    assert by_id[gw_id]["clientOrderId"] == f"core.{gw_id}"
    assert (by_id[gw_id]["price"], by_id[gw_id]["origQty"]) == ("200.00", "0.005")
    # It can be canceled here, by its id.
    r = s.request("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": gw_id})
    assert r.json()["status"] == "CANCELED"


def test_kill9_restart_and_rebuild(
    api: ApiProcess,  # noqa: F811
    core: CoreProcess,  # noqa: F811
    key1: keys.ApiKey,  # noqa: F811
    key2: keys.ApiKey,  # noqa: F811
) -> None:
    """State survives kill -9 (events applied once); a deleted database is rebuilt
    from the core's event log to the same answers; SIGTERM exits 0."""
    mm, tk = _signer(api, key1), _signer(api, key2)
    for i in range(5):
        assert mm.request("POST", "/api/v3/order", _order(f"{60 + i}.00", "0.010", "SELL",
                          newClientOrderId=f"m{i}")).status_code == 200  # fmt: skip
    assert tk.request("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY",
                      "type": "MARKET", "quantity": "0.025"}).status_code == 200  # fmt: skip

    def view() -> tuple[Any, ...]:
        q = {"symbol": "BTCUSDT"}
        return (
            mm.request("GET", "/api/v3/allOrders", q).json(),
            mm.request("GET", "/api/v3/myTrades", q).json(),
            tk.request("GET", "/api/v3/myTrades", q).json(),
            mm.request("GET", "/api/v3/openOrders", q).json(),
        )

    before = view()
    assert [o["status"] for o in before[0]] == ["FILLED", "FILLED", "PARTIALLY_FILLED", "NEW",
                                                "NEW"]  # fmt: skip
    assert len(before[1]) == 3 and len(before[2]) == 3
    api.kill9()
    # While the API is down the core keeps trading: events it must apply after restart.
    with CoreClient(str(core.ready["trade"])) as trade:
        trade.new_market(clock_order_id(), 2, SYMBOL, Side.BUY, 5)
    api.start()
    after = view()
    assert len(after[1]) == 4 and after[1][:3] == before[1]  # one new fill, none twice
    assert after[0][2]["status"] == "FILLED" and after[0][2]["executedQty"] == "0.010"
    assert after[0][2]["clientOrderId"] == "m2"
    assert api.stop() == 0
    (api.data / "api.db").unlink()
    for p in api.data.glob("api.db-*"):
        p.unlink()
    api.start()
    rebuilt = view()

    def without_client_ids(orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in o.items() if k != "clientOrderId"} for o in orders]

    # Everything but the clientOrderIds (the core never sees them) comes back.
    assert without_client_ids(rebuilt[0]) == without_client_ids(after[0])
    assert [o["clientOrderId"] for o in rebuilt[0]] == [f"core.{o['orderId']}" for o in after[0]]
    assert rebuilt[1:3] == after[1:3]
    assert without_client_ids(rebuilt[3]) == without_client_ids(after[3])


def test_state_of_another_exchange_refused(
    api: ApiProcess,  # noqa: F811
    key1: keys.ApiKey,  # noqa: F811
    tmp_path: Any,
) -> None:
    """An API database ahead of the core's log (the core was reset) is refused with a
    clear message instead of following a stream it cannot match."""
    s = _signer(api, key1)
    for i in range(3):
        assert s.request("POST", "/api/v3/order", _order(f"{10 + i}.00", "0.010")).ok
    assert api.stop() == 0
    from tests.api.apiproc import setup_market

    fresh = CoreProcess(tmp_path / "core2", tmp_path / "logs", "async")
    fresh.start()
    try:
        setup_market(fresh)
        api.core = fresh
        with pytest.raises(RuntimeError, match="exited with status 1 before ready"):
            api.start()
        assert "past the end of the core's event log" in api.stderr()
    finally:
        fresh.cleanup()
