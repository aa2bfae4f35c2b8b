"""Fan-out of market streams to WebSocket connections, with bounded send buffers.

Each published event is encoded to JSON once and framed once (twice when some
subscribers use the combined ``{"stream", "data"}`` wrapper); the frame bytes are
queued on every subscribed connection and written in one ``transport.write`` per
connection per event-loop turn.  A connection whose transport holds more than
``send_buffer_bytes`` unsent bytes is a slow consumer: it is aborted at once, so its
memory stays bounded and no other client waits for it (nothing here ever awaits a
client's drain).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from api.market.frames import text_frame

log = logging.getLogger("bursa.api.market")

DEFAULT_SEND_BUFFER_BYTES = 4 << 20


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (the encoding of every stream message)."""
    return json.dumps(obj, separators=(",", ":")).encode()


class Conn:
    """One WebSocket connection: its transport, streams and frames not yet written."""

    __slots__ = ("closed", "combined", "out", "streams", "transport")

    def __init__(self, transport: asyncio.Transport, combined: bool) -> None:
        self.transport = transport
        self.combined = combined
        self.streams: set[str] = set()
        self.out: list[bytes] = []
        self.closed = False


class Hub:
    """Stream name -> subscribed connections; publish, queue, write (see module docstring)."""

    def __init__(self, send_buffer_bytes: int = DEFAULT_SEND_BUFFER_BYTES) -> None:
        if send_buffer_bytes <= 0:
            raise ValueError("send_buffer_bytes must be > 0")
        self.send_buffer_bytes = send_buffer_bytes
        self.subs: dict[str, set[Conn]] = {}
        self.conns: set[Conn] = set()
        self._dirty: list[Conn] = []
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
        self.conns.discard(conn)
        for name in conn.streams:
            subs = self.subs.get(name)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self.subs[name]
        conn.streams.clear()
        conn.out.clear()

    def subscribe(self, conn: Conn, name: str) -> None:
        """Add ``conn`` to stream ``name``."""
        conn.streams.add(name)
        self.subs.setdefault(name, set()).add(conn)

    def unsubscribe(self, conn: Conn, name: str) -> None:
        """Remove ``conn`` from stream ``name``."""
        conn.streams.discard(name)
        subs = self.subs.get(name)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.subs[name]

    def has(self, name: str) -> bool:
        """True if stream ``name`` has a subscriber (skip building unread events)."""
        return name in self.subs

    # ------------------------------------------------------------- sending

    def publish(self, name: str, data: Any) -> None:
        """Queue event ``data`` (JSON-able) for every subscriber of stream ``name``."""
        subs = self.subs.get(name)
        if not subs:
            return
        payload = dumps(data)
        raw = combined = b""
        for conn in subs:
            if conn.combined:
                if not combined:
                    combined = text_frame(
                        b'{"stream":' + dumps(name) + b',"data":' + payload + b"}"
                    )
                self._queue(conn, combined)
            else:
                if not raw:
                    raw = text_frame(payload)
                self._queue(conn, raw)

    def send(self, conn: Conn, data: Any) -> None:
        """Queue one message (e.g. a SUBSCRIBE answer) for ``conn`` only."""
        self._queue(conn, text_frame(dumps(data)))

    def _queue(self, conn: Conn, frame: bytes) -> None:
        if conn.closed:
            return
        if not conn.out:
            self._dirty.append(conn)
            if self._flush_handle is None:
                self._flush_handle = asyncio.get_running_loop().call_soon(self.flush)
        conn.out.append(frame)

    def flush(self) -> None:
        """Write every queued frame (one write per connection); drop slow consumers."""
        self._flush_handle = None
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            if conn.closed or not conn.out:
                continue
            out, conn.out = conn.out, []
            tr = conn.transport
            if tr.is_closing():
                self.detach(conn)
                continue
            tr.write(b"".join(out))
            self.msgs_sent += len(out)
            if tr.get_write_buffer_size() > self.send_buffer_bytes:
                self.slow_dropped += 1
                log.info(
                    "websocket client dropped: more than %d bytes unsent", self.send_buffer_bytes
                )
                self.detach(conn)
                tr.abort()
