"""python-binance (Client, AsyncClient) against a real `bursa api` and core.

Only URLs are overridden: a subclass sets ``API_URL`` and ``WS_API_URL`` (class
attributes the library formats at construction) to the test server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from binance import AsyncClient, Client
from binance.exceptions import BinanceAPIException

from gateway import keys
from tests.api.apiproc import ApiProcess
from tests.api.fixtures import api, core, key1, key2  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(300)


def client_class(base: type[Any], api: ApiProcess) -> Any:  # noqa: F811
    """``base`` (Client or AsyncClient) with its URLs pointed at the test server."""
    ws = api.url.replace("http://", "ws://")
    return type(
        base.__name__, (base,), {"API_URL": api.url + "/api", "WS_API_URL": ws + "/ws-api/v3"}
    )


def test_client_flow(api: ApiProcess, key1: keys.ApiKey, key2: keys.ApiKey) -> None:  # noqa: F811
    """Symbol info, limit and market orders, get/cancel, open orders, balances."""
    mm = client_class(Client, api)(key1.api_key, api.secrets[key1.api_key].decode())
    tk = client_class(Client, api)(key2.api_key, api.secrets[key2.api_key].decode())
    info = mm.get_symbol_info("BTCUSDT")
    assert info is not None and info["baseAsset"] == "BTC" and info["quoteAsset"] == "USDT"
    ask = mm.order_limit_sell(symbol="BTCUSDT", quantity="0.250", price="120.50")
    assert ask["status"] == "NEW" and ask["fills"] == []
    buy = tk.order_market_buy(symbol="BTCUSDT", quantity="0.100")
    assert buy["status"] == "FILLED" and buy["executedQty"] == "0.100"
    assert buy["fills"] == [
        {"price": "120.50", "qty": "0.100", "commission": "0.024100",
         "commissionAsset": "USDT", "tradeId": 1}
    ]  # fmt: skip
    got = mm.get_order(symbol="BTCUSDT", orderId=ask["orderId"])
    assert got["status"] == "PARTIALLY_FILLED" and got["executedQty"] == "0.100"
    assert [o["orderId"] for o in mm.get_open_orders(symbol="BTCUSDT")] == [ask["orderId"]]
    c = mm.cancel_order(symbol="BTCUSDT", orderId=ask["orderId"])
    assert c["status"] == "CANCELED"
    assert mm.get_open_orders(symbol="BTCUSDT") == []
    assert tk.get_asset_balance("BTC") == {"asset": "BTC", "free": "10.10000000",
                                           "locked": "0.00000000"}  # fmt: skip
    usdt = tk.get_asset_balance("USDT")
    assert usdt["free"] == "999987.925900"  # 1e6 - 12.05 - 0.0241 fee
    # quoteOrderQty: spend 10 USDT (fee included) on whole lots at 120.50? None left
    # on the book, so the order expires with nothing filled.
    q = tk.order_market_buy(symbol="BTCUSDT", quoteOrderQty="10")
    assert q["status"] == "EXPIRED" and q["executedQty"] == "0.000"
    with pytest.raises(BinanceAPIException) as e:
        mm.get_order(symbol="BTCUSDT", orderId=1)
    assert e.value.code == -2013
    with pytest.raises(BinanceAPIException) as e:
        mm.order_limit_buy(symbol="BTCUSDT", quantity="0.1", price="100.001")
    assert e.value.code == -1013 and "PRICE_FILTER" in e.value.message
    trades = tk.get_my_trades(symbol="BTCUSDT")
    assert [(t["qty"], t["isBuyer"], t["isMaker"]) for t in trades] == [("0.100", True, False)]


def test_async_client_flow(api: ApiProcess, key1: keys.ApiKey) -> None:  # noqa: F811
    """AsyncClient: an IOC that cannot fill is EXPIRED, a FOK likewise; LIMIT_MAKER."""

    async def run() -> None:
        cls = client_class(AsyncClient, api)
        c = await cls.create(key1.api_key, api.secrets[key1.api_key].decode())
        try:
            ioc = await c.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT",
                                       timeInForce="IOC", quantity="0.01", price="50")  # fmt: skip
            assert ioc["status"] == "EXPIRED" and ioc["executedQty"] == "0.000"
            fok = await c.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT",
                                       timeInForce="FOK", quantity="0.01", price="50")  # fmt: skip
            assert fok["status"] == "EXPIRED"
            # LIMIT_MAKER answers ACK by default (Binance: only LIMIT and MARKET FULL).
            ack = await c.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER",
                                       quantity="0.01", price="49")  # fmt: skip
            assert "status" not in ack and ack["orderId"] > 2**39
            await c.cancel_order(symbol="BTCUSDT", orderId=ack["orderId"])
            mk = await c.create_order(
                symbol="BTCUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.01", price="50",
                newOrderRespType="RESULT",
            )  # fmt: skip
            assert mk["status"] == "NEW"
            with pytest.raises(BinanceAPIException) as e:
                await c.create_order(symbol="BTCUSDT", side="SELL", type="LIMIT_MAKER",
                                     quantity="0.01", price="50")  # fmt: skip
            assert e.value.code == -2010
            assert e.value.message == "Order would immediately match and take."
            opened = await c.get_open_orders(symbol="BTCUSDT")
            assert [o["orderId"] for o in opened] == [mk["orderId"]]
            acct = await c.get_account()
            usdt = next(b for b in acct["balances"] if b["asset"] == "USDT")
            # 0.01 BTC x 50 USDT held by the bid, plus the largest fee it could pay (0.2 %).
            assert usdt["locked"] == "0.501000"
            gone = await c.cancel_order(symbol="BTCUSDT", orderId=mk["orderId"])
            assert gone["status"] == "CANCELED"
        finally:
            await c.close_connection()

    asyncio.run(run())
