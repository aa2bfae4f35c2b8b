"""The core's per-turn cost in one process, for instruction counts (callgrind).

A ``CoreServer`` (real files, loopback TCP) and a DEALER client in the same
thread: the client sends one NEW, the server runs turns until it applied it, the
client receives the reply; ``--turns`` times after 200 warm-up turns.  Run it
twice under callgrind with different ``--turns`` and divide the difference by the
difference of turns: start-up cancels and what is left is one 1-command round
trip (server turn + client send/recv; ``--separate-threads=yes`` keeps the libzmq
I/O threads apart), repeatable on a loaded machine where timings are not::

    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file=cg.100 \\
        .venv/bin/python -m bench._turnloop --turns 100 --mode async
    valgrind ... --callgrind-out-file=cg.400 .venv/bin/python -m bench._turnloop --turns 400
    # (totals of cg.400-01 - totals of cg.100-01) / 300

``--link stream`` does the same through the core's stream trade link
(:mod:`engine.streamlink`: a blocking unix-socket client, length-prefixed frames;
no libzmq thread is involved on that path, so the main thread's count is the
whole cost, while on ``zmq`` the I/O threads' counts come on top of it).

Without valgrind it prints the mean round trip in µs (one process, no scheduling
between client and server: not a latency figure).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import time

import numpy as np
import zmq

from bench._corealone import new_orders
from engine.server import CoreServer, ServerConfig
from engine.wire import commands
from engine.wire.streamframe import FrameDecoder, encode_frame

WARMUP_TURNS = 200


def _request(
    server: CoreServer, ctx: zmq.Context[zmq.Socket[bytes]], role: str, recs: bytes
) -> None:
    sock = ctx.socket(zmq.DEALER)
    sock.connect(server.endpoints[role])
    sock.send(recs)
    while not sock.poll(0):
        server.turn(10)
    sock.recv()
    sock.close()


class _StreamClient:
    """The smallest blocking client of the stream link (the server runs the turns)."""

    def __init__(self, endpoint: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(endpoint.removeprefix("unix:"))
        self.dec = FrameDecoder(1 << 24)

    def send(self, frame: bytes) -> None:
        self.sock.sendall(encode_frame(frame))

    def recv(self) -> bytes:
        while not (got := self.dec.feed(self.sock.recv(1 << 16))):
            pass
        return got[0]

    def close(self) -> None:
        self.sock.close()


def run(turns: int, mode: str, link: str = "zmq") -> float:
    """``turns`` measured round trips on ``link``; returns their mean in µs."""
    data = tempfile.mkdtemp(prefix="bench-turnloop-")
    local = "tcp://127.0.0.1:*"
    cfg = ServerConfig(
        data_dir=data, mode=mode, metrics="", trade_endpoint=local, fund_endpoint=local,
        admin_endpoint=local, pub_endpoint=local, replay_endpoint=local,
        snapshot_every_cmds=0, snapshot_every_ms=0,
        trade_stream_endpoint=f"unix:{data}/trade.sock" if link == "stream" else "",
    )  # fmt: skip
    server = CoreServer(cfg)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    try:
        setup = [commands.add_asset(1, 0), commands.add_asset(2, 0)]
        setup += [commands.add_fee_tier(0, 1_000, 2_000), commands.add_symbol(1, 1, 2)]
        _request(server, ctx, "admin", np.concatenate([*setup, commands.add_user(1, 0)]).tobytes())
        funds = [commands.deposit(11, 1, 1, 10**15), commands.deposit(12, 1, 2, 10**15)]
        _request(server, ctx, "fund", np.concatenate(funds).tobytes())
        client: zmq.Socket[bytes] | _StreamClient
        if link == "stream":
            client = _StreamClient(server.endpoints["trade_stream"])
        else:
            client = ctx.socket(zmq.DEALER)
            client.connect(server.endpoints["trade"])
        frames = new_orders(1, WARMUP_TURNS + turns)
        t0 = 0
        for k, frame in enumerate(frames):
            if k == WARMUP_TURNS:
                t0 = time.perf_counter_ns()
            client.send(frame)
            while not server.turn(50):
                pass
            client.recv()
        dt = time.perf_counter_ns() - t0
        client.close()
        return dt / turns / 1000
    finally:
        server.shutdown()
        shutil.rmtree(data, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the loop; print the mean round trip."""
    ap = argparse.ArgumentParser(
        prog="python -m bench._turnloop", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--turns", type=int, default=1000)
    ap.add_argument("--mode", choices=("async", "fsync", "none"), default="async")
    ap.add_argument("--link", choices=("zmq", "stream"), default="zmq")
    args = ap.parse_args(argv)
    us = run(args.turns, args.mode, args.link)
    print(f"{args.mode} {args.link}: {us:.1f} us per 1-command round trip (in process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
