"""The API's link to the core: commands on the core's trade link (its stream trade
link ``unix:/path`` when it has one, else the zmq ``trade`` socket:
:func:`bindings.streamlink.trade_client`), balance queries on ``admin``, events from
the core's event stream link (``unix:/path``) or PUB, gaps from replay
(:class:`bindings.client.EventSubscriber`).

All on the asyncio loop (the sockets' FDs are watched with ``add_reader``; the zmq
ones are edge-triggered, so every wake-up drains them).  At the end of a loop turn
(:meth:`CoreLink.flush`) what must be durable before the turn's commands leave is
made so (:meth:`Store.sync`: an id reservation in a transaction, the new orders'
images in the store's intent file), then the commands leave together in one frame.
The follower's effects (order rows, fills, the last core seq) are rebuildable from
the core, so no answer waits for them to reach SQLite: they are committed grouped,
in one transaction with their last seq, ``commit_interval_s`` after the first one
is buffered (:meth:`CoreLink._group_commit`), when ``MAX_PENDING_ROWS`` are
buffered, before any read that goes to SQLite and at shutdown; after a kill -9 the
API resumes from the committed seq and applies the rest again.  A request that needs
the outcome of its command awaits its reply (:meth:`CoreLink.send`) and then the
application of the events of the reply's ``seq`` in memory (:meth:`CoreLink.applied`).
The order path's NEW (:meth:`CoreLink.send_new`) gets both in one
:class:`OrderReply`, whose ``target`` (the connection's answer) the link calls
directly once it is done: no done callback, ``call_soon`` or loop callback per order.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import itertools
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import numpy as np
import zmq

from api.follow import Follower
from api.store import PENDING_NEW, Store
from bindings.client import CoreClient, CoreError, EventSubscriber
from bindings.loopwatch import LoopWatch
from bindings.streamlink import StreamEventSource, StreamTradeClient, trade_client
from bursa_wire.layout import CMD_DTYPE, CMD_SIZE, REPLY_DTYPE
from engine.wire import commands
from engine.wire.frames import (
    CONTROL_TAG,
    REPLAY_BEYOND_END,
    REPLY_SIZE,
    decode_control,
    encode_control,
)
from pyx.enums import CmdKind

log = logging.getLogger("bursa.api")

# Plain ints: pyzmq's enum members cost an enum object per ``&`` on every wake-up.
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)
MAX_FRAME_CMDS = 4096
MAX_INFLIGHT = 100_000  # commands sent and not answered; beyond, requests are refused
# Command frames queued towards a core that has not taken them yet, at most (zmq
# link; the stream link bounds bytes): beyond, requests are refused at once.
TRADE_SEND_HWM = 10_000
# The follower's effects are committed at most this long after the first one is
# buffered (``[api] commit_interval_ms``).
COMMIT_INTERVAL_S = 0.05


# A core reply (``REPLY_DTYPE``'s fields by name: ``seq``, ``status``, ``reason``, ...).
Reply = dict[str, int]
_REPLY_NAMES = tuple(REPLY_DTYPE.names or ())


class StateAheadError(RuntimeError):
    """The API's state is past the end of the core's event log: it belongs to another
    (or a reset) exchange and must be deleted to be rebuilt."""


class CoreUnavailableError(Exception):
    """The core cannot take a command now (not connected, or too much in flight)."""


class CoreTimeoutError(Exception):
    """The core did not answer a command sent with ``expire`` within ``reply_timeout_s``."""


class OrderReply(asyncio.Future[None]):
    """The outcome of a NEW sent by :meth:`CoreLink.send_new`: done (result ``None``)
    once the core's reply is in and the events of its ``seq`` are applied, or failed
    with :class:`CoreTimeoutError` / :class:`CoreUnavailableError`.  The reply's
    ``seq`` (0: refused before sequencing) and ``reason`` are attributes, not a dict.

    A plain ``asyncio.Future`` for whoever awaits it (the aiohttp route); the order
    path of :mod:`api.fasthttp` sets ``target`` instead of a done callback and the
    link calls it directly once the future is done (no ``call_soon`` and no loop
    callback per order)."""

    __slots__ = ("reason", "ref", "seq", "target")

    ref: int
    seq: int
    reason: int
    # Called with this future by the link right after it completes it (any outcome).
    target: Callable[[OrderReply], None] | None


_seq_of = attrgetter("seq")


class CoreLink:
    """See the module docstring; ``on_applied`` runs after each applied event batch."""

    def __init__(
        self,
        store: Store,
        follower: Follower,
        trade_endpoint: str,
        admin_endpoint: str,
        pub_endpoint: str,
        replay_endpoint: str,
        on_applied: Callable[[], None],
        reply_timeout_s: float = 5.0,
        commit_interval_s: float = COMMIT_INTERVAL_S,
    ) -> None:
        self.store = store
        self.commit_interval_s = commit_interval_s
        self._commit_timer: asyncio.TimerHandle | None = None
        self.reply_timeout_s = reply_timeout_s
        self.follower = follower
        self.on_applied = on_applied
        # Queue only to a connected core and only so much: otherwise refuse at once.
        self.trade = trade_client(trade_endpoint, send_hwm=TRADE_SEND_HWM)
        # The loop's watch on the trade link and on the live event source (start()).
        self._trade_watch: LoopWatch | None = None
        self._events_watch: LoopWatch | None = None
        # Event frames (live, replayed) of the subscribers replaced by _resubscribe.
        self._frames_before = [0, 0]
        self.admin = CoreClient(admin_endpoint)
        self._pub, self._replay = pub_endpoint, replay_endpoint
        self.sub = self._subscriber()
        self._refs = itertools.count(1)
        # The replies awaited by ref: a command's Future (send) or a NEW's (send_new).
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._controls: deque[asyncio.Future[dict[str, Any]]] = deque()
        self._queue: list[bytes | bytearray] = []
        self._queue_refs: list[int] = []
        # (seq, tie-break, future, its result): woken once ``seq`` is applied.
        self._waiters: list[tuple[int, int, asyncio.Future[Any], Any]] = []
        self._after_apply: set[int] = set()  # refs whose reply waits for its events
        # The NEWs whose reply is in, by ``seq`` (the link's replies come in seq order:
        # appended), each completed once its ``seq`` is applied.
        self._order_waiters: deque[OrderReply] = deque()
        self._wait_ids = itertools.count()
        # (deadline, reply) of commands sent with ``expire``, oldest first (one timeout
        # for all: deadlines come in order), and the one timer armed for the first.
        self._expiry: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._expiry_timer: asyncio.TimerHandle | None = None
        self._flush_scheduled = False
        self._flush_cb = self.flush  # bound once, not once per loop turn
        self._applied_pending = False  # events applied since the last flush
        # The last core seq whose events are applied (applied() waits for it).
        self.applied_seq = store.last_core_seq
        self.loop: asyncio.AbstractEventLoop | None = None
        self._tick: asyncio.Task[None] | None = None

    def _subscriber(self) -> EventSubscriber:
        sub = EventSubscriber(self._pub, self._replay, from_seq=self.store.last_core_seq + 1)
        sub.replay_timeout_ms = 500
        return sub

    def _resubscribe(self, why: Exception) -> None:
        """A failed poll may have consumed frames it never delivered (its position moved
        on): start again after the last seq applied."""
        log.warning("event stream: %s; resubscribing from seq %d", why,
                    self.store.last_core_seq + 1)  # fmt: skip
        watched = self.loop is not None and self._tick is not None
        if watched:
            self._unwatch_source()
        self._frames_before[0] += self.sub.frames_live
        self._frames_before[1] += self.sub.frames_replayed
        self.sub.close()
        self.sub = self._subscriber()
        if watched:
            self._watch_source()

    def event_frames(self) -> tuple[int, int]:
        """Event frames applied since start: (from the live source, from the replay
        service).  Live frames stopping while replayed ones grow means the live
        source is not being read (metrics, tests)."""
        live, replayed = self._frames_before
        return live + self.sub.frames_live, replayed + self.sub.frames_replayed

    def event_source_up(self) -> bool:
        """Whether the live event source is connected and its descriptor watched (a
        stream source's changes on every reconnect)."""
        fd = self.sub.sub.fileno()
        return fd >= 0 and self._events_watch is not None and fd == self._events_watch.fd

    def _watch_source(self) -> None:
        """Read events when the live source is readable: the zmq SUB descriptor, or
        the event stream link's (``unix:``), which changes when it reconnects."""
        assert self.loop is not None
        # With a stream trade link (its own reader) the events' reader is _pump_events
        # itself: no frame of _on_events_readable's per wake-up.
        on_readable = (
            self._pump_events
            if isinstance(self.trade, StreamTradeClient)
            else self._on_events_readable
        )
        self._events_watch = LoopWatch(self.loop, on_readable)
        live = self.sub.sub
        if isinstance(live, StreamEventSource):
            self._events_watch.start(live)
        else:
            self._events_watch.start_fixed(live.fileno())

    def _unwatch_source(self) -> None:
        """Stop watching the live source (before it is closed)."""
        if self._events_watch is not None:
            self._events_watch.stop()
            self._events_watch = None

    # ---------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Catch up with the core's event log, probe orders a crash left pending, watch
        the sockets."""
        self.loop = asyncio.get_running_loop()
        while True:
            try:
                self._apply(self.sub.poll(0, max_frames=0))
                break
            except (TimeoutError, CoreError) as e:
                if f"status {REPLAY_BEYOND_END}" in str(e):
                    raise StateAheadError(
                        f"the API's state (core seq {self.store.last_core_seq}) is past the end"
                        " of the core's event log: it was built from another exchange; delete"
                        " its database (db_path) to rebuild it from this core"
                    ) from e
                self._resubscribe(e)
                await asyncio.sleep(0.2)
        self._recover_pending()
        self.loop.add_reader(self.admin.sock.fileno(), self._pump_admin)
        self._watch_source()
        self._trade_watch = LoopWatch(self.loop, self._pump_trade)
        self._trade_watch.start(self.trade)
        self._tick = self.loop.create_task(self._ticker())
        self.pump()

    async def stop(self) -> None:
        """Stop watching, commit, close the sockets."""
        if self._commit_timer is not None:
            self._commit_timer.cancel()
            self._commit_timer = None
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
        if self.loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(self.admin.sock.fileno())
            self._unwatch_source()
            if self._trade_watch is not None:
                self._trade_watch.stop()
        self.flush()
        self.store.commit()
        for fut in list(self._replies.values()):
            if not fut.done():
                self._fail(fut, CoreUnavailableError("shutting down"))
        self.trade.close()
        self.admin.close()
        self.sub.close()

    def _recover_pending(self) -> None:
        """Orders stored PENDING_NEW whose NEW may never have reached the core (a crash
        between the store's commit or intent write and the send, or before their first
        events were committed): a CANCEL settles each (canceled if
        it was applied, else it never existed)."""
        for o in list(self.store.open.values()):
            if o.status == PENDING_NEW:
                self.follower.probing.add((o.user_id, o.order_id))
                self.send(commands.cancel(o.order_id, o.user_id))

    # ----------------------------------------------------------- commands

    def send(
        self, rec: np.ndarray[Any, Any] | bytes, applied: bool = False, expire: bool = False
    ) -> asyncio.Future[Reply]:
        """Queue one command record (a one-record ``CMD_DTYPE`` array or its 96 bytes,
        e.g. :func:`new_record`; sent at the end of this loop turn); its reply.  With
        ``applied`` the reply is delivered once the events of its seq are applied too
        (one wake-up instead of awaiting :meth:`applied` after it).  With ``expire``
        the reply fails with :class:`CoreTimeoutError` after ``reply_timeout_s`` (one
        timer for all such commands instead of one each; for a reply only its own
        request awaits)."""
        assert self.loop is not None
        fut: asyncio.Future[Reply] = self.loop.create_future()
        ref = self._enqueue(rec.tobytes() if isinstance(rec, np.ndarray) else rec, fut, expire)
        if applied:
            self._after_apply.add(ref)
        return fut

    def send_new(self, rec: bytes) -> OrderReply:
        """Queue a NEW (its 96 bytes, :func:`pack_new`'s; sent at the end of this loop
        turn): :meth:`send` ``applied`` and ``expire`` for the order path, its outcome
        an :class:`OrderReply` (no dict per reply nor ``call_soon`` per order: the
        reply's ``target`` is called directly)."""
        assert self.loop is not None
        fut = OrderReply(loop=self.loop)
        fut.target = None
        fut.ref = self._enqueue(rec, fut, True)
        return fut

    def _enqueue(self, rec: bytes, fut: asyncio.Future[Any], expire: bool) -> int:
        """Queue one command record's bytes with ``fut`` awaiting its reply (:meth:`send`,
        :meth:`send_new`); its client ref.  ``expire``: ``fut`` fails with
        :class:`CoreTimeoutError` after ``reply_timeout_s``."""
        loop = self.loop
        assert loop is not None
        if len(self._replies) >= MAX_INFLIGHT:
            raise CoreUnavailableError("too many commands in flight")
        if len(rec) != CMD_SIZE:
            raise ValueError(f"a command record is {CMD_SIZE} bytes, not {len(rec)}")
        ref = next(self._refs)
        raw = bytearray(rec)
        _U64.pack_into(raw, _CLIENT_REF_AT, ref)
        self._replies[ref] = fut
        self._queue.append(raw)
        self._queue_refs.append(ref)
        if not self._flush_scheduled:  # the turn's flush, once (as _pump_events)
            self._flush_scheduled = True
            loop.call_soon(self._flush_cb)
        if expire:
            self._expiry.append((loop.time() + self.reply_timeout_s, fut))
            if self._expiry_timer is None:
                self._expiry_timer = loop.call_at(self._expiry[0][0], self._expire)
        return ref

    def _fail(self, fut: asyncio.Future[Any], exc: Exception) -> None:
        """Fail a reply (not done); a NEW's ``target`` is told at once."""
        fut.set_exception(exc)
        if type(fut) is OrderReply and fut.target is not None:
            self._tell(fut)

    def _tell(self, fut: OrderReply) -> None:
        """Call a done NEW's ``target`` (its request's answer); a failure there is the
        request's, logged, never the link's."""
        assert fut.target is not None
        try:
            fut.target(fut)
        except Exception:
            log.exception("answering an order")

    def _expire(self) -> None:
        """Fail the replies of :meth:`send` ``expire`` that are due; re-arm for the next."""
        assert self.loop is not None
        self._expiry_timer = None
        now = self.loop.time()
        q = self._expiry
        while q and (q[0][1].done() or q[0][0] <= now):
            _, fut = q.popleft()
            if not fut.done():
                self._fail(fut, CoreTimeoutError())
        if q:
            self._expiry_timer = self.loop.call_at(q[0][0], self._expire)

    def flush(self) -> None:
        """End of a loop turn: make durable what must be before the turn's commands
        leave (:meth:`Store.sync`), wake the requests whose events are now applied,
        arm the group commit of the follower's effects, then send the queued
        commands."""
        store = self.store
        if self._applied_pending:
            # The answers before the sync: an answer may start its connection's next
            # order, whose NEW then leaves with this turn's, made durable by the sync
            # below (and, _flush_scheduled still set, without a flush of its own).
            self._applied_pending = False
            self.applied_seq = last = store.last_core_seq
            # The user data streams before the answers (as when the answers ran from
            # call_soon after it).
            self.on_applied()
            while self._waiters and self._waiters[0][0] <= last:
                _, _, w, result = heapq.heappop(self._waiters)
                if not w.done():
                    w.set_result(result)
            ow = self._order_waiters
            while ow and ow[0].seq <= last:
                new = ow.popleft()
                if not new.done():
                    new.set_result(None)
                    if new.target is not None:
                        try:  # _tell, inline: the usual way an order is answered
                            new.target(new)
                        except Exception:
                            log.exception("answering an order")
        self._flush_scheduled = False
        store.sync()
        if self._commit_timer is None and store.pending and self.loop is not None:
            self._commit_timer = self.loop.call_later(self.commit_interval_s, self._group_commit)
        if not self._queue:
            return
        recs = self._queue
        refs = self._queue_refs
        self._queue, self._queue_refs = [], []
        for i in range(0, len(recs), MAX_FRAME_CMDS):
            chunk = b"".join(recs[i : i + MAX_FRAME_CMDS])
            if not self.trade.try_send(chunk):
                for ref in refs[i : i + MAX_FRAME_CMDS]:
                    fut = self._replies.pop(ref, None)
                    self._after_apply.discard(ref)
                    if fut is not None and not fut.done():
                        self._fail(fut, CoreUnavailableError("core not connected"))

        if self._trade_watch is not None:
            self._trade_watch.sent(self.trade)

    def _group_commit(self) -> None:
        """Commit the follower's buffered effects (and anything else buffered) in one
        transaction with their last core seq (module docstring)."""
        self._commit_timer = None
        self.store.commit()

    def forget(self, fut: asyncio.Future[Any]) -> None:
        """Stop waiting for a reply (its request timed out)."""
        if type(fut) is OrderReply:
            self._replies.pop(fut.ref, None)
            return
        for ref, f in list(self._replies.items()):
            if f is fut:
                del self._replies[ref]
                self._after_apply.discard(ref)
                return

    def applied(self, seq: int) -> asyncio.Future[None]:
        """Done once the events of ``seq`` are applied (in memory: committed later,
        module docstring)."""
        assert self.loop is not None
        fut: asyncio.Future[None] = self.loop.create_future()
        if seq <= self.applied_seq:
            fut.set_result(None)
        else:
            heapq.heappush(self._waiters, (seq, next(self._wait_ids), fut, None))
        return fut

    async def balance(self, user_id: int, asset_id: int) -> tuple[int, int]:
        """(available, held) minor units of the user's trading account for an asset."""
        assert self.loop is not None
        req = {"op": "balance", "user_id": user_id, "asset_id": asset_id, "account": 0}
        if len(self._controls) >= MAX_INFLIGHT:
            raise CoreUnavailableError("too many balance queries in flight")
        try:
            self.admin.sock.send_multipart([CONTROL_TAG, encode_control(req)], zmq.NOBLOCK)
        except zmq.Again:
            raise CoreUnavailableError("core not connected") from None
        fut: asyncio.Future[dict[str, Any]] = self.loop.create_future()
        self._controls.append(fut)
        # A zmq descriptor is edge-triggered and the send may have taken its edge (the
        # answer already in): look once more after this turn.
        self.loop.call_soon(self._pump_admin)
        ans = await fut
        if not ans.get("ok"):
            return 0, 0
        bal = ans.get("balance", [0, 0])
        return int(bal[0]), int(bal[1])

    # --------------------------------------------------------------- input

    def _pump_admin(self) -> None:
        """Read every control answer available now (the admin socket's reader: only
        balance queries use it, so the order path never asks zmq about it)."""
        sock = self.admin.sock
        while int(sock.getsockopt(_EVENTS)) & _POLLIN:
            parts = sock.recv_multipart(zmq.NOBLOCK)
            if len(parts) == 2 and parts[0] == CONTROL_TAG and self._controls:
                fut = self._controls.popleft()
                if not fut.done():
                    fut.set_result(decode_control(parts[1]))

    def pump(self) -> None:
        """Read every reply, control answer and event available now."""
        self._pump_admin()
        self.pump_links()

    def pump_links(self) -> None:
        """Read every reply and event available now."""
        self._pump_trade()
        self._pump_events()

    def _on_events_readable(self) -> None:
        """The event source's reader with a zmq trade socket (:meth:`_watch_source`):
        its events and that socket's replies too (its descriptor is edge-triggered,
        and the turn's send may have taken the edge of a reply already in)."""
        self._pump_trade()
        self._pump_events()

    def _pump_trade(self) -> None:
        """Every reply readable now (the trade link's reader: not the event source as
        well, which would cost a select and a read that find nothing)."""
        replies = self._replies
        for body in self.trade.read_nowait():
            if len(body) % REPLY_SIZE:
                log.warning("undecodable reply frame from the core")
                continue
            # Tuples straight from the bytes (numpy's frombuffer and tolist cost more
            # than the few replies of a frame).
            for t in _REPLY_STRUCT.iter_unpack(body):
                ref = t[_REPLY_REF]
                f = replies.pop(ref, None)
                if type(f) is OrderReply:
                    seq = f.seq = t[_REPLY_SEQ]
                    f.reason = t[_REPLY_REASON]
                    if seq > self.applied_seq:  # its events are not applied yet
                        ow = self._order_waiters
                        if ow and seq < ow[-1].seq:  # out of seq order: in its place
                            bisect.insort(ow, f, key=_seq_of)
                        else:
                            ow.append(f)
                    elif not f.done():
                        f.set_result(None)
                        if f.target is not None:
                            self._tell(f)
                    continue
                r = dict(zip(_REPLY_NAMES, t, strict=True))
                if ref in self._after_apply:
                    self._after_apply.discard(ref)
                    seq = r["seq"]
                    if f is not None and seq > self.applied_seq:
                        heapq.heappush(self._waiters, (seq, next(self._wait_ids), f, r))
                        continue
                if f is not None and not f.done():
                    f.set_result(r)

    def _pump_events(self) -> None:
        """Every event frame available now."""
        sub = self.sub
        live = sub.sub
        if (
            sub.caught_up
            and isinstance(live, zmq.Socket)
            and not int(live.getsockopt(_EVENTS)) & _POLLIN
        ):
            return  # no event frame: poll() would find none (and cost a zmq.Poller)
        try:
            if isinstance(live, StreamEventSource):
                # One frame first (its poll reads what the socket holds), then just
                # the frames that read took: a poll beyond them would cost a select
                # that finds nothing, on every wake-up.
                frames = sub.poll(0, max_frames=1, idle_replay=False)
                if live.pending:
                    frames += sub.poll(0, max_frames=min(live.pending, 255), idle_replay=False)
            else:
                frames = sub.poll(0, max_frames=256, idle_replay=False)
        except (TimeoutError, CoreError) as e:
            self._resubscribe(e)
            frames = []
        self._apply(frames)
        if isinstance(live, StreamEventSource) and live.pending and self.loop is not None:
            # Frames already read off the socket do not make it readable again.
            self.loop.call_soon(self._pump_events)

    def _apply(self, frames: list[Any]) -> None:
        """Apply event frames; their waiters are woken by the turn's :meth:`flush`,
        their effects committed later (module docstring)."""
        if not frames:
            return
        apply_events = self.follower.apply_events  # compiled (pyx.apifollow)
        for f in frames:
            apply_events(f.events)
            self.store.set_core_seq(f.last_seq)
        self._applied_pending = True
        if not self._flush_scheduled and self.loop is not None:  # the turn's flush, once
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_cb)

    async def _ticker(self) -> None:
        """Idle replay (events whose PUB frame was lost) twice a second; a commit of
        what a request buffered outside a loop turn's flush (a refused order's
        deletion) and no flush armed."""
        while True:
            await asyncio.sleep(0.5)
            try:
                self._apply(self.sub.poll(0, max_frames=256, idle_replay=True))
            except (TimeoutError, CoreError) as e:
                self._resubscribe(e)
                await asyncio.sleep(5.0)
            self.pump()
            if self._commit_timer is None and not self._flush_scheduled and self.store.pending:
                self.store.commit()


def cancel_record(order_id: int, user_id: int) -> np.ndarray[Any, Any]:
    """A CANCEL command record."""
    return commands.cancel(order_id, user_id)


# numpy's integer codes (without the byte order) as ``struct``'s.
_STRUCT_CODES = {"u8": "Q", "i8": "q", "u4": "I", "i4": "i", "u2": "H", "i2": "h", "u1": "B",
                 "i1": "b"}  # fmt: skip


def _record_struct(only: tuple[str, ...] = ()) -> tuple[struct.Struct, tuple[str, ...]]:
    """A ``struct`` packing ``CMD_DTYPE`` records (field order and offsets from the
    layout table itself), and its field names in packing order; with ``only``, just
    those fields (the others are zero bytes)."""
    codes = _STRUCT_CODES
    fmt, pos, names = "<", 0, []
    fields = CMD_DTYPE.fields
    assert fields is not None
    for name, (dt, off, *_) in sorted(fields.items(), key=lambda kv: kv[1][1]):
        if only and name not in only:
            continue
        if off > pos:
            fmt += f"{off - pos}x"
        fmt += codes[dt.str[1:]]
        names.append(name)
        pos = off + dt.itemsize
    fmt += f"{CMD_SIZE - pos}x" if pos < CMD_SIZE else ""
    return struct.Struct(fmt), tuple(names)


def _reply_struct() -> struct.Struct:
    """A ``struct`` unpacking ``REPLY_DTYPE`` records into tuples of its fields in
    ``_REPLY_NAMES`` order (checked: a layout change fails the import)."""
    fields = REPLY_DTYPE.fields
    assert fields is not None
    fmt, pos = "<", 0
    for name in _REPLY_NAMES:
        dt, off = fields[name][:2]
        if off != pos or dt.byteorder == ">":
            raise ImportError(f"REPLY_DTYPE field {name!r} not packed in order")
        fmt += _STRUCT_CODES[dt.str[1:]]
        pos += dt.itemsize
    st = struct.Struct(fmt)
    if st.size != REPLY_SIZE:
        raise ImportError(f"REPLY_DTYPE is {REPLY_SIZE} bytes, its struct {st.size}")
    return st


_REPLY_STRUCT = _reply_struct()
_REPLY_REF = _REPLY_NAMES.index("client_ref")
_REPLY_SEQ = _REPLY_NAMES.index("seq")
_REPLY_REASON = _REPLY_NAMES.index("reason")
_CMD_STRUCT, _CMD_NAMES = _record_struct()
_NEW_TEMPLATE = dict.fromkeys(_CMD_NAMES, 0) | {"kind": int(CmdKind.NEW)}
_U64 = struct.Struct("<Q")
_CLIENT_REF_AT = CMD_DTYPE.fields["client_ref"][1]  # type: ignore[index]


def new_record(**fields: int) -> bytes:
    """A NEW command record (its ``CMD_DTYPE`` bytes) with ``fields`` set, others 0.

    Raises
    ------
    KeyError
        A field the record does not have.
    """
    vals = _NEW_TEMPLATE.copy()
    for k, v in fields.items():
        if k not in vals:
            raise KeyError(f"no command field {k!r}")
        vals[k] = v
    return _CMD_STRUCT.pack(*vals.values())


# The fields a NEW from the API sets, in the order of their offsets (pack_new's
# arguments follow it; checked at import so a layout change cannot misplace one).
NEW_ORDER_FIELDS = ("order_id", "price_ticks", "qty_lots", "stop_price_ticks", "user_id",
                    "symbol_id", "kind", "side", "ord_type", "tif", "stp", "flags")  # fmt: skip
_NEW_STRUCT, _NEW_NAMES = _record_struct(NEW_ORDER_FIELDS)
if _NEW_NAMES != NEW_ORDER_FIELDS:
    raise ImportError(f"CMD_DTYPE field order changed: {_NEW_NAMES}")
_NEW_KIND = int(CmdKind.NEW)


def pack_new(
    order_id: int, price_ticks: int, qty_lots: int, stop_price_ticks: int, user_id: int,
    symbol_id: int, side: int, ord_type: int, tif: int, stp: int, flags: int,
) -> bytes:  # fmt: skip
    """:func:`new_record` of these fields (the others 0) without a dict: one
    ``struct`` call (the order path's way; ``tests/api/test_hotpath.py`` holds the two
    to the same bytes)."""
    return _NEW_STRUCT.pack(order_id, price_ticks, qty_lots, stop_price_ticks, user_id, symbol_id,
                            _NEW_KIND, side, ord_type, tif, stp, flags)  # fmt: skip


def now_ms() -> int:
    """Wall clock in ms (Binance's time unit)."""
    return time.time_ns() // 1_000_000
