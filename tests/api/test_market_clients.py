"""Real Binance client libraries against the market routes, only their URLs overridden.

ccxt (sync and async) and ccxt.pro: ``fetch_order_book``, ``fetch_trades``,
``fetch_ohlcv``, ``fetch_ticker``, ``watch_order_book`` kept equal to the core's book
over a long random flow, ``watch_trades``, ``watch_ticker``.  python-binance:
``get_order_book``, ``get_klines``, ``BinanceSocketManager`` (depth and trade
sockets, ``multiplex_socket``).  The server is MarketState + ``add_routes`` with a
test-local ``exchangeInfo``/``ping``/``time`` (those belong to the app of part A).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxtpro
import pytest
from aiohttp import web
from binance import AsyncClient, BinanceSocketManager, Client

from api.market import MarketState
from tests.api.marketstack import ServerThread, Stack, new_flow


def _public_routes(app: web.Application, state: MarketState) -> None:
    """The public endpoints of the app (part A) that clients call before market data."""

    async def ping(_r: web.Request) -> web.Response:
        return web.json_response({})

    async def server_time(_r: web.Request) -> web.Response:
        return web.json_response({"serverTime": time.time_ns() // 1_000_000})

    async def info(_r: web.Request) -> web.Response:
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": time.time_ns() // 1_000_000,
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [s.exchange_info() for s in state.listed()],
            }
        )

    app.router.add_get("/api/v3/ping", ping)
    app.router.add_get("/api/v3/time", server_time)
    app.router.add_get("/api/v3/exchangeInfo", info)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    s = Stack()
    flow = new_flow(11)
    for _ in range(20):
        s.send(flow.batch(25))
    yield s
    s.close()


@pytest.fixture(scope="module")
def server(stack: Stack) -> Iterator[ServerThread]:
    srv = stack.server(extra=_public_routes)
    stack.settle(srv, 1)
    yield srv
    assert srv.state.internal_errors == 0  # no bug was swallowed by the pump/timers
    srv.close()


def _ccxt_config(srv: ServerThread) -> dict[str, Any]:
    return {
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
        "enableRateLimit": False,
    }


def _point(ex: Any, srv: ServerThread) -> Any:
    """Override only the URLs."""
    for k in ("public", "private", "v1"):
        ex.urls["api"][k] = srv.http + "/api/v3" if k != "v1" else srv.http + "/api/v1"
    if "ws" in ex.urls["api"]:
        for k in ("spot", "margin"):
            ex.urls["api"]["ws"][k] = srv.ws + "/ws"
    return ex


def _float_book(srv: ServerThread, want: dict[str, list[tuple[int, int]]], sym: str) -> Any:
    """The core's book as ccxt represents it: [[float(price), float(qty)], ...]."""
    spec = srv.state.registry.by_name(sym)
    return {
        side: [[float(spec.ticks_to_price(p)), float(spec.lots_to_qty(q))] for p, q in want[side]]
        for side in ("bids", "asks")
    }


async def _rest_trade_ids(srv: ServerThread) -> list[int]:
    return [m["match_id"] for m in srv.state.symbols[1].book.trades]


def test_ccxt_sync(stack: Stack, server: ServerThread) -> None:
    ex = _point(ccxt.binance(_ccxt_config(server)), server)
    markets = ex.load_markets()
    assert {"BTC/USDT", "ETH/USDT"} <= set(markets)
    m = markets["BTC/USDT"]
    assert m["precision"]["price"] == 10.0 and m["limits"]["amount"]["min"] == 0.000001
    want = stack.settle(server, 1)
    ob = ex.fetch_order_book("BTC/USDT", limit=5000)
    exp = _float_book(server, want, "BTCUSDT")
    assert ob["bids"] == exp["bids"] and ob["asks"] == exp["asks"]
    assert ob["nonce"] == server.state.symbols[1].update_id
    trades = ex.fetch_trades("BTC/USDT")
    assert trades and all(t["symbol"] == "BTC/USDT" and t["price"] > 0 for t in trades)
    # ccxt reads /aggTrades: an id per aggregate (its first trade's), every trade once.
    rest = server.call(_rest_trade_ids(server))
    assert {int(t["id"]) for t in trades} <= set(rest) and len(trades) <= len(rest)
    ohlcv = ex.fetch_ohlcv("BTC/USDT", "1m")
    assert ohlcv and all(len(c) == 6 and c[2] >= c[3] for c in ohlcv)
    assert sum(c[5] for c in ohlcv) == pytest.approx(sum(t["amount"] for t in trades))
    tk = ex.fetch_ticker("BTC/USDT")
    assert tk["last"] == trades[-1]["price"] and tk["high"] >= tk["low"] > 0
    with pytest.raises(ccxt.BadSymbol):
        ex.fetch_order_book("NOPE/USDT")


def test_ccxt_async(stack: Stack, server: ServerThread) -> None:
    async def go() -> None:
        ex = _point(ccxt_async.binance(_ccxt_config(server)), server)
        try:
            await ex.load_markets()
            want = await asyncio.to_thread(stack.settle, server, 2)
            ob = await ex.fetch_order_book("ETH/USDT", limit=5000)
            exp = _float_book(server, want, "ETHUSDT")
            assert ob["bids"] == exp["bids"] and ob["asks"] == exp["asks"]
            assert await ex.fetch_trades("ETH/USDT")
            assert await ex.fetch_ohlcv("ETH/USDT", "5m")
            tk = await ex.fetch_ticker("ETH/USDT")
            assert tk["symbol"] == "ETH/USDT" and tk["bid"] is not None
        finally:
            await ex.close()

    asyncio.run(go())


def test_ccxt_pro_watch_order_book_exact_over_long_flow(stack: Stack, server: ServerThread) -> None:
    """watch_order_book follows the diff stream + snapshot; checked against the core's
    book at several points of a long random flow, and watch_trades / watch_ticker."""

    async def go() -> None:
        ex = _point(ccxtpro.binance(_ccxt_config(server)), server)
        try:
            await ex.load_markets()
            flow = new_flow(12)
            trades_seen: list[Any] = []
            tickers: list[Any] = []
            books: list[Any] = []

            async def watch(fn: Any, out: list[Any]) -> None:
                while True:
                    out.append(await fn("BTC/USDT"))

            tasks = [
                asyncio.create_task(watch(ex.watch_order_book, books)),
                asyncio.create_task(watch(ex.watch_trades, trades_seen)),
                asyncio.create_task(watch(ex.watch_ticker, tickers)),
            ]
            for round_ in range(6):
                for _ in range(25):
                    await asyncio.to_thread(stack.send, flow.batch(20))
                    await asyncio.sleep(0.01)
                want = await asyncio.to_thread(stack.settle, server, 1)
                exp = _float_book(server, want, "BTCUSDT")
                final = server.state.symbols[1].update_id
                deadline = time.monotonic() + 30
                # ccxt's local book (what watch_order_book returns), once it has
                # applied the stream up to the server's lastUpdateId.
                while (ex.orderbooks.get("BTC/USDT") or {}).get("nonce") != final:
                    assert time.monotonic() < deadline, "the stream never reached the book"
                    await asyncio.sleep(0.02)
                ob = ex.orderbooks["BTC/USDT"]
                assert [list(x) for x in ob["bids"]] == exp["bids"], round_
                assert [list(x) for x in ob["asks"]] == exp["asks"], round_
            assert books
            deadline = time.monotonic() + 30
            while not (trades_seen and tickers) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            for t in tasks:
                t.cancel()
            flat = [t for batch in trades_seen for t in batch]  # watch_trades returns lists
            assert flat and all(t["symbol"] == "BTC/USDT" and t["price"] > 0 for t in flat)
            assert tickers and tickers[-1]["symbol"] == "BTC/USDT"
        finally:
            await ex.close()

    asyncio.run(go())


def test_python_binance_rest(stack: Stack, server: ServerThread) -> None:
    client = Client(ping=False)
    client.API_URL = server.http + "/api"
    try:
        client.ping()
        want = stack.settle(server, 1)
        spec = server.state.registry.by_name("BTCUSDT")
        book = client.get_order_book(symbol="BTCUSDT", limit=5000)
        assert [(spec.price_to_ticks(p), spec.qty_to_lots(q)) for p, q in book["bids"]] == want[
            "bids"
        ]
        assert [(spec.price_to_ticks(p), spec.qty_to_lots(q)) for p, q in book["asks"]] == want[
            "asks"
        ]
        kl = client.get_klines(symbol="BTCUSDT", interval=Client.KLINE_INTERVAL_1MINUTE)
        assert kl and all(len(k) == 12 for k in kl)
        assert client.get_symbol_ticker(symbol="ETHUSDT")["symbol"] == "ETHUSDT"
        assert client.get_recent_trades(symbol="BTCUSDT")
        assert client.get_aggregate_trades(symbol="BTCUSDT")
    finally:
        client.close_connection()


def test_python_binance_socket_manager(stack: Stack, server: ServerThread) -> None:
    async def go() -> None:
        client = AsyncClient()
        client.API_URL = server.http + "/api"
        bm = BinanceSocketManager(client)
        bm.STREAM_URL = server.ws + "/"
        try:
            depth = bm.depth_socket("BTCUSDT", interval=100)
            multi = bm.multiplex_socket(["btcusdt@trade", "ethusdt@depth5@100ms"])
            async with depth as d, multi as mx:
                flow = new_flow(13)

                async def drive() -> None:
                    for _ in range(30):
                        await asyncio.to_thread(stack.send, flow.batch(25))
                        await asyncio.sleep(0.02)

                driver = asyncio.create_task(drive())
                ev = await asyncio.wait_for(d.recv(), 30)
                assert ev["e"] == "depthUpdate" and ev["s"] == "BTCUSDT"
                assert ev["U"] <= ev["u"]
                streams: set[str] = set()
                deadline = time.monotonic() + 30
                while streams != {"btcusdt@trade", "ethusdt@depth5@100ms"}:
                    msg = await asyncio.wait_for(mx.recv(), 30)
                    streams.add(msg["stream"])
                    if msg["stream"] == "btcusdt@trade":
                        assert msg["data"]["e"] == "trade"
                    else:
                        assert set(msg["data"]) == {"lastUpdateId", "bids", "asks"}
                    assert time.monotonic() < deadline
                await driver
        finally:
            await client.close_connection()

    asyncio.run(go())
