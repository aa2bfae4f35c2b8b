"""The order path's loop-turn structure: a command that needs nothing durable first
leaves the moment it is sent (before the turn's flush) when the core has nothing of
ours to work on, else with the turn's other commands; commands keep their order,
and a link that refuses a command sent at once leaves nothing behind
(:meth:`api.core.CoreLink.send`)."""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from typing import Any

import pytest

from api.core import CoreLink, CoreUnavailableError, new_record
from bursa_wire.layout import CMD_DTYPE, CMD_SIZE

_REF_AT = CMD_DTYPE.fields["client_ref"][1]  # type: ignore[index]


class _Trade:
    """A trade link that records the frames it takes (or refuses them)."""

    def __init__(self, take: bool = True) -> None:
        self.take = take
        self.frames: list[bytes] = []
        self.wants_write = False

    def try_send(self, data: bytes | bytearray) -> bool:
        if self.take:
            self.frames.append(bytes(data))
        return self.take


class _Store:
    """What :meth:`CoreLink.flush` asks of the store (nothing to commit)."""

    last_core_seq = 0

    def commit(self) -> None:
        pass


def _link(loop: asyncio.AbstractEventLoop, trade: _Trade) -> CoreLink:
    """A CoreLink with only its command side (no sockets)."""
    link = CoreLink.__new__(CoreLink)
    link.loop = loop
    link.trade = trade  # type: ignore[assignment]
    link.store = _Store()  # type: ignore[assignment]
    link.reply_timeout_s = 5.0
    link._trade_watch = None
    link._refs = iter(range(1, 1000))  # type: ignore[assignment]
    link._replies, link._after_apply = {}, set()
    link._queue, link._queue_refs = [], []
    link._waiters, link._applied_pending = [], False
    link._flush_scheduled, link._expiry, link._expiry_timer = False, deque(), None
    return link


def _refs(frame: bytes) -> list[int]:
    return [struct.unpack_from("<Q", frame, i + _REF_AT)[0] for i in range(0, len(frame), CMD_SIZE)]


def test_a_command_sent_now_leaves_before_the_turn_ends() -> None:
    """``now``: the frame is on the link when send returns, the reply is awaited as
    any other; without it the command waits for the turn's flush."""

    async def run() -> tuple[list[bytes], list[bytes], Any]:
        trade = _Trade()
        link = _link(asyncio.get_running_loop(), trade)
        fut = link.send(new_record(order_id=1, user_id=7), applied=True, now=True)
        at_once = list(trade.frames)
        link.send(new_record(order_id=2, user_id=7))
        queued = list(trade.frames)
        await asyncio.sleep(0)  # the turn ends: flush
        return at_once, queued, (fut, link, trade)

    at_once, queued, (fut, link, trade) = asyncio.run(run())
    assert len(at_once) == 1 and _refs(at_once[0]) == [1]
    assert queued == at_once  # the second waited for the flush
    assert len(trade.frames) == 2 and _refs(trade.frames[1]) == [2]
    assert link._replies[1] is fut and 1 in link._after_apply


def test_a_busy_core_gets_the_turns_commands_in_one_frame() -> None:
    """``now`` while a command is unanswered: it waits for the turn's flush, with the
    turn's other commands; once every reply is in, the next leaves at once again."""

    async def run() -> tuple[list[bytes], list[bytes], list[bytes]]:
        trade = _Trade()
        link = _link(asyncio.get_running_loop(), trade)
        link.send(new_record(order_id=1, user_id=7), now=True)
        link.send(new_record(order_id=2, user_id=7), now=True)
        link.send(new_record(order_id=3, user_id=7), now=True)
        first = list(trade.frames)
        await asyncio.sleep(0)
        flushed = list(trade.frames)
        link._replies.clear()  # as if every reply were in
        link.send(new_record(order_id=4, user_id=7), now=True)
        return first, flushed, trade.frames

    first, flushed, last = asyncio.run(run())
    assert [_refs(f) for f in first] == [[1]]
    assert [_refs(f) for f in flushed] == [[1], [2, 3]]
    assert [_refs(f) for f in last] == [[1], [2, 3], [4]]


def test_commands_waiting_for_the_turn_go_first() -> None:
    """A command sent ``now`` after one that waits for the turn's commit does not
    overtake it: both leave with the flush, in the order sent."""

    async def run() -> tuple[list[bytes], list[bytes]]:
        trade = _Trade()
        link = _link(asyncio.get_running_loop(), trade)
        link.send(new_record(order_id=1, user_id=7))
        link.send(new_record(order_id=2, user_id=7), now=True)
        before = list(trade.frames)
        await asyncio.sleep(0)
        return before, trade.frames

    before, after = asyncio.run(run())
    assert before == []
    assert len(after) == 1 and _refs(after[0]) == [1, 2]


def test_a_refused_command_sent_now_leaves_nothing_behind() -> None:
    """A link that does not take the frame: CoreUnavailableError at once (the caller
    answers 503), no reply is awaited, nothing is queued for the flush."""

    async def run() -> CoreLink:
        link = _link(asyncio.get_running_loop(), _Trade(take=False))
        with pytest.raises(CoreUnavailableError):
            link.send(new_record(order_id=1, user_id=7), applied=True, expire=True, now=True)
        return link

    link = asyncio.run(run())
    assert link._replies == {} and link._after_apply == set()
    assert link._queue == [] and not link._flush_scheduled and not link._expiry
