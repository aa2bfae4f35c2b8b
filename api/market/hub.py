"""Fan-out of market streams to WebSocket connections, with bounded send buffers.

Connections with the same subscriptions (the same set of stream names and the same
``combined`` flag) form a *group*: 1,000 clients of the same ten depth streams are
one group.  A published event is encoded to JSON once and framed once (twice when
both raw and combined groups subscribe to it); the frame is appended to each
subscribed group's pending list.  At the end of the event-loop turn every group's
pending frames are joined once and the same bytes are written to each member's
transport: per connection and turn, one ``transport.write`` and one buffer check,
no per-message Python object and no coroutine per client.

A connection that receives a message of its own (the answer to a ``SUBSCRIBE``) or
changes its subscriptions while frames are pending leaves its group's batch for the
rest of the turn (*solo*): it takes a copy of the frames its group queued so far and
gets later frames one by one, so every connection receives exactly the frames
published while it was subscribed, in publication order.

A connection whose transport holds more than ``send_buffer_bytes`` unsent bytes is a
slow consumer: it is aborted at once, so its memory stays bounded and no other
client waits for it (nothing here ever awaits a client's drain).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Protocol

from api.market.frames import text_frame

log = logging.getLogger("bursa.api.market")

DEFAULT_SEND_BUFFER_BYTES = 4 << 20

GroupKey = tuple[frozenset[str], bool]


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (the encoding of every stream message)."""
    return json.dumps(obj, separators=(",", ":")).encode()


class Transport(Protocol):
    """What the hub needs of a connection's transport: asyncio's own and uvloop's
    (which does not subclass :class:`asyncio.Transport`) both provide it."""

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending."""

    def get_write_buffer_size(self) -> int:
        """Bytes queued and not yet sent."""

    def is_closing(self) -> bool:
        """True once the transport is closing or closed."""

    def abort(self) -> None:
        """Close at once, dropping unsent bytes."""


class Conn:
    """One WebSocket connection: its transport, streams, group and solo frames.

    ``combined`` and ``streams`` are changed only through :class:`Hub` (they decide
    the connection's group)."""

    __slots__ = ("closed", "combined", "group", "out", "streams", "transport")

    def __init__(self, transport: Transport, combined: bool) -> None:
        self.transport = transport
        self.combined = combined
        self.streams: set[str] = set()
        self.group: _Group | None = None
        # Not None while the connection is solo this turn: the frames to write to it.
        self.out: list[bytes] | None = None
        self.closed = False


class _Group:
    """Connections with the same subscriptions, and the frames queued for them."""

    __slots__ = ("combined", "conns", "key", "pending")

    def __init__(self, key: GroupKey) -> None:
        self.key = key
        self.combined = key[1]
        self.conns: set[Conn] = set()
        self.pending: list[bytes] = []


class Hub:
    """Stream name -> subscribed connections; publish, queue, write (see module docstring)."""

    def __init__(self, send_buffer_bytes: int = DEFAULT_SEND_BUFFER_BYTES) -> None:
        if send_buffer_bytes <= 0:
            raise ValueError("send_buffer_bytes must be > 0")
        self.send_buffer_bytes = send_buffer_bytes
        self.subs: dict[str, set[Conn]] = {}
        self.conns: set[Conn] = set()
        self._groups: dict[GroupKey, _Group] = {}
        # stream -> its groups (a dict as an ordered set: O(1) removal)
        self._stream_groups: dict[str, dict[_Group, None]] = {}
        self._dirty: list[_Group] = []
        self._solo: list[Conn] = []
        self._flush_handle: asyncio.Handle | None = None
        self.msgs_sent = 0
        self.slow_dropped = 0

    # ------------------------------------------------------- subscriptions

    def attach(self, conn: Conn) -> None:
        """Register a new connection."""
        self.conns.add(conn)

    def detach(self, conn: Conn) -> None:
        """Forget a connection and all its subscriptions."""
        conn.closed = True
        conn.out = None
        self.conns.discard(conn)
        for name in conn.streams:
            subs = self.subs.get(name)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self.subs[name]
        conn.streams.clear()
        self._regroup(conn)

    def subscribe(self, conn: Conn, name: str) -> None:
        """Add ``conn`` to stream ``name``."""
        if conn.closed or name in conn.streams:
            return
        self._leave_batch(conn)
        conn.streams.add(name)
        self.subs.setdefault(name, set()).add(conn)
        self._regroup(conn)

    def unsubscribe(self, conn: Conn, name: str) -> None:
        """Remove ``conn`` from stream ``name``."""
        if name not in conn.streams:
            return
        self._leave_batch(conn)
        conn.streams.discard(name)
        subs = self.subs.get(name)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.subs[name]
        self._regroup(conn)

    def set_combined(self, conn: Conn, combined: bool) -> None:
        """Switch ``conn`` between raw events and the combined ``{"stream", "data"}`` form."""
        if conn.closed or conn.combined == combined:
            return
        self._leave_batch(conn)
        conn.combined = combined
        self._regroup(conn)

    def has(self, name: str) -> bool:
        """True if stream ``name`` has a subscriber (skip building unread events)."""
        return name in self.subs

    @property
    def groups(self) -> int:
        """Number of distinct subscription groups (connections written to alike)."""
        return len(self._groups)

    def _regroup(self, conn: Conn) -> None:
        """Move ``conn`` to the group of its current subscriptions (none: no group)."""
        old = conn.group
        key = (frozenset(conn.streams), conn.combined)
        if old is not None:
            if old.key == key:
                return
            old.conns.discard(conn)
            if not old.conns:
                self._drop_group(old)
        if not conn.streams:
            conn.group = None
            return
        g = self._groups.get(key)
        if g is None:
            g = self._groups[key] = _Group(key)
            for name in key[0]:
                self._stream_groups.setdefault(name, {})[g] = None
        g.conns.add(conn)
        conn.group = g

    def _drop_group(self, g: _Group) -> None:
        del self._groups[g.key]
        for name in g.key[0]:
            groups = self._stream_groups[name]
            del groups[g]
            if not groups:
                del self._stream_groups[name]

    def _leave_batch(self, conn: Conn) -> None:
        """Make ``conn`` solo for the rest of this turn if frames may be pending (its
        subscriptions are about to change: later frames follow the new ones)."""
        if self._flush_handle is not None:
            self._go_solo(conn)

    def _go_solo(self, conn: Conn) -> list[bytes]:
        out = conn.out
        if out is None:
            g = conn.group
            out = conn.out = list(g.pending) if g is not None else []
            self._solo.append(conn)
            self._schedule()
        return out

    def _schedule(self) -> None:
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)

    # ------------------------------------------------------------- sending

    def publish(self, name: str, data: Any) -> None:
        """Queue event ``data`` (JSON-able) for every subscriber of stream ``name``."""
        groups = self._stream_groups.get(name)
        if not groups:
            return
        payload = dumps(data)
        raw = combined = b""
        dirty = self._dirty
        for g in groups:
            if g.combined:
                if not combined:
                    combined = text_frame(
                        b'{"stream":' + dumps(name) + b',"data":' + payload + b"}"
                    )
                frame = combined
            else:
                if not raw:
                    raw = text_frame(payload)
                frame = raw
            if not g.pending:
                dirty.append(g)
            g.pending.append(frame)
        for conn in self._solo:
            if conn.out is not None and name in conn.streams:
                conn.out.append(combined if conn.combined else raw)
        if self._flush_handle is None:
            self._schedule()

    def send(self, conn: Conn, data: Any) -> None:
        """Queue one message (e.g. a SUBSCRIBE answer) for ``conn`` only."""
        if conn.closed:
            return
        self._go_solo(conn).append(text_frame(dumps(data)))

    def flush(self) -> None:
        """Write every queued frame (one write per connection); drop slow consumers."""
        self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        solo, self._solo = self._solo, []
        limit = self.send_buffer_bytes
        gone: list[Conn] = []
        slow: list[Conn] = []
        sent = 0
        for g in dirty:
            frames, g.pending = g.pending, []
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            written = 0
            for conn in g.conns:
                if conn.out is not None:
                    continue  # solo this turn: written below
                tr = conn.transport
                if tr.is_closing():
                    gone.append(conn)
                    continue
                tr.write(data)
                written += 1
                if tr.get_write_buffer_size() > limit:
                    slow.append(conn)
            sent += written * len(frames)
        for conn in solo:
            out, conn.out = conn.out, None
            if not out or conn.closed:
                continue
            tr = conn.transport
            if tr.is_closing():
                gone.append(conn)
                continue
            tr.write(out[0] if len(out) == 1 else b"".join(out))
            sent += len(out)
            if tr.get_write_buffer_size() > limit:
                slow.append(conn)
        self.msgs_sent += sent
        for conn in gone:
            self.detach(conn)
        for conn in slow:
            if conn.closed:
                continue
            self.slow_dropped += 1
            log.info("websocket client dropped: more than %d bytes unsent", limit)
            self.detach(conn)
            conn.transport.abort()
