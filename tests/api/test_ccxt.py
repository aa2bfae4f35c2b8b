"""ccxt (sync and async) against a real `bursa api` and a real core, URLs overridden only.

``binance_urls`` points every URL of ccxt's binance class at the test server; no
other option of ccxt is changed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pytest
import requests

from gateway import keys
from tests.api.apiproc import ApiProcess
from tests.api.fixtures import api, core, key1, key2  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(300)


def binance_urls(base: str, urls: dict[str, Any]) -> dict[str, Any]:
    """ccxt's ``urls['api']`` with every host replaced by ``base`` (paths kept)."""
    out = {}
    for name, url in urls.items():
        path = url.split("://", 1)[1]
        out[name] = base + path[path.index("/") :]
    return out


def sync_exchange(api: ApiProcess, key: keys.ApiKey) -> ccxt.binance:  # noqa: F811
    """A ccxt binance client of ``key`` pointed at the test server."""
    ex = ccxt.binance({"apiKey": key.api_key, "secret": api.secrets[key.api_key].decode()})
    ex.urls["api"] = binance_urls(api.url, ex.urls["api"])
    return ex


def test_ccxt_sync_flow(api: ApiProcess, key1: keys.ApiKey, key2: keys.ApiKey) -> None:  # noqa: F811
    """load_markets, limit / post-only / market orders, fetch, cancel, balance."""
    mm, taker = sync_exchange(api, key1), sync_exchange(api, key2)
    markets = mm.load_markets()
    assert "BTC/USDT" in markets
    m = markets["BTC/USDT"]
    assert m["precision"]["price"] == 0.01 and m["precision"]["amount"] == 0.001
    bal0 = taker.fetch_balance()
    assert bal0["USDT"]["free"] == 1_000_000.0 and bal0["BTC"]["free"] == 10.0

    bid = mm.create_order("BTC/USDT", "limit", "buy", 0.5, 100.0)
    assert bid["status"] == "open" and bid["id"]
    ask = mm.create_order("BTC/USDT", "limit", "sell", 0.2, 101.0, {"postOnly": True})
    assert ask["status"] == "open"
    opened = {o["id"] for o in mm.fetch_open_orders("BTC/USDT")}
    assert opened == {bid["id"], ask["id"]}

    # A post-only that would take is refused with ccxt's OrderImmediatelyFillable.
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        taker.create_order("BTC/USDT", "limit", "sell", 0.1, 100.0, {"postOnly": True})

    sold = taker.create_order("BTC/USDT", "market", "sell", 0.3)
    assert sold["status"] == "closed" and sold["filled"] == 0.3
    assert sold["average"] == 100.0 and sold["fee"]["currency"] == "USDT"
    # Taker fee 0.2 % of 30 USDT.
    assert sold["fee"]["cost"] == pytest.approx(0.06)

    o = mm.fetch_order(bid["id"], "BTC/USDT")
    assert o["status"] == "open" and o["filled"] == 0.3 and o["remaining"] == 0.2
    canceled = mm.cancel_order(bid["id"], "BTC/USDT")
    assert canceled["status"] == "canceled"
    assert mm.fetch_order(bid["id"], "BTC/USDT")["status"] == "canceled"
    assert {x["id"] for x in mm.fetch_open_orders("BTC/USDT")} == {ask["id"]}

    bal = taker.fetch_balance()
    assert bal["BTC"]["free"] == pytest.approx(10.0 - 0.3)
    assert bal["USDT"]["free"] == pytest.approx(1_000_000 + 30 - 0.06)
    held = mm.fetch_balance()
    assert held["BTC"]["used"] == pytest.approx(0.2)  # the resting ask holds its base
    trades = taker.fetch_my_trades("BTC/USDT")
    assert [t["amount"] for t in trades] == [0.3] and trades[0]["side"] == "sell"


def test_ccxt_error_classes(api: ApiProcess, key1: keys.ApiKey) -> None:  # noqa: F811
    """Bad signature, stale timestamp, unknown order, filter failure, rate limit."""
    ex = sync_exchange(api, key1)
    ex.load_markets()
    bad = sync_exchange(api, key1)
    bad.secret = "x" * 64
    with pytest.raises(ccxt.AuthenticationError):
        bad.fetch_balance()
    stale = sync_exchange(api, key1)
    stale.options["timeDifference"] = -120_000  # its clock says 2 minutes later
    with pytest.raises(ccxt.InvalidNonce):
        stale.fetch_balance()
    with pytest.raises(ccxt.OrderNotFound):
        ex.fetch_order("12345", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order("12345", "BTC/USDT")
    # create_order rounds to the market's precision itself: the raw endpoint sends the
    # off-grid values as they are, and they are refused, never rounded.
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        ex.privatePostOrder({**order, "price": "100.005", "quantity": "0.1"})
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        ex.privatePostOrder({**order, "price": "100", "quantity": "0.0005"})
    assert ex.fetch_open_orders("BTC/USDT") == []
    # Spend the IP's 6,000 weight of this minute (exchangeInfo weighs 20), then the next
    # request is refused.  (ccxt throttles itself, so plain HTTP spends it faster.)
    with requests.Session() as s:
        for _ in range(700):  # 300 suffice, unless a new minute begins meanwhile
            r = s.get(api.url + "/api/v3/exchangeInfo")
            if r.status_code == 429:
                break
            assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) <= 6000
    assert r.status_code == 429 and r.json()["code"] == -1003
    # ccxt raises DDoSProtection (RateLimitExceeded's parent) for an HTTP 429, as it
    # does against Binance itself.
    with pytest.raises(ccxt.DDoSProtection, match="-1003"):
        ex.fetch_balance()


def test_ccxt_async_flow(api: ApiProcess, key1: keys.ApiKey, key2: keys.ApiKey) -> None:  # noqa: F811
    """The async client: markets, limit order, fetch, cancel, balance."""

    async def run() -> None:
        ex = ccxt_async.binance(
            {"apiKey": key1.api_key, "secret": api.secrets[key1.api_key].decode()}
        )
        ex.urls["api"] = binance_urls(api.url, ex.urls["api"])
        try:
            await ex.load_markets()
            o = await ex.create_order("BTC/USDT", "limit", "buy", 0.01, 99.5)
            assert o["status"] == "open"
            got = await ex.fetch_order(o["id"], "BTC/USDT")
            assert got["price"] == 99.5 and got["amount"] == 0.01
            opened = await ex.fetch_open_orders("BTC/USDT")
            assert [x["id"] for x in opened] == [o["id"]]
            c = await ex.cancel_order(o["id"], "BTC/USDT")
            assert c["status"] == "canceled"
            b = await ex.fetch_balance()
            assert b["USDT"]["used"] == 0.0 and b["USDT"]["free"] == 1_000_000.0
        finally:
            await ex.close()

    asyncio.run(run())
    time.sleep(0)
