"""User data streams: listenKey REST + ``/ws/<listenKey>``, the WebSocket API
subscription, ccxt.pro ``watch_orders`` and python-binance ``user_socket``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro
import pytest
import requests
from binance import AsyncClient, BinanceSocketManager

from gateway import keys
from tests.api.apiproc import ApiProcess
from tests.api.fixtures import api, core, key1, key2  # noqa: F401  (fixtures)
from tests.api.test_binance_client import client_class
from tests.api.test_ccxt import binance_urls, sync_exchange
from tests.e2e.coreproc import CoreProcess

pytestmark = pytest.mark.timeout(300)


def _ws_urls(api: ApiProcess, urls: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    """ccxt.pro's ``urls['api']`` with REST and WebSocket hosts replaced."""
    ws_base = api.url.replace("http://", "ws://")
    out = {k: v for k, v in urls.items() if k != "ws"}
    out = binance_urls(api.url, out)
    ws = dict(urls["ws"])
    ws["ws-api"] = {"spot": ws_base + "/ws-api/v3"}
    ws["spot"] = ws_base + "/ws"
    out["ws"] = ws
    return out


async def _next_event(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(ws.receive(), 20)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        ev: dict[str, Any] = json.loads(msg.data)
        ev = ev.get("event", ev)
        if ev["e"] == kind:
            return ev


def test_listen_key_flow(api: ApiProcess, key1: keys.ApiKey, key2: keys.ApiKey) -> None:  # noqa: F811
    """POST/PUT/DELETE userDataStream; executionReport and outboundAccountPosition."""
    h = {"X-MBX-APIKEY": key1.api_key}
    lk = requests.post(api.url + "/api/v3/userDataStream", headers=h).json()["listenKey"]
    assert len(lk) == 60
    # The same user's live key is returned again (as Binance).
    assert requests.post(api.url + "/api/v3/userDataStream", headers=h).json()["listenKey"] == lk
    r = requests.put(api.url + "/api/v3/userDataStream", headers=h, data={"listenKey": lk})
    assert r.status_code == 200 and r.json() == {}
    other = {"X-MBX-APIKEY": key2.api_key}
    r = requests.put(api.url + "/api/v3/userDataStream", headers=other, data={"listenKey": lk})
    assert r.status_code == 400 and r.json()["code"] == -1125  # not user 2's key
    mm, taker = sync_exchange(api, key1), sync_exchange(api, key2)
    mm.load_markets()
    taker.load_markets()

    async def run() -> None:
        async with aiohttp.ClientSession() as s, s.ws_connect(api.url + "/ws/" + lk) as ws:
            await asyncio.sleep(0.2)
            await asyncio.to_thread(
                mm.create_order, "BTC/USDT", "limit", "sell", 0.2, 110.0, {"clientOrderId": "ask1"}
            )
            new = await _next_event(ws, "executionReport")
            assert (new["x"], new["X"], new["c"], new["q"], new["p"]) == (
                "NEW", "NEW", "ask1", "0.200", "110.00")  # fmt: skip
            pos = await _next_event(ws, "outboundAccountPosition")
            btc = next(b for b in pos["B"] if b["a"] == "BTC")
            assert btc == {"a": "BTC", "f": "9.80000000", "l": "0.20000000"}
            await asyncio.to_thread(taker.create_order, "BTC/USDT", "market", "buy", 0.05)
            fill = await _next_event(ws, "executionReport")
            assert (fill["x"], fill["X"], fill["l"], fill["z"], fill["L"], fill["m"]) == (
                "TRADE", "PARTIALLY_FILLED", "0.050", "0.050", "110.00", True)  # fmt: skip
            assert fill["n"] == "0.005500" and fill["N"] == "USDT" and fill["t"] == 1

    asyncio.run(run())
    r = requests.delete(api.url + "/api/v3/userDataStream", headers=h, data={"listenKey": lk})
    assert r.status_code == 200
    r = requests.put(api.url + "/api/v3/userDataStream", headers=h, data={"listenKey": lk})
    assert r.json()["code"] == -1125


def _sign(secret: bytes, params: dict[str, Any]) -> dict[str, Any]:
    q = urllib.parse.urlencode(sorted(params.items()))
    return {**params, "signature": hmac.new(secret, q.encode(), hashlib.sha256).hexdigest()}


def test_ws_api_subscribe_signature(api: ApiProcess, key1: keys.ApiKey) -> None:  # noqa: F811
    """``userDataStream.subscribe.signature``; a bad signature is refused (-1022)."""
    secret = api.secrets[key1.api_key]
    ex = sync_exchange(api, key1)
    ex.load_markets()

    async def run() -> None:
        url = api.url.replace("http://", "ws://") + "/ws-api/v3"
        async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
            p = {"apiKey": key1.api_key, "timestamp": int(time.time() * 1000)}
            bad = {**_sign(secret, p), "signature": "00" * 32}
            await ws.send_json({"id": "a", "method": "userDataStream.subscribe.signature",
                                "params": bad})  # fmt: skip
            ans = json.loads((await ws.receive()).data)
            assert ans["id"] == "a" and ans["status"] == 400 and ans["error"]["code"] == -1022
            await ws.send_json({"id": "b", "method": "userDataStream.subscribe.signature",
                                "params": _sign(secret, p)})  # fmt: skip
            ans = json.loads((await ws.receive()).data)
            assert ans == {"id": "b", "status": 200, "result": {"subscriptionId": 0}}
            await asyncio.to_thread(ex.create_order, "BTC/USDT", "limit", "buy", 0.01, 90.0)
            msg = json.loads((await asyncio.wait_for(ws.receive(), 20)).data)
            assert msg["subscriptionId"] == 0 and msg["event"]["e"] == "executionReport"

    asyncio.run(run())


def test_ccxt_pro_watch_orders(api: ApiProcess, key1: keys.ApiKey, key2: keys.ApiKey) -> None:  # noqa: F811
    """ccxt.pro ``watch_orders`` sees its order open, then filled."""

    async def run() -> None:
        ex = ccxtpro.binance({"apiKey": key1.api_key, "secret": api.secrets[key1.api_key].decode()})
        ex.urls["api"] = _ws_urls(api, ex.urls["api"])
        taker = sync_exchange(api, key2)
        try:
            await ex.load_markets()
            await asyncio.to_thread(taker.load_markets)
            watch = asyncio.create_task(ex.watch_orders("BTC/USDT"))
            await asyncio.sleep(1.0)  # subscribed before the order
            o = await ex.create_order("BTC/USDT", "limit", "sell", 0.1, 105.0)
            seen = await asyncio.wait_for(watch, 20)
            assert seen[-1]["id"] == o["id"] and seen[-1]["status"] == "open"
            # ccxt.pro resolves a watch on the next message: watch before the fill.
            watch = asyncio.create_task(ex.watch_orders("BTC/USDT"))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(taker.create_order, "BTC/USDT", "market", "buy", 0.1)
            seen = await asyncio.wait_for(watch, 20)
            for _ in range(10):
                if seen[-1]["status"] == "closed":
                    break
                seen = await asyncio.wait_for(ex.watch_orders("BTC/USDT"), 20)
            assert seen[-1]["id"] == o["id"] and seen[-1]["status"] == "closed"
            assert seen[-1]["filled"] == 0.1
        finally:
            await ex.close()

    asyncio.run(run())


def test_python_binance_user_socket(api: ApiProcess, key1: keys.ApiKey) -> None:  # noqa: F811
    """python-binance ``BinanceSocketManager.user_socket`` receives executionReports."""

    async def run() -> None:
        cls = client_class(AsyncClient, api)
        c = await cls.create(key1.api_key, api.secrets[key1.api_key].decode())
        try:
            bm = BinanceSocketManager(c)
            async with bm.user_socket() as stream:
                await asyncio.sleep(0.5)
                o = await c.order_limit_buy(symbol="BTCUSDT", quantity="0.02", price="95")
                while True:
                    ev = await asyncio.wait_for(stream.recv(), 20)
                    if ev.get("e") == "executionReport":
                        break
                assert ev["i"] == o["orderId"] and ev["x"] == "NEW" and ev["q"] == "0.020"
        finally:
            await c.close_connection()

    asyncio.run(run())


def test_slow_user_stream_dropped(core: CoreProcess, tmp_path: Path) -> None:  # noqa: F811
    """A listenKey stream that never reads is disconnected once its bounded queue is
    full; a reading stream of the same user gets every event."""
    import numpy as np

    from bindings.client import CoreClient
    from engine.wire import commands
    from gateway.store import clock_order_id
    from pyx.enums import Side
    from tests.api.apiproc import SYMBOL

    api = ApiProcess(core, tmp_path / "api", tmp_path / "logs", "--ws-send-queue", "1500")  # noqa: F811
    api.start()
    key = api.make_key(1)
    h = {"X-MBX-APIKEY": key.api_key}
    lk = requests.post(api.url + "/api/v3/userDataStream", headers=h).json()["listenKey"]
    bursts, per_burst = 8, 500  # 4,000 reports (~2.4 MB): more than the queue + buffers

    async def run() -> None:
        url = api.url.replace("http://", "ws://") + "/ws/" + lk
        async with aiohttp.ClientSession() as s:
            slow = await s.ws_connect(url)
            # A client that stops reading (small receive buffer, reading paused).
            assert slow._response.connection is not None
            transport = slow._response.connection.transport
            assert transport is not None
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            transport.pause_reading()
            fast = await s.ws_connect(url)
            await asyncio.sleep(0.3)
            got = 0
            with CoreClient(str(core.ready["trade"])) as trade:
                for b in range(bursts):
                    first = clock_order_id() + b * per_burst
                    recs = np.concatenate([
                        commands.new_limit(first + i, 1, SYMBOL, Side.BUY, 1000 + i % 100, 1)
                        for i in range(per_burst)
                    ])  # fmt: skip
                    replies = await asyncio.to_thread(trade.submit, recs)
                    assert (replies["status"] == 1).all()
                    while got < (b + 1) * per_burst:
                        msg = await asyncio.wait_for(fast.receive(), 30)
                        assert msg.type == aiohttp.WSMsgType.TEXT, msg
                        if json.loads(msg.data)["e"] == "executionReport":
                            got += 1
            transport.resume_reading()
            kinds = []
            for _ in range(bursts * per_burst + 100):
                msg = await asyncio.wait_for(slow.receive(), 30)
                kinds.append(msg.type)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
            # Closed by the server (1008 "slow"; seen as 1006 when its close frame could
            # not get through the full buffers first).
            assert kinds[-1] == aiohttp.WSMsgType.CLOSE and slow.close_code in (1008, 1006)
            assert len(kinds) < bursts * per_burst  # it lost events: it was dropped
            await fast.close()

    try:
        asyncio.run(run())
    finally:
        api.cleanup()
