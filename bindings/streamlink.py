"""Client of the core's stream trade link (:mod:`engine.streamlink`), and the factory
that picks the trade transport from the endpoint.

:class:`StreamTradeClient` has :class:`bindings.client.CoreClient`'s surface for
the ``trade`` role: blocking (``send``, ``recv_replies``, ``drain``, ``request``,
``submit``, ``one`` and the order wrappers) and non-blocking for an asyncio
loop (``try_send``, ``read_nowait``, ``wants_write``/``flush_nowait``,
``watch``/``fileno``).  Frames are length-prefixed (:mod:`engine.wire.streamframe`)
on a unix stream socket: no ZeroMQ I/O thread on either side.

When the core goes away (end of stream, reset), the connection is dropped with
everything queued on it (as a zmq DEALER with ``ZMQ_IMMEDIATE`` drops its pipe)
and a new one is tried at most every :data:`RECONNECT_INTERVAL_MS` by the next
send or read; ``watch`` callbacks tell an event loop the old descriptor is gone
and the new one is there.  Commands whose replies were lost are resent by the
caller with the same order ids: the core answers an applied one ``DUPLICATE``
with its first outcome.

Example::

    core = trade_client(ready["trade_stream"] or ready["trade"])  # either transport
    rep = core.new_limit(order_id=1, user_id=7, symbol_id=1, side=1, price_ticks=100,
                         qty_lots=1)
"""

from __future__ import annotations

import logging
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from bindings.client import DEFAULT_TIMEOUT_MS, CoreClient, CoreError, Records
from engine.streamlink import SCHEME, stream_path
from engine.wire.frames import decode_replies
from engine.wire.streamframe import FRAME_HEADER, FrameDecoder, StreamFrameError, encode_frame

log = logging.getLogger("bursa.streamlink")

# A lost link is tried again at most this often (a connect to a unix socket nobody
# listens on fails at once: the bound only keeps a down core from costing a syscall
# per order).
RECONNECT_INTERVAL_MS = 100
# Bytes of command frames queued in this process (not yet taken by the kernel) at
# most: beyond, try_send says "full" instead of queueing more.
MAX_OUT_BYTES = 16 << 20
# Largest reply body accepted: one reply frame answers every frame of one turn
# from this connection (a turn reads at most 1 MiB of it: at most 262,144 frames,
# 40 bytes of reply each).
MAX_REPLY_BODY_BYTES = 16 << 20
# Bytes read per recv call, and per read_nowait call at most (the descriptor is
# level-triggered: what is left makes the loop call again).
READ_CHUNK_BYTES = 1 << 20
READ_BYTES_PER_CALL = 8 << 20
# A blocking connect waits this long at most for the core's accept backlog.
CONNECT_TIMEOUT_S = 1.0


class LinkLostError(TimeoutError):
    """The connection to the core ended while replies were awaited: like a timeout,
    it says nothing about the fate of the commands sent (resend them with the same
    order ids; an applied one is answered ``DUPLICATE``)."""


class _FramedConnection:
    """A client connection to one of the core's stream links: length-prefixed frames
    on a unix stream socket, read into a queue of bodies; dropped when the core goes
    away and tried again at most every :data:`RECONNECT_INTERVAL_MS`; an event loop
    follows its descriptor with :meth:`watch`.  The trade link's client and the event
    source are this plus what each sends or hands out."""

    _link_name = "stream link"

    def _open(self, endpoint: str, max_frame_bytes: int) -> None:
        """Set up the state and make the first connection attempt (subclasses'
        ``__init__`` call this)."""
        self.endpoint = endpoint
        self.path = stream_path(endpoint)
        self.max_frame_bytes = max_frame_bytes
        self._sock: socket.socket | None = None
        self._decoder = FrameDecoder(max_frame_bytes)
        self._frames: deque[bytes] = deque()  # bodies read, not handed out yet
        self._next_try = 0.0
        self._on_open: Callable[[int], None] | None = None
        self._on_close: Callable[[int], None] | None = None
        self.connects = 0
        self.links_lost = 0
        self._connect()

    @property
    def connected(self) -> bool:
        """Whether a connection to the core is open."""
        return self._sock is not None

    def _connect(self) -> bool:
        """One connection attempt; False (and the next attempt scheduled) on failure."""
        self._next_try = time.monotonic() + RECONNECT_INTERVAL_MS / 1000
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(CONNECT_TIMEOUT_S)
            s.connect(self.path)
        except OSError:
            s.close()
            return False
        s.setblocking(False)
        self._sock = s
        self._decoder = FrameDecoder(self.max_frame_bytes)
        self.connects += 1
        if self._on_open is not None:
            self._on_open(s.fileno())
        return True

    def reconnect_if_due(self) -> bool:
        """Try to connect when not connected and the retry interval passed; returns
        whether a connection is open."""
        if self._sock is not None:
            return True
        if time.monotonic() < self._next_try:
            return False
        return self._connect()

    def _lost(self, why: str) -> None:
        """Drop the connection (the core went away); ``on_close`` runs first."""
        sock = self._sock
        if sock is None:
            return
        self.links_lost += 1
        log.warning("%s to %s lost (%s)", self._link_name, self.endpoint, why)
        if self._on_close is not None:
            self._on_close(sock.fileno())
        sock.close()
        self._sock = None
        self._next_try = time.monotonic() + RECONNECT_INTERVAL_MS / 1000

    def _pull(self) -> None:
        """Read what is there (bounded) into the frame queue."""
        sock = self._sock
        if sock is None:
            return
        total = 0
        while total < READ_BYTES_PER_CALL:
            try:
                data = sock.recv(READ_CHUNK_BYTES)
            except BlockingIOError:
                return
            except OSError as e:
                self._lost(f"read: {e}")
                return
            if not data:
                self._lost("end of stream")
                return
            total += len(data)
            try:
                self._frames.extend(self._decoder.feed(data))
            except StreamFrameError as e:
                self._lost(f"bad framing from the core: {e}")
                return
            if len(data) < READ_CHUNK_BYTES:
                # A short read took all there was: another recv would only raise
                # BlockingIOError (an exception per read).  What arrives later makes
                # the descriptor readable again (level-triggered).
                return

    def watch(
        self, on_open: Callable[[int], None] | None, on_close: Callable[[int], None] | None
    ) -> None:
        """``on_open(fd)`` now (if connected) and after each reconnect; ``on_close(fd)``
        before a lost connection's descriptor is closed (an event loop must stop
        watching it first: a new socket may get the same number)."""
        self._on_open, self._on_close = on_open, on_close
        if on_open is not None and self._sock is not None:
            on_open(self._sock.fileno())

    def fileno(self) -> int:
        """The connection's descriptor (level-triggered), -1 when not connected."""
        return self._sock.fileno() if self._sock is not None else -1

    def close(self) -> None:
        """Close the connection (``watch`` callbacks are not called)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class StreamTradeClient(_FramedConnection, CoreClient):
    """Client of the stream trade link (see the module docstring).

    Parameters
    ----------
    endpoint : str
        ``unix:/abs/path``: the ``trade_stream`` entry of the core's ready line.
    max_out_bytes : int
        Bytes queued in this process at most (:data:`MAX_OUT_BYTES`).
    """

    def __init__(self, endpoint: str, max_out_bytes: int = MAX_OUT_BYTES) -> None:
        self.max_out_bytes = max_out_bytes
        self.outstanding = 0
        self.backlog: deque[Records] = deque()
        self._controls: deque[dict[str, Any]] = deque()
        self._poller = None
        self._out = bytearray()
        self._open(endpoint, MAX_REPLY_BODY_BYTES)

    def _lost(self, why: str) -> None:
        """Drop the connection and what is queued on it (the core went away)."""
        if self._sock is None:
            return
        super()._lost(why)
        self._out.clear()
        self.outstanding = 0  # replies of the lost connection will never come

    # ------------------------------------------------------ non-blocking surface

    def try_send(self, data: bytes | bytearray) -> bool:
        """Send one command frame without blocking; False when not taken (no core
        connected, or :attr:`max_out_bytes` already queued).  Bytes the kernel does
        not take at once are queued: watch :attr:`wants_write`, call
        :meth:`flush_nowait` when writable."""
        if not self.reconnect_if_due():
            return False
        sock = self._sock
        assert sock is not None
        if self._out:
            frame = encode_frame(data)
            if len(self._out) + len(frame) > self.max_out_bytes:
                return False
            self._out += frame
            self.flush_nowait()
            return self._sock is not None
        # Header and body in one gathered write: the body is not copied into a frame
        # (encode_frame) unless the kernel takes only part of it.
        head = FRAME_HEADER.pack(len(data))
        try:
            n = sock.sendmsg((head, data))
        except BlockingIOError:
            n = 0
        except OSError as e:
            self._lost(f"write: {e}")
            return False
        if n < len(head) + len(data):
            self._out += encode_frame(data)[n:]
        return True

    @property
    def wants_write(self) -> bool:
        """Whether queued bytes wait for the socket to become writable."""
        return bool(self._out) and self._sock is not None

    def flush_nowait(self) -> bool:
        """Write what the kernel takes now of the queued bytes; True when none is left."""
        sock = self._sock
        if sock is None or not self._out:
            return True
        try:
            n = sock.send(self._out)
        except BlockingIOError:
            return False
        except OSError as e:
            self._lost(f"write: {e}")
            return True
        del self._out[:n]
        return not self._out

    def read_nowait(self) -> list[bytes]:
        """Every reply frame readable now, undecoded, in order.  A lost connection is
        dropped here (and a new one tried when due)."""
        if self._sock is None:
            self.reconnect_if_due()
        else:
            self._pull()
        out = list(self._frames)
        self._frames.clear()
        return out

    # --------------------------------------------------------- blocking surface

    def _send(self, parts: list[bytes]) -> None:
        """Send one command frame, connecting first if needed (blocking up to the
        default timeout); TimeoutError if no core could be reached or took it."""
        if len(parts) != 1:
            raise CoreError(
                "the stream link carries command frames only (control requests go to "
                "the admin socket)"
            )
        deadline = time.monotonic() + DEFAULT_TIMEOUT_MS / 1000
        while not self.reconnect_if_due():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no core reachable at {self.endpoint} to send to")
            time.sleep(RECONNECT_INTERVAL_MS / 1000)
        self._out += encode_frame(parts[0])
        while not self.flush_nowait():
            left = deadline - time.monotonic()
            if left <= 0 or self._sock is None:
                raise TimeoutError(f"the core at {self.endpoint} did not take the frame")
            select.select([], [self._sock], [], left)
        if self._sock is None:
            raise LinkLostError(f"stream link to {self.endpoint} lost while sending")

    def _recv(self, timeout_ms: int) -> Records | None:
        """The next reply frame, waiting up to ``timeout_ms``."""
        deadline = time.monotonic() + max(timeout_ms, 0) / 1000
        while not self._frames:
            sock = self._sock
            if sock is None:
                raise LinkLostError(f"stream link to {self.endpoint} lost awaiting replies")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from the core at {self.endpoint} in {timeout_ms} ms")
            wr = [sock] if self._out else []
            readable, writable, _ = select.select([sock], wr, [], left)
            if writable:
                self.flush_nowait()
            if readable:
                self._pull()
        replies = decode_replies(self._frames.popleft())
        self.outstanding -= len(replies)
        return replies


class StreamEventSource(_FramedConnection):
    """The live source of an :class:`bindings.client.EventSubscriber` on the core's
    event stream link (``events_stream`` in its ready line): the zmq SUB socket's
    ``poll``/``recv``/``fileno``/``close`` over length-prefixed frames on a unix
    socket.  A lost connection is dropped and tried again at most every
    :data:`RECONNECT_INTERVAL_MS` (by :meth:`poll`); frames missed meanwhile are a gap
    the subscriber fills from the replay service, as after ZeroMQ dropped frames.
    The descriptor changes on reconnect: an event loop follows it with :meth:`watch`.

    Parameters
    ----------
    endpoint : str
        ``unix:/abs/path``.
    max_frame_bytes : int
        Largest event frame accepted (a longer length closes the connection).
    """

    _link_name = "event stream link"

    def __init__(self, endpoint: str, max_frame_bytes: int = MAX_REPLY_BODY_BYTES) -> None:
        self._open(endpoint, max_frame_bytes)

    @property
    def pending(self) -> int:
        """Frames read from the socket and not yet taken by :meth:`recv`: an event
        loop woken by the descriptor (level-triggered) must also take these."""
        return len(self._frames)

    def poll(self, timeout_ms: int | None = None) -> int:
        """Wait up to ``timeout_ms`` (None: forever) for a frame; 1 if one is ready."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        while not self._frames:
            self.reconnect_if_due()
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._sock is None:
                if left == 0.0:
                    return 0
                wait = RECONNECT_INTERVAL_MS / 1000
                time.sleep(wait if left is None else min(wait, left))
                continue
            ready, _, _ = select.select([self._sock], [], [], left)
            if ready:
                self._pull()  # a partial frame, or the end: loop (and wait what is left)
            elif left is not None:
                return 0
        return 1

    def recv(self) -> bytes:
        """The next frame (call after :meth:`poll` said one is ready)."""
        if not self._frames:
            self.poll(None)
        return self._frames.popleft()


def is_stream_endpoint(endpoint: str) -> bool:
    """Whether ``endpoint`` names a stream trade link (``unix:``) rather than zmq."""
    return endpoint.startswith(SCHEME)


def trade_client(endpoint: str, send_hwm: int = 0) -> CoreClient:
    """A client of the core's trade link at ``endpoint``: the stream link for
    ``unix:/path``, else a zmq DEALER.

    ``send_hwm`` > 0 (zmq only) makes the DEALER refuse sends at once while no core
    is connected (``ZMQ_IMMEDIATE``) or ``send_hwm`` frames are queued, as a stream
    client does (:meth:`StreamTradeClient.try_send`): an order is refused at once
    instead of executing, stale, when the core comes back.
    """
    if is_stream_endpoint(endpoint):
        return StreamTradeClient(endpoint)
    cli = CoreClient(endpoint)
    if send_hwm > 0:
        # The high-water mark applies to pipes made after it is set: reconnect.
        cli.sock.disconnect(endpoint)
        cli.sock.setsockopt(zmq.SNDHWM, send_hwm)
        cli.sock.setsockopt(zmq.IMMEDIATE, 1)
        cli.sock.connect(endpoint)
    return cli
