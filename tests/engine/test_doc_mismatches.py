"""Small mismatches between the core and its docs (issue 16), each pinned by a test.

- a malformed multi-part message is answered with ``value = -1``;
- a replay request from beyond the log's end says so (status 3);
- non-zero replay ``flags`` are a bad request;
- with both snapshots damaged, the refusal names the archived segment that
  ``bursa replay`` reads (not a live one that is not missing).
(The supply bound "below 2**62" is in test_core_funding.py.)
"""

from __future__ import annotations

import struct

import pytest
import zmq

from bursa_wire.layout import REPLY_DTYPE
from engine.journal import JournalCorrupt
from engine.recovery import recover
from engine.snapshot import list_snapshots
from engine.wire.frames import (
    REPLAY_BAD_REQUEST,
    REPLAY_BEYOND_END,
    REPLAY_OK,
    REPLAY_REQUEST,
    REPLAY_REQUEST_MAGIC,
    STATUS_REJECTED,
    decode_replay_end,
    encode_replay_request,
)
from pyx.enums import Reason
from tests.engine.fakecore import FakeCore, make_cmds
from tests.engine.test_recovery import live_run
from tests.engine.test_server import Running
from tests.engine.util import flip_bit


@pytest.fixture
def running(tmp_path):
    r = Running(str(tmp_path / "core"))
    yield r
    r.stop()


def test_malformed_multipart_message_has_value_minus_one(running) -> None:
    c = running.client()
    c.send_parts([make_cmds(1).tobytes(), make_cmds(1).tobytes()])
    (rep,) = c.drain()
    assert rep["status"] == STATUS_REJECTED and rep["reason"] == Reason.MALFORMED_FRAME
    assert int(rep["value"]) == -1
    c.send(b"q" * 10)  # one part: its length
    (rep,) = c.drain()
    assert int(rep["value"]) == 10
    assert REPLY_DTYPE["value"].kind == "i"


def ask(running: Running, body: bytes) -> tuple[int, int, int, int]:
    """(frames, status, next_seq, last_seq) of one raw replay request."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(running.server.replay_endpoint)
    try:
        s.send_multipart([b"", body])
        assert s.poll(10_000)
        parts = s.recv_multipart()
    finally:
        s.close()
    status, next_seq, last_seq = decode_replay_end(parts[-1])
    return len(parts) - 2, status, next_seq, last_seq


def test_replay_beyond_the_end_and_nonzero_flags(running) -> None:
    c = running.client()
    c.request(make_cmds(5))
    assert ask(running, encode_replay_request(1, 0))[:2] == (1, REPLAY_OK)
    # exactly at the end: a caught-up client's next question, answered OK and empty
    assert ask(running, encode_replay_request(6, 0)) == (0, REPLAY_OK, 6, 5)
    assert ask(running, encode_replay_request(7, 0)) == (0, REPLAY_BEYOND_END, 6, 5)
    assert ask(running, encode_replay_request(10**9, 0))[1] == REPLAY_BEYOND_END
    flagged = REPLAY_REQUEST.pack(REPLAY_REQUEST_MAGIC, 1, 1, 0)
    assert ask(running, flagged)[:2] == (0, REPLAY_BAD_REQUEST)
    assert struct.unpack_from("<I", encode_replay_request(1, 0), 4) == (0,)


def test_both_snapshots_damaged_names_the_archived_segment(storage) -> None:
    live_run(storage, [2] * 12, snapshot_at={3, 7, 10}, segment_bytes=500)  # archive: rename
    archived = sorted(n for n in storage.list() if n.startswith("archive-journal-"))
    assert archived
    for _, name in list_snapshots(storage):
        flip_bit(storage, name, 20)
    with pytest.raises(JournalCorrupt) as exc:
        recover(storage, core_cls=FakeCore)
    assert exc.value.segment == archived[0]
    assert "bursa replay" in str(exc.value) and archived[0] in str(exc.value)
    # ... and what the message points at works: a from-scratch replay reads them
    core, _ = recover(
        storage, core_cls=FakeCore, use_snapshots=False, include_archived=True, repair=False
    )
    assert core.last_seq == 24
