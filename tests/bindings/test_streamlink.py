"""The stream trade link's client (bindings/streamlink.py): blocking and non-blocking
surfaces, reconnect after the core restarts, the transport factory."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import bindings.streamlink as sl
from bindings.client import CoreClient, CoreError, EventSubscriber
from bindings.streamlink import (
    LinkLostError,
    StreamEventSource,
    StreamTradeClient,
    trade_client,
)
from engine.wire.frames import STATUS_APPLIED
from engine.wire.streamframe import FrameDecoder, encode_frame
from tests.engine.fakecore import FakeCore, make_cmds
from tests.engine.serve import ServedCore, loopback_config

WAIT_S = 10.0


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="slc-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def serve(data_dir: Path, path: Path) -> ServedCore:
    cfg = loopback_config(str(data_dir), trade_stream_endpoint=f"unix:{path}")
    return ServedCore(cfg, FakeCore)


class FakeCorePeer:
    """A bare listener standing in for the core: accepts, then does what a test says."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(str(path))
        self.lsock.listen(4)
        self.lsock.settimeout(WAIT_S)

    def accept(self) -> socket.socket:
        conn, _ = self.lsock.accept()
        conn.settimeout(WAIT_S)
        return conn

    def close(self) -> None:
        self.lsock.close()
        self.path.unlink(missing_ok=True)


def test_factory_picks_the_transport(sock_dir: Path) -> None:
    cli = trade_client(f"unix:{sock_dir / 'none.sock'}")
    assert isinstance(cli, StreamTradeClient) and not cli.connected
    cli.close()
    z = trade_client("tcp://127.0.0.1:1", send_hwm=10)
    assert type(z) is CoreClient
    assert not z.try_send(make_cmds(1).tobytes())  # no core: refused at once (IMMEDIATE)
    z.close()


def test_blocking_surface_and_reconnect_after_a_core_restart(
    tmp_path: Path, sock_dir: Path
) -> None:
    path = sock_dir / "trade.sock"
    core = serve(tmp_path / "core", path)
    cli = StreamTradeClient(f"unix:{path}")
    try:
        rep = cli.request(make_cmds(3))
        assert rep["client_ref"].tolist() == [1, 2, 3]
        assert (rep["status"] == STATUS_APPLIED).all()
        n = cli.send(make_cmds(2, start_ref=10))
        assert n == 2 and cli.outstanding == 2
        assert cli.drain()["client_ref"].tolist() == [10, 11]
        with pytest.raises(CoreError, match="command frames only"):
            cli.control("ping")
        core.stop()  # graceful: snapshot, socket file removed
        core = serve(tmp_path / "core", path)  # the same data, the same path
        # The first request after the restart finds the link dead, then reconnects.
        for _ in range(3):
            try:
                rep = cli.request(make_cmds(1, start_ref=20), timeout_ms=5000)
                break
            except LinkLostError:
                continue
        assert rep["status"].tolist() == [STATUS_APPLIED]
        assert rep["seq"].tolist() == [6]  # the restarted core went on from its journal
        assert cli.connects == 2 and cli.links_lost == 1
    finally:
        cli.close()
        core.stop()


def test_a_lost_link_while_awaiting_replies_is_link_lost(sock_dir: Path) -> None:
    fake = FakeCorePeer(sock_dir / "t.sock")
    cli = StreamTradeClient(f"unix:{fake.path}")
    conn = fake.accept()
    cli.send(make_cmds(1))
    assert len(conn.recv(4096)) == 4 + 96
    conn.close()  # the core died before answering
    with pytest.raises(LinkLostError):
        cli.recv_replies(timeout_ms=int(WAIT_S * 1000))
    assert not cli.connected and cli.outstanding == 0
    fake.close()
    cli.close()


def test_nonblocking_surface_watch_callbacks_and_reconnect(
    sock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sl, "RECONNECT_INTERVAL_MS", 1)
    events: list[tuple[str, int]] = []
    fake = FakeCorePeer(sock_dir / "t.sock")
    cli = StreamTradeClient(f"unix:{fake.path}")
    cli.watch(lambda fd: events.append(("open", fd)), lambda fd: events.append(("close", fd)))
    fd1 = cli.fileno()
    assert events == [("open", fd1)]
    conn = fake.accept()
    rec = make_cmds(2).tobytes()
    assert cli.try_send(rec) and not cli.wants_write
    dec = FrameDecoder(1 << 20)
    got: list[bytes] = []
    while not got:
        got += dec.feed(conn.recv(4096))
    assert got == [rec]
    reply = b"\x01" * 40
    conn.sendall(encode_frame(reply) + encode_frame(reply * 2)[:10])  # one and a part
    deadline = time.monotonic() + WAIT_S
    frames: list[bytes] = []
    while not frames and time.monotonic() < deadline:
        frames = cli.read_nowait()
    assert frames == [reply]
    conn.close()
    fake.close()  # the core is gone: no listener either
    while cli.connected and time.monotonic() < deadline:
        cli.read_nowait()
    assert events[-1] == ("close", fd1) and cli.fileno() == -1
    time.sleep(0.01)
    assert not cli.try_send(rec)  # refused at once while no core listens
    fake = FakeCorePeer(sock_dir / "t.sock")  # the core is back
    time.sleep(0.01)
    assert cli.try_send(rec)
    assert events[-1] == ("open", cli.fileno())
    conn = fake.accept()
    dec = FrameDecoder(1 << 20)
    got = []
    while not got:
        got += dec.feed(conn.recv(4096))
    assert got == [rec]  # the partial reply of the old link was dropped, not mixed in
    conn.close()
    fake.close()
    cli.close()


def test_try_send_reports_full_instead_of_blocking(sock_dir: Path) -> None:
    fake = FakeCorePeer(sock_dir / "t.sock")
    cli = StreamTradeClient(f"unix:{fake.path}", max_out_bytes=1 << 16)
    conn = fake.accept()  # never reads
    frame = make_cmds(100).tobytes()
    t0 = time.monotonic()
    taken = 0
    while cli.try_send(frame):
        taken += 1
        assert time.monotonic() - t0 < WAIT_S, "try_send never reported full"
    assert cli.wants_write
    # Reading on the other side lets the queued bytes go.
    total = taken * (4 + len(frame))
    got = 0
    while got < total:
        got += len(conn.recv(1 << 20))
        cli.flush_nowait()
    assert not cli.wants_write
    conn.close()
    fake.close()
    cli.close()


def test_try_send_frames_arrive_whole_across_partial_writes(sock_dir: Path) -> None:
    """try_send writes header and body in one gathered write and queues what the
    kernel did not take: whatever the split, the peer decodes exactly the frames
    taken, in order (bytes and bytearray bodies of different sizes)."""
    fake = FakeCorePeer(sock_dir / "t.sock")
    cli = StreamTradeClient(f"unix:{fake.path}", max_out_bytes=1 << 18)
    conn = fake.accept()  # not read until try_send reports full
    sent: list[bytes] = []
    k = 0
    t0 = time.monotonic()
    while True:
        body = make_cmds(1 + k % 37, start_ref=1 + 100 * k).tobytes()
        frame = bytearray(body) if k % 2 else body
        if not cli.try_send(frame):
            break
        sent.append(body)
        k += 1
        assert time.monotonic() - t0 < WAIT_S, "try_send never reported full"
    assert cli.wants_write and len(sent) > 2
    dec = FrameDecoder(1 << 24)
    got: list[bytes] = []
    conn.settimeout(WAIT_S)
    while len(got) < len(sent):
        cli.flush_nowait()
        got += [bytes(b) for b in dec.feed(conn.recv(1 << 20))]
    assert got == sent
    conn.close()
    fake.close()
    cli.close()


def test_event_subscriber_on_the_stream_link_survives_a_core_restart(
    tmp_path: Path, sock_dir: Path
) -> None:
    """The live source reconnects to the restarted core; what was published while it
    was away comes from the replay service: gap-free, no duplicate."""

    def start() -> ServedCore:
        cfg = loopback_config(
            str(tmp_path / "core"),
            trade_stream_endpoint=f"unix:{sock_dir / 'trade.sock'}",
            events_stream_endpoint=f"unix:{sock_dir / 'events.sock'}",
        )
        # A fixed replay address: the subscriber asks the restarted core there.
        cfg = dataclasses.replace(cfg, replay_endpoint=f"ipc://{sock_dir / 'replay.ipc'}")
        return ServedCore(cfg, FakeCore)

    core = start()
    cli = StreamTradeClient(f"unix:{sock_dir / 'trade.sock'}")
    sub = EventSubscriber(f"unix:{sock_dir / 'events.sock'}", f"ipc://{sock_dir / 'replay.ipc'}")
    seqs: list[int] = []

    def take(upto: int) -> None:
        deadline = time.monotonic() + WAIT_S
        while sub.next_seq <= upto:
            assert time.monotonic() < deadline, (sub.next_seq, upto)
            for f in sub.poll(timeout_ms=100):
                seqs.extend(int(x) for x in f.events["seq"])

    try:
        sub.poll(0)
        cli.request(make_cmds(10))
        take(10)
        core.stop()
        core = start()
        for _ in range(3):
            try:
                cli.request(make_cmds(10, start_ref=100))
                break
            except LinkLostError:
                continue
        take(20)
        assert seqs == list(range(1, 21))
        assert isinstance(sub.sub, StreamEventSource) and sub.sub.links_lost == 1
    finally:
        sub.close()
        cli.close()
        core.stop()


def test_event_source_watch_callbacks_and_pending_frames(
    sock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event loop follows the event source's descriptor: ``on_open`` on (re)connect,
    ``on_close`` before a lost connection's descriptor is closed; frames read off the
    socket but not yet taken are counted by ``pending`` (the descriptor no longer
    says readable for them)."""
    monkeypatch.setattr(sl, "RECONNECT_INTERVAL_MS", 1)
    events: list[tuple[str, int]] = []
    fake = FakeCorePeer(sock_dir / "e.sock")
    src = StreamEventSource(f"unix:{fake.path}")
    src.watch(lambda fd: events.append(("open", fd)), lambda fd: events.append(("close", fd)))
    fd1 = src.fileno()
    assert events == [("open", fd1)] and src.pending == 0
    conn = fake.accept()
    conn.sendall(encode_frame(b"a" * 30) + encode_frame(b"b" * 30) + encode_frame(b"c" * 30))
    assert src.poll(int(WAIT_S * 1000)) == 1
    while src.pending < 3:
        assert src.poll(0) == 1
        src._pull()  # what a readable descriptor would let poll() read
    assert src.recv() == b"a" * 30 and src.pending == 2
    conn.close()
    fake.close()
    deadline = time.monotonic() + WAIT_S
    while src.fileno() >= 0 and time.monotonic() < deadline:
        src.poll(0)  # reads the end of stream (frames b, c are still buffered)
        src._pull()
    assert events[-1] == ("close", fd1) and src.fileno() == -1
    assert [src.recv(), src.recv()] == [b"b" * 30, b"c" * 30] and src.pending == 0
    fake = FakeCorePeer(sock_dir / "e.sock")
    time.sleep(0.01)
    src.poll(0)  # a due reconnect happens in poll
    assert src.fileno() >= 0 and events[-1] == ("open", src.fileno())
    src.watch(None, None)
    src.close()
    fake.close()
