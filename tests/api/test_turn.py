"""The reply side of the order path (:meth:`api.core.CoreLink.send_new`): a NEW's
:class:`api.core.OrderReply` completed by the link, its ``target`` called directly.

A fake trade link and a fake core drive a real :class:`CoreLink` (its loop an asyncio
loop that is not running, its clock the test's) through random interleavings of sends,
turns, refused frames, replies (sequenced or refused), applied events and timeouts;
every order must be answered exactly once, to its own request, with the outcome its
history decides, and never before its events are applied.  The NEW's bytes and the
reply decoding are held to their oracles (``pack_new`` / ``new_record``, numpy's
``decode_replies``).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from api.core import (
    _REPLY_STRUCT,
    CoreLink,
    CoreTimeoutError,
    CoreUnavailableError,
    OrderReply,
    new_record,
    pack_new,
)
from api.follow import Follower
from api.store import Store
from bindings.streamlink import StreamEventSource
from bursa_wire.layout import EV_DTYPE, REPLY_DTYPE
from engine.wire.frames import decode_replies

_REF_AT = 16  # CMD_DTYPE's client_ref and order_id offsets (checked below)
_OID_AT = 24
TIMEOUT_S = 5.0
U64 = st.integers(0, 2**64 - 1)


class FakeTrade:
    """The trade link: frames sent (unless ``down``) and reply frames to read."""

    def __init__(self) -> None:
        self.down = False
        self.sent: list[bytes] = []
        self.inbox: list[bytes] = []

    def try_send(self, chunk: bytes) -> bool:
        if self.down:
            return False
        self.sent.append(chunk)
        return True

    def read_nowait(self) -> list[bytes]:
        out, self.inbox = self.inbox, []
        return out

    def close(self) -> None:
        pass


@dataclass
class Frame:
    """An event frame as ``CoreLink._apply`` takes it (no events: only its seq)."""

    last_seq: int
    events: Any = field(default_factory=lambda: np.zeros(0, dtype=EV_DTYPE))


def reply_bytes(seq: int, ref: int, order_id: int, reason: int = 0) -> bytes:
    """One ``REPLY_DTYPE`` record."""
    r = np.zeros(1, dtype=REPLY_DTYPE)
    r["seq"], r["client_ref"], r["order_id"], r["reason"] = seq, ref, order_id, reason
    r["status"] = 1 if seq else 2
    return r.tobytes()


@pytest.fixture
def link(tmp_path: Path) -> Iterator[tuple[CoreLink, FakeTrade, list[float]]]:
    """A CoreLink on an idle asyncio loop with a fake trade link and a test clock."""
    store = Store(tmp_path / "api.db")
    follower = Follower(store, lambda sid, cfg: None)
    lk = CoreLink(store, follower, "tcp://127.0.0.1:9", "tcp://127.0.0.1:9",
                  "tcp://127.0.0.1:9", "tcp://127.0.0.1:9", lambda: None,
                  reply_timeout_s=TIMEOUT_S)  # fmt: skip
    lk.trade.close()
    trade = FakeTrade()
    lk.trade = trade  # type: ignore[assignment]
    loop = asyncio.new_event_loop()
    now = [1000.0]
    loop.time = lambda: now[0]  # type: ignore[method-assign]
    lk.loop = loop
    try:
        yield lk, trade, now
    finally:
        lk.admin.close()
        lk.sub.close()
        loop.close()
        store.close()


def test_offsets() -> None:
    """The offsets the fake core reads a NEW's ref and order id at."""
    rec = new_record(client_ref=7, order_id=9)
    assert struct.unpack_from("<QQ", rec, _REF_AT) == (7, 9)


FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
I64 = st.integers(-(2**63), 2**63 - 1)
NEW_VALUES = st.tuples(U64, I64, I64, I64, st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1),
                       *(st.integers(0, 255) for _ in range(5)))  # fmt: skip


@FIXTURE_OK
@given(NEW_VALUES)
def test_send_new_bytes_are_pack_new_with_the_ref(
    link: tuple[CoreLink, FakeTrade, list[float]], values: tuple[int, ...]
) -> None:
    """``send_new`` queues the record with its client_ref set, byte for byte; the ref
    is the future's."""
    lk = link[0]
    f = lk.send_new(pack_new(*values))
    want = bytearray(pack_new(*values))
    struct.pack_into("<Q", want, _REF_AT, f.ref)
    assert lk._queue[-1] == bytes(want)
    assert lk._queue_refs[-1] == f.ref and lk._replies[f.ref] is f


@settings(max_examples=200)
@given(st.lists(st.tuples(U64, U64, U64, st.integers(-(2**63), 2**63 - 1),
                          st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1),
                          st.integers(0, 255), st.integers(0, 255)), max_size=20))  # fmt: skip
def test_reply_struct_is_decode_replies(recs: list[tuple[int, ...]]) -> None:
    """The link's reply tuples are numpy's records, field for field."""
    body = b"".join(struct.pack("<QQQqIHBB", *r) for r in recs)
    assert [tuple(t) for t in _REPLY_STRUCT.iter_unpack(body)] == decode_replies(body).tolist()


# One step of an interleaving: (op, argument).
STEP = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 7)),  # a connection opens an order
    # The turn ends (the link up, or down: its frame refused).
    st.tuples(st.just("flush"), st.sampled_from([False, False, False, False, True])),
    # The core answers 1-3 NEWs in a frame, from any of those it took (arg // 3).
    st.tuples(st.just("reply"), st.integers(0, 300)),
    st.tuples(st.just("reject"), st.integers(0, 50)),  # the core refuses one (seq 0)
    st.tuples(st.just("apply"), st.integers(1, 3)),  # events up to n more seqs applied
    st.tuples(st.just("time"), st.sampled_from([0.0, 0.5, 2.0, 6.0])),  # the clock moves on
)


@settings(FIXTURE_OK, max_examples=400)
@given(st.lists(STEP, min_size=15, max_size=80))
def test_every_order_answered_once_to_its_request(
    link: tuple[CoreLink, FakeTrade, list[float]], steps: list[tuple[str, Any]]
) -> None:
    """Random interleavings: each NEW's target is called exactly once, with its own
    future, after its events are applied (or failed: refused frame, timeout), and
    the outcome is the one its history decides."""
    lk, trade, now = link
    lk._order_waiters.clear()
    lk._replies.clear()
    lk._expiry.clear()
    lk._queue.clear()
    lk._queue_refs.clear()
    trade.down = False
    trade.sent.clear()
    trade.inbox.clear()
    answers: dict[int, list[OrderReply]] = {}  # order id -> the futures its target got
    futs: dict[int, OrderReply] = {}  # order id -> its future
    sent_at: dict[int, float] = {}
    outcome: dict[int, str] = {}  # order id -> what the history says it must be
    core_seq = lk.applied_seq
    applied = lk.applied_seq
    # (ref, order id, seq) taken (and sequenced) by the core, not answered: answered
    # in any order, so a reply may come after its events are applied, or after a
    # later seq's reply.
    backlog: list[tuple[int, int, int]] = []
    seq_of: dict[int, int] = {}  # order id -> the seq of its reply (0: refused)
    next_oid = 1

    def answer(oid: int) -> Any:
        def target(f: OrderReply) -> None:
            assert f is futs[oid]
            assert f.done()
            if f.exception() is None:
                assert f.seq == seq_of[oid]
                assert f.seq <= lk.applied_seq  # its events are applied
            answers.setdefault(oid, []).append(f)

        return target

    def take_sent() -> None:
        nonlocal core_seq
        for chunk in trade.sent:
            for i in range(0, len(chunk), 96):
                ref, oid = struct.unpack_from("<QQ", chunk, i + _REF_AT)
                core_seq += 1
                backlog.append((ref, oid, core_seq))
        trade.sent.clear()

    def flush() -> None:
        queued = [struct.unpack_from("<Q", r, _OID_AT)[0] for r in lk._queue]
        lk.flush()
        if trade.down:
            for oid in queued:
                outcome.setdefault(oid, "unavailable")
        take_sent()

    def expire() -> None:
        for oid, t in sent_at.items():
            if oid not in outcome and now[0] >= t + TIMEOUT_S:
                outcome[oid] = "timeout"
        lk._expire()

    for op, arg in steps:
        if op == "send":
            oid = next_oid
            next_oid += 1
            f = lk.send_new(pack_new(oid, 1, 1, 0, arg + 1, 1, 1, 1, 1, 0, 0))
            f.target = answer(oid)
            futs[oid], sent_at[oid] = f, now[0]
        elif op == "flush":
            trade.down = arg
            flush()
        elif op in ("reply", "reject") and backlog:
            k = 1 if op == "reject" else 1 + arg % 3
            frame = b""
            for _ in range(min(k, len(backlog))):
                ref, oid, seq = backlog.pop(arg // 3 % len(backlog))
                if op == "reject":
                    seq_of[oid] = 0
                    frame += reply_bytes(0, ref, oid, arg)
                    outcome.setdefault(oid, "rejected")
                else:
                    seq_of[oid] = seq
                    frame += reply_bytes(seq, ref, oid)
                    if seq <= applied:  # its events came first
                        outcome.setdefault(oid, "ok")
            trade.inbox.append(frame)
            lk._pump_trade()
        elif op == "apply" and applied < core_seq:
            applied = min(core_seq, applied + arg)
            for oid, s in seq_of.items():
                if s and s <= applied:
                    outcome.setdefault(oid, "ok")
            lk._apply([Frame(applied)])
            flush()
        elif op == "time":
            now[0] += arg
            expire()
    # The end: everything still in flight times out.
    now[0] += TIMEOUT_S + 1
    expire()
    for v in sorted(set(outcome.values())):
        event(v)
    assert set(answers) == set(futs)  # none lost
    for oid, got in answers.items():
        assert len(got) == 1, oid  # none doubled
        f = got[0]
        want = outcome.get(oid, "timeout")
        exc = f.exception()
        if want == "timeout":
            assert isinstance(exc, CoreTimeoutError), (oid, exc)
        elif want == "unavailable":
            assert isinstance(exc, CoreUnavailableError), (oid, exc)
        else:
            assert exc is None, (oid, exc)
            assert f.seq == (0 if want == "rejected" else seq_of[oid])
    for f in futs.values():
        if isinstance(f.exception(), CoreTimeoutError):
            lk.forget(f)
    assert not lk._replies  # nothing left waiting


def test_generic_send_waits_for_its_events(link: tuple[CoreLink, FakeTrade, list[float]]) -> None:
    """``send(applied=True)`` (the aiohttp routes) still resolves to the reply's dict
    once its events are applied, and a plain ``send`` at once."""
    lk, trade, _ = link
    a = lk.send(new_record(order_id=5), applied=True)
    b = lk.send(new_record(order_id=6))
    lk.flush()
    refs = [struct.unpack_from("<Q", trade.sent[0], i + _REF_AT)[0] for i in (0, 96)]
    seq = lk.applied_seq
    trade.inbox.append(reply_bytes(seq + 1, refs[0], 5) + reply_bytes(seq + 2, refs[1], 6))
    lk._pump_trade()
    assert b.done() and b.result()["seq"] == seq + 2 and b.result()["order_id"] == 6
    assert not a.done()
    lk._apply([Frame(seq + 1)])
    lk.flush()
    assert a.done() and a.result()["client_ref"] == refs[0]


class FakeEvents:
    """An ``EventSubscriber`` on a stream event source whose socket holds ``kernel``
    frames (their seqs): a poll with no frame read yet selects, and the select reads
    ``per_read`` of them at most (as ``StreamEventSource`` does)."""

    def __init__(self, kernel: list[int], per_read: int) -> None:
        self.sub = StreamEventSource("unix:/nonexistent/apiturn.sock")
        self.caught_up = True
        self.kernel = kernel
        self.per_read = per_read
        self.selects = 0
        self.frames_live = self.frames_replayed = 0

    def poll(self, timeout_ms: int, max_frames: int, idle_replay: bool) -> list[Frame]:
        out: list[Frame] = []
        q: Any = self.sub._frames  # seqs standing for the frames read
        for _ in range(max_frames):
            if not q:
                self.selects += 1
                if not self.kernel:
                    break
                q.extend(self.kernel[: self.per_read])
                del self.kernel[: self.per_read]
            out.append(Frame(q.popleft()))
        return out

    def close(self) -> None:
        self.sub.close()


@settings(FIXTURE_OK, max_examples=100)
@given(st.lists(st.integers(0, 40), max_size=6), st.integers(1, 600))
def test_event_frames_read_with_one_select_per_wake_up(
    link: tuple[CoreLink, FakeTrade, list[float]], bursts: list[int], per_read: int
) -> None:
    """Each wake-up of the event source takes every frame its read brought, in order,
    with one select (none when woken for frames already read): no select that finds
    nothing.  Frames beyond one pump's bound are taken by the next (call_soon)."""
    lk = link[0]
    applied: list[int] = []
    lk._apply = lambda frames: applied.extend(f.last_seq for f in frames)  # type: ignore[method-assign]
    seq = 0
    sent: list[int] = []
    for n in bursts:
        fake = FakeEvents(list(range(seq + 1, seq + 1 + n)), per_read)
        sent += fake.kernel
        seq += n
        lk.sub.close()
        lk.sub = fake  # type: ignore[assignment]
        readable_wakes = 0
        while fake.kernel or fake.sub.pending:
            readable_wakes += not fake.sub.pending  # else a call_soon of frames read
            lk._pump_events()
        assert fake.selects == readable_wakes
    assert applied == sent
