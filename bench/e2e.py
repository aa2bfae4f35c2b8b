"""End-to-end order-entry latency: client -> gateway -> core -> events -> gateway -> client.

Usage::

    .venv/bin/python -m bench.e2e --json [--quick]
    .venv/bin/python -m bench.e2e --sustained-repeat 8 [--sustained-s 3]  # aging probe

Setup: a real ``bursa core`` and a real ``bursa gateway`` (loopback TCP), one
symbol, funded users, API keys.  The gateway reaches the core through its stream
trade link (``trade_link``: ``stream``, :mod:`engine.streamlink`) and reads its events
from the event stream link, as ``bursa run`` wires it.  Orders alternate BUY/SELL at
one price for one user with STP off, so they trade with each other and the book
stays tiny.

- ``echo_rtt_*``: a raw asyncio TCP echo server (its own process, the same kind
  of socket and loop as the gateway) answering 64-byte frames, one in flight at
  1,000/s: the floor any TCP order entry pays.
- ``async_ack_*`` (core mode ``async``, one order in flight at 1,000/s) and
  ``rate_<r>_*`` (open loop at r orders/s): latency from the order's PLANNED send
  time (t0 + k / rate) to the ACCEPTED execution report, HdrHistogram
  (coordinated-omission free: a stall delays every order planned behind it).
- The echo and the one-in-flight acks are measured INTERLEAVED (:func:`interleaved`):
  alternating blocks of :data:`INTERLEAVE_BLOCK` echoes and
  :data:`INTERLEAVE_BLOCK` orders, both at 1,000/s, on one echo connection and one
  session, until each has its full count; ``echo_rtt_*``, ``async_ack_*`` and the
  ratios ``async_ack_p50_over_echo`` / ``async_ack_p99_over_echo`` come from these
  same blocks.  Measured once, before everything else (as before 2026-12), the echo
  saw other machine conditions than the acks a few seconds later: on the shared
  2-vCPU machine its p50 moved 28.9 / 55.6 / 119.6 us between three full runs, and
  the ratio with it.
- ``fsync_ack_*``: the same with the core in ``fsync`` mode (journal fdatasync
  before the events are published), one order in flight at 200/s;
  ``fdatasync_p50_us`` is measured in the same run, in the same directory (4 KiB
  appends synced back to back), and so is ``fdatasync_paced_p50_us``: the journal's
  own pattern, one 160-byte append synced per 1/200 s with the disk idle between
  (``bench.core.measure_fdatasync`` with a rate).  A virtual disk may answer a lone sync after
  an idle gap several times slower than back-to-back syncs: the ``*_minus_paced_*``
  keys compare the one-in-flight acks with the sync they actually wait for.
- ``core_fsync_ack_*``: the core alone, same fsync-mode core process, one NEW in
  flight at 200/s from a client of its stream trade link (no gateway): planned send
  to the core's reply; ``core_fsync_ack_p50_minus_fdatasync_p50_us`` is what the core
  adds beyond the sync (the gateway's share is the rest of ``fsync_ack_p50_us``).
- ``zmq_link_async_ack_*``: the comparison, in the same run on the same core: a
  second gateway on the core's zmq trade and PUB sockets (the links before the stream
  links), one order in flight at 1,000/s (fewer orders); ``zmq_link_async_ack_p50_over_echo``.
- ``sustained_orders_per_s``: 4 sessions (4 keys) pushing orders as fast as the
  gateway acknowledges them (a window of outstanding orders per session), core
  mode ``async``: acknowledged orders per second, the median of ``SUSTAINED_RUNS``
  runs of 3 s (each drained before the next; every run in
  ``sustained_orders_per_s_runs``: one run alone can be lucky on a shared machine).
- ``gateway_cpu_us_per_order``: the gateway process's CPU time (user + system,
  /proc) during the sustained run divided by the orders it took in (each with its
  events and reports): the cost figure that stays comparable on a loaded machine,
  where the throughput mostly measures how much CPU the gateway was given.
  ``core_cpu_us_per_order`` and ``client_cpu_us_per_order`` (this process: the load
  generator) are the same for the other two processes of the run, so a run shows
  which of the three is the bottleneck.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._corealone import PACED_BLOCK_BYTES
from bench.core import measure_fdatasync
from bench.meta import latency_series, percentiles_ns, run_info
from bindings.gateway_client import login_frame, order_frame
from bursa_wire.gw_layout import BY_NAME, SEQUENCED
from gateway import keys
from gateway.wire import codec
from pyx.gwload import AckScanner
from tests.e2e.coreproc import REPO, CoreProcess
from tests.gateway.gwproc import GatewayProcess, make_key, setup_market

TARGET_ACK_P50_OVER_ECHO = 3.0
TARGET_ACK_P99_OVER_ECHO = 5.0
TARGET_FSYNC_MINUS_FDATASYNC_US = 100.0
TARGET_SUSTAINED = 300_000
SUSTAINED_RUNS = 3  # sustained runs whose median is reported
DRAIN_S = 2.0  # at most this long waiting for a sustained run's last acks
RATES = (1_000, 10_000, 50_000, 100_000)
# One ENTER_ORDER frame: length, type, message code, then the fields (the layout's).
ORDER_FRAME_DTYPE = np.dtype(
    [("length", "<u2"), ("ftype", "u1"), ("code", "u1")]
    + [(f.name, f.code) for f in BY_NAME["ENTER_ORDER"].fields]
)
ORDER_FRAME_LEN = ORDER_FRAME_DTYPE.itemsize
SEQ_TYPE = SEQUENCED[0]
ACCEPTED_CODE = BY_NAME["ACCEPTED"].code[0]
FSYNC_RATE = 200  # one order in flight in fsync mode, orders/s (and the paced sync probe's pace)
PRICE = 1_000
CALLGRIND_ORDERS = (500, 2_500)  # orders of the two runs whose difference is measured
CALLGRIND_BURST = 100
# Echoes, then orders, per block of the interleaved one-in-flight measurement (100 ms
# each at 1,000/s: short against the machine's load swings, long against a block's
# 10 ms start).
INTERLEAVE_BLOCK = 100
GW_FLAGS = (
    "--max-msgs-per-s", "10000000", "--max-orders-per-s", "10000000",
    "--max-user-orders-per-s", "10000000", "--max-open-orders", "10000000",
    "--max-user-open-orders", "10000000", "--flood-factor", "10",
    "--max-out-buffer", "67108864", "--socket-sndbuf", "4194304",
    "--heartbeat-ms", "5000", "--log-level", "WARNING",
)  # fmt: skip


def _us(ns: int) -> float:
    return round(ns / 1000, 1)


# ------------------------------------------------------------------ echo


def echo_server() -> None:
    """Serve TCP echo on a free loopback port (asyncio Protocol, like the gateway)."""
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.t = transport
            sock = transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def data_received(self, data: bytes) -> None:
            self.t.write(data)

    async def run() -> None:
        srv = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
        print(json.dumps({"port": srv.sockets[0].getsockname()[1]}), flush=True)
        await asyncio.Future()

    asyncio.run(run())


def echo_connect(port: int) -> socket.socket:
    """A connection to the echo server (TCP_NODELAY, as the order sessions)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def echo_block(s: socket.socket, n: int, rate: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    """``n`` open-loop echoes of 64-byte frames on ``s`` at ``rate``/s; the latency of
    each from its planned send to the echo (ns)."""
    msg = b"\x3e\x00" + b"x" * 62
    period = 1_000_000_000 // rate
    lat = np.zeros(n, dtype=np.int64)
    t0 = time.perf_counter_ns() + 10_000_000
    buf = 0
    for k in range(n):
        planned = t0 + k * period
        while time.perf_counter_ns() < planned:
            pass
        s.sendall(msg)
        buf = 0
        while buf < len(msg):
            buf += len(s.recv(65536))
        lat[k] = time.perf_counter_ns() - planned
    return lat


def echo_rtt(port: int, n: int, rate: int) -> dict[str, Any]:
    """Open-loop echo of 64-byte frames; latency from planned send to the echo."""
    s = echo_connect(port)
    try:
        lat = echo_block(s, n, rate)
    finally:
        s.close()
    return {**percentiles_ns(lat), "latencies": lat}


def interleaved(
    echo: socket.socket, sess: Session, n: int, rate: int, block: int = INTERLEAVE_BLOCK
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The echo baseline and the one-in-flight acks measured in alternating blocks
    (``block`` echoes, then ``block`` orders, ...) until each has ``n`` samples, so
    both see the same machine conditions: ``(echo, acks)``, each the percentiles and
    ``latencies`` of all its blocks together."""
    echoes: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    acks: list[np.ndarray[Any, np.dtype[np.int64]]] = []
    done = 0
    while done < n:
        k = min(block, n - done)
        echoes.append(echo_block(echo, k, rate))
        acks.append(open_loop(sess, rate, k)["latencies"])
        done += k
    e, a = np.concatenate(echoes), np.concatenate(acks)
    return {**percentiles_ns(e), "latencies": e}, {**percentiles_ns(a), "latencies": a}


# ------------------------------------------------------------ order entry


def accepted_ids_py(reader: codec.FrameReader, data: bytes) -> list[int]:
    """Reference of :class:`pyx.gwload.AckScanner`: the client order ids of the
    ACCEPTED reports in the frames ``data`` completes (tests/bench/test_gwload.py); a
    bad length after them is raised by ``reader.check()``, the caller's to call."""
    out = []
    for t, b in reader.feed(data):
        if t == SEQ_TYPE and len(b) >= 17 and b[8] == ACCEPTED_CODE:  # S frame, ACCEPTED
            out.append(int.from_bytes(b[9:17], "little"))
    return out


def order_frames(first_cl: int, n: int) -> bytes:
    """``n`` ENTER_ORDER frames back to back, client ids ``first_cl``.., odd ids BUY and
    even ids SELL, one price: the bytes of ``order_frame`` for each (tested), built
    column by column so the load generator spends no Python per order."""
    rec = np.frombuffer(order_frame(1, symbol_id=1, side=1, price_ticks=PRICE, qty_lots=1),
                        dtype=ORDER_FRAME_DTYPE)  # fmt: skip
    out = np.repeat(rec, n)
    cl = np.arange(first_cl, first_cl + n, dtype=np.uint64)
    out["cl_ord_id"] = cl
    out["side"] = np.where(cl % 2 == 1, 1, 2)
    return out.tobytes()


class Session:
    """A raw logged-in session (no client library overhead in the measurement)."""

    def __init__(self, port: int, key: Path) -> None:
        kid, priv = keys.read_key_file(key)
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.s.sendall(login_frame(kid, priv, 0, False))
        reader = codec.FrameReader()
        while True:
            frames = reader.feed(self.s.recv(65536))
            assert not any(chr(t) == "J" for t, _ in frames), "login rejected"
            if any(chr(t) == "A" for t, _ in frames):
                break  # next_seq 0: nothing sequenced precedes the first order's reports
        # Compiled report scanning (pyx/gwload.pyx, oracle accepted_ids_py): the load
        # generator must not be the limit.  It goes on from the bytes left after login.
        self.scanner = AckScanner(codec.frame_length_error)
        self.early = self.scanner.feed(bytes(reader.buf))
        self.s.setblocking(False)
        self.cl = 0

    def order_bytes(self, n: int) -> bytes:
        """n order frames back to back (alternating sides, one price), fresh cl_ord_ids."""
        data = order_frames(self.cl + 1, n)
        self.cl += n
        return data

    def read_acks(self) -> list[int]:
        """cl_ord_ids of the ACCEPTED reports in one read of what is readable now (one
        ``recv``: called when ``select`` said the socket is readable)."""
        out, self.early = self.early, []
        try:
            data = self.s.recv(1 << 22)
        except BlockingIOError:
            return out
        if not data:
            raise ConnectionError("gateway closed the session")
        got = self.scanner.feed(data)
        return out + got if out else got

    def acks(self) -> list[int]:
        """cl_ord_ids of the ACCEPTED reports readable now (reads until none is left)."""
        out, self.early = self.early, []
        try:
            while True:
                data = self.s.recv(1 << 22)
                if not data:
                    raise ConnectionError("gateway closed the session")
                out += self.scanner.feed(data)
        except BlockingIOError:
            pass
        return out


def open_loop(sess: Session, rate: int, n: int, timeout_s: float = 60.0) -> dict[str, Any]:
    """Orders planned at t0 + k / rate; latency from planned time to ACCEPTED."""
    frames = sess.order_bytes(n)
    base = sess.cl - n + 1
    period = 1_000_000_000 / rate
    planned = (np.arange(n) * period).astype(np.int64)
    lat = np.full(n, -1, dtype=np.int64)
    t0 = time.perf_counter_ns() + 10_000_000
    planned += t0
    sent = got = 0
    deadline = time.monotonic() + timeout_s + n / rate
    while got < n and time.monotonic() < deadline:
        now = time.perf_counter_ns()
        k = sent
        while k < n and planned[k] <= now:
            k += 1
        if k > sent:
            data = frames[sent * ORDER_FRAME_LEN : k * ORDER_FRAME_LEN]
            sess.s.setblocking(True)
            sess.s.sendall(data)
            sess.s.setblocking(False)
            sent = k
        wait = (planned[sent] - time.perf_counter_ns()) / 1e9 if sent < n else 0.01
        if wait > 0.0002:
            select.select([sess.s], [], [], min(wait - 0.0001, 0.01))
        now = time.perf_counter_ns()
        for cl in sess.acks():
            i = cl - base
            if 0 <= i < n and lat[i] < 0:
                lat[i] = now - planned[i]
                got += 1
    if got < n:
        raise RuntimeError(f"only {got} of {n} orders acknowledged")
    return {**percentiles_ns(lat), "latencies": lat}


def core_alone(ready: dict[str, Any], user: int, rate: int, n: int) -> dict[str, int]:
    """One NEW in flight straight to the core's trade link (the stream link if it has
    one, as the gateway); planned send to reply."""
    from bindings.streamlink import trade_client
    from engine.wire import commands

    lat = np.zeros(n, dtype=np.int64)
    period = 1_000_000_000 // rate
    with trade_client(str(ready.get("trade_stream") or ready["trade"])) as cli:
        t0 = time.perf_counter_ns() + 10_000_000
        for k in range(n):
            planned = t0 + k * period
            wait = planned - time.perf_counter_ns()
            if wait > 200_000:
                time.sleep((wait - 100_000) / 1e9)
            while time.perf_counter_ns() < planned:
                pass
            cli.send(commands.new_limit(k + 1, user, 1, 1 + k % 2, PRICE, 1))
            cli.recv_replies()
            lat[k] = time.perf_counter_ns() - planned
    return percentiles_ns(lat)


def zmq_link_ack(tmp: Path, core: CoreProcess, user: int, n: int) -> tuple[float, float]:
    """Async ack p50 and p99 (µs), one in flight at 1,000/s, through a second gateway
    on the core's zmq trade and PUB sockets (user ``user``: order ids are per user and per
    gateway, so it must trade on no other gateway)."""
    gw = GatewayProcess(
        core, tmp / "gw-zmq.db", tmp / "logs", *GW_FLAGS,
        "--core-trade-endpoint", str(core.ready["trade"]), "--core-pub-endpoint", core.pub,
    )  # fmt: skip
    try:
        gw.start(port=0)
        assert not str(gw.ready["config"]["core_trade_endpoint"]).startswith("unix:")
        s = Session(gw.port, make_key(gw.db, tmp / "kzmq.key", user))
        open_loop(s, 1000, 200)  # warm-up
        a = open_loop(s, 1000, n)
        s.s.close()
    finally:
        gw.cleanup()
    return _us(a["p50_ns"]), _us(a["p99_ns"])


def gateway_metric(gw: GatewayProcess, name: str) -> float:
    """One sample of the gateway's Prometheus endpoint (0 if the gateway lacks it)."""
    import urllib.request

    with urllib.request.urlopen(gw.ready["metrics"], timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def sustained(sessions: list[Session], seconds: float, window: int) -> int:
    """Acknowledged orders per second with ``window`` outstanding orders per session.

    Open loop per session: whenever fewer than half the window is outstanding, the
    next orders up to the window are queued; non-blocking sends of what the kernel
    takes, one read per readable session per ``select``.  Only ACCEPTED reports read
    count."""
    n = len(sessions)
    outstanding = [0] * n
    queued = [b""] * n  # order bytes not yet taken by the kernel
    socks = [s.s for s in sessions]
    index = {sock: i for i, sock in enumerate(socks)}
    acked = 0
    t0 = time.monotonic()
    t_end = t0 + seconds
    while time.monotonic() < t_end:
        writers = []
        for i, s in enumerate(sessions):
            if not queued[i] and outstanding[i] < window // 2:
                k = window - outstanding[i]
                queued[i] = s.order_bytes(k)
                outstanding[i] += k
            if queued[i]:
                try:
                    sent = s.s.send(queued[i])
                except BlockingIOError:
                    sent = 0
                queued[i] = queued[i][sent:]
                if queued[i]:
                    writers.append(s.s)
        readable, _, _ = select.select(socks, writers, [], 0.01)
        for sock in readable:
            i = index[sock]
            a = len(sessions[i].read_acks())
            outstanding[i] -= a
            acked += a
    rate = int(acked / (time.monotonic() - t0))
    # Drain: the next run (or the CPU reading) must not see this run's late acks.
    for i, s in enumerate(sessions):
        if queued[i]:
            s.s.setblocking(True)
            s.s.sendall(queued[i])
            s.s.setblocking(False)
    deadline = time.monotonic() + DRAIN_S
    while sum(outstanding) and time.monotonic() < deadline:
        readable, _, _ = select.select(socks, [], [], 0.05)
        for sock in readable:
            outstanding[index[sock]] -= len(sessions[index[sock]].read_acks())
    return rate


# ------------------------------------------------------------------ setup


def start_stack(
    tmp: Path, mode: str, users: int, *gw_flags: str
) -> tuple[CoreProcess, GatewayProcess, list[Path]]:
    """A core in ``mode``, a market, a gateway (GW_FLAGS, then ``gw_flags``) and one
    key per user."""
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    core = CoreProcess(tmp / "core", tmp / "logs", mode)
    core.start()
    setup_market(core, users=tuple(range(1, users + 1)), funds=10**15)
    gw = GatewayProcess(core, tmp / "gw.db", tmp / "logs", *GW_FLAGS, *gw_flags)
    gw.start(port=0)
    ks = [make_key(gw.db, tmp / f"k{u}.key", u) for u in range(1, users + 1)]
    return core, gw, ks


def _callgrind_run(tmp: Path, orders: int, burst: int, link: str = "stream") -> int:
    """Total instructions of a gateway run (under callgrind) that takes ``orders``,
    on the core's stream links or its zmq trade and PUB sockets (``link``)."""
    (tmp / "logs").mkdir(parents=True, exist_ok=True)
    core = CoreProcess(tmp / "core", tmp / "logs", "async")
    core.start()
    out = tmp / "callgrind.out"
    via = (
        ("--core-trade-endpoint", str(core.ready["trade"]), "--core-pub-endpoint", core.pub)
        if link == "zmq"
        else ()
    )
    gw = GatewayProcess(
        core, tmp / "gw.db", tmp / "logs", *GW_FLAGS, *via,
        prefix=("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"),
        ready_timeout_s=600.0,
    )  # fmt: skip
    try:
        setup_market(core, users=(1,), funds=10**15)
        gw.start(port=0)
        s = Session(gw.port, make_key(gw.db, tmp / "k1.key", 1))
        for _ in range(orders // burst):
            s.s.setblocking(True)
            s.s.sendall(s.order_bytes(burst))
            s.s.setblocking(False)
            got = 0
            while got < burst:
                select.select([s.s], [], [], 1.0)
                got += len(s.acks())
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(timeout=600)
    finally:
        gw.cleanup()
        core.cleanup()
    for line in out.read_text().splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError("no totals in the callgrind output")


def callgrind(args: argparse.Namespace) -> dict[str, Any]:
    """Instructions the gateway executes per order (callgrind, repeatable on a loaded
    machine): a run with CALLGRIND_ORDERS[1] orders minus one with CALLGRIND_ORDERS[0],
    divided by the difference (start-up and shutdown cancel out).  One session sends
    bursts of ``--burst`` orders (CALLGRIND_BURST: throughput; 1: one in flight, with
    a fifth of the orders) alternating sides at one price (each pair trades: per order
    one ACCEPTED, half a TRADE, two reports) and waits for their ACCEPTEDs."""
    base = Path(tempfile.mkdtemp(prefix="bench-e2e-cg-", dir=args.dir))
    scale = 1 if args.burst >= CALLGRIND_BURST else 5
    small, large = (n // scale for n in CALLGRIND_ORDERS)
    a = _callgrind_run(base / "small", small, args.burst, args.link)
    b = _callgrind_run(base / "large", large, args.burst, args.link)
    return {
        "bench": "e2e",
        "gateway_instr_per_order": round((b - a) / (large - small)),
        "callgrind_link": args.link,
        "callgrind_burst": args.burst,
        "callgrind_orders": [small, large],
        "callgrind_totals": [a, b],
    }


def _rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _written_bytes(pid: int) -> int:
    """Bytes process ``pid`` has passed to write calls so far (/proc ``wchar``: the
    WAL's appends, the checkpoints' copies, the turn file, the sockets)."""
    with open(f"/proc/{pid}/io") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith("wchar:"))


def _file_bytes(path: Path) -> int:
    """Size of ``path`` (0 if absent)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def sustained_repeat(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``--sustained-repeat N``: one stack (async core, one gateway), the sustained
    run (4 sessions, 3 s) N times back to back; per run the rate, the gateway's and
    the core's CPU per order, the gateway's RSS, its database + WAL bytes (and per
    order) and its in-memory order count: whether the gateway slows down as it ages."""
    base = Path(tempfile.mkdtemp(prefix="bench-e2e-rep-", dir=args.dir))
    bound = args.max_orders_in_memory
    flags = ("--max-orders-in-memory", str(bound)) if bound else ()
    core, gw, ks = start_stack(base, "async", 4, *flags)
    out: list[dict[str, Any]] = []
    try:
        assert gw.proc is not None
        assert core.proc is not None
        sess = [Session(gw.port, k) for k in ks]
        if not args.json:  # for a profiler to attach (perf record -p)
            print(json.dumps({"gateway_pid": gw.proc.pid, "core_pid": core.proc.pid}), flush=True)
        db = Path(gw.db)
        wal = db.with_name(db.name + "-wal")
        db0 = _file_bytes(db) + _file_bytes(wal)
        for i in range(args.sustained_repeat):
            cpu0, core0 = process_cpu_s(gw.proc.pid), process_cpu_s(core.proc.pid)
            sent0 = sum(x.cl for x in sess)
            w0 = _written_bytes(gw.proc.pid)
            rate = sustained(sess, args.sustained_s, 2000)
            time.sleep(0.5)  # the last window is handled
            n = sum(x.cl for x in sess) - sent0
            db1 = _file_bytes(db) + _file_bytes(wal)
            row = {
                "run": i + 1,
                "orders_per_s": rate,
                "orders": n,
                "gateway_cpu_us_per_order": round((process_cpu_s(gw.proc.pid) - cpu0) * 1e6 / n, 2),
                "core_cpu_us_per_order": round((process_cpu_s(core.proc.pid) - core0) * 1e6 / n, 2),
                "gateway_rss_mb": round(_rss_bytes(gw.proc.pid) / 2**20, 1),
                "db_mb": round(_file_bytes(db) / 2**20, 1),
                "wal_mb": round(_file_bytes(wal) / 2**20, 1),
                "db_growth_b_per_order": round((db1 - db0) / n, 1),
                "written_b_per_order": round((_written_bytes(gw.proc.pid) - w0) / n),
                "orders_in_memory": int(gateway_metric(gw, "bursa_gateway_orders_in_memory")),
                "orders_evicted": int(gateway_metric(gw, "bursa_gateway_orders_evicted_total")),
                "load": os.getloadavg()[0],
            }
            db0 = db1
            out.append(row)
            if not args.json:
                print(json.dumps(row), flush=True)
    finally:
        gw.cleanup()
        core.cleanup()
        shutil.rmtree(base, ignore_errors=True)  # GBs of database after a long probe
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every part; returns the JSON result."""
    quick = args.quick
    secs = 0.5 if quick else 2.0
    rates = RATES[:2] if quick else RATES
    base = Path(tempfile.mkdtemp(prefix="bench-e2e-", dir=args.dir))
    res: dict[str, Any] = {"bench": "e2e", **run_info(0), "quick": quick}
    echo = subprocess.Popen(
        [sys.executable, "-m", "bench.e2e", "--echo-server"],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    try:
        assert echo.stdout is not None
        port = json.loads(echo.stdout.readline())["port"]
        n1 = 1000 if quick else 5000
        # Async mode: one in flight (interleaved with the echo baseline), then
        # open-loop rates, then 4 sessions sustained.
        core, gw, ks = start_stack(base / "async", "async", 5)
        try:
            s1 = Session(gw.port, ks[0])
            esock = echo_connect(port)
            echo_block(esock, 200, 1000)  # warm-up
            open_loop(s1, 1000, 200)  # warm-up
            acks0 = gateway_metric(gw, "bursa_gateway_acks_from_reply_total")
            e, a = interleaved(esock, s1, n1, 1000)
            esock.close()
            series = [latency_series("echo_rtt (baseline)", e["latencies"], "none", 1000)]
            res.update({f"echo_rtt_{k[:-3]}_us": _us(v) for k, v in e.items() if k.endswith("_ns")})
            res["echo_interleave_block"] = INTERLEAVE_BLOCK
            # Which of the core's answers (reply or event) was read first, one in flight.
            acks = gateway_metric(gw, "bursa_gateway_acks_from_reply_total") - acks0
            res["async_acks_from_reply_share"] = round(acks / n1, 3)
            series.append(latency_series("async_ack", a["latencies"], "async", 1000))
            for q in ("p50", "p99", "p999", "max"):
                res[f"async_ack_{q}_us"] = _us(a[f"{q}_ns"])
            for r in rates:
                p = open_loop(s1, r, int(r * secs))
                series.append(latency_series("ack (open loop)", p["latencies"], "async", r))
                for q in ("p50", "p99", "p999"):
                    res[f"rate_{r}_ack_{q}_us"] = _us(p[f"{q}_ns"])
            res["zmq_link_async_ack_p50_us"], res["zmq_link_async_ack_p99_us"] = zmq_link_ack(
                base / "async", core, 5, n1 // 2
            )
            sess = [s1] + [Session(gw.port, k) for k in ks[1:4]]
            assert gw.proc is not None
            assert core.proc is not None
            cpu0, sent0 = process_cpu_s(gw.proc.pid), sum(x.cl for x in sess)
            core0, client0 = process_cpu_s(core.proc.pid), time.process_time()
            runs = [sustained(sess, 1.0 if quick else 3.0, 2000)
                    for _ in range(1 if quick else SUSTAINED_RUNS)]  # fmt: skip
            res["sustained_orders_per_s"] = int(statistics.median(runs))
            res["sustained_orders_per_s_runs"] = runs
            client = time.process_time() - client0
            res["sustained_sessions"] = len(sess)
            time.sleep(0.5)  # the last window is handled
            cpu = process_cpu_s(gw.proc.pid) - cpu0
            n_sent = sum(x.cl for x in sess) - sent0
            res["gateway_cpu_us_per_order"] = round(cpu * 1e6 / n_sent, 1)
            core_cpu = process_cpu_s(core.proc.pid) - core0
            res["core_cpu_us_per_order"] = round(core_cpu * 1e6 / n_sent, 1)
            res["client_cpu_us_per_order"] = round(client * 1e6 / n_sent, 1)
        finally:
            gw.cleanup()
            core.cleanup()
        # Fsync mode, one in flight; fdatasync measured right before and after.
        fds = measure_fdatasync(str(base), 200 if quick else 1000)
        paced = measure_fdatasync(str(base), 100 if quick else 400, PACED_BLOCK_BYTES, FSYNC_RATE)
        core, gw, ks = start_stack(base / "fsync", "fsync", 2)
        try:
            # The core alone first (user 2, small order ids), then through the gateway.
            c = core_alone(core.ready, 2, FSYNC_RATE, 200 if quick else 1000)
            s1 = Session(gw.port, ks[0])
            open_loop(s1, FSYNC_RATE, 50)
            f = open_loop(s1, FSYNC_RATE, 200 if quick else 1000)
            series.append(latency_series("fsync_ack", f["latencies"], "fsync", FSYNC_RATE))
        finally:
            gw.cleanup()
            core.cleanup()
        fds += measure_fdatasync(str(base), 200 if quick else 1000)
        paced += measure_fdatasync(str(base), 100 if quick else 400, PACED_BLOCK_BYTES, FSYNC_RATE)
    finally:
        echo.kill()
        echo.wait()
    fd = percentiles_ns(fds)
    res["percentiles"] = series
    # The journal mode of each figure (keys naming fsync/async/echo say it themselves).
    res["durability"] = {
        "sustained_orders_per_s": "async",
        "gateway_cpu_us_per_order": "async",
        "core_cpu_us_per_order": "async",
        "client_cpu_us_per_order": "async",
        **{f"rate_{r}_ack_{q}_us": "async" for r in rates for q in ("p50", "p99", "p999")},
    }
    res["fsync_ack_p50_us"] = _us(f["p50_ns"])
    res["fsync_ack_p99_us"] = _us(f["p99_ns"])
    res["fdatasync_p50_us"] = _us(fd["p50_ns"])
    res["fdatasync_p99_us"] = _us(fd["p99_ns"])
    res["fsync_ack_p50_minus_fdatasync_p50_us"] = round(
        res["fsync_ack_p50_us"] - res["fdatasync_p50_us"], 1
    )
    fdp = percentiles_ns(paced)
    res["fdatasync_paced_p50_us"] = _us(fdp["p50_ns"])
    res["fdatasync_paced_p99_us"] = _us(fdp["p99_ns"])
    res["fsync_ack_p50_minus_paced_fdatasync_p50_us"] = round(
        res["fsync_ack_p50_us"] - res["fdatasync_paced_p50_us"], 1
    )
    res["core_fsync_ack_p50_us"] = _us(c["p50_ns"])
    res["core_fsync_ack_p99_us"] = _us(c["p99_ns"])
    res["core_fsync_ack_p50_minus_fdatasync_p50_us"] = round(
        res["core_fsync_ack_p50_us"] - res["fdatasync_p50_us"], 1
    )
    res["core_fsync_ack_p50_minus_paced_fdatasync_p50_us"] = round(
        res["core_fsync_ack_p50_us"] - res["fdatasync_paced_p50_us"], 1
    )
    res["async_ack_p50_over_echo"] = round(res["async_ack_p50_us"] / res["echo_rtt_p50_us"], 2)
    res["async_ack_p99_over_echo"] = round(res["async_ack_p99_us"] / res["echo_rtt_p99_us"], 2)
    res["zmq_link_async_ack_p50_over_echo"] = round(
        res["zmq_link_async_ack_p50_us"] / res["echo_rtt_p50_us"], 2
    )
    res["trade_link"] = "stream"
    res["target_async_ack_p50_over_echo"] = TARGET_ACK_P50_OVER_ECHO
    res["target_async_ack_p99_over_echo"] = TARGET_ACK_P99_OVER_ECHO
    res["target_fsync_ack_p50_minus_fdatasync_p50_us"] = TARGET_FSYNC_MINUS_FDATASYNC_US
    res["target_sustained_orders_per_s"] = TARGET_SUSTAINED
    res["lower_is_better"] = [
        "async_ack_p50_over_echo",
        "async_ack_p99_over_echo",
        "fsync_ack_p50_minus_fdatasync_p50_us",
        "core_fsync_ack_p50_minus_fdatasync_p50_us",
        "fsync_ack_p50_minus_paced_fdatasync_p50_us",
        "core_fsync_ack_p50_minus_paced_fdatasync_p50_us",
        "gateway_cpu_us_per_order",
        "core_cpu_us_per_order",
        "client_cpu_us_per_order",
    ]
    res["higher_is_better"] = ["sustained_orders_per_s"]
    res["headline"] = [
        "echo_rtt_p50_us",
        "async_ack_p50_us",
        "async_ack_p50_over_echo",
        "async_ack_p99_over_echo",
        "zmq_link_async_ack_p50_us",
        "zmq_link_async_ack_p50_over_echo",
        "fsync_ack_p50_minus_fdatasync_p50_us",
        "core_fsync_ack_p50_minus_fdatasync_p50_us",
        "fdatasync_paced_p50_us",
        "fsync_ack_p50_minus_paced_fdatasync_p50_us",
        "sustained_orders_per_s",
        "gateway_cpu_us_per_order",
    ]
    return res


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a summary (unless ``--json``) and the JSON line."""
    ap = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--quick", action="store_true", help="fewer samples, rates 1k and 10k")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="directory for data files")
    ap.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument(
        "--callgrind",
        action="store_true",
        help="only the gateway's instructions per order under valgrind (slow, repeatable)",
    )
    ap.add_argument(
        "--burst",
        type=int,
        default=CALLGRIND_BURST,
        help="with --callgrind: orders sent at once (1: one in flight)",
    )
    ap.add_argument(
        "--link",
        choices=("stream", "zmq"),
        default="stream",
        help="with --callgrind: the gateway's link to the core (default: its stream link)",
    )
    ap.add_argument(
        "--sustained-repeat",
        type=int,
        default=0,
        metavar="N",
        help="only the sustained run, N times back to back on one gateway (per-run table)",
    )
    ap.add_argument(
        "--sustained-s", type=float, default=3.0, help="with --sustained-repeat: seconds per run"
    )
    ap.add_argument(
        "--max-orders-in-memory",
        type=int,
        default=0,
        help="with --sustained-repeat: the gateway's order map bound (default: its own)",
    )
    args = ap.parse_args(argv)
    if args.sustained_repeat:
        print(json.dumps({"bench": "e2e", "sustained_repeat": sustained_repeat(args)}))
        return 0
    if args.echo_server:
        echo_server()
        return 0
    if args.callgrind:
        print(json.dumps(callgrind(args)))
        return 0
    res = measure(args)
    if not args.json:
        for k in res["headline"]:
            print(f"{k}: {res[k]}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
