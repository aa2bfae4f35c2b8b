"""Fuzzed market requests (hypothesis) on a real server: never a 500, a reject is
Binance-shaped, and nothing a client sends changes the market state."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.marketstack import ServerThread, Stack, new_flow

PATHS = (
    "depth",
    "trades",
    "historicalTrades",
    "aggTrades",
    "klines",
    "uiKlines",
    "avgPrice",
    "ticker/24hr",
    "ticker/price",
    "ticker/bookTicker",
)
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY", "X")
PARAM_ITEMS = ("btcusdt@trade", "x@y", "!ticker@arr", "combined", True, 1, None)
PARAMS = ("symbol", "symbols", "limit", "fromId", "startTime", "endTime", "interval", "type")
VALUES = st.one_of(
    st.sampled_from(["BTCUSDT", "ETHUSDT", "btcusdt", '["BTCUSDT"]', '["X"]', "[]", "1m", "3M"]),
    st.sampled_from(["FULL", "MINI", "0", "1", "5000", "99999999999999999999", "-1", "1e3"]),
    st.text(max_size=40),
)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    stack = Stack()
    flow = new_flow(61)
    for _ in range(10):
        stack.send(flow.batch(25))
    srv = stack.server()
    stack.settle(srv, 1)
    yield srv
    assert srv.state.internal_errors == 0  # no bug was swallowed by the pump/timers
    srv.close()
    stack.close()


async def _state(srv: ServerThread) -> tuple[int, int, int]:
    s = srv.state
    return s.symbols[1].update_id, s.symbols[2].update_id, len(s.registry)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(PATHS),
    query=st.dictionaries(st.sampled_from(PARAMS), VALUES, max_size=4),
)
def test_rest_fuzz(server: ServerThread, path: str, query: dict[str, str]) -> None:
    before = server.call(_state(server))
    qs = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())

    async def go() -> tuple[int, bytes]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{server.http}/api/v3/{path}?{qs}") as r,
        ):
            return r.status, await r.read()

    status, body = asyncio.run(go())
    assert status in (200, 400), (path, query, status, body[:200])
    data = json.loads(body)
    if status == 400:
        assert set(data) == {"code", "msg"} and isinstance(data["code"], int) and data["code"] < 0
    assert server.call(_state(server)) == before


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    msgs=st.lists(
        st.one_of(
            st.text(max_size=60),
            st.builds(
                lambda m, p, i: json.dumps({"method": m, "params": p, "id": i}),
                st.sampled_from(
                    ["SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "X"]
                ),
                st.one_of(
                    st.lists(
                        st.sampled_from(["btcusdt@trade", "x@y", "!ticker@arr", "combined", True]),
                        max_size=3,
                    ),
                    st.integers(),
                    st.none(),
                ),
                st.one_of(st.integers(), st.text(max_size=5), st.none(), st.floats()),
            ),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_ws_control_fuzz(server: ServerThread, msgs: list[str]) -> None:
    """Every control message gets exactly one answer, the connection stays open."""

    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            ws = await s.ws_connect(server.ws + "/ws")
            for m in msgs:
                await ws.send_str(m)
                while True:
                    ans = json.loads((await ws.receive(timeout=10)).data)
                    if "result" in ans or "error" in ans:
                        break  # (stream events of a subscription may come first)
            await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 0}))
            while True:
                ans = json.loads((await ws.receive(timeout=10)).data)
                if ans.get("id") == 0:
                    assert isinstance(ans["result"], list)
                    break
            await ws.close()

    asyncio.run(go())
