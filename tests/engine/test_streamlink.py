"""The core's stream trade link (engine/streamlink.py) served in-process around the
stand-in core: framing, bounds, rejects, routing of replies, and that nothing a peer
sends changes state or stops the core."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine.streamlink as streamlink
from bindings.client import CoreClient, EventSubscriber
from bindings.streamlink import StreamEventSource
from bursa_wire.layout import EV_DTYPE
from engine.server import MAX_MESSAGE_BYTES, CoreServer
from engine.streamlink import _claim_path, stream_path
from engine.wire import commands
from engine.wire.frames import (
    STATUS_APPLIED,
    STATUS_REJECTED,
    decode_event_frame,
    decode_replies,
)
from engine.wire.streamframe import (
    FRAME_HEADER,
    FrameDecoder,
    StreamFrameError,
    encode_frame,
)
from pyx.enums import Reason
from tests.engine.fakecore import FakeCore, make_cmds
from tests.engine.serve import ServedCore, loopback_config

WAIT_S = 10.0


def short_dir() -> Path:
    """A directory whose socket path fits in sun_path (pytest's tmp_path may not)."""
    return Path(tempfile.mkdtemp(prefix="sl-test-"))


class Peer:
    """A raw client of the stream link (no client library: exact bytes)."""

    def __init__(self, path: str) -> None:
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(WAIT_S)
        self.s.connect(path)
        self.dec = FrameDecoder(1 << 26)
        self.pending: list[bytes] = []  # bodies read, not returned yet

    def frames(self, n: int) -> list[bytes]:
        """The next ``n`` reply bodies (raises on timeout or end of stream)."""
        while len(self.pending) < n:
            data = self.s.recv(1 << 20)
            if not data:
                raise ConnectionError("closed by the core")
            self.pending += self.dec.feed(data)
        out, self.pending = self.pending[:n], self.pending[n:]
        return out

    def replies(self, n_records: int) -> np.ndarray:
        """Reply records until ``n_records`` arrived (over any number of frames)."""
        got: list[np.ndarray] = []
        count = 0
        while count < n_records:
            for body in self.frames(1):
                rep = decode_replies(body)
                got.append(rep)
                count += len(rep)
        return np.concatenate(got)

    def closed_by_core(self) -> bool:
        """Read until end of stream (True) or a timeout (False), dropping data."""
        try:
            while True:
                data = self.s.recv(1 << 20)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


class Served:
    """A CoreServer in a thread with a stream link; admin client for state checks."""

    def __init__(self, data_dir: str, sock_dir: Path) -> None:
        self.path = str(sock_dir / "trade.sock")
        self.events_path = str(sock_dir / "events.sock")
        cfg = loopback_config(
            data_dir,
            trade_stream_endpoint=f"unix:{self.path}",
            events_stream_endpoint=f"unix:{self.events_path}",
        )
        self.served = ServedCore(cfg, FakeCore)
        self.server = self.served.server
        self.admin = CoreClient(self.server.endpoints["admin"])
        self.peers: list[Peer] = []

    def peer(self) -> Peer:
        p = Peer(self.path)
        self.peers.append(p)
        return p

    def state(self) -> tuple[str, int]:
        ans = self.admin.control("state_hash")
        return str(ans["state_hash"]), int(ans["last_seq"])

    def stop(self) -> None:
        for p in self.peers:
            p.s.close()
        self.admin.close()
        self.served.stop()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    d = short_dir()
    s = Served(str(tmp_path / "core"), d)
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def frame_of(cmds: np.ndarray) -> bytes:
    return encode_frame(cmds.tobytes())


# ------------------------------------------------------------------ codec


@settings(max_examples=200, deadline=None)
@given(
    bodies=st.lists(st.binary(max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=7000), max_size=30),
)
def test_decoder_returns_the_bodies_whatever_the_read_boundaries(
    bodies: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(b) for b in bodies)
    points = sorted({c for c in cuts if c < len(stream)} | {0, len(stream)})
    dec = FrameDecoder(300)
    out: list[bytes] = []
    for a, b in itertools.pairwise(points):
        out += dec.feed(stream[a:b])
    assert out == bodies
    assert dec.pending_bytes == 0


@settings(max_examples=100, deadline=None)
@given(prefix=st.lists(st.binary(max_size=50), max_size=5), over=st.integers(1, 1 << 20))
def test_decoder_refuses_a_length_over_the_bound_before_its_body(
    prefix: list[bytes], over: int
) -> None:
    dec = FrameDecoder(50)
    stream = b"".join(encode_frame(b) for b in prefix) + FRAME_HEADER.pack(50 + over)
    with pytest.raises(StreamFrameError):
        dec.feed(stream)
    with pytest.raises(StreamFrameError):
        dec.feed(b"")  # failed for good: no resynchronization


def test_stream_endpoint_validation() -> None:
    assert stream_path("unix:/a/b") == "/a/b"
    for bad in ("ipc:///a", "unix:rel/path", "unix:/" + "x" * 120, "/a/b"):
        with pytest.raises(ValueError):
            stream_path(bad)
    with pytest.raises(ValueError):
        loopback_config("/tmp/x", trade_stream_endpoint="tcp://127.0.0.1:1").validate()


def test_stale_socket_file_is_claimed_a_live_one_refused() -> None:
    d = short_dir()
    path = str(d / "t.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    with pytest.raises(OSError, match="another process"):
        _claim_path(path)
    s.close()  # as after kill -9: the file stays, nobody listens
    assert os.path.exists(path)
    _claim_path(path)
    assert not os.path.exists(path)
    Path(path).write_text("not a socket")
    with pytest.raises(OSError, match="not a socket"):
        _claim_path(path)


# ----------------------------------------------------------------- server


def test_ready_key_and_file_modes(served: Served) -> None:
    assert served.server.status()["trade_stream"] == f"unix:{served.path}"
    assert os.stat(served.path).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(served.path)).st_mode & 0o777 == 0o700


def test_frame_split_across_writes(served: Served) -> None:
    p = served.peer()
    data = frame_of(make_cmds(3))
    for i in range(len(data)):
        p.s.sendall(data[i : i + 1])
        if i in (1, 3, 100):
            time.sleep(0.01)  # more chances for the core to read a part alone
    rep = p.replies(3)
    assert rep["client_ref"].tolist() == [1, 2, 3]
    assert (rep["status"] == STATUS_APPLIED).all()


def test_many_frames_in_one_write_answered_in_order(served: Served) -> None:
    p = served.peer()
    data = b"".join(frame_of(make_cmds(2, start_ref=1 + 2 * i)) for i in range(50))
    p.s.sendall(data)
    rep = p.replies(100)
    assert rep["client_ref"].tolist() == list(range(1, 101))
    assert rep["seq"].tolist() == list(range(1, 101))


def test_malformed_and_wrong_socket_bodies_get_the_zmq_replies(served: Served) -> None:
    p = served.peer()
    before = served.state()
    deposit = commands.deposit(ref=5, user_id=7, asset_id=1, amount_minor=10**9)
    p.s.sendall(encode_frame(b"garbage") + encode_frame(b"") + encode_frame(deposit.tobytes()))
    rep = p.replies(3)
    assert rep["reason"].tolist() == [
        int(Reason.MALFORMED_FRAME),
        int(Reason.MALFORMED_FRAME),
        int(Reason.WRONG_SOCKET),
    ]
    assert (rep["status"] == STATUS_REJECTED).all()
    assert rep["value"].tolist() == [7, 0, 1]  # frame lengths; the refused record flagged
    assert served.state() == before
    # The connection still serves.
    p.s.sendall(frame_of(make_cmds(1)))
    assert p.replies(1)["status"].tolist() == [STATUS_APPLIED]


def test_oversize_length_closes_that_connection_only(served: Served) -> None:
    bad, good = served.peer(), served.peer()
    before = served.state()
    bad.s.sendall(FRAME_HEADER.pack(MAX_MESSAGE_BYTES + 1) + b"\x00" * 1000)
    assert bad.closed_by_core()
    status = served.admin.control("status")
    assert status["trade_stream_protocol_errors"] == 1
    assert status["trade_stream_accepted"] == 2
    assert served.state() == before
    good.s.sendall(frame_of(make_cmds(1)))
    assert good.replies(1)["status"].tolist() == [STATUS_APPLIED]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    junk=st.binary(min_size=1, max_size=400),
    oversize=st.one_of(st.none(), st.integers(MAX_MESSAGE_BYTES + 1, (1 << 32) - 1)),
)
def test_garbage_changes_nothing_and_never_stops_the_core(
    tmp_path: Path, junk: bytes, oversize: int | None
) -> None:
    """A body of garbage is answered MALFORMED_FRAME; garbage framing (a length over
    the bound, or a frame the stream ends inside) closes the connection; the state
    is the same and the core serves the next client."""
    d = short_dir()
    s = Served(str(tmp_path / f"core-{os.urandom(4).hex()}"), d)
    try:
        before = s.state()
        p = s.peer()
        body = junk if len(junk) % 96 else junk + b"\x00"  # never whole records
        tail = FRAME_HEADER.pack(oversize) if oversize is not None else b""
        tail += FRAME_HEADER.pack(len(junk) + 1) + junk  # ends inside this frame
        with contextlib.suppress(OSError):  # the core may close it while we write
            p.s.sendall(encode_frame(body) + tail)
            p.s.shutdown(socket.SHUT_WR)
        assert p.closed_by_core()
        assert s.state() == before
        q = s.peer()
        q.s.sendall(frame_of(make_cmds(1)))
        assert q.replies(1)["status"].tolist() == [STATUS_APPLIED]
    finally:
        s.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_eof_mid_frame_changes_nothing(served: Served) -> None:
    p = served.peer()
    before = served.state()
    data = frame_of(make_cmds(4))
    p.s.sendall(data[: len(data) - 10])
    p.s.shutdown(socket.SHUT_WR)  # half-close: nothing more will come
    assert p.closed_by_core()
    assert served.state() == before


def test_half_close_after_whole_frames_still_answers_them(served: Served) -> None:
    p = served.peer()
    p.s.sendall(frame_of(make_cmds(2)))
    p.s.shutdown(socket.SHUT_WR)
    rep = p.replies(2)
    assert rep["status"].tolist() == [STATUS_APPLIED, STATUS_APPLIED]


def test_a_peer_that_stops_reading_is_closed(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streamlink, "MAX_OUT_BYTES", 64 << 10)
    slow, other = served.peer(), served.peer()
    slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    link = served.server.stream
    assert link is not None
    frame = frame_of(make_cmds(100))
    deadline = time.monotonic() + 60
    sent = 0
    while link.n_slow_closed == 0 and time.monotonic() < deadline:
        try:
            slow.s.sendall(frame)
            sent += 1
        except OSError:
            break  # closed by the core while writing
    assert link.n_slow_closed == 1, sent
    other.s.sendall(frame_of(make_cmds(1, start_ref=10**6)))
    assert other.replies(1)["status"].tolist() == [STATUS_APPLIED]
    assert len(link.conns) == 1


def test_connection_limit(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streamlink, "MAX_STREAM_CONNS", 2)
    a, b = served.peer(), served.peer()
    for p in (a, b):  # both accepted before the third connects
        p.s.sendall(frame_of(make_cmds(1)))
        p.replies(1)
    c = served.peer()
    assert c.closed_by_core()
    assert served.server.stream is not None
    assert served.server.stream.n_refused == 1
    a.s.sendall(frame_of(make_cmds(1)))
    assert a.replies(1)["status"].tolist() == [STATUS_APPLIED]


def test_replies_routed_when_streams_and_zmq_share_a_turn(tmp_path: Path) -> None:
    """Three senders' frames read in one turn (the loop is driven by hand here):
    each gets exactly its own replies, in its own order."""
    d = short_dir()
    path = str(d / "trade.sock")
    cfg = loopback_config(str(tmp_path / "core"), trade_stream_endpoint=f"unix:{path}")
    server = CoreServer(cfg, core_cls=FakeCore)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    z = ctx.socket(zmq.DEALER)
    z.setsockopt(zmq.LINGER, 0)
    z.connect(server.endpoints["trade"])
    try:
        a, b = Peer(path), Peer(path)
        while len(server.stream.conns if server.stream else ()) < 2:
            server.turn(50)  # accept both
        a.s.sendall(frame_of(make_cmds(2, start_ref=100)) + frame_of(make_cmds(1, start_ref=200)))
        b.s.sendall(frame_of(make_cmds(3, start_ref=300)))
        z.send(make_cmds(2, start_ref=400).tobytes())
        time.sleep(0.3)  # let everything arrive, so that one turn reads it all
        done = 0
        while done < 8:
            done += server.turn(1000)
        ra, rb = a.replies(3), b.replies(3)
        assert z.poll(int(WAIT_S * 1000))
        rz = decode_replies(z.recv())
        assert ra["client_ref"].tolist() == [100, 101, 200]
        assert rb["client_ref"].tolist() == [300, 301, 302]
        assert rz["client_ref"].tolist() == [400, 401]
        assert sorted(np.concatenate([ra, rb, rz])["seq"].tolist()) == list(range(1, 9))
        a.s.close()
        b.s.close()
    finally:
        z.close()
        server.shutdown()
        shutil.rmtree(d, ignore_errors=True)
    assert not os.path.exists(path)  # a graceful stop removes the socket file


def test_full_batch_defers_the_rest_to_the_next_turn(tmp_path: Path) -> None:
    d = short_dir()
    path = str(d / "trade.sock")
    cfg = loopback_config(
        str(tmp_path / "core"), trade_stream_endpoint=f"unix:{path}", max_batch_cmds=4
    )
    server = CoreServer(cfg, core_cls=FakeCore)
    try:
        a = Peer(path)
        while not (server.stream and server.stream.conns):
            server.turn(50)
        a.s.sendall(b"".join(frame_of(make_cmds(1, start_ref=i)) for i in range(1, 11)))
        time.sleep(0.2)
        per_turn: list[int] = []
        while sum(per_turn) < 10:
            n = server.turn(1000)
            if n:
                per_turn.append(n)
        assert max(per_turn) <= 4
        assert a.replies(10)["client_ref"].tolist() == list(range(1, 11))
    finally:
        server.shutdown()
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------ event stream link


def all_events(sub: EventSubscriber, upto_seq: int) -> np.ndarray:
    """Events from the subscriber until it delivered everything up to ``upto_seq``."""
    got: list[np.ndarray] = [np.zeros(0, dtype=EV_DTYPE)]
    deadline = time.monotonic() + WAIT_S
    while sub.next_seq <= upto_seq:
        assert time.monotonic() < deadline, (sub.next_seq, upto_seq)
        for f in sub.poll(timeout_ms=100):
            got.append(f.events)
    return np.concatenate(got)


def test_event_stream_link_carries_the_pub_frames(served: Served) -> None:
    """An EventSubscriber whose live source is the event stream link gets exactly
    what a PUB subscriber gets, live (not from the replay service)."""
    srv = served.server
    over_link = EventSubscriber(f"unix:{served.events_path}", srv.replay_endpoint)
    over_pub = EventSubscriber(srv.pub_endpoint, srv.replay_endpoint)
    try:
        over_link.poll(0)
        over_pub.poll(0)  # caught up (nothing yet); live from here
        p = served.peer()
        for i in range(20):
            p.s.sendall(frame_of(make_cmds(5, start_ref=1 + 5 * i)))
            p.replies(5)
        a, b = all_events(over_link, 100), all_events(over_pub, 100)
        assert a.tobytes() == b.tobytes()
        assert a["seq"].tolist() == list(range(1, 101))
        assert over_link.frames_live == 20 and over_link.frames_replayed == 0
        raw = Peer(served.events_path)  # the bytes: the PUB frame, length-prefixed
        p.s.sendall(frame_of(make_cmds(1, start_ref=500)))
        p.replies(1)
        (body,) = raw.frames(1)
        assert decode_event_frame(body).first_seq == 101
        raw.s.close()
    finally:
        over_link.close()
        over_pub.close()


def test_event_subscriber_that_sends_bytes_is_closed(served: Served) -> None:
    bad = Peer(served.events_path)
    bad.s.sendall(b"hello")
    assert bad.closed_by_core()
    assert served.admin.control("status")["events_stream_protocol_errors"] == 1


def test_slow_event_subscriber_is_closed_the_others_keep_up(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streamlink, "MAX_EVENT_OUT_BYTES", 64 << 10)
    srv = served.server
    slow = Peer(served.events_path)  # connected, never reads
    slow.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sub = EventSubscriber(f"unix:{served.events_path}", srv.replay_endpoint)
    try:
        sub.poll(0)
        p = served.peer()
        n = 0
        got: list[np.ndarray] = []
        deadline = time.monotonic() + 60
        while srv.events_stream is not None and srv.events_stream.n_slow_closed == 0:
            assert time.monotonic() < deadline
            p.s.sendall(frame_of(make_cmds(100, start_ref=1 + n)))
            p.replies(100)
            n += 100
            got += [f.events for f in sub.poll(0)]  # this one reads: it keeps up
        assert slow.closed_by_core()
        got.append(all_events(sub, n))
        assert sub.frames_live > 0  # live, never cut off
        assert isinstance(sub.sub, StreamEventSource) and sub.sub.connects == 1
        assert np.concatenate(got)["seq"].tolist() == list(range(1, n + 1))
    finally:
        sub.close()
