"""The core process alone on its trade links, with their transport floors in the same run.

Used by :mod:`bench.core` (``core_*``, ``zmq_echo_*`` and ``stream_echo_*`` keys)
and by ``bench.e2e.core_alone``.  One NEW in flight at a fixed rate, each latency
from the PLANNED send time to the reply (coordinated-omission free), through each
of the core's two trade links: the zmq ``trade`` socket (a ``CoreClient`` DEALER on
loopback TCP) and the stream trade link (a ``StreamTradeClient`` on its unix
socket, :mod:`engine.streamlink`):

- ``zmq_echo``: a bare pyzmq ROUTER in its own process that sends every message
  straight back: the floor of any ZeroMQ request/reply over the same kind of
  link (both libzmq I/O threads, both wake-ups, the client's own recv);
- ``stream_echo``: a bare unix-socket server in its own process answering every
  frame with one 40-byte reply frame: the floor of the stream link;
- ``core_async`` / ``core_stream_async``: a real ``bursa core`` in ``async`` mode
  (journal written, not synced), zmq then stream link, the same process;
- ``core_fsync`` / ``core_stream_fsync``: the same in ``fsync`` mode, with the
  machine's fdatasync p50 (4 KiB appends, same directory) measured right before
  and after it, and the fdatasync p50 of the journal's own pattern at the same pace
  (``core_fdatasync_paced_p50_us``: 160-byte appends, one per ``1 / rate``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.meta import percentiles_ns

REPO = Path(__file__).resolve().parents[1]
# The client sleeps (instead of spinning) when its next send is this far off.
SLEEP_ABOVE_NS = 200_000
PRICE = 1_000
SYMBOL = 1
# Bytes per journal batch of one command: the paced fdatasync probe writes this much.
PACED_BLOCK_BYTES = 160


def echo_server(endpoint: str) -> None:
    """A ROUTER that answers every message at once with one fixed reply record (the
    size of the core's reply to one command), no other work (run in its own process)."""
    import zmq

    from bursa_wire.layout import REPLY_DTYPE

    reply = bytes(REPLY_DTYPE.itemsize)

    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    print(json.dumps({"ready": True, "endpoint": sock.getsockopt_string(zmq.LAST_ENDPOINT)}))
    sys.stdout.flush()
    while True:
        sock.send_multipart([sock.recv_multipart()[0], reply])


def stream_echo_server(path: str) -> None:
    """A unix stream server answering every frame of its one connection at once with
    one fixed 40-byte reply frame (the stream link's floor; run in its own process)."""
    import socket

    from bursa_wire.layout import REPLY_DTYPE
    from engine.wire.streamframe import FrameDecoder, encode_frame

    reply = encode_frame(bytes(REPLY_DTYPE.itemsize))
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(1)
    print(json.dumps({"ready": True, "endpoint": f"unix:{path}"}))
    sys.stdout.flush()
    while True:
        conn, _ = lsock.accept()
        dec = FrameDecoder(1 << 24)
        while data := conn.recv(1 << 16):
            n = len(dec.feed(data))
            if n:
                conn.sendall(reply * n)
        conn.close()


def _start_echo(endpoint: str) -> tuple[subprocess.Popen[bytes], str]:
    flag = "--stream-echo" if endpoint.startswith("unix:") else "--echo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._corealone", flag, endpoint.removeprefix("unix:")],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("echo server did not start")
    return proc, str(json.loads(line)["endpoint"])


def one_in_flight(endpoint: str, frames: list[bytes], rate: int) -> np.ndarray:
    """Send ``frames[k]`` at ``t0 + k / rate`` through a trade link client (zmq or
    stream, :func:`bindings.streamlink.trade_client`) and wait for its reply before
    the next; returns latencies (ns) from each PLANNED send time."""
    from bindings.streamlink import trade_client

    n = len(frames)
    lat = np.zeros(n, dtype=np.int64)
    period = 1_000_000_000 // rate
    with trade_client(endpoint) as cli:
        t0 = time.perf_counter_ns() + 10_000_000
        for k in range(n):
            planned = t0 + k * period
            wait = planned - time.perf_counter_ns()
            if wait > SLEEP_ABOVE_NS:
                time.sleep((wait - SLEEP_ABOVE_NS // 2) / 1e9)
            while time.perf_counter_ns() < planned:
                pass
            cli.send(frames[k])
            cli.recv_replies()
            lat[k] = time.perf_counter_ns() - planned
    return lat


def new_orders(user: int, n: int, first_id: int = 1) -> list[bytes]:
    """``n`` one-lot NEW limit frames of ``user`` alternating sides at one price."""
    from engine.wire import commands

    # Two records built field by field, then repeated and numbered in bulk: a
    # record built per frame costs more than a core turn, and bench._turnloop's
    # instruction counts would include it.
    pair = np.concatenate([commands.new_limit(0, user, SYMBOL, side, PRICE, 1) for side in (1, 2)])
    recs = np.tile(pair, (n + 1) // 2)[:n]
    recs["order_id"] = np.arange(first_id, first_id + n, dtype=np.uint64)
    raw = recs.tobytes()
    size = recs.dtype.itemsize
    return [raw[k * size : (k + 1) * size] for k in range(n)]


def setup_market(ready: dict[str, Any], users: tuple[int, ...]) -> None:
    """Assets 1 and 2, fee tier 0, symbol 1 and funded ``users`` (via admin/fund sockets)."""
    from bindings.client import CoreClient

    with CoreClient(str(ready["admin"])) as adm:
        adm.add_asset(1)
        adm.add_asset(2)
        adm.add_fee_tier(0, 1_000, 2_000)
        adm.add_symbol(SYMBOL, 1, 2)
        for u in users:
            adm.add_user(u)
    with CoreClient(str(ready["fund"])) as fund:
        for u in users:
            fund.deposit(u * 10 + 1, u, 1, 10**15)
            fund.deposit(u * 10 + 2, u, 2, 10**15)


def core_run(
    base: Path, mode: str, rate: int, n: int, warmup: int, trade_endpoint: str = ""
) -> dict[str, np.ndarray]:
    """Latencies of ``n`` NEW (after ``warmup``) through a fresh core in ``mode``, on
    its zmq trade socket (``trade_endpoint`` if given, else loopback TCP) and then on
    its stream trade link: ``{"zmq": ..., "stream": ...}``."""
    from tests.e2e.coreproc import CoreProcess

    (base / "logs").mkdir(parents=True, exist_ok=True)
    extra = ("--trade-endpoint", trade_endpoint) if trade_endpoint else ()
    core = CoreProcess(base / "core", base / "logs", mode, *extra)
    core.start()
    try:
        setup_market(core.ready, (1,))
        frames = new_orders(1, 2 * (warmup + n))
        out: dict[str, np.ndarray] = {}
        for i, link in enumerate(("zmq", "stream")):
            ep = str(core.ready["trade" if link == "zmq" else "trade_stream"])
            k = i * (warmup + n)
            one_in_flight(ep, frames[k : k + warmup], rate)
            out[link] = one_in_flight(ep, frames[k + warmup : k + warmup + n], rate)
        return out
    finally:
        core.cleanup()


def measure(base_dir: str, rate: int, n: int, fdatasync_samples: int) -> dict[str, Any]:
    """Every key of the module docstring (``zmq_echo_*``, ``stream_echo_*``,
    ``core_async_*``, ``core_stream_async_*``, ``core_fsync_*``, ``core_stream_fsync_*``,
    ``core_fdatasync_*``) plus the latency arrays under ``series``."""
    from bench.core import measure_fdatasync

    base = Path(tempfile.mkdtemp(prefix="bench-core-alone-", dir=base_dir))
    # The stream echo's socket in a short directory of its own: a socket path holds
    # 107 bytes, ``base`` (under any --dir) may be longer.
    echo_dir = Path(tempfile.mkdtemp(prefix="bench-echo-"))
    warmup = max(20, n // 10)
    res: dict[str, Any] = {}
    series: dict[str, np.ndarray] = {}
    try:
        for name, ep in (
            ("zmq_echo_rtt", "tcp://127.0.0.1:*"),
            ("stream_echo_rtt", f"unix:{echo_dir / 'echo.sock'}"),
        ):
            echo, endpoint = _start_echo(ep)
            try:
                frames = new_orders(1, warmup + n)
                one_in_flight(endpoint, frames[:warmup], rate)
                series[name] = one_in_flight(endpoint, frames[warmup:], rate)
            finally:
                echo.kill()
                echo.wait()
        both = core_run(base / "async", "async", rate, n, warmup)
        series["core_async_ack"], series["core_stream_async_ack"] = both["zmq"], both["stream"]
        fds = measure_fdatasync(str(base), fdatasync_samples)
        paced = measure_fdatasync(str(base), fdatasync_samples // 2, PACED_BLOCK_BYTES, rate)
        both = core_run(base / "fsync", "fsync", rate, n, warmup)
        series["core_fsync_ack"], series["core_stream_fsync_ack"] = both["zmq"], both["stream"]
        fds += measure_fdatasync(str(base), fdatasync_samples)
        paced += measure_fdatasync(str(base), fdatasync_samples // 2, PACED_BLOCK_BYTES, rate)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(echo_dir, ignore_errors=True)
    for name, lat in series.items():
        p = percentiles_ns(lat)
        for q in ("p50", "p99", "p999"):
            res[f"{name}_{q}_us"] = round(p[f"{q}_ns"] / 1000, 1)
    fd = percentiles_ns(fds)
    res["core_fdatasync_p50_us"] = round(fd["p50_ns"] / 1000, 1)
    res["core_fdatasync_paced_p50_us"] = round(percentiles_ns(paced)["p50_ns"] / 1000, 1)
    res["core_fsync_ack_p50_minus_fdatasync_p50_us"] = round(
        res["core_fsync_ack_p50_us"] - res["core_fdatasync_p50_us"], 1
    )
    res["core_stream_fsync_ack_p50_minus_fdatasync_p50_us"] = round(
        res["core_stream_fsync_ack_p50_us"] - res["core_fdatasync_p50_us"], 1
    )
    res["core_async_ack_p50_over_zmq_echo"] = round(
        res["core_async_ack_p50_us"] / res["zmq_echo_rtt_p50_us"], 2
    )
    res["core_stream_async_ack_p50_over_stream_echo"] = round(
        res["core_stream_async_ack_p50_us"] / res["stream_echo_rtt_p50_us"], 2
    )
    res["core_alone_rate_per_s"] = rate
    res["core_alone_commands"] = n
    res["series"] = series
    return res


def main(argv: list[str] | None = None) -> int:
    """``--echo ENDPOINT``: run the echo server; else measure and print JSON."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench._corealone")
    ap.add_argument("--echo", help=argparse.SUPPRESS)
    ap.add_argument("--stream-echo", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=int, default=200)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    args = ap.parse_args(argv)
    if args.echo:
        echo_server(args.echo)
        return 0
    if args.stream_echo:
        stream_echo_server(args.stream_echo)
        return 0
    res = measure(args.dir, args.rate, args.n, 200)
    res.pop("series")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
