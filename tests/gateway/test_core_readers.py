"""How the gateway reads the core's links (``Gateway._on_trade_readable``,
``_on_events_readable``, ``flush``): with stream links (level-triggered
descriptors) each reader reads its own link only and a small read (one order in
flight) is flushed in the same loop iteration; a larger read, or one in a turn
whose flush is already scheduled (a session's commands wait for it), waits for the
end-of-turn flush; flush reads no link unless a balance answer is awaited on the
(edge-triggered) admin socket; with a zmq link everything is read on every wake-up
and flush, as before.  The live paths (both links, kill -9, replay) are
tests/gateway/test_kill9.py, test_e2e.py and test_session.py.
"""

from __future__ import annotations

from collections import deque
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bindings.gateway_client import order_frame
from bursa_wire.layout import EV_DTYPE, REPLY_DTYPE
from gateway import keys
from gateway import store as store_mod
from gateway.server import IMMEDIATE_FLUSH_MAX, Gateway, GatewayConfig
from pyx.enums import Side
from tests.gateway.test_enter_path import _conn as entry_conn
from tests.gateway.test_enter_path import _gateway as entry_gateway


class FakeHandle:
    """What ``call_soon`` returns: cancellable."""

    def __init__(self, cb: Any) -> None:
        self.cb = cb
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """call_soon only: the handles run when the test says the loop turn ends."""

    def __init__(self) -> None:
        self.ready: list[FakeHandle] = []

    def call_soon(self, cb: Any) -> FakeHandle:
        h = FakeHandle(cb)
        self.ready.append(h)
        return h

    def end_turn(self) -> int:
        """Run the handles not cancelled; how many ran."""
        ran = 0
        ready, self.ready = self.ready, []
        for h in ready:
            if not h.cancelled:
                h.cb()
                ran += 1
        return ran


class FakeTrade:
    """A stream trade link holding reply frames to read."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.reads = 0

    def read_nowait(self) -> list[bytes]:
        self.reads += 1
        out, self.bodies = self.bodies, []
        return out


class FakeFrame:
    def __init__(self, n: int, last_seq: int) -> None:
        self.events = np.zeros(n, dtype=EV_DTYPE)
        self.last_seq = last_seq


class FakeSub:
    """An EventSubscriber on a stream source holding event frames."""

    def __init__(self) -> None:
        self.frames: list[FakeFrame] = []
        self.caught_up = True
        self.sub = object()  # not a StreamEventSource: no pending frames
        self.polls = 0

    def poll(self, timeout_ms: int, max_frames: int, idle_replay: bool) -> list[FakeFrame]:
        self.polls += 1
        out, self.frames = self.frames, []
        return out


class FakeStore:
    def __init__(self) -> None:
        self.core_seq = 0

    def set_core_seq(self, seq: int) -> None:
        self.core_seq = seq


def _gateway(level: bool) -> tuple[Gateway, FakeLoop, list[str]]:
    """A Gateway without sockets: its readers, flush (recorded) and schedule only."""
    gw = Gateway.__new__(Gateway)
    loop = FakeLoop()
    gw.loop = loop  # type: ignore[assignment]
    gw.flush_scheduled = False
    gw._flush_handle = None
    gw.level_links = level
    gw.core = FakeTrade()  # type: ignore[assignment]
    gw.sub = FakeSub()  # type: ignore[assignment]
    gw.store = FakeStore()  # type: ignore[assignment]
    gw.stats = {"events": 0}
    gw.controls = deque()
    log: list[str] = []

    def on_replies(replies: Any) -> None:
        log.append(f"replies {len(replies)}")
        gw.schedule_flush()  # an ACCEPTED from the reply

    def on_events(events: Any) -> None:
        log.append(f"events {len(events)}")
        gw.schedule_flush()

    def flush() -> None:
        gw.flush_scheduled = False
        log.append("flush")

    gw.on_replies = on_replies  # type: ignore[method-assign]
    gw.on_events = on_events  # type: ignore[method-assign]
    gw.flush = flush  # type: ignore[method-assign]
    return gw, loop, log


def _reply_frame(n: int) -> bytes:
    return np.zeros(n, dtype=REPLY_DTYPE).tobytes()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3 * IMMEDIATE_FLUSH_MAX),
    frames=st.integers(1, 3),
    scheduled=st.booleans(),
    events=st.booleans(),
)
def test_a_small_read_flushes_in_the_same_iteration(
    n: int, frames: int, scheduled: bool, events: bool
) -> None:
    gw, loop, log = _gateway(level=True)
    if scheduled:
        gw.schedule_flush()  # a session's commands earlier in this poll phase
    per = max(1, n // frames)
    total = per * frames
    if events:
        gw.sub.frames = [FakeFrame(per, 10 + i) for i in range(frames)]  # type: ignore[attr-defined]
        gw._on_events_readable()
        assert gw.store.core_seq == 10 + frames - 1  # type: ignore[attr-defined]
        assert gw.stats["events"] == total
        assert gw.core.reads == 0  # type: ignore[attr-defined]
    else:
        gw.core.bodies = [_reply_frame(per) for _ in range(frames)]  # type: ignore[attr-defined]
        gw._on_trade_readable()
        assert gw.sub.polls == 0  # type: ignore[attr-defined]
    now = not scheduled and total <= IMMEDIATE_FLUSH_MAX
    assert ("flush" in log) == now
    # Exactly one flush either way: the immediate one cancels the scheduled handle.
    loop.end_turn()
    assert log.count("flush") == 1
    assert not gw.flush_scheduled


def test_an_empty_read_schedules_nothing() -> None:
    gw, loop, log = _gateway(level=True)
    gw._on_trade_readable()
    gw._on_events_readable()
    assert loop.end_turn() == 0 and log == []


@pytest.mark.parametrize("level", [True, False])
def test_pump_core_reads_every_link(level: bool) -> None:
    """The ticker's and shutdown's read (and every zmq wake-up): all links, one
    flush at the end of the turn."""
    gw, loop, log = _gateway(level)
    gw._pump_query = lambda: False  # type: ignore[method-assign]
    gw.core.bodies = [_reply_frame(1)]  # type: ignore[attr-defined]
    gw.sub.frames = [FakeFrame(2, 7)]  # type: ignore[attr-defined]
    gw.pump_core()
    assert log == ["replies 1", "events 2"]
    assert loop.end_turn() == 1 and log[-1] == "flush"


@pytest.mark.parametrize("level", [True, False])
@pytest.mark.parametrize("awaiting_balance", [True, False])
def test_flush_reads_links_only_when_edge_triggered(level: bool, awaiting_balance: bool) -> None:
    gw = Gateway.__new__(Gateway)
    gw.flush_scheduled = True
    gw.level_links = level
    gw.cmds, gw.cmd_tags = [], []
    gw.controls = deque([(1, 2, 3, 4)] if awaiting_balance else [])
    gw.sessions = {}
    calls: list[str] = []

    class Store:
        def log_turn(self) -> bool:
            return True

        def take_outbox(self) -> list[Any]:
            return []

    gw.store = Store()  # type: ignore[assignment]
    gw.pump_core = lambda: calls.append("pump_core")  # type: ignore[method-assign]

    def pump_query() -> bool:
        calls.append("query")
        return False

    gw._pump_query = pump_query  # type: ignore[method-assign]
    Gateway.flush(gw)
    if not level:
        assert calls == ["pump_core"]
    else:
        assert calls == (["query"] if awaiting_balance else [])
    assert not gw.flush_scheduled


@settings(max_examples=30, deadline=None)
@given(orders=st.integers(1, 2 * IMMEDIATE_FLUSH_MAX), scheduled=st.booleans(), level=st.booleans())
def test_a_small_session_read_flushes_in_the_same_iteration(
    orders: int, scheduled: bool, level: bool
) -> None:
    """A lone ENTER_ORDER (one in flight) is sent to the core from ``data_received``
    (stream links); a read of more orders, or one after another read scheduled the
    flush, or any read with a zmq link, waits for the end of the loop turn (one
    frame for all)."""
    with mock.patch.object(store_mod, "clock_order_id", lambda: 0):
        gw = entry_gateway(GatewayConfig(), [])
        conn = entry_conn(gw, keys.PERM_TRADE)
        loop = FakeLoop()
        gw.loop = loop  # type: ignore[assignment]
        gw._flush_handle = None
        gw.level_links = level
        flushed: list[int] = []

        def flush() -> None:
            gw.flush_scheduled = False
            flushed.append(len(gw.cmd_tags))

        gw.flush = flush  # type: ignore[method-assign]
        if scheduled:
            gw.schedule_flush()
        data = b"".join(
            order_frame(cl, symbol_id=1, side=Side.BUY, qty_lots=1) for cl in range(1, orders + 1)
        )
        conn.data_received(data)
        assert len(gw.cmd_tags) == orders
        now = level and not scheduled and orders <= IMMEDIATE_FLUSH_MAX
        assert flushed == ([orders] if now else [])
        loop.end_turn()
        assert flushed == [orders]  # exactly one flush either way
