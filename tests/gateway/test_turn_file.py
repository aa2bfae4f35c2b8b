"""The turn file end to end (docs/gateway.md, "Replay design"): one order in flight,
the acknowledgements' reports and order changes only in the turn file (the gateway told
to fill SQLite from it only every 10 minutes), then kill -9: a client re-logging at an
old sequence number gets exactly the bytes it was sent live, before the kill (served
from memory) and after the restart (applied from the file once); the core's events
are not applied twice though the restart resumes the core's stream from the seq the
file holds."""

from __future__ import annotations

import socket
import sqlite3
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bindings.gateway_client import login_frame, order_frame
from gateway import keys
from gateway import store as store_mod
from gateway.wire import codec
from pyx.enums import Side
from tests.e2e.coreproc import CoreProcess
from tests.gateway.gwproc import GatewayProcess, make_key, setup_market

S_FRAME = ord("S")


class RawSession:
    """A logged-in session that keeps the exact bytes of every sequenced frame."""

    def __init__(self, port: int, key: Path, next_seq: int) -> None:
        kid, priv = keys.read_key_file(key)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = codec.FrameReader()
        self.bodies: list[bytes] = []  # S frame bodies (seq + payload), in order
        self.other: list[int] = []  # other frame types
        self.sock.sendall(login_frame(kid, priv, next_seq, False))
        self.wait(lambda: bool(self.other), 10.0)
        self.accepted = chr(self.other[0]) == "A"

    def _read(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        assert data, "the gateway closed the session"
        for t, b in self.reader.feed(data):
            if t == S_FRAME:
                self.bodies.append(bytes(b))
            else:
                self.other.append(t)
        return True

    def wait(self, done: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            assert left > 0, "timed out waiting for the gateway"
            self._read(left)

    def drain(self, quiet: float = 1.0) -> list[bytes]:
        """Everything sequenced until no sequenced frame arrives for ``quiet`` seconds
        (the gateway's heartbeats do not count: they would keep a drain going)."""
        deadline = time.monotonic() + quiet
        while (left := deadline - time.monotonic()) > 0:
            n = len(self.bodies)
            self._read(left)
            if len(self.bodies) > n:
                deadline = time.monotonic() + quiet
        return self.bodies

    def names(self) -> list[str]:
        return [codec.decode(S_FRAME, b, inbound=False).name for b in self.bodies]

    def until(self, name: str, n: int) -> None:
        """Read until ``n`` messages ``name`` arrived."""
        self.wait(lambda: self.names().count(name) >= n)

    def order(self, cl: int, side: Side, price: int, qty: int) -> None:
        self.sock.sendall(
            order_frame(cl, symbol_id=1, side=int(side), price_ticks=price, qty_lots=qty)
        )

    def close(self) -> None:
        self.sock.close()


def login(port: int, key: Path, next_seq: int) -> RawSession:
    """A session from ``next_seq``, once the gateway has seen the key's previous
    connection close (until then it answers ALREADY_LOGGED_IN)."""
    deadline = time.monotonic() + 20.0
    while True:
        s = RawSession(port, key, next_seq)
        if s.accepted:
            return s
        s.close()
        assert time.monotonic() < deadline, "login refused"
        time.sleep(0.1)


def _turn_records(gw: GatewayProcess) -> float:
    with urllib.request.urlopen(gw.ready["metrics"], timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("bursa_gateway_turn_records_total "):
                return float(line.split()[1])
    raise AssertionError("no turn records metric")


def _stored_seqs(db: Path) -> int:
    """How many messages SQLite holds (all sessions)."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT first_seq, last_seq FROM out_chunks").fetchall()
    finally:
        con.close()
    return sum(last - first + 1 for first, last in rows)


def test_kill9_with_reports_only_in_the_turn_file(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    core = CoreProcess(tmp_path / "core", tmp_path / "logs", "async")
    core.start()
    gw = GatewayProcess(
        core, tmp_path / "gw.db", tmp_path / "logs", "--turn-fill-ms", "600000",
        "--metrics", "127.0.0.1:0",
        # The sessions send no heartbeats: a session left idle while another drains
        # must not time out on a loaded machine (heartbeats are not this test's subject).
        "--heartbeat-ms", "10000",
    )  # fmt: skip
    try:
        setup_market(core)
        gw.start(port=0)
        k1 = make_key(gw.db, tmp_path / "k1.key", 1)
        k2 = make_key(gw.db, tmp_path / "k2.key", 2)
        a = login(gw.port, k1, 1)
        b = login(gw.port, k2, 1)
        # One order in flight at a time: a's ask is acknowledged, then b's bid trades
        # with it (ACCEPTED for b, EXECUTED for both).
        for i in range(1, 6):
            a.order(i, Side.SELL, 1000 + i, 2)
            a.until("ACCEPTED", i)
            b.order(i, Side.BUY, 1000 + i, 1)
            b.until("EXECUTED", i)
            a.until("EXECUTED", i)
        live_a, live_b = list(a.drain()), list(b.drain())
        assert len(live_a) == 10 and len(live_b) == 10
        # Nothing of it reached SQLite: every report is only in the turn file.
        assert _stored_seqs(gw.db) == 0
        turns = Path(str(gw.db) + store_mod.TURN_SUFFIX)
        assert turns.stat().st_size > 0
        # 10 orders, each with its own turn and its acknowledgement's: 20 records at least.
        assert _turn_records(gw) >= 20
        # A re-login now (a's session ends, a new one asks from seq 1): served from
        # the gateway's memory, the same bytes.
        a.close()
        a = login(gw.port, k1, 1)
        assert a.drain() == live_a
        a.close()
        b.close()
        gw.kill9()
        gw.start()
        # The restart applied the file: the same bytes from seq 1, nothing more (the
        # trades' events, resumed from the file's core seq, are not applied twice).
        assert _stored_seqs(gw.db) == 20 and turns.stat().st_size == 0
        a = login(gw.port, k1, 1)
        b = login(gw.port, k2, 1)
        assert a.drain() == live_a and b.drain() == live_b
        # A re-login at an old seq mid-stream gets exactly the rest.
        a.close()
        a = login(gw.port, k1, 4)
        assert a.drain() == live_a[3:]
        # The stream goes on where it was: the next report is seq 11.
        a.order(6, Side.SELL, 2000, 1)
        a.wait(lambda: len(a.bodies) == len(live_a) - 3 + 1)
        assert int.from_bytes(a.bodies[-1][:8], "little") == 11
        a.close()
        b.close()
        # Killed again before any fill: the file's records are applied once only.
        gw.kill9()
        gw.start()
        a = login(gw.port, k1, 1)
        got = a.drain()
        assert got[:10] == live_a and len(got) == 11
        a.close()
    finally:
        gw.cleanup()
        core.cleanup()
