"""Binance-compatible API benchmark: REST order latency and throughput, WebSocket depth.

Usage::

    .venv/bin/python -m bench.api --json [--quick]

A real ``bursa core`` (fsync journal: every acknowledged order is on disk) and a
real ``bursa api`` on loopback; BTCUSDT as in the API tests; two funded users.
Orders come in pairs: user 1 rests a LIMIT GTC sell, user 2 takes it with a LIMIT
IOC buy (a fill, FULL response with fills), so the book stays empty however long
the run.  Every order is an HMAC-signed ``POST /api/v3/order`` over keep-alive
HTTP/1.1 connections (aiohttp client); an answer means the order was sequenced,
journaled (fdatasync) and matched and its events applied by the API.

- ``rest_order_p50_us`` / ``rest_order_p99_us``: open loop at ``--rate`` (1,000)
  orders/s: order k is planned at ``t0 + k / rate`` and sent at that time on a pool
  of keep-alive connections; latency is from the PLANNED send time to the end of
  the answer (coordinated-omission free, HdrHistogram).  ``rest_ping_p50_us``: the
  same for ``GET /api/v3/ping`` in the same run (the HTTP + client floor).
- ``rest_order_low_rate_p50_us`` / ``_p99_us``: the same at ``--low-rate`` (100)
  orders/s, below the API's capacity: latency without queueing.
- ``rest_orders_per_s``: 8 connections, each sending its next order as soon as the
  previous one is answered, for ``--seconds``; the median of ``--repeats`` runs.
- ``ws_depth_clients`` / ``ws_depth_msgs_per_s``: part B's
  :func:`bench.api_ws.measure` (depth subscribers fed from the market-data feed).

Targets (issue #22): p50 <= 2 ms (fsync), >= 10,000 orders/s; >= 100,000 WebSocket
depth messages/s to 1,000 clients.  The client runs on the same 2-core machine as the
core and the API, and takes a share of the CPU the API would otherwise have.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import hmac
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp

from bench import api_ws
from bench.meta import median_int, percentiles_ns, run_info

TARGET_P50_US = 2000
TARGET_ORDERS_PER_S = 10_000
CONNECTIONS = 8
ORDER_PATH = "/api/v3/order"


class Client:
    """Signed order requests of one user's HMAC key over a shared aiohttp session."""

    def __init__(self, base: str, api_key: str, secret: bytes) -> None:
        self.base = base
        self.headers = {
            "X-MBX-APIKEY": api_key,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        self.secret = secret

    def body(self, params: dict[str, str]) -> str:
        """The signed form body of ``params`` (timestamp now)."""
        # recvWindow at its maximum: above capacity, requests wait in the client's pool
        # after they are signed (that wait is part of the measured latency).
        q = urllib.parse.urlencode(
            {**params, "recvWindow": 60_000, "timestamp": time.time_ns() // 1_000_000}
        )
        return q + "&signature=" + hmac.new(self.secret, q.encode(), hashlib.sha256).hexdigest()

    async def order(self, session: aiohttp.ClientSession, params: dict[str, str]) -> None:
        """POST one order; raise unless it was accepted."""
        async with session.post(self.base + ORDER_PATH, data=self.body(params),
                                headers=self.headers) as r:  # fmt: skip
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"order refused: {r.status} {body[:200]!r}")


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


async def open_loop(
    base: str, clients: tuple[Client, Client], n: int, rate: int, ping: bool
) -> list[int]:
    """Latencies (ns, from the planned send time) of ``n`` requests at ``rate``/s."""
    lat = [0] * n
    conn = aiohttp.TCPConnector(limit=64, force_close=False)
    async with aiohttp.ClientSession(connector=conn) as s:
        await s.get(base + "/api/v3/ping")  # open a connection before the clock starts

        async def one(k: int, planned: int) -> None:
            if ping:
                async with s.get(base + "/api/v3/ping") as r:
                    await r.read()
            else:
                maker, taker = pair(k // 2)
                await clients[k % 2].order(s, maker if k % 2 == 0 else taker)
            lat[k] = time.perf_counter_ns() - planned

        t0 = time.perf_counter_ns() + 20_000_000
        tasks = []
        for k in range(n):
            planned = t0 + k * 1_000_000_000 // rate
            delay = planned - time.perf_counter_ns()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            tasks.append(asyncio.create_task(one(k, planned)))
        await asyncio.gather(*tasks)
    return lat


async def closed_loop(base: str, clients: tuple[Client, Client], seconds: float) -> int:
    """Orders answered by ``CONNECTIONS`` connections sending back to back."""
    done = 0
    conn = aiohttp.TCPConnector(limit=CONNECTIONS, force_close=False)
    async with aiohttp.ClientSession(connector=conn) as s:
        end = time.monotonic() + seconds

        async def worker(w: int) -> None:
            nonlocal done
            k = w
            while time.monotonic() < end:
                maker, taker = pair(k)
                await clients[0].order(s, maker)
                await clients[1].order(s, taker)
                done += 2
                k += CONNECTIONS

        await asyncio.gather(*(worker(w) for w in range(CONNECTIONS)))
    return done


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start core + API, run the loads, stop them; the result dict."""
    from tests.api.apiproc import ApiProcess, setup_market
    from tests.e2e.coreproc import CoreProcess

    tmp = Path(tempfile.mkdtemp(prefix="bench-api-", dir=args.dir))
    (tmp / "logs").mkdir()
    core = CoreProcess(tmp / "core", tmp / "logs", args.mode)
    api = ApiProcess(core, tmp / "api", tmp / "logs", "--orders-per-10s", str(10**9),
                     "--orders-per-day", str(10**12), "--weight-per-min", str(10**12),
                     "--log-level", "WARNING")  # fmt: skip
    try:
        core.start()
        setup_market(core)
        api.start()
        keys = [api.make_key(u) for u in (1, 2)]
        clients = (Client(api.url, keys[0].api_key, api.secrets[keys[0].api_key]),
                   Client(api.url, keys[1].api_key, api.secrets[keys[1].api_key]))  # fmt: skip
        gc.collect()
        ping = asyncio.run(open_loop(api.url, clients, args.orders, args.rate, ping=True))
        lat = asyncio.run(open_loop(api.url, clients, args.orders, args.rate, ping=False))
        low_n = max(args.orders // 10, 100)
        low = asyncio.run(open_loop(api.url, clients, low_n, args.low_rate, ping=False))
        runs = [asyncio.run(closed_loop(api.url, clients, args.seconds))
                for _ in range(args.repeats)]  # fmt: skip
    finally:
        api.cleanup()
        core.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    pl, pp, plow = percentiles_ns(lat), percentiles_ns(ping), percentiles_ns(low)
    per_s = [round(n / args.seconds) for n in runs]
    result: dict[str, Any] = {
        "bench": "api",
        "mode": args.mode,
        "rest_order_p50_us": round(pl["p50_ns"] / 1000, 1),
        "rest_order_p99_us": round(pl["p99_ns"] / 1000, 1),
        "rest_order_p999_us": round(pl["p999_ns"] / 1000, 1),
        "rest_order_max_us": round(pl["max_ns"] / 1000, 1),
        "rest_order_rate_per_s": args.rate,
        "rest_order_count": args.orders,
        # The same at a rate the API sustains on a loaded machine: its latency without
        # the queueing of an offered rate above capacity.
        "rest_order_low_rate_per_s": args.low_rate,
        "rest_order_low_rate_p50_us": round(plow["p50_ns"] / 1000, 1),
        "rest_order_low_rate_p99_us": round(plow["p99_ns"] / 1000, 1),
        "rest_ping_p50_us": round(pp["p50_ns"] / 1000, 1),
        "rest_ping_p99_us": round(pp["p99_ns"] / 1000, 1),
        "rest_orders_per_s": median_int(per_s),
        "rest_orders_per_s_runs": per_s,
        "rest_connections": CONNECTIONS,
        "target_rest_order_p50_us": TARGET_P50_US,
        "target_rest_orders_per_s": TARGET_ORDERS_PER_S,
        "quick": args.quick,
        "loadavg_1m": round(os.getloadavg()[0], 2),  # other work on the machine meanwhile
        **run_info(0),
    }
    result.update(api_ws.measure(args.quick))
    result["headline"] = ["rest_order_p50_us", "rest_order_p99_us", "rest_orders_per_s",
                          "ws_depth_clients", "ws_depth_msgs_per_s"]  # fmt: skip
    return result


def report(r: dict[str, Any]) -> str:
    """Human-readable summary."""
    return "\n".join([
        f"api benchmark (core journal {r['mode']}) on {r['cpu']}",
        f"  REST order, open loop {r['rest_order_rate_per_s']:,}/s: p50 {r['rest_order_p50_us']}"
        f" us, p99 {r['rest_order_p99_us']} us (ping p50 {r['rest_ping_p50_us']} us)",
        f"  REST order, open loop {r['rest_order_low_rate_per_s']:,}/s: p50"
        f" {r['rest_order_low_rate_p50_us']} us, p99 {r['rest_order_low_rate_p99_us']} us",
        f"  REST orders, {r['rest_connections']} connections: {r['rest_orders_per_s']:,}/s",
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
    ap.add_argument("--dir", default=tempfile.gettempdir())
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
    if min(args.rate, args.low_rate, args.orders, args.repeats) < 1 or args.seconds <= 0:
        ap.error("rates, counts and durations must be positive")
    result = measure(args)
    if not args.json:
        print(report(result))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
