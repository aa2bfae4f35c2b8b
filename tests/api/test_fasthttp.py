"""``api.fasthttp``: ``POST /api/v3/order`` answered without aiohttp's request objects
gives the same answers as the aiohttp route (status, Binance body, headers), keeps
the order of pipelined answers, and hands every other request (and the rest of its
connection) to aiohttp unchanged."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from api.fasthttp import CLIENT_MAX_SIZE, MAX_BUFFERED, FastHttp
from gateway import keys
from pyx.apihttp import parse_head
from tests.api.apiproc import ApiProcess
from tests.api.fixtures import api, core, key1  # noqa: F401  (fixtures)
from tests.api.test_metrics import scrape
from tests.e2e.coreproc import CoreProcess

Answer = tuple[int, dict[str, str], bytes]


def _body(key: keys.ApiKey, secret: bytes, params: dict[str, Any], sig: str = "") -> bytes:
    q = urllib.parse.urlencode({**params, "recvWindow": 60_000,
                                "timestamp": time.time_ns() // 1_000_000})  # fmt: skip
    sig = sig or hmac.new(secret, q.encode(), hashlib.sha256).hexdigest()
    return f"{q}&signature={sig}".encode()


def _post(key: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST /api/v3/order HTTP/1.1\r\nHost: x\r\nX-MBX-APIKEY: {key}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body  # fmt: skip


def _get(key: str, secret: bytes, params: dict[str, Any]) -> bytes:
    """A signed ``GET /api/v3/order`` (aiohttp's route)."""
    q = urllib.parse.urlencode({**params, "timestamp": time.time_ns() // 1_000_000})
    sig = hmac.new(secret, q.encode(), hashlib.sha256).hexdigest()
    return (f"GET /api/v3/order?{q}&signature={sig} HTTP/1.1\r\nHost: x\r\n"
            f"X-MBX-APIKEY: {key}\r\n\r\n").encode()  # fmt: skip


PING = b"GET /api/v3/ping HTTP/1.1\r\nHost: x\r\n\r\n"


def _read(s: socket.socket, n: int) -> list[Answer]:
    """``n`` answers (status, lower-case headers, body) from ``s``."""
    buf = b""
    out: list[Answer] = []
    while len(out) < n:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            lines = buf[:end].decode().split("\r\n")
            heads = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
            length = int(heads.get("content-length", "0"))
            if len(buf) >= end + 4 + length:
                out.append((int(lines[0].split()[1]), heads, buf[end + 4 : end + 4 + length]))
                buf = buf[end + 4 + length :]
                continue
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} answers")
        buf += chunk
    return out


def _conn(api: ApiProcess) -> socket.socket:  # noqa: F811
    s = socket.create_connection(("127.0.0.1", api.port), timeout=30)
    return s


def _order(i: int, **kw: Any) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "price": "100.00", "quantity": "0.001", "newClientOrderId": f"fast{i}",
            **kw}  # fmt: skip


def _same_headers(a: dict[str, str], b: dict[str, str]) -> None:
    skip = {"date", "x-mbx-used-weight-1m", "content-length", "connection", "keep-alive"}
    assert {k: v for k, v in a.items() if k not in skip} == {
        k: v for k, v in b.items() if k not in skip
    }


def test_fast_and_aiohttp_answers_match(api: ApiProcess, key1: keys.ApiKey) -> None:  # noqa: F811
    """Each request answered on a fresh connection (fast path) and on a connection
    aiohttp has taken over (after a ping) gives the same status, body and headers."""
    secret = api.secrets[key1.api_key]
    cases: list[tuple[str, bytes]] = [
        (key1.api_key, _body(key1, secret, _order(1, newOrderRespType="ACK"))),
        (key1.api_key, _body(key1, secret, _order(1, newOrderRespType="ACK"))),  # retry
        (key1.api_key, _body(key1, secret, _order(2), sig="0" * 64)),  # -1022
        ("nosuchkey", _body(key1, secret, _order(3))),  # -2015
        ("", _body(key1, secret, _order(4))),  # -2014
        (key1.api_key, _body(key1, secret, _order(5, price="100.001"))),  # -1013
        (key1.api_key, _body(key1, secret, _order(6, side="UP"))),  # -1117
        (key1.api_key, b"symbol=BTCUSDT&%zz=1"),  # -1100
    ]
    counted = ("bursa_api_fast_requests_total", ())
    route = ("route", "/api/v3/order"), ("method", "POST"), ("status", "400")
    for k, body in cases:
        before = scrape(api.ready["metrics"])
        with _conn(api) as fast, _conn(api) as slow:
            fast.sendall(_post(k, body))
            slow.sendall(PING + _post(k, body))
            (fs, fh, fb), = _read(fast, 1)  # fmt: skip
            _, (ss, sh, sb) = _read(slow, 2)
        assert fs == ss, (body, fb, sb)
        fj, sj = json.loads(fb), json.loads(sb)
        if fs == 200:  # the retry of the same clientOrderId: the same order
            assert fj == sj and fj["clientOrderId"] == "fast1"
        else:
            assert fj == sj and set(fj) == {"code", "msg"}
        _same_headers(fh, sh)
        assert int(fh["x-mbx-used-weight-1m"]) >= 1
        # One of the two answers came from the fast path; both are counted per route.
        after = scrape(api.ready["metrics"])
        assert after[counted] == before.get(counted, 0) + 1
        if fs == 400:
            key = ("bursa_api_requests_total", tuple(sorted(route)))
            assert after[key] == before.get(key, 0) + 2


def test_pipelined_answers_in_order_then_handoff(api: ApiProcess, key1: keys.ApiKey) -> None:  # noqa: F811
    """Fast requests, a ping (aiohttp takes the connection) and more orders, all sent
    at once on one connection: answered in order, every order entered once."""
    secret = api.secrets[key1.api_key]
    reqs = [_post(key1.api_key, _body(key1, secret, _order(10 + i, newOrderRespType="RESULT")))
            for i in range(5)]  # fmt: skip
    after = [_post(key1.api_key, _body(key1, secret, _order(20 + i, newOrderRespType="RESULT")))
             for i in range(3)]  # fmt: skip
    with _conn(api) as s:
        s.sendall(b"".join(reqs) + PING + b"".join(after))
        got = _read(s, 9)
    assert [g[0] for g in got] == [200] * 9
    ids = [json.loads(g[2]).get("clientOrderId") for g in got]
    assert ids == [f"fast{10 + i}" for i in range(5)] + [None] + [f"fast{20 + i}" for i in range(3)]
    assert json.loads(got[5][2]) == {}
    statuses = {json.loads(g[2])["status"] for i, g in enumerate(got) if i != 5}
    assert statuses == {"NEW"}


def test_split_request_and_connection_close(api: ApiProcess, key1: keys.ApiKey) -> None:  # noqa: F811
    """A request arriving a few bytes at a time is answered once complete; with
    ``Connection: close`` the server closes after the answer."""
    secret = api.secrets[key1.api_key]
    req = _post(key1.api_key, _body(key1, secret, _order(30)), "Connection: close\r\n")
    with _conn(api) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(req), 7):
            s.sendall(req[i : i + 7])
            time.sleep(0.001)
        (st, heads, body), = _read(s, 1)  # fmt: skip
        assert st == 200 and json.loads(body)["clientOrderId"] == "fast30"
        assert heads.get("connection") == "close"
        assert s.recv(10) == b""


@pytest.mark.parametrize(
    "raw, status",
    [
        # header with a space before the colon: aiohttp's parser refuses it
        (b"POST /api/v3/order HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n", 400),
        # a body larger than the application accepts
        (
            b"POST /api/v3/order HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n"
            + b"a" * 70000,
            413,
        ),
        # chunked bodies are aiohttp's (then the route: no key)
        (
            b"POST /api/v3/order HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\n",
            401,
        ),
        # a method the route does not have, on the fast route's path
        (b"PUT /api/v3/order HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
        (b"GARBAGE\r\n\r\n", 400),
        # no Host header
        (b"POST /api/v3/order HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400),
    ],
)
def test_unusual_requests_go_to_aiohttp(
    api: ApiProcess,  # noqa: F811
    key1: keys.ApiKey,  # noqa: F811
    raw: bytes,
    status: int,
) -> None:
    """Whatever the fast path does not take gets aiohttp's answer (and the process
    goes on serving)."""
    with _conn(api) as s:
        s.sendall(raw)
        (st, _, body), = _read(s, 1)  # fmt: skip
    assert st == status, body
    with _conn(api) as s:
        s.sendall(PING)
        assert _read(s, 1)[0][0] == 200


def test_parse_head_takes_only_plain_order_posts() -> None:
    """The head parser's decisions, without a server: the compiled one and its
    Python oracle alike."""

    def parse(head: bytes) -> tuple[str, int, str, bool] | None:
        got = parse_head(head, CLIENT_MAX_SIZE)
        assert got == FastHttp.parse_head_py(head), head
        return got

    ok = b"POST /api/v3/order?a=1 HTTP/1.1\r\nHost: h\r\nX-MBX-APIKEY: k1\r\nContent-Length: 12"
    assert parse(ok) == ("a=1", 12, "k1", False)
    assert parse(ok + b"\r\nConnection: close") == ("a=1", 12, "k1", True)
    for bad in (
        ok.replace(b"POST", b"GET"),
        ok.replace(b"HTTP/1.1", b"HTTP/1.0"),
        ok.replace(b"/api/v3/order", b"/api/v3/order/test"),
        ok + b"\r\nContent-Length: 12",
        ok + b"\r\nExpect: 100-continue",
        ok + b"\r\nUpgrade: websocket",
        ok + b"\r\nConnection: Upgrade",
        ok + b"\r\n folded",
        ok.replace(b"12", b"-1"),
        ok.replace(b"Content-Length: 12", b"X: y"),
        ok + b"\r\nX-MBX-APIKEY: k2",
        ok + b"\r\nHost: h2",
        ok.replace(b"Host: h\r\n", b""),
        b"POST /api/v3/order HTTP/1.1\r\nHost: h\r\nX-MBX-APIKEY: \xff\r\nContent-Length: 1",
    ):
        assert parse(bad) is None, bad


def test_fast_http_false_serves_everything_through_aiohttp(
    core: CoreProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    """``fast_http = false``: orders are answered (by aiohttp), none by the fast path."""
    a = ApiProcess(core, tmp_path / "api", tmp_path / "logs", "--fast-http", "false")
    try:
        a.start()
        assert a.ready["config"]["fast_http"] is False
        k = a.make_key(1)
        with _conn(a) as s:
            s.sendall(_post(k.api_key, _body(k, a.secrets[k.api_key], _order(40))))
            ((st, _, body),) = _read(s, 1)
        assert st == 200 and json.loads(body)["clientOrderId"] == "fast40"
        assert scrape(a.ready["metrics"]).get(("bursa_api_fast_requests_total", ()), 0) == 0
    finally:
        a.cleanup()


def test_a_flood_of_pipelined_orders_is_answered_in_order(
    api: ApiProcess,  # noqa: F811
    key1: keys.ApiKey,  # noqa: F811
) -> None:
    """More pipelined requests than the read-ahead bound (reading pauses and resumes):
    every one answered, in order."""
    secret = api.secrets[key1.api_key]
    n = size = 0
    reqs: list[bytes] = []
    while size < 2 * MAX_BUFFERED:
        params = _order(1000 + n, timeInForce="IOC", newOrderRespType="ACK")
        reqs.append(_post(key1.api_key, _body(key1, secret, params)))
        size += len(reqs[-1])
        n += 1
    with _conn(api) as s:
        writer = threading.Thread(target=s.sendall, args=(b"".join(reqs),))
        writer.start()
        got = _read(s, n)
        writer.join()
    assert [g[0] for g in got] == [200] * n
    assert [json.loads(g[2])["clientOrderId"] for g in got] == [f"fast{1000 + i}" for i in range(n)]


class _Transport:
    """Records the flow control calls of a protocol."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def test_read_ahead_and_slow_readers_pause_reading() -> None:
    """Reading stops while MAX_BUFFERED bytes wait or the client does not read its
    answers, and resumes once both are over (one call per change)."""

    async def run() -> list[str]:
        p = FastHttp(None, lambda: asyncio.Protocol(), set(), "s")  # type: ignore[arg-type]
        t = _Transport()
        p.connection_made(t)  # type: ignore[arg-type]
        p.busy = True  # a request is being answered: nothing more is parsed
        p.data_received(b"x" * (MAX_BUFFERED + 1))
        p.data_received(b"y")
        p.pause_writing()
        p.full = False  # as once answered requests drained the buffer
        p._flow()
        p.resume_writing()
        p.connection_lost(None)
        return t.calls

    assert asyncio.run(run()) == ["pause", "resume"]


def test_half_close_after_pipelined_orders(api: ApiProcess, key1: keys.ApiKey) -> None:  # noqa: F811
    """A client that sends its requests and shuts its side down gets every answer,
    then the server closes."""
    secret = api.secrets[key1.api_key]
    reqs = [_post(key1.api_key, _body(key1, secret, _order(50 + i, timeInForce="IOC")))
            for i in range(3)]  # fmt: skip
    with _conn(api) as s:
        s.sendall(b"".join(reqs))
        s.shutdown(socket.SHUT_WR)
        got = _read(s, 3)
        assert [json.loads(g[2])["clientOrderId"] for g in got] == ["fast50", "fast51", "fast52"]
        assert s.recv(10) == b""


def test_a_flood_of_pipelined_refusals_is_answered_in_order(
    api: ApiProcess,  # noqa: F811
    key1: keys.ApiKey,  # noqa: F811
) -> None:
    """Refusals are answered at once, without waiting for the core: thousands of them
    pipelined (more than the interpreter's recursion limit) are all answered, in
    order, and the connection goes on serving orders."""
    secret = api.secrets[key1.api_key]
    bad = [_post(key1.api_key, _body(key1, secret, _order(2000 + i), sig="0" * 64))
           for i in range(3000)]  # fmt: skip
    good = _post(key1.api_key, _body(key1, secret, _order(5000, timeInForce="IOC")))
    with _conn(api) as s:
        writer = threading.Thread(target=s.sendall, args=(b"".join(bad) + good,))
        writer.start()
        got = _read(s, len(bad) + 1)
        writer.join()
    assert [g[0] for g in got[:-1]] == [400] * len(bad)
    assert {json.loads(g[2])["code"] for g in got[:-1]} == {-1022}
    assert got[-1][0] == 200 and json.loads(got[-1][2])["clientOrderId"] == "fast5000"


def test_nothing_after_connection_close_is_done(api: ApiProcess, key1: keys.ApiKey) -> None:  # noqa: F811
    """Requests pipelined after one with ``Connection: close`` are neither answered
    nor entered (the order never reaches the core)."""
    secret = api.secrets[key1.api_key]
    first = _post(key1.api_key, _body(key1, secret, _order(60)), "Connection: close\r\n")
    second = _post(key1.api_key, _body(key1, secret, _order(61)))
    with _conn(api) as s:
        s.sendall(first + second)
        (st, _, body), = _read(s, 1)  # fmt: skip
        assert st == 200 and json.loads(body)["clientOrderId"] == "fast60"
        assert s.recv(10) == b""
    with _conn(api) as s:
        q = {"symbol": "BTCUSDT", "origClientOrderId": "fast61"}
        s.sendall(_get(key1.api_key, secret, q))
        (st, _, body), = _read(s, 1)  # fmt: skip
    assert st == 400 and json.loads(body)["code"] == -2013, body
