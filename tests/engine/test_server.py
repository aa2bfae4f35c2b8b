"""The core server in-process (a thread) around a stand-in core: framing, group commit,
rejects of malformed messages, control requests, event log recovery, replay, gaps.

The same server with the real core, as a real process, is in tests/e2e/.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from bindings.client import CoreClient, CoreError, EventSubscriber
from bursa_wire.layout import CMD_DTYPE, EV_DTYPE
from engine.eventlog import list_segments
from engine.journal import JournalCorrupt
from engine.recovery import JournalLoss, regenerate_events
from engine.server import MAX_FRAME_CMDS, CoreServer, ServerConfig
from engine.storage import FileStorage
from engine.wire.frames import (
    CONTROL_TAG,
    STATUS_APPLIED,
    STATUS_REJECTED,
    EventFrame,
    decode_event_frame,
    encode_event_frame,
)
from pyx.enums import Reason
from tests.engine.fakecore import FakeCore, make_cmds
from tests.engine.serve import ServedCore, loopback_config


class Running:
    """A CoreServer serving in a background thread."""

    def __init__(self, data_dir: str, **overrides: object) -> None:
        self.served = ServedCore(loopback_config(data_dir, **overrides), FakeCore)
        self.server = self.served.server
        self.clients: list[CoreClient | EventSubscriber] = []
        self._admin: CoreClient | None = None

    def client(self, role: str = "trade") -> CoreClient:
        c = CoreClient(self.server.endpoints[role])
        self.clients.append(c)
        return c

    @property
    def admin(self) -> CoreClient:
        """One admin-socket client (control requests), made on first use."""
        if self._admin is None:
            self._admin = self.client("admin")
        return self._admin

    def subscriber(self, from_seq: int = 1) -> EventSubscriber:
        s = EventSubscriber(self.server.pub_endpoint, self.server.replay_endpoint, from_seq)
        self.clients.append(s)
        return s

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.served.stop()


@pytest.fixture
def running(tmp_path) -> Iterator[Running]:
    r = Running(str(tmp_path / "core"))
    try:
        yield r
    finally:
        if r.served.thread.is_alive():
            r.stop()


def replay_all(sub: EventSubscriber, from_seq: int = 1) -> np.ndarray:
    """Every event from ``from_seq`` to the log's end, straight from the replay service."""
    out = []
    nxt = from_seq
    for _ in range(10_000):
        frames, nxt, last = sub.replay(nxt)
        out += [f.events for f in frames]
        if nxt > last:
            break
    return np.concatenate(out) if out else np.zeros(0, EV_DTYPE)


def collect(sub: EventSubscriber, upto_seq: int, **poll_args: object) -> list[EventFrame]:
    frames = []
    for _ in range(1000):
        frames += sub.poll(timeout_ms=50, **poll_args)  # type: ignore[arg-type]
        if sub.next_seq > upto_seq:
            return frames
    raise AssertionError(f"stream stuck at {sub.next_seq}, wanted {upto_seq}")


def test_round_trip_and_pipelining(running):
    c = running.client()
    rep = c.request(make_cmds(5))
    assert list(rep["seq"]) == [1, 2, 3, 4, 5]
    assert list(rep["client_ref"]) == [1, 2, 3, 4, 5]
    assert (rep["status"] == STATUS_APPLIED).all()
    for i in range(50):
        c.send(make_cmds(7, start_ref=1000 + 7 * i))
    # A request behind 50 pipelined frames gets exactly its own replies.
    mine = c.request(make_cmds(3, start_ref=99_000))
    assert list(mine["client_ref"]) == [99_000, 99_001, 99_002]
    assert list(mine["seq"]) == [356, 357, 358]
    earlier = c.drain()
    assert len(earlier) == 350
    assert list(earlier["client_ref"]) == list(range(1000, 1350))
    assert (np.diff(earlier["seq"].astype(np.int64)) == 1).all()


def test_many_clients_each_get_their_own_replies(running):
    clients = [running.client() for _ in range(4)]
    for rnd in range(20):
        for k, c in enumerate(clients):
            c.send(make_cmds(3, start_ref=(k + 1) * 100_000 + rnd * 3))
    seqs = []
    for k, c in enumerate(clients):
        rep = c.drain()
        assert list(rep["client_ref"]) == [(k + 1) * 100_000 + i for i in range(60)]
        seqs += rep["seq"].tolist()
    assert sorted(seqs) == list(range(1, 241))
    st = running.server.status()
    assert st["commands"] == 240
    assert st["batches"] <= 80  # several frames are committed together


@pytest.mark.parametrize(
    "parts",
    [
        [b"x" * 95],
        [b""],
        [b"y" * 97],
        [make_cmds(1).tobytes(), make_cmds(1).tobytes()],
        [CONTROL_TAG],
        [b"z" * 96 * (MAX_FRAME_CMDS + 1)],
    ],
    ids=["short", "empty", "not-whole", "two-parts", "bare-control-tag", "too-large"],
)
def test_malformed_message_is_rejected_and_changes_nothing(running, parts):
    c = running.client()
    c.request(make_cmds(2))
    before = running.admin.control("state_hash")
    c.send_parts(parts)
    (rep,) = c.drain()
    assert rep["status"] == STATUS_REJECTED
    assert rep["reason"] == Reason.MALFORMED_FRAME
    assert rep["seq"] == 0
    after = running.admin.control("state_hash")
    assert after == before
    assert running.server.status()["malformed"] == 1
    # The connection still works and replies stay in order around the reject.
    c.send(make_cmds(1, start_ref=50))
    c.send(b"q" * 10)
    c.send(make_cmds(1, start_ref=51))
    rep = c.drain()
    assert list(rep["client_ref"]) == [50, 0, 51]
    assert list(rep["reason"]) == [0, Reason.MALFORMED_FRAME, 0]


def test_control_requests(running):
    c = running.client()
    assert running.admin.control("ping")["last_seq"] == 0
    c.request(make_cmds(10))
    st = running.admin.control("status")
    assert st["last_seq"] == 10 and st["event_log_last_seq"] == 10 and st["mode"] == "fsync"
    assert running.admin.control("conservation") == {"ok": True, "errors": [], "last_seq": 10}
    h = running.admin.control("state_hash")
    assert len(bytes.fromhex(h["state_hash"])) >= 16
    assert running.admin.control("snapshot")["last_seq"] == 10
    names = FileStorage(running.server.config.data_dir).list()
    assert "snapshot-00000000000000000010.snap" in names
    with pytest.raises(CoreError):
        running.admin.control("no-such-op")
    # Not JSON at all: an error answer, not a crash.
    a = running.admin
    a.sock.send_multipart([CONTROL_TAG, b"{nope"])
    assert a.sock.poll(5000)
    tag, body = a.sock.recv_multipart()
    assert tag == CONTROL_TAG and b'"ok":false' in body


def test_req_socket_client(running):
    """A REQ socket (empty delimiter) works for commands too."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(running.server.trade_endpoint)
    try:
        s.send(make_cmds(2).tobytes())
        assert s.poll(5000)
        body = s.recv()
        assert len(body) == 80
    finally:
        s.close()


def test_subscriber_stream_equals_replay_and_late_subscribers(running):
    c = running.client()
    early = running.subscriber()
    for i in range(40):
        c.send(make_cmds(25, start_ref=1 + 25 * i))
    c.drain()
    frames = collect(early, 1000)
    live = np.concatenate([f.events for f in frames])
    assert live["seq"].tolist() == list(range(1, 1001))
    assert live.tobytes() == replay_all(early).tobytes()
    # From any sequence number: exactly the events from there on.
    for start in (1, 2, 500, 999, 1000):
        late = running.subscriber(from_seq=start)
        got = np.concatenate([f.events for f in collect(late, 1000)])
        assert got["seq"].tolist() == list(range(start, 1001))
        late.close()


def test_subscriber_fills_a_gap_from_replay(running):
    """A subscriber whose first live frame starts past its next seq fills the gap."""
    c = running.client()
    c.request(make_cmds(100))
    sub = running.subscriber(from_seq=1)
    sub.caught_up = True  # skip the initial catch-up: the first live frame shows a gap
    ref = 1000
    frames_before = []
    for _ in range(1000):
        c.request(make_cmds(5, start_ref=ref))
        ref += 5
        frames_before = sub.poll(timeout_ms=20, idle_replay=False)
        if frames_before:
            break
    frames = collect(sub, ref - 1000 + 100, idle_replay=False)
    assert sub.gaps_filled >= 1
    assert sub.frames_replayed >= 1
    first = frames_before + frames
    seqs = [int(s) for f in first for s in f.events["seq"]]
    # Every command from 1 on exactly once, in order, though the first live frame
    # started far past seq 1.
    assert seqs == list(range(1, sub.next_seq))


def test_restart_recovers_state_and_event_log(tmp_path):
    d = str(tmp_path / "core")
    r = Running(d)
    c = r.client()
    for i in range(30):
        c.send(make_cmds(10, start_ref=1 + 10 * i))
    c.drain()
    h = r.admin.control("state_hash")["state_hash"]
    before = replay_all(r.subscriber())
    r.stop()

    storage = FileStorage(d)
    # Case 1: the event log lost its tail (written, not synced): rebuilt from the journal.
    seg = list_segments(storage)[-1][1]
    storage.truncate(seg, storage.size(seg) // 2)
    r = Running(d)
    assert r.admin.control("state_hash")["state_hash"] == h
    assert replay_all(r.subscriber()).tobytes() == before.tobytes()
    r.stop()

    # Case 2: the event log is gone entirely, and it ends before the newest snapshot:
    # a from-scratch replay of the journal regenerates it.
    for _, name in list_segments(storage):
        storage.remove(name)
    r = Running(d)
    assert r.server.status()["event_log_last_seq"] == 300
    assert replay_all(r.subscriber()).tobytes() == before.tobytes()
    r.stop()

    # Case 3: the log claims commands the journal does not have.  In fsync mode
    # every logged event was durable in the journal first: acknowledged commands
    # are missing, and the core refuses to start (issue 16)...
    seg = list_segments(storage)[-1][1]
    extra = np.zeros(2, dtype=EV_DTYPE)
    extra["seq"] = [301, 302]
    storage.append(seg, encode_event_frame(301, 302, extra.tobytes()))
    with pytest.raises(JournalLoss, match="event log"):
        CoreServer(
            loopback_config(d),
            core_cls=FakeCore,
        )
    # ... in async mode (lost unsynced journal bytes are possible) those records are
    # dropped, as they are in fsync mode after the operator accepted the loss.
    r = Running(d, mode="async")
    assert r.server.status()["event_log_last_seq"] == 300
    assert replay_all(r.subscriber()).tobytes() == before.tobytes()
    c = r.client()
    assert c.request(make_cmds(1, start_ref=7))["seq"][0] == 301
    r.stop()


def test_damaged_older_event_segment_is_regenerated_in_the_background(tmp_path):
    # Start reads only the event log's last segment (issue 16: recovery time); an
    # older damaged one is found by the background check and rebuilt from the journal.
    d = str(tmp_path / "core")
    r = Running(d, event_log_segment_bytes=8192)
    c = r.client()
    for i in range(40):
        c.request(make_cmds(10, start_ref=1 + 10 * i))  # one batch (frame) each
    before = replay_all(r.subscriber())
    r.stop()
    storage = FileStorage(d)
    segs = list_segments(storage)
    assert len(segs) >= 3
    name = segs[1][1]
    data = bytearray(storage.read(name, 0, storage.size(name)))
    data[len(data) // 2] ^= 0xFF
    storage.write_at(name, 0, bytes(data))
    r = Running(d, event_log_segment_bytes=8192)
    try:
        assert r.server.status()["event_log_last_seq"] == 400  # nothing cut at start
        deadline = time.monotonic() + 60
        while not r.server.status()["event_log_verified"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert r.server.status()["event_log_verified"]
        assert FileStorage(d).read(name, 0, 1 << 20) != bytes(data)  # rewritten
        assert replay_all(r.subscriber()).tobytes() == before.tobytes()
    finally:
        r.stop()
    # The regeneration is a from-scratch replay that stops at the end wanted...
    frames = list(regenerate_events(FileStorage(d), 7, 400, max_frame_events=50, core_cls=FakeCore))
    decoded = [decode_event_frame(f) for f in frames]
    assert decoded[0].first_seq == 7 and decoded[-1].last_seq == 400
    assert all(b.first_seq == a.last_seq + 1 for a, b in itertools.pairwise(decoded))
    assert all(len(f.events) <= 50 for f in decoded)
    regenerated = np.concatenate([f.events for f in decoded])
    assert regenerated.tobytes() == before[before["seq"] >= 7].tobytes()
    # ... and refuses beyond the journal's end.
    with pytest.raises(JournalCorrupt, match="journal ends at seq 400"):
        list(regenerate_events(FileStorage(d), 390, 401, max_frame_events=50, core_cls=FakeCore))


def test_large_batches_are_split_into_frames(tmp_path):
    r = Running(str(tmp_path / "core"))
    try:
        c = r.client()
        c.request(make_cmds(MAX_FRAME_CMDS))
        sub = r.subscriber()
        frames = collect(sub, MAX_FRAME_CMDS)
        assert len(frames) >= 2
        assert sum(len(f.events) for f in frames) == MAX_FRAME_CMDS
    finally:
        r.stop()


def test_config_file_and_bad_settings(tmp_path):
    from engine.server import _parse_args, config_from_args, load_config

    toml = tmp_path / "core.toml"
    toml.write_text('[core_server]\nmode = "async"\nsnapshot_every_cmds = 5\n')
    args = _parse_args(["--config", str(toml), "--data-dir", str(tmp_path / "x")])
    cfg = config_from_args(args)
    assert cfg.mode == "async" and cfg.snapshot_every_cmds == 5
    assert cfg.data_dir == str(tmp_path / "x")
    bad = tmp_path / "bad.json"
    bad.write_text('{"core_server": {"mode": "fsync", "bogus": 1}}')
    with pytest.raises(ValueError):
        load_config(str(bad))
    with pytest.raises(ValueError):
        ServerConfig(mode="sometimes").validate()
    assert np.zeros(1, CMD_DTYPE).itemsize == 96


def test_frames_doc_states_the_real_sizes_and_bounds():
    from engine.replay_service import REPLAY_BYTES_MAX, REPLAY_EVENTS_MAX
    from engine.server import MAX_BATCH_CMDS, MAX_FRAME_EVENTS
    from engine.wire.frames import EVENT_HEADER_SIZE, REPLAY_END, REPLAY_REQUEST
    from engine.wire.frames_doc import FRAMES_DOC

    assert f"one part of {REPLAY_REQUEST.size} bytes" in FRAMES_DOC
    assert f"the end marker, {REPLAY_END.size} bytes" in FRAMES_DOC
    assert f"| {EVENT_HEADER_SIZE} | 96 x n |" in FRAMES_DOC
    assert f"1..{MAX_FRAME_CMDS:,} command records" in FRAMES_DOC
    assert f"{MAX_BATCH_CMDS:,} commands per batch" in FRAMES_DOC
    assert f"at most {MAX_FRAME_EVENTS:,} events" in FRAMES_DOC
    assert f"the server's bound, {REPLAY_EVENTS_MAX:,}" in FRAMES_DOC
    assert f"{REPLAY_BYTES_MAX >> 20} MiB" in FRAMES_DOC
    assert f"= {int(Reason.MALFORMED_FRAME)} `MALFORMED_FRAME`" in FRAMES_DOC


def test_failed_snapshot_is_reported_and_trading_goes_on(running, monkeypatch):
    from engine.snapshot import SnapshotWriteError

    c = running.client()
    c.request(make_cmds(3))

    def broken_snapshot() -> None:
        raise SnapshotWriteError("disk full (injected)")

    monkeypatch.setattr(running.server.sequencer, "snapshot", broken_snapshot)
    with pytest.raises(CoreError, match="snapshot failed"):
        running.admin.control("snapshot")
    # The loop survived: commands are still sequenced and acknowledged.
    rep = c.request(make_cmds(2, start_ref=100))
    assert list(rep["client_ref"]) == [100, 101]
    assert running.admin.control("ping")["last_seq"] == 5
