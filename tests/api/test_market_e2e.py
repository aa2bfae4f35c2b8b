"""Market routes end to end: real core, real `bursa marketdata`, real aiohttp server.

REST answers equal the core's book; the diff-depth streams chain by Binance's U/u
rule and, applied to a REST snapshot, keep a local book equal to the core's over a
long random flow; trade streams match /trades; the /ws control protocol; a client
that never reads is dropped while another keeps receiving everything.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.api.marketstack import ServerThread, Stack, new_flow
from tests.marketdata.mdproc import MarketDataProcess

TIMEOUT = aiohttp.ClientTimeout(total=60)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    s = Stack()
    yield s
    s.close()


@pytest.fixture(scope="module")
def server(stack: Stack) -> Iterator[ServerThread]:
    srv = stack.server(send_buffer_bytes=1 << 20)
    yield srv
    assert srv.state.internal_errors == 0  # no bug was swallowed by the pump/timers
    srv.close()


def _get(srv: ServerThread, path: str) -> tuple[int, Any]:
    async def go() -> tuple[int, Any]:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s, s.get(srv.http + path) as r:
            return r.status, await r.json(content_type=None)

    return asyncio.run(go())


def _to_ints(srv: ServerThread, sym: str, rows: list[list[str]]) -> list[tuple[int, int]]:
    spec = srv.state.registry.by_name(sym)
    return [(spec.price_to_ticks(p), spec.qty_to_lots(q)) for p, q in rows]


def test_rest_depth_equals_core_book(stack: Stack, server: ServerThread) -> None:
    flow = new_flow(5)
    for _ in range(10):
        stack.send(flow.batch(25))
    for sid, sym in ((1, "BTCUSDT"), (2, "ETHUSDT")):
        want = stack.settle(server, sid)
        status, body = _get(server, f"/api/v3/depth?symbol={sym}&limit=5000")
        assert status == 200
        assert _to_ints(server, sym, body["bids"]) == want["bids"]
        assert _to_ints(server, sym, body["asks"]) == want["asks"]
        assert body["lastUpdateId"] == server.state.symbols[sid].update_id > 0
        status, top = _get(server, f"/api/v3/depth?symbol={sym}&limit=1")
        assert top["bids"] == body["bids"][:1] and top["asks"] == body["asks"][:1]


def test_rest_rejects(server: ServerThread) -> None:
    for path, code in (
        ("/api/v3/depth", -1102),
        ("/api/v3/depth?symbol=NOPE", -1121),
        ("/api/v3/depth?symbol=BTCUSDT&limit=x", -1100),
        ("/api/v3/depth?symbol=BTCUSDT&limit=0", -1130),
        ("/api/v3/klines?symbol=BTCUSDT", -1102),
        ("/api/v3/klines?symbol=BTCUSDT&interval=7m", -1120),
        ("/api/v3/ticker/24hr?symbol=BTCUSDT&type=X", -1130),
        ("/api/v3/ticker/price?symbols=nope", -1102),
        ("/api/v3/ticker/price?symbols=%5B%22NOPE%22%5D", -1121),
        ("/api/v3/ticker/price?symbol=BTCUSDT&symbols=%5B%5D", -1101),
        ("/ws/?", None),
    ):
        status, body = _get(server, path) if code is not None else (400, {"code": None})
        assert status == 400, path
        assert body["code"] == code, (path, body)


def test_rest_trades_klines_tickers(stack: Stack, server: ServerThread) -> None:
    flow = new_flow(6)
    for _ in range(10):
        stack.send(flow.batch(25))
    stack.settle(server, 1)
    spec = server.state.registry.by_name("BTCUSDT")
    _, trades = _get(server, "/api/v3/trades?symbol=BTCUSDT&limit=1000")
    assert trades and [t["id"] for t in trades] == sorted(t["id"] for t in trades)
    for t in trades:
        spec.price_to_ticks(t["price"]), spec.qty_to_lots(t["qty"])  # on the grid
    _, last2 = _get(server, "/api/v3/trades?symbol=BTCUSDT&limit=2")
    assert last2 == trades[-2:]
    _, hist = _get(server, f"/api/v3/historicalTrades?symbol=BTCUSDT&fromId={trades[-3]['id']}")
    assert hist == trades[-3:]
    _, aggs = _get(server, "/api/v3/aggTrades?symbol=BTCUSDT&limit=1000")
    # Aggregates cover every trade exactly once, in order.
    assert sum(spec.qty_to_lots(a["q"]) for a in aggs) == sum(
        spec.qty_to_lots(t["qty"]) for t in trades if t["id"] >= aggs[0]["f"]
    )
    assert all(a["f"] <= a["l"] for a in aggs)
    _, k1m = _get(server, "/api/v3/klines?symbol=BTCUSDT&interval=1m")
    _, ui = _get(server, "/api/v3/uiKlines?symbol=BTCUSDT&interval=1m")
    assert k1m == ui and k1m
    # The candles' volume is the volume of every trade (all of them are kept here).
    assert sum(spec.qty_to_lots(k[5]) for k in k1m) == sum(
        spec.qty_to_lots(t["qty"]) for t in trades
    )
    assert sum(k[8] for k in k1m) == len(trades)
    # Derived intervals: 3m from 1m, 1w and 1M from 1d, totals equal.
    for iv in ("3m", "30m", "2h", "1w", "1M"):
        _, rows = _get(server, f"/api/v3/klines?symbol=BTCUSDT&interval={iv}")
        assert rows and sum(k[8] for k in rows) == len(trades), iv
    _, t24 = _get(server, "/api/v3/ticker/24hr?symbol=BTCUSDT")
    assert t24["count"] == len(trades) and t24["lastPrice"] == trades[-1]["price"]
    assert t24["highPrice"] == max((t["price"] for t in trades), key=spec.price_to_ticks)
    assert spec.qty_to_lots(t24["volume"]) == sum(spec.qty_to_lots(t["qty"]) for t in trades)
    _, book = _get(server, "/api/v3/depth?symbol=BTCUSDT&limit=1")
    _, bt = _get(server, "/api/v3/ticker/bookTicker?symbol=BTCUSDT")
    assert [bt["bidPrice"], bt["bidQty"]] == (book["bids"][0] if book["bids"] else ["0", "0"])
    _, prices = _get(server, "/api/v3/ticker/price")
    assert {p["symbol"] for p in prices} == {"BTCUSDT", "ETHUSDT"}
    _, avg = _get(server, "/api/v3/avgPrice?symbol=BTCUSDT")
    assert avg["mins"] == 5 and float(avg["price"]) > 0
    _, minis = _get(server, "/api/v3/ticker/24hr?type=MINI")
    assert len(minis) == 2 and "priceChange" not in minis[0]


def apply_diffs(
    snapshot: dict[str, Any], events: list[dict[str, Any]]
) -> tuple[dict[str, dict[str, str]], int]:
    """Binance's procedure: drop u <= lastUpdateId, the first kept event must have
    U <= lastUpdateId + 1 <= u, then each U = previous u + 1; returns the book."""
    book = {
        "b": {p: q for p, q in snapshot["bids"]},
        "a": {p: q for p, q in snapshot["asks"]},
    }
    last = snapshot["lastUpdateId"]
    first = True
    for ev in events:
        if ev["u"] <= last:
            continue
        if first:
            assert ev["U"] <= last + 1 <= ev["u"], (ev["U"], last, ev["u"])
            first = False
        else:
            assert ev["U"] == last + 1, (ev["U"], last)
        for side in ("b", "a"):
            for p, q in ev[side]:
                if q == "0" or float(q) == 0:
                    book[side].pop(p, None)
                else:
                    book[side][p] = q
        last = ev["u"]
    return book, last


def test_ws_depth_streams_exact_over_long_flow(stack: Stack, server: ServerThread) -> None:
    """Raw and combined diff streams at both speeds + partial depth, against the core."""

    async def go() -> None:
        got: dict[str, list[dict[str, Any]]] = {}
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            raw = await s.ws_connect(server.ws + "/ws/btcusdt@depth@100ms")
            comb = await s.ws_connect(
                server.ws + "/stream?streams=btcusdt@depth/ethusdt@depth@100ms/btcusdt@depth5@100ms"
            )

            async def reader(ws: aiohttp.ClientWebSocketResponse, combined: bool) -> None:
                async for m in ws:
                    d = json.loads(m.data)
                    if combined:
                        got.setdefault(d["stream"], []).append(d["data"])
                    else:
                        got.setdefault("raw", []).append(d)

            tasks = [
                asyncio.create_task(reader(raw, False)),
                asyncio.create_task(reader(comb, True)),
            ]
            await asyncio.sleep(0.3)
            snaps = {}
            for sym in ("BTCUSDT", "ETHUSDT"):
                async with s.get(f"{server.http}/api/v3/depth?symbol={sym}&limit=5000") as r:
                    snaps[sym] = await r.json()
            flow = new_flow(7)
            for _ in range(150):  # ~3,750 commands over a few seconds: many events
                await asyncio.to_thread(stack.send, flow.batch(25))
                await asyncio.sleep(0.02)
            want = {sid: await asyncio.to_thread(stack.settle, server, sid) for sid in (1, 2)}
            final = {sid: server.state.symbols[sid].update_id for sid in (1, 2)}
            deadline = asyncio.get_running_loop().time() + 30
            while asyncio.get_running_loop().time() < deadline:
                ends = [
                    (got.get(k) or [{"u": 0}])[-1]["u"]
                    for k in ("raw", "btcusdt@depth", "ethusdt@depth@100ms")
                ]
                if ends == [final[1], final[1], final[2]]:
                    break
                await asyncio.sleep(0.1)
            for t in tasks:
                t.cancel()
            await raw.close()
            await comb.close()
        for key, sym, sid in (
            ("raw", "BTCUSDT", 1),
            ("btcusdt@depth", "BTCUSDT", 1),
            ("ethusdt@depth@100ms", "ETHUSDT", 2),
        ):
            evs = got[key]
            assert len(evs) > 3, key
            for a, b in itertools.pairwise(evs):
                assert b["U"] == a["u"] + 1, key  # gap-free chain
            assert all(e["e"] == "depthUpdate" and e["s"] == sym for e in evs)
            book, last = apply_diffs(snaps[sym], evs)
            assert last == final[sid]
            bids = sorted(
                _to_ints(server, sym, [[p, q] for p, q in book["b"].items()]), reverse=True
            )
            asks = sorted(_to_ints(server, sym, [[p, q] for p, q in book["a"].items()]))
            assert bids == want[sid]["bids"] and asks == want[sid]["asks"], key
        part = got["btcusdt@depth5@100ms"][-1]
        assert part["lastUpdateId"] == final[1]
        assert _to_ints(server, "BTCUSDT", part["bids"]) == want[1]["bids"][:5]
        assert _to_ints(server, "BTCUSDT", part["asks"]) == want[1]["asks"][:5]

    asyncio.run(go())


def test_ws_trade_streams_and_control(stack: Stack, server: ServerThread) -> None:
    """/ws SUBSCRIBE / LIST / UNSUBSCRIBE / errors; trade, aggTrade, bookTicker events."""

    async def go() -> None:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            ws = await s.ws_connect(server.ws + "/ws")
            await ws.send_str(
                json.dumps(
                    {
                        "method": "SUBSCRIBE",
                        "params": ["btcusdt@trade", "btcusdt@aggTrade"],
                        "id": 1,
                    }
                )
            )
            assert json.loads((await ws.receive()).data) == {"result": None, "id": 1}
            await ws.send_str(
                json.dumps({"method": "SUBSCRIBE", "params": ["BTCUSDT@bookTicker"], "id": "b"})
            )
            assert json.loads((await ws.receive()).data) == {"result": None, "id": "b"}
            await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
            assert json.loads((await ws.receive()).data) == {
                "result": ["btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@trade"],
                "id": 2,
            }
            for bad in (
                "not json",
                json.dumps([1]),
                json.dumps({"method": "SUBSCRIBE", "params": ["nope@trade"], "id": 3}),
                json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@kline_7m"], "id": 3}),
                json.dumps({"method": "SUBSCRIBE", "params": "btcusdt@trade", "id": 3}),
                json.dumps({"method": "FROB", "id": 3}),
                json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": [1]}),
            ):
                await ws.send_str(bad)
                ans = json.loads((await ws.receive()).data)
                assert "error" in ans and isinstance(ans["error"]["code"], int), bad
            await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
            assert len(json.loads((await ws.receive()).data)["result"]) == 3  # unchanged
            start = (
                await asyncio.to_thread(_get, server, "/api/v3/trades?symbol=BTCUSDT&limit=1")
            )[1]
            first_id = start[-1]["id"] + 1 if start else 0
            flow = new_flow(8)
            for _ in range(10):
                await asyncio.to_thread(stack.send, flow.batch(25))
            await asyncio.to_thread(stack.settle, server, 1)
            _, trades = await asyncio.to_thread(
                _get, server, "/api/v3/trades?symbol=BTCUSDT&limit=1000"
            )
            trades = [t for t in trades if t["id"] >= first_id]
            assert trades
            seen: list[dict[str, Any]] = []
            aggs: list[dict[str, Any]] = []
            books: list[dict[str, Any]] = []
            while (
                not seen
                or seen[-1]["t"] < trades[-1]["id"]
                or not aggs
                or aggs[-1]["l"] < trades[-1]["id"]
            ):
                d = json.loads((await ws.receive(timeout=30)).data)
                {"trade": seen, "aggTrade": aggs}.get(d.get("e", ""), books).append(d)
            assert [(t["t"], t["p"], t["q"], t["m"]) for t in seen] == [
                (t["id"], t["price"], t["qty"], t["isBuyerMaker"]) for t in trades
            ]
            assert [i for a in aggs for i in range(a["f"], a["l"] + 1)] == [t["id"] for t in trades]
            assert books and all(set(b) == {"u", "s", "b", "B", "a", "A"} for b in books)
            await ws.send_str(
                json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 5})
            )
            while True:
                d = json.loads((await ws.receive(timeout=30)).data)
                if d.get("id") == 5:
                    assert d == {"result": None, "id": 5}
                    break
            await ws.close()

    asyncio.run(go())


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _raw_ws_client(port: int, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_slow_consumer_dropped_others_unaffected(stack: Stack) -> None:
    """A client that never reads is dropped at the send-buffer bound; RSS stays bounded
    and a reading client gets every message, in order."""
    srv = stack.server(send_buffer_bytes=256 * 1024)
    try:
        slow = _raw_ws_client(srv.port, "/ws/btcusdt@trade")
        n, size = 40_000, 4096
        filler = "x" * size

        async def wait_conns(k: int) -> None:
            while len(srv.state.hub.subs.get("btcusdt@trade", ())) < k:
                await asyncio.sleep(0.01)

        async def publish() -> None:
            hub = srv.state.hub
            for i in range(n):
                hub.publish("btcusdt@trade", {"i": i, "pad": filler})
                if i % 100 == 99:
                    await asyncio.sleep(0.005)  # let the loop write and the reader keep up

        async def go() -> tuple[int, int]:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
                ws = await s.ws_connect(srv.ws + "/ws/btcusdt@trade", max_msg_size=1 << 20)
                srv.call(wait_conns(2))
                rss0 = _rss_bytes()
                fut = asyncio.run_coroutine_threadsafe(publish(), srv.loop)
                nxt, peak = 0, 0
                while nxt < n:
                    d = json.loads((await ws.receive(timeout=30)).data)
                    if "i" in d:
                        assert d["i"] == nxt
                        nxt += 1
                        if nxt % 2000 == 0:
                            peak = max(peak, _rss_bytes() - rss0)
                await asyncio.wrap_future(fut)
                await ws.close()
                return nxt, peak

        got, peak = asyncio.run(go())
        assert got == n
        assert srv.state.hub.slow_dropped == 1
        # 160 MB went to the reader; the slow client never held more than the bound.
        assert peak < 64 << 20, peak
        slow.settimeout(10)
        ended = False
        try:
            while slow.recv(1 << 20):  # what was in flight, then the end of the connection
                pass
            ended = True
        except ConnectionResetError:
            ended = True  # the abort's RST
        assert ended  # (a socket.timeout would have propagated: never dropped)
        slow.close()
        assert srv.state.hub.msgs_sent >= n
    finally:
        srv.close()


def test_depth_chain_survives_feed_gaps_and_resnapshots() -> None:
    """A feed that drops messages and keeps a tiny replay window forces the API's client
    to re-snapshot its L2 book: the skipped sequence numbers are published as one diff,
    so the U/u chain holds and the streamed book stays equal to the core's."""
    stack = Stack(md_args=("--test-drop-every", "5", "--replay-window", "3"))
    srv = stack.server()
    try:

        async def go() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            evs: list[dict[str, Any]] = []
            async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
                ws = await s.ws_connect(srv.ws + "/ws/btcusdt@depth@100ms")

                async def reader() -> None:
                    async for m in ws:
                        evs.append(json.loads(m.data))

                task = asyncio.create_task(reader())
                await asyncio.sleep(0.2)
                async with s.get(f"{srv.http}/api/v3/depth?symbol=BTCUSDT&limit=5000") as r:
                    snap = await r.json()
                flow = new_flow(21)
                for _ in range(80):
                    await asyncio.to_thread(stack.send, flow.batch(25))
                    await asyncio.sleep(0.01)
                await asyncio.to_thread(stack.settle, srv, 1)
                final = srv.state.symbols[1].update_id
                deadline = asyncio.get_running_loop().time() + 30
                while not evs or evs[-1]["u"] != final:
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.05)
                task.cancel()
                await ws.close()
            return evs, snap

        evs, snap = asyncio.run(go())
        assert srv.state.l2_resyncs > 0, "no L2 re-snapshot happened: the test tests nothing"
        for a, b in itertools.pairwise(evs):
            assert b["U"] == a["u"] + 1
        book, last = apply_diffs(snap, evs)
        assert last == evs[-1]["u"]
        want = stack.core_book(1)
        bids = sorted(_to_ints(srv, "BTCUSDT", list(map(list, book["b"].items()))), reverse=True)
        asks = sorted(_to_ints(srv, "BTCUSDT", list(map(list, book["a"].items()))))
        assert (bids, asks) == (want["bids"], want["asks"])
    finally:
        srv.close()
        stack.close()


def test_feed_kill9_restart_keeps_serving_and_chain_exact() -> None:
    """kill -9 of `bursa marketdata` mid-flow: REST keeps answering (the last known book)
    while it is down; after its restart the diff stream continues the same chain and
    the streamed book equals the core's."""
    stack = Stack()
    srv = stack.server()
    try:

        async def go() -> tuple[list[dict[str, Any]], dict[str, Any], float]:
            evs: list[dict[str, Any]] = []
            async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
                ws = await s.ws_connect(srv.ws + "/ws/btcusdt@depth@100ms")

                async def reader() -> None:
                    async for m in ws:
                        evs.append(json.loads(m.data))

                task = asyncio.create_task(reader())
                await asyncio.sleep(0.2)
                async with s.get(f"{srv.http}/api/v3/depth?symbol=BTCUSDT&limit=5000") as r:
                    snap = await r.json()
                flow = new_flow(41)
                for _ in range(20):
                    await asyncio.to_thread(stack.send, flow.batch(25))
                await asyncio.to_thread(stack.md.kill9)
                for _ in range(20):  # the core goes on while the feed is down
                    await asyncio.to_thread(stack.send, flow.batch(25))
                await asyncio.sleep(1.5)  # idle checks time out against the dead service
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                async with s.get(f"{srv.http}/api/v3/depth?symbol=BTCUSDT&limit=5") as r:
                    assert r.status == 200
                    await r.json()
                down_answer_s = loop.time() - t0
                await asyncio.to_thread(stack.md.start, stack.pub, stack.service)
                for _ in range(20):
                    await asyncio.to_thread(stack.send, flow.batch(25))
                await asyncio.to_thread(stack.settle, srv, 1)
                final = srv.state.symbols[1].update_id
                deadline = loop.time() + 30
                while not evs or evs[-1]["u"] != final:
                    assert loop.time() < deadline
                    await asyncio.sleep(0.05)
                task.cancel()
                await ws.close()
            return evs, snap, down_answer_s

        evs, snap, down_answer_s = asyncio.run(go())
        assert down_answer_s < 5.0, down_answer_s
        for a, b in itertools.pairwise(evs):
            assert b["U"] == a["u"] + 1
        book, _last = apply_diffs(snap, evs)
        want = stack.core_book(1)
        bids = sorted(_to_ints(srv, "BTCUSDT", list(map(list, book["b"].items()))), reverse=True)
        asks = sorted(_to_ints(srv, "BTCUSDT", list(map(list, book["a"].items()))))
        assert (bids, asks) == (want["bids"], want["asks"])
    finally:
        srv.close()
        stack.close()


def test_ws_kline_ticker_and_all_market_streams(stack: Stack, server: ServerThread) -> None:
    """kline, miniTicker, ticker, partial depth and the all-market arrays, in shape and
    consistent with REST."""

    async def go() -> dict[str, list[Any]]:
        got: dict[str, list[Any]] = {}
        names = [
            "btcusdt@kline_1m",
            "btcusdt@kline_3m",
            "btcusdt@miniTicker",
            "ethusdt@ticker",
            "btcusdt@depth10",
            "!miniTicker@arr",
            "!ticker@arr",
        ]
        async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
            ws = await s.ws_connect(server.ws + "/stream?streams=" + "/".join(names))
            flow = new_flow(51)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while set(got) != set(names):
                assert loop.time() < deadline, set(names) - set(got)
                await asyncio.to_thread(stack.send, flow.batch(25))
                try:
                    while True:
                        m = await ws.receive(timeout=0.2)
                        d = json.loads(m.data)
                        got.setdefault(d["stream"], []).append(d["data"])
                except TimeoutError:
                    pass
            await ws.close()
        return got

    got = asyncio.run(go())
    k = got["btcusdt@kline_1m"][-1]
    assert k["e"] == "kline" and k["s"] == "BTCUSDT" and k["k"]["i"] == "1m"
    assert k["k"]["T"] == k["k"]["t"] + 59_999 and k["k"]["n"] > 0
    k3 = got["btcusdt@kline_3m"][-1]["k"]
    assert k3["i"] == "3m" and k3["T"] == k3["t"] + 179_999 and k3["t"] % 180_000 == 0
    mini = got["btcusdt@miniTicker"][-1]
    assert mini["e"] == "24hrMiniTicker" and set(mini) >= {"c", "o", "h", "l", "v", "q"}
    full = got["ethusdt@ticker"][-1]
    assert full["e"] == "24hrTicker" and full["s"] == "ETHUSDT" and full["n"] > 0
    part = got["btcusdt@depth10"][-1]
    assert len(part["bids"]) <= 10 and len(part["asks"]) <= 10 and part["lastUpdateId"] > 0
    arr = got["!miniTicker@arr"][-1]
    assert isinstance(arr, list) and {x["s"] for x in arr} <= {"BTCUSDT", "ETHUSDT"}
    assert all(x["e"] == "24hrTicker" for x in got["!ticker@arr"][-1])
    status, rest = _get(server, "/api/v3/ticker/24hr?symbol=ETHUSDT")
    assert status == 200 and rest["count"] >= full["n"]


def test_feed_started_after_the_api() -> None:
    """MarketState starts without a feed (symbols unknown, -1121) and picks the symbols
    up once `bursa marketdata` runs."""
    stack = Stack()
    late = MarketDataProcess(stack.root / "late", stack.core.ready)
    (stack.root / "late").mkdir()
    pub, service = f"ipc://{stack.root}/late.pub", f"ipc://{stack.root}/late.svc"
    srv = ServerThread(pub, service)
    try:
        assert _get(srv, "/api/v3/depth?symbol=BTCUSDT")[1]["code"] == -1121
        late.start(pub, service)
        deadline = time.monotonic() + 60
        while _get(srv, "/api/v3/depth?symbol=BTCUSDT")[0] != 200:
            assert time.monotonic() < deadline, "the feed's symbols were never picked up"
            time.sleep(0.2)
        stack.send(new_flow(71).batch(50))
        want = stack.settle(srv, 1)
        _, body = _get(srv, "/api/v3/depth?symbol=BTCUSDT&limit=5000")
        assert _to_ints(srv, "BTCUSDT", body["bids"]) == want["bids"]
    finally:
        srv.close()
        late.cleanup()
        stack.close()


def test_connection_limit(stack: Stack) -> None:
    """Past ``max_connections`` a WebSocket upgrade is refused with 429 / -1003; a slot
    freed by a close is usable again."""
    srv = stack.server()
    srv.state.max_connections = 2
    try:

        async def go() -> None:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as s:
                a = await s.ws_connect(srv.ws + "/ws/btcusdt@trade")
                b = await s.ws_connect(srv.ws + "/ws")
                with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                    await s.ws_connect(srv.ws + "/stream?streams=btcusdt@trade")
                assert e.value.status == 429
                async with s.get(srv.ws.replace("ws", "http", 1) + "/ws") as r:
                    assert r.status == 429 and (await r.json())["code"] == -1003
                await a.close()
                deadline = asyncio.get_running_loop().time() + 10
                while len(srv.state.hub.conns) >= 2:
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.02)
                c = await s.ws_connect(srv.ws + "/ws")
                await b.close()
                await c.close()

        asyncio.run(go())
    finally:
        srv.close()
