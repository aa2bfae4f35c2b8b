"""The compiled small turn (pyx/smallturn.pyx) against the Python turn, its oracle.

Two cores get the same inputs through their stream trade links (one with
``compiled_turn`` on, one with it off; the same manual clock): every reply frame,
the journal and event-log bytes, the frames sent to an event-stream subscriber,
the state hash and the counters must be equal.  The inputs mix well-formed frames
(NEW, CANCEL, duplicates), malformed bodies and frames of kinds the trade role
refuses, from two connections, with a batch bound small enough that bodies wait
for the next turn (the Python turn's path).  Plus: the encoders agree with the
engine's, and the fsync turn sends nothing when the sync fails.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import crc32c
import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bursa_wire.layout import (
    CMD_DTYPE,
    CMD_SIZE,
    EV_DTYPE,
    REPLY_DTYPE,
    STATUS_APPLIED,
    STATUS_REJECTED,
)
from engine.clock import ManualClock
from engine.journal import (
    ENCODE_COPY_MAX_CMDS,
    MAGIC,
    VERSION,
    JournalWriteError,
    encode_payload,
    parse_header,
)
from engine.metrics import CoreMetrics, TimedStorage
from engine.server import CoreServer
from engine.storage import FileStorage, StorageError
from engine.wire import commands
from engine.wire.frames import EVENT_MAGIC, encode_event_frame
from engine.wire.streamframe import FrameDecoder, encode_frame
from pyx import smallturn
from tests.engine.serve import loopback_config

SYMBOL = 1
USERS = (1, 2)
REC = REPLY_DTYPE.itemsize


def _admin(server: CoreServer, role: str, recs: np.ndarray) -> None:
    """Send one command frame on a zmq role socket and serve turns until answered."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(server.endpoints[role])
    sock.send(recs.tobytes())
    for _ in range(1000):
        server.turn(10)
        if sock.poll(0):
            break
    reply = np.frombuffer(sock.recv(), dtype=REPLY_DTYPE)
    sock.close(0)
    assert len(reply) == len(recs)


class _Side:
    """One core under test, its two trade connections and one event subscriber."""

    def __init__(
        self, base: Path, compiled: bool, mode: str, max_batch_cmds: int, segment_bytes: int = 0
    ) -> None:
        base.mkdir(parents=True)
        cfg = loopback_config(
            str(base / "data"), mode=mode, metrics="", max_batch_cmds=max_batch_cmds,
            snapshot_every_cmds=0, snapshot_every_ms=0,
            trade_stream_endpoint=f"unix:{base}/t.sock",
            events_stream_endpoint=f"unix:{base}/e.sock",
        )  # fmt: skip
        self.server = CoreServer(cfg)
        self.server.compiled_turn = compiled
        assert self.server.compiled_turn is compiled
        self.clock = ManualClock()
        self.server.sequencer.clock = self.clock
        if segment_bytes:
            # Small journal segments: batches roll them (the Python path), the next
            # ones go direct again (pyx.smallturn's direct journal path).
            self.server.sequencer._writer.segment_bytes = segment_bytes
        setup = [commands.add_asset(1, 0), commands.add_asset(2, 0)]
        setup += [commands.add_fee_tier(0, 1_000, 2_000), commands.add_symbol(SYMBOL, 1, 2)]
        setup += [commands.add_user(u, 0) for u in USERS]
        _admin(self.server, "admin", np.concatenate(setup))
        funds = [commands.deposit(u * 10 + a, u, a, 10**15) for u in USERS for a in (1, 2)]
        _admin(self.server, "fund", np.concatenate(funds))
        self.conns = []
        for _ in range(2):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(f"{base}/t.sock")
            s.settimeout(10)
            self.conns.append(s)
        self.sub = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sub.connect(f"{base}/e.sock")
        self.sub.setblocking(False)
        self.events_seen = bytearray()
        stream, events = self.server.stream, self.server.events_stream
        assert stream is not None and events is not None
        for _ in range(1000):
            if len(stream.conns) == 2 and len(events.conns) == 1:
                break
            self.server.turn(10)
        assert len(stream.conns) == 2 and len(events.conns) == 1
        self.decoders = [FrameDecoder(1 << 24) for _ in self.conns]

    def step(self, sends: list[list[bytes]], expected: list[int]) -> list[list[bytes]]:
        """Send each connection's bodies (all before any turn), serve turns, and
        return each connection's reply frames (``expected`` records each)."""
        for s, bodies in zip(self.conns, sends, strict=True):
            if bodies:
                s.sendall(b"".join(encode_frame(b) for b in bodies))
        self.clock.advance(1_000)
        self.server.turn(1000)
        stream = self.server.stream
        assert stream is not None
        while stream.deferred:
            self.server.turn(0)
        out: list[list[bytes]] = []
        for s, dec, want in zip(self.conns, self.decoders, expected, strict=True):
            frames: list[bytes] = []
            while sum(len(f) for f in frames) < want * REC:
                frames += dec.feed(s.recv(1 << 16))
            assert sum(len(f) for f in frames) == want * REC
            out.append(frames)
        self._drain_events()
        return out

    def _drain_events(self) -> None:
        while True:
            try:
                got = self.sub.recv(1 << 20)
            except BlockingIOError:
                return
            assert got
            self.events_seen += got

    def files(self) -> dict[str, bytes]:
        """Every file of the data directory that holds journal or event bytes."""
        data = Path(self.server.config.data_dir)
        return {
            p.name: p.read_bytes()
            for p in sorted(data.iterdir())
            if p.is_file() and (p.name.startswith(("journal", "events")))
        }

    def counters(self) -> dict[str, Any]:
        """The counters both turns update."""
        s, m = self.server, self.server.metrics
        w = s.sequencer._writer
        return {
            "batches": s.n_batches, "commands": s.n_commands, "malformed": s.n_malformed,
            "wrong_socket": s.n_wrong_socket, "since_snapshot": s._cmds_since_snapshot,
            "turns": m.turns, "pub": m.pub_frames, "by_kind": list(m.commands_by_kind),
            "full": m.full_turns, "last_seq": s.sequencer.last_seq,
            "acks": sum(m.ack.counts), "batch": (m.batch.counts, m.batch.sum),
            "rejects": m.rejects_by, "messages_max": m.turn_messages_max,
            "seq_stats": s.sequencer.stats, "since_snap": s.sequencer._cmds_since_snap,
            "writer": (w.segment, w.size, w.next_seq, w.synced_seq, w.dirty, w.failed),
            "sync_hist": sum(m.sync["journal"].counts),
        }  # fmt: skip

    def close(self) -> None:
        """Close the clients and shut the server down."""
        for s in (*self.conns, self.sub):
            s.close()
        self.server.shutdown()

    def abandon(self) -> None:
        """Close the clients and the server's sockets and storage without its
        shutdown (after a failed write or sync: no final flush or snapshot)."""
        for s in (*self.conns, self.sub):
            s.close()
        self.server.replay.stop()
        self.server._close_sockets()
        self.server.storage.close()


def _body(kind: str, user: int, oid: int, side: int, price: int, n: int) -> bytes:
    """One stream body of ``kind``: good NEWs, a CANCEL, malformed bytes, a refused kind."""
    if kind == "new":
        return np.concatenate(
            [commands.new_limit(oid + i, user, SYMBOL, side, price, 1) for i in range(n)]
        ).tobytes()
    if kind == "cancel":
        return commands.cancel(oid, user).tobytes()
    if kind == "short":
        return b"\x01" * (CMD_SIZE - 1 + n)
    if kind == "empty":
        return b""
    assert kind == "refused"  # a fund kind, refused on the trade link
    return np.concatenate([commands.new_limit(oid, user, SYMBOL, side, price, 1),
                           commands.deposit(oid, user, 1, 5)]).tobytes()  # fmt: skip


def _records(body: bytes) -> int:
    """Reply records a body gets (one per record; one for a malformed body)."""
    return len(body) // CMD_SIZE if body and len(body) % CMD_SIZE == 0 else 1


_BODY = st.tuples(
    st.sampled_from(["new", "new", "new", "cancel", "short", "empty", "refused"]),
    st.sampled_from(USERS),
    st.integers(1, 12),  # order ids: reused ones answer DUPLICATE
    st.sampled_from([1, 2]),
    st.integers(98, 102),  # prices cross: fills, events on both sides
    st.integers(1, 3),
)
_STEPS = st.lists(
    st.tuples(st.lists(_BODY, max_size=3), st.lists(_BODY, max_size=3)), min_size=1, max_size=10
)


def _run_both(
    tmp: Path, mode: str, max_batch: int, steps: list[Any], segment_bytes: int = 0
) -> tuple[int, int, int]:
    """Run ``steps`` through a compiled and a Python core, compare everything;
    returns the compiled turn's direct batches (journal), direct event-log appends
    and reply frames it sent itself."""
    a = _Side(tmp / "compiled", True, mode, max_batch, segment_bytes)
    b = _Side(tmp / "python", False, mode, max_batch, segment_bytes)
    try:
        for conn_bodies in steps:
            sends = [[_body(*x) for x in bodies] for bodies in conn_bodies]
            expected = [sum(_records(x) for x in bodies) for bodies in sends]
            assert a.step(sends, expected) == b.step(sends, expected)
        assert a.server._small_turn is not None and b.server._small_turn is None
        assert a.server._small_turn.turns > 0
        assert a.server.sequencer.core.state_hash() == b.server.sequencer.core.state_hash()
        assert a.counters() == b.counters()
        assert a.events_seen == b.events_seen
        assert a.files() == b.files() != {}
        small = a.server._small_turn
        return small.direct_batches, small.direct_log_frames, small.direct_replies
    finally:
        a.close()
        b.close()


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_STEPS, mode=st.sampled_from(["async", "fsync"]), max_batch=st.sampled_from([4, 64]))
def test_compiled_turn_matches_the_python_turn(
    tmp_path_factory: pytest.TempPathFactory, steps: list[Any], mode: str, max_batch: int
) -> None:
    _run_both(tmp_path_factory.mktemp("ab"), mode, max_batch, steps)


def test_a_long_mixed_run_matches(tmp_path: Path) -> None:
    """A fixed longer run (every body kind, both connections, a small batch bound)."""
    kinds = ["new", "cancel", "short", "empty", "refused"]
    steps = [
        (
            [(kinds[(i + j) % 5] if j else "new", 1 + (i % 2), 1 + i % 9, 1 + j % 2, 99 + i % 3, 2)
             for j in range(i % 4)],
            [("new", 2 - (i % 2), 1 + (i * 7) % 11, 2 - j % 2, 100, 1 + j) for j in range(i % 3)],
        )
        for i in range(40)
    ]  # fmt: skip
    # (Replies go out directly only in turns with one sender and one frame.)
    batches, logged, replies = _run_both(tmp_path / "f", "fsync", 5, steps)
    assert batches > 10 and logged > 10 and replies > 3
    # Segments of ~6 batches: rolls (Python path) between direct batches.
    batches, logged, replies = _run_both(tmp_path / "a", "async", 5, steps, segment_bytes=2048)
    assert batches > 10 and logged > 10 and replies > 3


def test_event_log_rolls_alternate_with_direct_appends(tmp_path: Path) -> None:
    """Event-log segments of ~2 frames: each roll goes through ``append_frame``
    (Python: it opens the new file), the next frames through the direct append;
    the log files, the subscriber's bytes and everything else stay the same."""
    steps: list[Any] = [([("new", 1 + i % 2, 1 + i, 1 + i % 2, 100, 1)], []) for i in range(12)]
    a = _Side(tmp_path / "compiled", True, "fsync", 64)
    b = _Side(tmp_path / "python", False, "fsync", 64)
    try:
        for side in (a, b):
            side.server.eventlog.segment_bytes_max = 300
        for conn_bodies in steps:
            sends = [[_body(*x) for x in bodies] for bodies in conn_bodies]
            expected = [sum(_records(x) for x in bodies) for bodies in sends]
            assert a.step(sends, expected) == b.step(sends, expected)
        small = a.server._small_turn
        assert small is not None and 3 <= small.direct_log_frames < 12
        assert a.files() == b.files()
        assert len([n for n in a.files() if n.startswith("events")]) >= 4
        assert a.events_seen == b.events_seen and a.counters() == b.counters()
    finally:
        a.close()
        b.close()


def test_replies_the_kernel_does_not_take_are_queued(tmp_path: Path) -> None:
    """A client that does not read: the compiled turn's own reply ``send`` is cut
    short by a full socket buffer, the rest is queued by the link and flushed when
    the client reads; the client then gets the same bytes as from the Python turn."""
    got: list[bytes] = []
    direct = 0
    for compiled in (True, False):
        side = _Side(tmp_path / str(compiled), compiled, "async", 64)
        try:
            stream = side.server.stream
            assert stream is not None
            conn = next(iter(stream.conns.values()))
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            body = _body("new", 1, 1, 1, 100, 60)
            n_bodies = 40
            for _ in range(n_bodies):  # one body per turn, nothing read
                side.conns[0].sendall(encode_frame(body))
                side.server.turn(1000)
            if compiled:
                assert len(conn.out) > 0  # the kernel's buffer was full
            out = bytearray()
            side.conns[0].setblocking(False)
            for _ in range(10_000):
                with contextlib.suppress(BlockingIOError):
                    out += side.conns[0].recv(1 << 16)
                if len(out) >= n_bodies * (4 + 60 * REC):
                    break
                side.server.turn(1)
            got.append(bytes(out))
            if compiled:
                small = side.server._small_turn
                assert small is not None
                direct = small.direct_replies
        finally:
            side.close()
    assert 0 < direct < 40
    frames = FrameDecoder(1 << 24).feed(got[0])
    assert len(frames) == 40 and all(len(f) == 60 * REC for f in frames)
    assert got[0] == got[1]


def test_event_frames_the_kernel_does_not_take_are_queued(tmp_path: Path) -> None:
    """An event-stream subscriber that does not read: the compiled turn's own
    ``send`` of the event frames is cut short, the rest is queued by the link and
    flushed once the subscriber reads; it gets the same bytes as from the Python
    turn."""
    seen: list[bytes] = []
    for compiled in (True, False):
        side = _Side(tmp_path / str(compiled), compiled, "async", 64)
        try:
            events = side.server.events_stream
            assert events is not None
            sub_conn = next(iter(events.conns.values()))
            sub_conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            queued = False
            for i in range(30):  # crossing orders: fills, many events per turn
                body = _body("new", 1 + i % 2, 1 + 40 * (i // 2), 1 + i % 2, 100, 40)
                side.conns[0].sendall(encode_frame(body))
                side.server.turn(1000)
                got = 0
                while got < 4 + 40 * REC:
                    got += len(side.conns[0].recv(1 << 16))
                queued = queued or len(sub_conn.out) > 0
            assert queued  # the subscriber's buffer was full
            for _ in range(10_000):
                side._drain_events()
                if not sub_conn.out:
                    break
                side.server.turn(1)
            side._drain_events()
            seen.append(bytes(side.events_seen))
        finally:
            side.close()
    assert len(seen[0]) > 30 * 32 and seen[0] == seen[1]


def test_direct_fds_only_for_plain_file_storage(tmp_path: Path) -> None:
    """The direct event-log append gets descriptors only from a writable
    ``FileStorage`` whose ``write_at`` is its own (a subclass injecting write
    faults, a read-only storage and a wrapper without ``direct_fds`` get None)."""

    class Faulty(FileStorage):
        def write_at(self, name: str, offset: int, data: bytes) -> None:
            raise StorageError(errno.ENOSPC, "full")

    plain = FileStorage(str(tmp_path / "a"))
    plain.append("x", b"1")
    fds = plain.direct_fds()
    assert fds is not None and "x" in fds
    assert TimedStorage(plain, CoreMetrics()).direct_fds() is fds
    assert Faulty(str(tmp_path / "b")).direct_fds() is None
    assert TimedStorage(Faulty(str(tmp_path / "b")), CoreMetrics()).direct_fds() is None
    assert FileStorage(str(tmp_path / "a"), read_only=True).direct_fds() is None
    assert TimedStorage(SimpleNamespace(), CoreMetrics()).direct_fds() is None
    plain.close()


def test_a_direct_event_log_failure_sends_nothing(tmp_path: Path) -> None:
    """The direct event-log append failing (its segment's descriptor made
    read-only): ``StorageError`` (the process exits 3: the batch is durable in the
    journal, a restart rebuilds the log), nothing replied or published, the log's
    end unchanged."""
    side = _Side(tmp_path / "c", True, "fsync", 64)
    swapped: list[int] = []
    try:
        small = side.server._small_turn
        assert small is not None
        side.step([[_body("new", 1, 1, 1, 100, 1)], []], [1, 0])
        side.step([[_body("new", 1, 2, 1, 100, 1)], []], [1, 0])
        assert small.direct_log_frames >= 1
        el = side.server.eventlog
        logged, size = el.last_seq, el._segment_size
        pub_before = side.server.metrics.pub_frames
        events_before = side.events_seen[:]
        fds = side.server.storage.inner._fds
        seg = str(el._segment)
        swapped.append(fds[seg])
        fds[seg] = os.open(Path(side.server.config.data_dir) / seg, os.O_RDONLY)
        side.conns[0].sendall(encode_frame(_body("new", 1, 3, 1, 100, 1)))
        with pytest.raises(StorageError, match=f"write {seg}: Bad file descriptor"):
            side.server.turn(1000)
        _no_reply(side)
        side._drain_events()
        assert side.events_seen == events_before
        assert side.server.metrics.pub_frames == pub_before
        assert (el.last_seq, el._segment_size) == (logged, size)
        assert side.server.sequencer.last_seq == logged + 1  # journaled, not logged
    finally:
        for fd in swapped:
            os.close(fd)
        side.abandon()


def _serve_chunks(side: _Side, chunks: list[bytes], want: int) -> list[bytes]:
    """Send each chunk of one byte stream on the first connection, one turn each,
    then return the reply frames (``want`` records in all)."""
    for chunk in chunks:
        side.conns[0].sendall(chunk)
        side.clock.advance(1_000)
        side.server.turn(1000)
    frames: list[bytes] = []
    while sum(len(f) for f in frames) < want * REC:
        frames += side.decoders[0].feed(side.conns[0].recv(1 << 16))
    return frames


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    bodies=st.lists(_BODY, min_size=1, max_size=6),
    cuts=st.lists(st.integers(0, 2000), max_size=6),
    mode=st.sampled_from(["async", "fsync"]),
)
def test_frames_cut_anywhere_match(
    tmp_path_factory: pytest.TempPathFactory, bodies: list[Any], cuts: list[int], mode: str
) -> None:
    """One connection's frames cut at arbitrary points (partial frames, several in
    one read: the compiled read hands those to ``StreamLink.decode``; whole single
    frames it decodes itself): the same replies, bytes and state as the Python turn."""
    tmp = tmp_path_factory.mktemp("cut")
    sends = [_body(*x) for x in bodies]
    stream = b"".join(encode_frame(b) for b in sends)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points) if b > a]
    want = sum(_records(b) for b in sends)
    a = _Side(tmp / "compiled", True, mode, 64)
    b = _Side(tmp / "python", False, mode, 64)
    try:
        assert _serve_chunks(a, chunks, want) == _serve_chunks(b, chunks, want)
        assert a.server.sequencer.core.state_hash() == b.server.sequencer.core.state_hash()
        assert a.counters() == b.counters()
        assert a.files() == b.files()
    finally:
        a.close()
        b.close()


def test_encoders_agree_with_the_engine() -> None:
    rng = np.random.default_rng(7)
    for n in (1, 2, 17):
        ev = rng.integers(0, 256, n * EV_DTYPE.itemsize, dtype=np.uint8).tobytes()
        got = smallturn.encode_event_frame(5, 5 + n, ev, EVENT_MAGIC)
        assert got == encode_event_frame(5, 5 + n, ev)
    for body in (b"", b"x", bytes(range(256)) * 3):
        assert smallturn.encode_stream_frame(body) == encode_frame(body)


@given(
    first_seq=st.integers(1, 2**64 - 1),
    payload=st.integers(1, ENCODE_COPY_MAX_CMDS).flatmap(
        lambda n: st.binary(min_size=n * CMD_SIZE, max_size=n * CMD_SIZE)
    ),
)
def test_journal_batch_encoder_agrees_with_the_python_one(first_seq: int, payload: bytes) -> None:
    got = smallturn.encode_journal_batch(first_seq, payload, MAGIC, VERSION, CMD_SIZE)
    assert got == encode_payload(first_seq, len(payload) // CMD_SIZE, payload)
    assert parse_header(got, 0) == (
        first_seq, len(payload) // CMD_SIZE, len(payload), crc32c.crc32c(payload)
    )  # fmt: skip


def _bare_turn(metrics: CoreMetrics) -> smallturn.SmallTurn:
    """A SmallTurn over a stand-in server (only its metrics are used)."""
    server = SimpleNamespace(
        stream=SimpleNamespace(), events_stream=None, metrics=metrics, pub=None, socks={},
        _stage=np.zeros(2 * 64, dtype=CMD_DTYPE),
        config=SimpleNamespace(max_batch_cmds=64, max_frame_cmds=64),
    )  # fmt: skip
    return smallturn.SmallTurn(server, b"", "x", EVENT_MAGIC, 1, 1)


@settings(max_examples=60, deadline=None)
@given(
    turns=st.lists(
        st.tuples(
            st.integers(0, 300),  # commands (from 256: CoreMetrics' own numpy path)
            st.integers(0, 5),  # messages
            st.booleans(),  # full
            st.randoms(use_true_random=False),
        ),
        max_size=6,
    )
)
def test_turn_metrics_match_core_metrics(turns: list[Any]) -> None:
    """The compiled metrics update counts what ``CoreMetrics.turn_done`` counts."""
    py, c = CoreMetrics(), CoreMetrics()
    compiled = _bare_turn(c)
    for n, msgs, full, rnd in turns:
        rec = np.zeros(n, dtype=REPLY_DTYPE)
        rec["kind"] = [rnd.choice([1, 2, 3, 40, 255]) for _ in range(n)]
        rec["status"] = [rnd.choice([STATUS_APPLIED, STATUS_REJECTED]) for _ in range(n)]
        rec["reason"] = [rnd.choice([0, 7, 300]) for _ in range(n)]
        replies = rec.tobytes()
        # Started 2 s ago: both acks fall above the last bound whatever the load
        # (the batch histogram checks the bucket search).
        t0 = time.perf_counter_ns() - 2_000_000_000
        py.turn_done(t0, n, msgs, replies, full)
        compiled.turn_metrics(t0, n, msgs, replies, full)
    assert c.ack.counts == py.ack.counts
    # Seconds, not ns: the two sums differ only by the time between the calls.
    assert c.ack.sum == pytest.approx(py.ack.sum, rel=0.5)
    assert (c.batch.counts, c.batch.sum) == (py.batch.counts, py.batch.sum)
    assert c.commands_by_kind == py.commands_by_kind
    assert c.rejects_by == py.rejects_by
    assert (c.turns, c.turn_messages, c.turn_messages_max, c.full_turns) == (
        py.turns, py.turn_messages, py.turn_messages_max, py.full_turns
    )  # fmt: skip


class _FailingSyncs:
    """Storage wrapper whose journal fdatasync fails (everything else passed on)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def sync(self, name: str) -> None:
        if name.startswith("journal-"):
            raise StorageError(errno.EIO, f"fdatasync {name}: Input/output error")
        self.inner.sync(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_zmq_turns_fall_back_and_a_failed_sync_sends_nothing(tmp_path: Path) -> None:
    """A zmq command runs the Python turn (the compiled one declines, doing nothing);
    in fsync mode a failing fdatasync leaves the compiled turn with nothing sent,
    logged or published (the JournalWriteError ends the process)."""
    side = _Side(tmp_path / "c", True, "fsync", 64)
    try:
        small = side.server._small_turn
        assert small is not None
        before = small.turns
        _admin(side.server, "fund", commands.deposit(99, 1, 1, 7))
        assert small.turns == before  # the zmq turn was not the compiled one's
        frames = side.step([[_body("new", 1, 1, 1, 100, 1)], []], [1, 0])
        assert small.turns > before and len(frames[0]) == 1
        logged = side.server.eventlog.last_seq
        pub_before = side.server.metrics.pub_frames
        events_before = side.events_seen[:]
        writer = side.server.sequencer._writer
        writer.storage = _FailingSyncs(writer.storage)
        side.conns[0].sendall(encode_frame(_body("new", 1, 2, 1, 100, 1)))
        with pytest.raises(JournalWriteError):
            side.server.turn(1000)
        side.conns[0].setblocking(False)
        with pytest.raises(BlockingIOError):
            side.conns[0].recv(1 << 16)  # no reply
        side._drain_events()
        assert side.events_seen == events_before  # nothing on the event stream
        assert side.server.metrics.pub_frames == pub_before  # nothing published
        assert side.server.eventlog.last_seq == logged  # nothing logged
    finally:
        side.abandon()


def _no_reply(side: _Side) -> None:
    side.conns[0].setblocking(False)
    with pytest.raises(BlockingIOError):
        side.conns[0].recv(1 << 16)


@pytest.mark.parametrize("fault", ["sync", "misdirected", "write"])
def test_a_direct_journal_failure_sends_nothing(tmp_path: Path, fault: str) -> None:
    """The compiled turn's direct journal path (the journal's descriptor written,
    read back and synced in C): a failing fdatasync, a write that lands elsewhere
    (the read-back differs) and a failing write each raise ``JournalWriteError``
    with nothing replied, logged or published, and leave the writer failed."""
    side = _Side(tmp_path / "c", True, "fsync", 64)
    swapped: list[int] = []
    try:
        small = side.server._small_turn
        assert small is not None
        side.step([[_body("new", 1, 1, 1, 100, 1)], []], [1, 0])
        assert small.direct_batches == 1
        writer = side.server.sequencer._writer
        logged = side.server.eventlog.last_seq
        pub_before = side.server.metrics.pub_frames
        events_before = side.events_seen[:]
        journal = Path(side.server.config.data_dir) / str(writer.segment)
        journal_before = journal.read_bytes()
        if fault == "sync":
            small.inject_sync_errno = errno.EIO
        else:
            # The storage's descriptor of the segment replaced: /dev/null takes the
            # write and reads back nothing; a read-only descriptor refuses the write.
            fds = side.server.storage.inner._fds
            flags = os.O_RDWR if fault == "misdirected" else os.O_RDONLY
            target = "/dev/null" if fault == "misdirected" else str(journal)
            swapped.append(fds[writer.segment])
            fds[writer.segment] = os.open(target, flags)
        side.conns[0].sendall(encode_frame(_body("new", 1, 2, 1, 100, 1)))
        with pytest.raises(
            JournalWriteError,
            match={
                "sync": "journal sync",
                "misdirected": "read-back .* differs",
                "write": "journal write",
            }[fault],
        ):
            side.server.turn(1000)
        assert writer.failed
        _no_reply(side)
        side._drain_events()
        assert side.events_seen == events_before
        assert side.server.metrics.pub_frames == pub_before
        assert side.server.eventlog.last_seq == logged
        if fault != "sync":
            assert journal.read_bytes() == journal_before  # the bytes went elsewhere
        # The sync fault: staged (and counted) direct, then the sync failed.
        assert small.direct_batches == (2 if fault == "sync" else 1)
    finally:
        for fd in swapped:
            os.close(fd)
        side.abandon()


ROOT = Path(__file__).resolve().parents[2]
DEBUG = ROOT / "build" / "debug"
DEBUG_SCRIPT = """
import pathlib, random, sys, tempfile
import pyx.core, pyx.smallturn
assert "build/debug" in pyx.smallturn.__file__, pyx.smallturn.__file__
assert "build/debug" in pyx.core.__file__, pyx.core.__file__
from tests.engine import test_compiled_turn as t
kinds = ["new", "new", "cancel", "short", "empty", "refused"]
for seed in range(4):
    rng = random.Random(seed)
    steps = [
        tuple(
            [(rng.choice(kinds), rng.choice((1, 2)), rng.randint(1, 12), rng.choice((1, 2)),
              rng.randint(98, 102), rng.randint(1, 3)) for _ in range(rng.randint(0, 3))]
            for _ in range(2)
        )
        for _ in range(25)
    ]
    t._run_both(pathlib.Path(tempfile.mkdtemp(dir=sys.argv[1])), ("async", "fsync")[seed % 2],
                (4, 64)[seed // 2], steps)
print("ok")
"""


def test_compiled_turn_through_the_debug_build(tmp_path: Path) -> None:
    """The same comparison with the DEBUG build (bounds checks, C asserts on)."""
    assert (DEBUG / "pyx").is_dir(), "build/debug is missing: run `make debug` first"
    env = dict(os.environ, PYTHONPATH=f"{DEBUG}{os.pathsep}{ROOT}")
    # cwd outside the repo: sys.path[0] must not shadow build/debug with ./pyx
    out = subprocess.run(
        [sys.executable, "-c", DEBUG_SCRIPT, str(tmp_path)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.split()[-1] == "ok"


def test_an_idle_compiled_turn_waits_its_timeout(tmp_path: Path) -> None:
    """The compiled poll waits as ``LoopPoller.poll`` does: an idle turn returns 0
    no sooner than its timeout (a timeout cut to whole seconds by an integer
    division would make the idle loop spin)."""
    side = _Side(tmp_path / "c", True, "async", 64)
    try:
        for timeout_ms in (30, 120):
            t0 = time.monotonic()
            assert side.server.turn(timeout_ms) == 0
            assert time.monotonic() - t0 >= timeout_ms / 1000 * 0.9
    finally:
        side.close()
