"""Binance-compatible API benchmark: REST order latency and throughput, WebSocket depth.

Usage::

    .venv/bin/python -m bench.api --json [--quick]

A real ``bursa core`` (fsync journal: every acknowledged order is on disk) and a
real ``bursa api`` on loopback; BTCUSDT as in the API tests; two funded users.
Orders come in pairs: user 1 rests a LIMIT GTC sell, user 2 takes it with a LIMIT
IOC buy (a fill, FULL response with fills), so the book stays empty however long
the run.  Every order is an HMAC-signed ``POST /api/v3/order`` over keep-alive
HTTP/1.1 connections; an answer means the order was sequenced, journaled
(fdatasync) and matched and its events applied by the API.  The load generator is
:mod:`bench._restload` (raw sockets, requests signed before the clock starts, wrk
style, its loops compiled in :mod:`pyx.restload`; every answer must be 200 and the
order's acknowledgement, :func:`acks_of`): the aiohttp client used before cost more
CPU per request than the API.

- ``rest_order_p50_us`` / ``rest_order_p99_us``: open loop at ``--rate`` (1,000)
  orders/s on ``--open-connections`` (64, as the aiohttp client pool used before)
  keep-alive connections: order k is planned at ``t0 + k / rate`` and written at
  that time on connection ``k % 64``, pipelined (not waiting for earlier answers);
  latency is from the PLANNED send time to the end of the answer
  (coordinated-omission free, HdrHistogram).
  ``rest_ping_p50_us``: the same for ``GET /api/v3/ping`` in the same run (the
  HTTP + client floor).
- ``rest_order_low_rate_p50_us`` / ``_p99_us``: the same at ``--low-rate`` (100)
  orders/s: latency without queueing.
- ``rest_orders_per_s``: 8 connections, each keeping ``--depth`` (1) requests in
  flight, for ``--seconds``; the median of ``--repeats`` runs.
  ``rest_orders_per_s_runs``, ``rest_server_cpu_us_per_order_runs``,
  ``rest_api_rss_mib_runs``, ``rest_api_dir_mib_runs``: each run's rate, the API's
  CPU per order, and after it the API's resident memory and directory size (does
  the API slow down as it ages? ``--repeats 6``).
- ``rest_orders_per_s_async`` (``--async-compare``, on unless ``--quick``): the same
  closed loops on a second core + API whose journal is async (acknowledged once
  written, synced in the background; the gateway's sustained figures use one): the
  share of the 8-connection round trip that is the fsync; ``*_async_runs`` and the
  API's and core's CPU per order there.
- ``rest_orders_per_s_many``: one more such run on ``--many-connections`` (64): the
  process's capacity when latency is not the bound (HTTP/1.1 answers a
  connection's requests in order, one at a time in aiohttp, so 8 connections
  give at most ``8 / latency``).
- ``rest_server_cpu_us_per_order``, ``rest_core_cpu_us_per_order``,
  ``rest_client_cpu_us_per_order``: CPU time per answered order of the API process,
  the core process and the load generator in the median throughput run (Linux
  ``schedstat``); ``*_at_rate`` and ``*_cpu_pct_at_rate``: the same during the open
  loop at ``--rate`` (percent of one core).  Throughput on one API process is
  bounded by ``1e6 / rest_server_cpu_us_per_order`` orders/s.
- ``ws_depth_clients`` / ``ws_depth_msgs_per_s``: part B's
  :func:`bench.api_ws.measure` (depth subscribers fed from the market-data feed).
- ``--client-ids``: every order carries its own random ``newClientOrderId`` (as
  ccxt sends one): the API then commits the order's row before its NEW leaves, an
  extra write a generated id does not need (docs/api.md, "State and recovery").
- ``--callgrind`` (a mode of its own): ``api_instr_per_order_c1`` / ``_c8``, the
  API's instructions per order under callgrind (:func:`callgrind`), repeatable on a
  loaded machine; ``api_instr_per_order_c<N>_<part>`` split by what the event loop
  ran (:data:`CALLGRIND_PARTS`): the per-request parts (``read``, ``idle``, ``links``)
  repeat within ~1 % between runs, ``timers`` (the grouped commit, timeouts) and
  ``tick`` (the 0.5 s ticker task) are per second of wall time, which valgrind
  stretches ~40 times: they swing with the orders a run answers.

Targets (issue #22): p50 <= 2 ms (fsync), >= 10,000 orders/s; >= 100,000 WebSocket
depth messages/s to 1,000 clients.  The client runs on the same 2-core machine as the
core and the API, and takes a share of the CPU the API would otherwise have.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import hmac
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench import _restload as restload
from bench import api_ws
from bench.meta import median_int, percentiles_ns, run_info

TARGET_P50_US = 2000
TARGET_ORDERS_PER_S = 10_000
CONNECTIONS = 8
# Requests prepared (signed) per second of a closed-loop run: the C load generator
# fails a run that uses them all up rather than count a short one, and its
# 64-connection run passed the former 20,000/s (2x the target) once the client's
# own CPU per order fell (pyx.restload).
PREPARED_ORDERS_PER_S = 60_000
ORDER_PATH = "/api/v3/order"


class Client:
    """Pre-signed ``POST /api/v3/order`` requests of one user's HMAC key (raw bytes);
    with ``client_ids`` each carries a random ``newClientOrderId`` as ccxt sends one
    (its broker prefix and 22 random characters), else the API generates them."""

    def __init__(
        self, host: str, port: int, api_key: str, secret: bytes, client_ids: bool = False
    ) -> None:
        self.head = (
            f"POST {ORDER_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nX-MBX-APIKEY: {api_key}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
        ).encode()
        self.secret = secret
        self.client_ids = client_ids

    def body(self, params: dict[str, str], ts_ms: int) -> bytes:
        """The signed form body of ``params`` at ``ts_ms``."""
        if self.client_ids:
            params = {**params, "newClientOrderId": "x-R4BD3S82" + secrets.token_urlsafe(16)[:22]}
        # recvWindow at its maximum: requests are signed before the run starts.
        q = urllib.parse.urlencode({**params, "recvWindow": 60_000, "timestamp": ts_ms}).encode()
        return q + b"&signature=" + hmac.new(self.secret, q, hashlib.sha256).hexdigest().encode()

    def request(self, params: dict[str, str], ts_ms: int) -> bytes:
        """One complete HTTP/1.1 request (keep-alive)."""
        body = self.body(params, ts_ms)
        return self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def pair(k: int) -> tuple[dict[str, str], dict[str, str]]:
    """The k-th maker order and the taker order that fills it.  Sides alternate (user 1
    sells then buys back) so the balances oscillate instead of draining, and prices
    cycle so nothing accumulates in the book."""
    price = f"{100 + k % 50}.00"
    ms, ts = ("SELL", "BUY") if k % 2 == 0 else ("BUY", "SELL")
    maker = {"symbol": "BTCUSDT", "side": ms, "type": "LIMIT", "timeInForce": "GTC",
             "price": price, "quantity": "0.001", "newOrderRespType": "ACK"}  # fmt: skip
    taker = {"symbol": "BTCUSDT", "side": ts, "type": "LIMIT", "timeInForce": "IOC",
             "price": price, "quantity": "0.001", "newOrderRespType": "FULL"}  # fmt: skip
    return maker, taker


def order_requests(clients: tuple[Client, Client], n: int, first: int = 0) -> list[bytes]:
    """``n`` signed requests: maker (user 1), taker (user 2), maker, ... (pairs from
    ``first``), all signed now."""
    ts = time.time_ns() // 1_000_000
    out = []
    for k in range(n):
        maker, taker = pair(first + k // 2)
        out.append(clients[k % 2].request(maker if k % 2 == 0 else taker, ts))
    return out


def acks_of(requests: list[bytes]) -> list[bytes]:
    """What each order request's answer must contain to be its acknowledgement: its
    own ``newClientOrderId`` as the JSON string the API echoes, or, when the API
    generates the id, ``"orderId": `` (a 200 with an order in it)."""
    out = []
    for req in requests:
        i = req.find(b"newClientOrderId=")
        if i < 0:
            out.append(b'"orderId": ')
            continue
        j = req.find(b"&", i)
        out.append(b'"clientOrderId": "' + req[i + 17 : j if j >= 0 else len(req)] + b'"')
    return out


def ping_requests(host: str, port: int, n: int) -> list[bytes]:
    """``n`` ``GET /api/v3/ping`` requests (the HTTP + client floor)."""
    return [f"GET /api/v3/ping HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()] * n


@dataclass
class Phase:
    """One load run with the CPU the API and the core used meanwhile."""

    run: restload.LoadResult
    api_cpu_ns: int
    core_cpu_ns: int

    def per_order_us(self, cpu_ns: int) -> float:
        """CPU µs per answered request."""
        return round(cpu_ns / max(self.run.answered, 1) / 1000, 1)


def phase(pids: tuple[int, int], fn: Callable[[], restload.LoadResult]) -> Phase:
    """Run ``fn`` and measure the CPU of the API (``pids[0]``) and core (``pids[1]``)."""
    gc.collect()
    a0, c0 = restload.process_cpu_ns(pids[0]), restload.process_cpu_ns(pids[1])
    run = fn()
    a1, c1 = restload.process_cpu_ns(pids[0]), restload.process_cpu_ns(pids[1])
    return Phase(run, a1 - a0, c1 - c0)


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` (MiB, ``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def dir_mib(path: Path) -> float:
    """Bytes of the files under ``path`` (MiB): the API's database, WAL and intent file."""
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20, 1)


@dataclass
class Stack:
    """A running core + API pair with its two funded users' clients."""

    host: str
    port: int
    pids: tuple[int, int]  # (API, core)
    clients: tuple[Client, Client]
    api_dir: Path


@contextmanager
def stack(args: argparse.Namespace, mode: str) -> Iterator[Stack]:
    """Start a core (journal ``mode``) and an API on it, the market set up and
    warmed up (connections, caches, the core's first journal writes); stop both and
    remove their files on exit."""
    from tests.api.apiproc import ApiProcess, setup_market
    from tests.e2e.coreproc import CoreProcess

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-", dir=args.dir))
    (tmp / "logs").mkdir()
    # The API reaches the core over its stream trade link, or (``--link zmq``, for
    # comparison) over the zmq trade socket.
    core = CoreProcess(tmp / "core", tmp / "logs", mode, stream=args.link == "stream")
    api = ApiProcess(core, tmp / "api", tmp / "logs", "--orders-per-10s", str(10**9),
                     "--orders-per-day", str(10**12), "--weight-per-min", str(10**12),
                     "--log-level", "WARNING", *args.api_args)  # fmt: skip
    try:
        core.start()
        setup_market(core)
        api.start()
        assert api.proc is not None and core.proc is not None
        host, port = "127.0.0.1", api.port
        a, b = (api.make_key(u) for u in (1, 2))
        ids = args.client_ids
        clients = (Client(host, port, a.api_key, api.secrets[a.api_key], ids),
                   Client(host, port, b.api_key, api.secrets[b.api_key], ids))  # fmt: skip
        reqs = order_requests(clients, 10_064)
        restload.closed_loop(host, port, reqs, 0.5, args.connections, acks_of(reqs))
        yield Stack(host, port, (api.proc.pid, core.proc.pid), clients, tmp / "api")
    finally:
        api.cleanup()
        core.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def closed_runs(
    args: argparse.Namespace, st: Stack
) -> tuple[list[Phase], list[tuple[float, float]]]:
    """``--repeats`` closed loops of ``--seconds`` on ``--connections``; each run's
    phase and, after it, the API's resident memory and directory size (MiB), to see
    whether it slows down as it ages (``--repeats 6``)."""
    runs: list[Phase] = []
    aging: list[tuple[float, float]] = []
    for i in range(args.repeats):
        reqs = order_requests(
            st.clients, int(PREPARED_ORDERS_PER_S * args.seconds) + 64, (3 + i) * 10**6
        )
        runs.append(phase(st.pids, partial(restload.closed_loop, st.host, st.port, reqs,
                                           args.seconds, args.connections, acks_of(reqs),
                                           args.depth)))  # fmt: skip
        aging.append((rss_mib(st.pids[0]), dir_mib(st.api_dir)))
    return runs, aging


def rate_of(p: Phase) -> int:
    """Answered orders per second of one run."""
    return round(p.run.answered / p.run.seconds)


def median_run(runs: list[Phase]) -> Phase:
    """The run whose rate is the median."""
    return sorted(runs, key=rate_of)[len(runs) // 2]


def measure_async(args: argparse.Namespace) -> dict[str, Any]:
    """The closed loops of :func:`measure` again on a core with an async journal
    (acknowledged once written, synced in the background), as the gateway's
    sustained figures run: how much of the 8-connection round trip is the fsync."""
    with stack(args, "async") as st:
        runs, _ = closed_runs(args, st)
    best = median_run(runs)
    return {
        "rest_orders_per_s_async": median_int([rate_of(p) for p in runs]),
        "rest_orders_per_s_async_runs": [rate_of(p) for p in runs],
        "rest_server_cpu_us_per_order_async": best.per_order_us(best.api_cpu_ns),
        "rest_core_cpu_us_per_order_async": best.per_order_us(best.core_cpu_ns),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start core + API, run the loads, stop them; the result dict."""
    conns, ol = args.connections, args.open_connections
    with stack(args, args.mode) as st:
        host, port, pids, clients = st.host, st.port, st.pids, st.clients
        reqs = ping_requests(host, port, args.orders)
        ping = phase(pids, partial(restload.open_loop, host, port, reqs, args.rate, ol,
                                   [b"{}"] * len(reqs)))  # fmt: skip
        reqs = order_requests(clients, args.orders, 10**6)
        lat = phase(pids, partial(restload.open_loop, host, port, reqs, args.rate, ol,
                                  acks_of(reqs)))  # fmt: skip
        reqs = order_requests(clients, max(args.orders // 10, 100), 2 * 10**6)
        low = phase(pids, partial(restload.open_loop, host, port, reqs, args.low_rate, ol,
                                  acks_of(reqs)))  # fmt: skip
        runs, aging = closed_runs(args, st)
        # The same with many connections: the process's CPU-bound capacity (8
        # connections answered one request at a time are bound by latency instead).
        reqs = order_requests(
            clients, int(PREPARED_ORDERS_PER_S * args.seconds) + 64 * args.depth, 9 * 10**6
        )
        many = phase(pids, partial(restload.closed_loop, host, port, reqs, args.seconds,
                                   args.many_connections, acks_of(reqs), args.depth))  # fmt: skip
    pl = percentiles_ns(lat.run.latencies_ns)
    pp, plow = percentiles_ns(ping.run.latencies_ns), percentiles_ns(low.run.latencies_ns)
    per_s = [rate_of(p) for p in runs]
    best = median_run(runs)
    us = lambda ns: round(ns / 1000, 1)  # noqa: E731
    result: dict[str, Any] = {
        "bench": "api",
        "mode": args.mode,
        "rest_trade_link": args.link,
        "rest_client_order_ids": args.client_ids,
        "rest_order_p50_us": us(pl["p50_ns"]),
        "rest_order_p99_us": us(pl["p99_ns"]),
        "rest_order_p999_us": us(pl["p999_ns"]),
        "rest_order_max_us": us(pl["max_ns"]),
        "rest_order_rate_per_s": args.rate,
        "rest_order_count": args.orders,
        # The same at a rate far below capacity: latency without queueing.
        "rest_order_low_rate_per_s": args.low_rate,
        "rest_order_low_rate_p50_us": us(plow["p50_ns"]),
        "rest_order_low_rate_p99_us": us(plow["p99_ns"]),
        "rest_ping_p50_us": us(pp["p50_ns"]),
        "rest_ping_p99_us": us(pp["p99_ns"]),
        "rest_orders_per_s": median_int(per_s),
        "rest_orders_per_s_runs": per_s,
        "rest_server_cpu_us_per_order_runs": [p.per_order_us(p.api_cpu_ns) for p in runs],
        "rest_api_rss_mib_runs": [a for a, _ in aging],
        "rest_api_dir_mib_runs": [d for _, d in aging],
        "rest_connections": conns,
        "rest_open_loop_connections": ol,
        "rest_many_connections": args.many_connections,
        "rest_orders_per_s_many": round(many.run.answered / many.run.seconds),
        "rest_server_cpu_us_per_order_many": many.per_order_us(many.api_cpu_ns),
        "rest_pipeline_depth": args.depth,
        # CPU per answered order (µs), from the run whose rate is the median: the API
        # process, the core process and this load generator.
        "rest_server_cpu_us_per_order": best.per_order_us(best.api_cpu_ns),
        "rest_core_cpu_us_per_order": best.per_order_us(best.core_cpu_ns),
        "rest_client_cpu_us_per_order": best.per_order_us(round(best.run.client_cpu_s * 1e9)),
        # The same during the open loop at --rate, and the CPU share (% of one core).
        "rest_server_cpu_us_per_order_at_rate": lat.per_order_us(lat.api_cpu_ns),
        "rest_client_cpu_us_per_order_at_rate": lat.per_order_us(round(lat.run.client_cpu_s * 1e9)),
        "rest_server_cpu_pct_at_rate": round(100 * lat.api_cpu_ns / 1e9 / lat.run.seconds, 1),
        "rest_client_cpu_pct_at_rate": round(100 * lat.run.client_cpu_s / lat.run.seconds, 1),
        "rest_server_cpu_us_per_ping": ping.per_order_us(ping.api_cpu_ns),
        "target_rest_order_p50_us": TARGET_P50_US,
        "target_rest_orders_per_s": TARGET_ORDERS_PER_S,
        "quick": args.quick,
        "loadavg_1m": round(os.getloadavg()[0], 2),  # other work on the machine meanwhile
        **run_info(0),
    }
    if args.async_compare and args.mode != "async":
        result.update(measure_async(args))
    if not args.rest_only:
        result.update(api_ws.measure(args.quick))
    result["headline"] = ["rest_order_p50_us", "rest_order_p99_us", "rest_orders_per_s",
                          "ws_depth_clients", "ws_depth_msgs_per_s"]  # fmt: skip
    result["durability"] = durability_of(result, args.mode)
    return result


def durability_of(result: dict[str, Any], mode: str) -> dict[str, str]:
    """The durability mode of each figure, for bench.report: every REST figure runs
    against a core with journal mode ``mode`` (the ``*_async*`` ones against an async
    core, :func:`measure_async`); the WebSocket depth feed reads the market-data
    process and involves no journal."""
    figures = (k for k in result if k.startswith(("rest_", "ws_")))
    return {
        k: "none" if k.startswith("ws_") else "async" if "_async" in k else mode for k in figures
    }


def callgrind(args: argparse.Namespace) -> dict[str, Any]:
    """Instructions the API process executes per order (callgrind: repeatable on a
    loaded machine).  The API runs under ``valgrind --tool=callgrind
    --instr-atstart=no``; after a warm-up, instrumentation is switched on
    (``callgrind_control -i on``) for a closed loop of ``--seconds`` on each of
    ``--callgrind-connections`` in turn (order pairs as in :func:`measure`, one
    request in flight per connection) and the instructions of each loop are divided
    by the orders it answered."""
    import subprocess

    from tests.api.apiproc import ApiProcess, setup_market
    from tests.e2e.coreproc import CoreProcess

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-cg-", dir=args.dir))
    (tmp / "logs").mkdir()
    out = tmp / "callgrind.out"
    core = CoreProcess(tmp / "core", tmp / "logs", args.mode)
    api = ApiProcess(core, tmp / "api", tmp / "logs", "--orders-per-10s", str(10**9),
                     "--orders-per-day", str(10**12), "--weight-per-min", str(10**12),
                     "--log-level", "WARNING", *args.api_args)  # fmt: skip
    api.launcher = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                    f"--callgrind-out-file={out}.%p"]  # fmt: skip
    api.ready_timeout_s = 900.0
    result: dict[str, Any] = {"bench": "api", "mode": args.mode, "callgrind_seconds": args.seconds,
                              "rest_client_order_ids": args.client_ids}  # fmt: skip
    try:
        core.start()
        setup_market(core)
        api.start()
        assert api.proc is not None
        pid = str(api.proc.pid)
        host, port = "127.0.0.1", api.port
        keys = [api.make_key(u) for u in (1, 2)]
        clients = tuple(Client(host, port, k.api_key, api.secrets[k.api_key], args.client_ids)
                        for k in keys)  # fmt: skip
        assert len(clients) == 2
        reqs = order_requests(clients, 20_000)
        restload.closed_loop(host, port, reqs, 5.0, 2, acks_of(reqs))
        for i, conns in enumerate(args.callgrind_connections):
            reqs = order_requests(clients, 20_000, (1 + i) * 10**6)
            acks = acks_of(reqs)
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-i", "on", pid], check=True,
                           capture_output=True)  # fmt: skip
            run = restload.closed_loop(host, port, reqs, args.seconds, conns, acks)
            subprocess.run(["callgrind_control", "-i", "off", pid], check=True,
                           capture_output=True)  # fmt: skip
            subprocess.run(["callgrind_control", "-d", f"c{conns}", pid], check=True,
                           capture_output=True)  # fmt: skip
            total = _callgrind_total(tmp, f"c{conns}")
            result[f"api_instr_per_order_c{conns}"] = round(total / max(run.answered, 1))
            result[f"callgrind_orders_c{conns}"] = run.answered
            for part, n in _callgrind_parts(tmp, f"c{conns}").items():
                result[f"api_instr_per_order_c{conns}_{part}"] = round(n / max(run.answered, 1))
    finally:
        api.cleanup()
        core.cleanup()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            result["callgrind_dir"] = str(tmp)
    return result


# What the event loop ran, by the inclusive count of the C function that runs it
# (``callgrind_annotate --inclusive=yes``): a connection's read (``FastHttp``: head,
# parameters, signature, validation, the NEW queued), the loop's callbacks
# (``CoreLink.flush``, the answers), the core links' readers (replies, events, the
# follower), timers (the grouped commit, expiry, keep-alive) and asyncio task steps
# (the ticker).
CALLGRIND_PARTS = {
    "read": "uv__read",
    "idle": "uv__run_idle",
    "links": "__pyx_f_6uvloop_4loop___on_uvpoll_event",
    "timers": "uv__run_timers",
    "tick": "task_step",
}


def _callgrind_parts(tmp: Path, tag: str) -> dict[str, int]:
    """The dump ``tag``'s instructions by :data:`CALLGRIND_PARTS` (absent parts 0)."""
    import re
    import subprocess

    path = _callgrind_dump(tmp, tag)
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(path)], check=True,
                          capture_output=True, text=True).stdout  # fmt: skip
    out = {}
    for part, fn in CALLGRIND_PARTS.items():
        # The function itself, not a recursive instance (``fn'2``).
        m = re.search(rf"^\s*([\d,]+) .*:{re.escape(fn)} \[", text, re.MULTILINE)
        out[part] = int(m.group(1).replace(",", "")) if m else 0
    return out


def _callgrind_dump(tmp: Path, tag: str) -> Path:
    """The dump file named ``tag`` in ``tmp``."""
    for p in sorted(tmp.glob("callgrind.out.*")):
        if f"\ndesc: Trigger: dump {tag}\n" in p.read_text(errors="replace"):
            return p
    raise RuntimeError(f"no callgrind dump {tag!r} in {tmp}")


def _callgrind_total(tmp: Path, tag: str) -> int:
    """The instruction total of the dump named ``tag`` in ``tmp``."""
    for line in _callgrind_dump(tmp, tag).read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"callgrind dump {tag!r} in {tmp} has no totals")


def report(r: dict[str, Any]) -> str:
    """Human-readable summary."""
    return "\n".join([
        f"api benchmark (core journal {r['mode']}) on {r['cpu']}",
        f"  REST order, open loop {r['rest_order_rate_per_s']:,}/s: p50 {r['rest_order_p50_us']}"
        f" us, p99 {r['rest_order_p99_us']} us (ping p50 {r['rest_ping_p50_us']} us)",
        f"  REST order, open loop {r['rest_order_low_rate_per_s']:,}/s: p50"
        f" {r['rest_order_low_rate_p50_us']} us, p99 {r['rest_order_low_rate_p99_us']} us",
        f"  REST orders, {r['rest_connections']} connections: {r['rest_orders_per_s']:,}/s"
        f" ({r['rest_many_connections']} connections: {r['rest_orders_per_s_many']:,}/s);"
        f" CPU per order: API {r['rest_server_cpu_us_per_order']} us, core"
        f" {r['rest_core_cpu_us_per_order']} us, client {r['rest_client_cpu_us_per_order']} us",
        f"  REST orders, {r['rest_connections']} connections, async core:"
        f" {r.get('rest_orders_per_s_async', 'not run')}/s",
        f"  WebSocket depth: {r.get('ws_depth_clients')} clients,"
        f" {r.get('ws_depth_msgs_per_s')} msgs/s, lag p50 {r.get('ws_depth_lag_p50_ms')} ms"
        f" p99 {r.get('ws_depth_lag_p99_ms')} ms, server"
        f" {r.get('ws_depth_conditions', {}).get('server_cpu_us_per_msg')} us CPU/msg",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a summary (unless ``--json``) and the JSON line."""
    ap = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--quick", action="store_true", help="short runs (CI smoke)")
    ap.add_argument("--rate", type=int, default=1000, help="open-loop orders/s")
    ap.add_argument("--orders", type=int, default=0, help="open-loop orders (0: by mode)")
    ap.add_argument("--low-rate", type=int, default=100, help="second open-loop run, orders/s")
    ap.add_argument("--seconds", type=float, default=0, help="closed-loop run length")
    ap.add_argument("--repeats", type=int, default=0)
    ap.add_argument("--connections", type=int, default=CONNECTIONS, help="keep-alive connections")
    ap.add_argument("--many-connections", type=int, default=64, help="capacity run connections")
    ap.add_argument("--open-connections", type=int, default=64, help="open-loop connections")
    ap.add_argument(
        "--depth",
        type=int,
        default=1,
        help="closed loop: requests in flight per connection (pipelined)",
    )
    ap.add_argument("--rest-only", action="store_true", help="skip the WebSocket part")
    ap.add_argument(
        "--async-compare",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the closed loops again on an async core (default: on unless --quick)",
    )
    ap.add_argument(
        "--client-ids",
        action="store_true",
        help="orders carry their own newClientOrderId (as ccxt's); default: generated",
    )
    ap.add_argument(
        "--link", choices=("stream", "zmq"), default="stream",
        help="the API's link to the core: its stream trade link or its zmq trade socket",
    )  # fmt: skip
    ap.add_argument(
        "--api-arg",
        dest="api_args",
        action="append",
        default=[],
        help="extra `bursa api` argument (repeatable; experiments)",
    )
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument(
        "--callgrind",
        action="store_true",
        help="only the API's instructions per order under valgrind (slow, repeatable)",
    )
    ap.add_argument(
        "--callgrind-connections",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 8],
        help="with --callgrind: connection counts measured in turn (e.g. 1,8)",
    )
    ap.add_argument("--keep", action="store_true", help="with --callgrind: keep the dumps")
    ap.add_argument(
        "--mode",
        default="fsync",
        choices=("fsync", "async", "none"),
        help="the core's journal durability (the targets are for fsync)",
    )
    args = ap.parse_args(argv)
    args.orders = args.orders or (2_000 if args.quick else 20_000)
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.async_compare is None:
        args.async_compare = not args.quick
    if (
        min(
            args.rate,
            args.low_rate,
            args.orders,
            args.repeats,
            args.connections,
            args.depth,
            args.many_connections,
            args.open_connections,
        )
        < 1
        or args.seconds <= 0
    ):
        ap.error("rates, counts and durations must be positive")
    if args.callgrind:
        print(json.dumps(callgrind(args)))
        return 0
    result = measure(args)
    if not args.json:
        print(report(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
