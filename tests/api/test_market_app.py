"""The market routes through the real `bursa api` process (part A's app) with market data
on: exchangeInfo from the shared registry, /depth equal to the core's book, ccxt, and
a diff stream that keeps a local book exact."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import ccxt
import pytest

from api.symbols import SymbolSpec
from tests.api.apiproc import ApiProcess
from tests.api.marketstack import Stack, new_flow
from tests.api.test_market_e2e import apply_diffs

TIMEOUT = aiohttp.ClientTimeout(total=60)
CONFIG = """
[api]
assets = {1 = "BTC", 2 = "USDT", 3 = "ETH"}
"""


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    s = Stack()
    flow = new_flow(31)
    for _ in range(10):
        s.send(flow.batch(25))
    yield s
    s.close()


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[ApiProcess]:
    proc = ApiProcess(
        stack.core,
        stack.root / "api",
        stack.root,
        "--marketdata", "true",
        "--marketdata-pub-endpoint", stack.pub,
        "--marketdata-service-endpoint", stack.service,
    )  # fmt: skip
    (stack.root / "api" / "api.toml").write_text(CONFIG)
    proc.start()
    yield proc
    proc.cleanup()


def _get(api: ApiProcess, path: str) -> Any:
    async def go() -> Any:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s, s.get(api.url + path) as r:
            return await r.json(content_type=None)

    return asyncio.run(go())


def _spec(api: ApiProcess, name: str) -> SymbolSpec:
    """The symbol as the app's exchangeInfo describes it (grid from its filters)."""
    info = _get(api, "/api/v3/exchangeInfo")
    sym = next(s for s in info["symbols"] if s["symbol"] == name)
    f = {x["filterType"]: x for x in sym["filters"]}
    assert f["PRICE_FILTER"]["tickSize"] == "10" and f["LOT_SIZE"]["stepSize"] == "0.000001"
    return SymbolSpec(
        1, name, "B", "Q", 1, 2, 8, 6, 100, 10, 1, 1, 1, 10**6, 1, 10**9
    )  # the flow's grid: 10 USDT ticks, lots of 0.000001


def _wait_book(api: ApiProcess, stack: Stack, sid: int, name: str) -> dict[str, Any]:
    want = stack.core_book(sid)
    spec = _spec(api, name)
    deadline = time.monotonic() + 60
    while True:
        d = _get(api, f"/api/v3/depth?symbol={name}&limit=5000")
        got = {
            side: [(spec.price_to_ticks(p), spec.qty_to_lots(q)) for p, q in d[side]]
            for side in ("bids", "asks")
        }
        if got == want:
            return dict(d)
        assert time.monotonic() < deadline, (got, want)
        time.sleep(0.1)


def test_app_exchange_info_and_depth(stack: Stack, api: ApiProcess) -> None:
    info = _get(api, "/api/v3/exchangeInfo")
    assert {s["symbol"] for s in info["symbols"]} == {"BTCUSDT", "ETHUSDT"}
    for sid, name in ((1, "BTCUSDT"), (2, "ETHUSDT")):
        d = _wait_book(api, stack, sid, name)
        assert d["lastUpdateId"] > 0
    assert _get(api, "/api/v3/depth?symbol=NOPE")["code"] == -1121


def test_app_ccxt(stack: Stack, api: ApiProcess) -> None:
    ex = ccxt.binance({"options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False}})
    for k in ("public", "private"):
        ex.urls["api"][k] = api.url + "/api/v3"
    ex.load_markets()
    d = _wait_book(api, stack, 1, "BTCUSDT")
    ob = ex.fetch_order_book("BTC/USDT", limit=5000)
    assert ob["bids"] == [[float(p), float(q)] for p, q in d["bids"]]
    assert ob["asks"] == [[float(p), float(q)] for p, q in d["asks"]]
    assert ex.fetch_ticker("BTC/USDT")["symbol"] == "BTC/USDT"
    assert ex.fetch_ohlcv("BTC/USDT", "1m")


def test_app_depth_stream_exact(stack: Stack, api: ApiProcess) -> None:
    async def go() -> None:
        evs: list[dict[str, Any]] = []
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            ws = await s.ws_connect(api.url.replace("http", "ws") + "/ws")
            await ws.send_str(
                json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@depth@100ms"], "id": 1})
            )
            assert json.loads((await ws.receive()).data) == {"result": None, "id": 1}

            async def reader() -> None:
                async for m in ws:
                    evs.append(json.loads(m.data))

            task = asyncio.create_task(reader())
            async with s.get(api.url + "/api/v3/depth?symbol=ETHUSDT&limit=5000") as r:
                snap = await r.json()
            flow = new_flow(32)
            for _ in range(60):
                await asyncio.to_thread(stack.send, flow.batch(25))
                await asyncio.sleep(0.01)
            final = await asyncio.to_thread(_wait_book, api, stack, 2, "ETHUSDT")
            deadline = time.monotonic() + 30
            while not evs or evs[-1]["u"] < final["lastUpdateId"]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            task.cancel()
            await ws.close()
        book, last = apply_diffs(snap, evs)
        assert last == final["lastUpdateId"]
        assert sorted(book["b"].items(), key=lambda x: -float(x[0])) == [
            tuple(x) for x in final["bids"]
        ]
        assert sorted(book["a"].items(), key=lambda x: float(x[0])) == [
            tuple(x) for x in final["asks"]
        ]

    asyncio.run(go())
