"""Python clients of the order-entry gateway (docs/protocol.md): blocking and asyncio.

Both log in with an API key file (``bursa admin apikey create ... --out FILE``),
track the next expected sequence number, and log in again after a lost
connection asking for exactly the messages they missed (the gateway replays
them, then the live stream continues).  Received application messages are
:class:`gateway.wire.codec.Msg` objects (``msg.name == "EXECUTED"``,
``msg.cl_ord_id``, ``msg.fee_minor``...); duplicates (seq already seen) are
dropped.

Example (blocking)::

    c = GatewayClient("127.0.0.1", 7100, key_file="mm.key", cancel_on_disconnect=True)
    c.login()
    c.enter_order(1, symbol_id=1, side=Side.BUY, price_ticks=100, qty_lots=5)
    for msg in c.messages(timeout=1.0):
        print(msg.seq, msg.name, msg.values)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from bursa_wire.gw_layout import BY_NAME, LOGIN_CANCEL_ON_DISCONNECT, ORDER_POST_ONLY
from gateway import keys
from gateway.wire import codec
from gateway.wire.codes import GwReason, reason_name
from pyx.enums import OrdType, Tif

# Ends of session after which the clients log in again by themselves (auto_relogin).
RELOGIN_REASONS = frozenset(
    {0, GwReason.HEARTBEAT_TIMEOUT, GwReason.SLOW_CONSUMER, GwReason.SHUTDOWN}
)


class LoginRejectedError(Exception):
    """The gateway refused the login; ``reason`` is its code."""

    def __init__(self, reason: int) -> None:
        super().__init__(reason_name(reason))
        self.reason = reason


class SessionEndedError(Exception):
    """The gateway ended the session (END_OF_SESSION ``reason``) or the socket closed."""

    def __init__(self, reason: int) -> None:
        super().__init__(reason_name(reason) if reason else "connection closed")
        self.reason = reason


def login_frame(
    key_id: int,
    private_key: bytes,
    next_seq: int,
    cod: bool,
    nonce: int | None = None,
    ts_ns: int | None = None,
) -> bytes:
    """A signed LOGIN frame (fresh timestamp and random nonce unless given)."""
    ts = time.time_ns() if ts_ns is None else ts_ns
    n = int.from_bytes(os.urandom(8), "little") if nonce is None else nonce
    flags = LOGIN_CANCEL_ON_DISCONNECT if cod else 0
    sig = keys.sign_login(private_key, key_id, next_seq, ts, n, flags)
    return codec.encode(
        "LOGIN", key_id=key_id, next_seq=next_seq, ts_ns=ts, nonce=n, flags=flags, signature=sig
    )


def order_frame(
    cl_ord_id: int,
    symbol_id: int,
    side: int,
    qty_lots: int,
    price_ticks: int = 0,
    ord_type: int = OrdType.LIMIT,
    tif: int = Tif.GTC,
    stop_price_ticks: int = 0,
    stp: int = 0,
    post_only: bool = False,
) -> bytes:
    """An ENTER_ORDER frame."""
    return codec.encode(
        "ENTER_ORDER",
        cl_ord_id=cl_ord_id,
        symbol_id=symbol_id,
        side=side,
        ord_type=ord_type,
        tif=tif,
        price_ticks=price_ticks,
        qty_lots=qty_lots,
        stop_price_ticks=stop_price_ticks,
        stp=stp,
        flags=ORDER_POST_ONLY if post_only else 0,
    )


class _Session:
    """State both clients share: key, sequence tracking, message decoding."""

    def __init__(
        self,
        host: str,
        port: int,
        key_file: str | None = None,
        key: tuple[int, bytes] | None = None,
        cancel_on_disconnect: bool = False,
        auto_relogin: bool = True,
    ) -> None:
        self.host, self.port = host, port
        if key is None:
            if key_file is None:
                raise ValueError("key_file or key is required")
            key = keys.read_key_file(key_file)
        self.key_id, self.private_key = key
        self.cod = cancel_on_disconnect
        self.auto_relogin = auto_relogin
        self.next_seq = 1  # the next sequenced message expected
        self.user_id = 0
        self.heartbeat_s = 1.0
        self.last_seq_at_login = 0
        self.reader = codec.FrameReader()
        self.logins = 0

    def _on_frame(self, ftype: int, body: bytes, out: deque[codec.Msg]) -> None:
        msg = codec.decode(ftype, body, inbound=False)
        if msg.spec.layer == "app":
            if msg.seq < self.next_seq:
                return  # already seen (a replay overlapping what was received)
            self.next_seq = msg.seq + 1
            out.append(msg)
        elif msg.name == "END_OF_SESSION":
            raise SessionEndedError(int(msg.reason))
        elif msg.name == "LOGIN_REJECTED":
            raise LoginRejectedError(int(msg.reason))


class GatewayClient(_Session):
    """Blocking client.  Call :meth:`login`, send with the order methods, read with
    :meth:`recv` / :meth:`messages` (which also send heartbeats)."""

    sock: socket.socket | None = None

    def login(self, next_seq: int | None = None, timeout: float = 10.0) -> codec.Msg:
        """Connect and log in asking for ``next_seq`` (default: the next one expected).

        Returns LOGIN_ACCEPTED; raises :class:`LoginRejectedError`.
        """
        if next_seq is not None:
            self.next_seq = next_seq
        self.close()
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = codec.FrameReader()
        if not hasattr(self, "pending"):
            self.pending: deque[codec.Msg] = deque()
        self.send_raw(login_frame(self.key_id, self.private_key, self.next_seq, self.cod))
        deadline = time.monotonic() + timeout
        while True:
            frames = self._read(deadline)
            for i, (ftype, body) in enumerate(frames):
                msg = codec.decode(ftype, body, inbound=False)
                if msg.name == "LOGIN_ACCEPTED":
                    self.user_id = int(msg.user_id)
                    self.heartbeat_s = int(msg.heartbeat_ms) / 1000
                    self.last_seq_at_login = int(msg.last_seq)
                    self.next_seq = int(msg.first_seq)
                    self.logins += 1
                    self.last_sent = time.monotonic()
                    for t, b in frames[i + 1 :]:  # replayed messages in the same read
                        self._on_frame(t, b, self.pending)
                    return msg
                if msg.name == "LOGIN_REJECTED":
                    self.close()
                    raise LoginRejectedError(int(msg.reason))
                if msg.name == "END_OF_SESSION":
                    self.close()
                    raise SessionEndedError(int(msg.reason))

    def _read(self, deadline: float) -> list[tuple[int, bytes]]:
        assert self.sock is not None
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from the gateway")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            raise SessionEndedError(0)
        return self.reader.feed(data)

    def close(self) -> None:
        """Close the socket (no LOGOUT: the gateway sees a lost connection)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def logout(self) -> None:
        """Send LOGOUT and wait for END_OF_SESSION."""
        self.send_raw(codec.encode("LOGOUT"))
        try:
            while True:
                self.recv(timeout=5.0)
        except (SessionEndedError, TimeoutError, OSError):
            pass
        self.close()

    def send_raw(self, frame: bytes) -> None:
        """Send bytes as they are (frames, or garbage in tests)."""
        assert self.sock is not None, "not connected"
        self.sock.sendall(frame)
        self.last_sent = time.monotonic()

    def send(self, name: str, **values: codec.Value) -> None:
        """Send one application message by name."""
        self.send_raw(codec.encode_spec(BY_NAME[name], values))

    def enter_order(self, cl_ord_id: int, **kw: Any) -> None:
        """ENTER_ORDER (see :func:`order_frame` for the keywords)."""
        self.send_raw(order_frame(cl_ord_id, **kw))

    def cancel(self, cl_ord_id: int) -> None:
        """CANCEL_ORDER."""
        self.send("CANCEL_ORDER", cl_ord_id=cl_ord_id)

    def replace(self, cl_ord_id: int, price_ticks: int, qty_lots: int) -> None:
        """REPLACE_ORDER: new price and open quantity."""
        self.send("REPLACE_ORDER", cl_ord_id=cl_ord_id, price_ticks=price_ticks, qty_lots=qty_lots)

    def reduce(self, cl_ord_id: int, qty_lots: int) -> None:
        """REDUCE_ORDER to ``qty_lots`` open."""
        self.send("REDUCE_ORDER", cl_ord_id=cl_ord_id, qty_lots=qty_lots)

    def mass_cancel(self, request_id: int, symbol_id: int = 0, side: int = 0) -> None:
        """MASS_CANCEL (0 = every symbol / both sides)."""
        self.send("MASS_CANCEL", request_id=request_id, symbol_id=symbol_id, side=side)

    def order_status(self, cl_ord_id: int) -> None:
        """ORDER_STATUS (answered by ORDER_STATUS_REPLY)."""
        self.send("ORDER_STATUS", cl_ord_id=cl_ord_id)

    def balance(self, request_id: int, asset_id: int, account: int = 0) -> None:
        """BALANCE_QUERY (answered by BALANCE)."""
        self.send("BALANCE_QUERY", request_id=request_id, asset_id=asset_id, account=account)

    def recv(self, timeout: float = 10.0) -> codec.Msg:
        """The next sequenced message; heartbeats are sent while waiting.

        A lost connection is followed by a new login from the next expected seq if
        ``auto_relogin`` (the replay then arrives here like live messages).

        Raises
        ------
        TimeoutError
            Nothing arrived in ``timeout`` seconds.
        SessionEndedError
            The gateway ended the session (or the connection was lost and
            ``auto_relogin`` is off).
        """
        deadline = time.monotonic() + timeout
        while not self.pending:
            if time.monotonic() - self.last_sent > self.heartbeat_s / 2:
                # A closed connection is seen by the read below.
                with contextlib.suppress(OSError):
                    self.send_raw(codec.encode("CLIENT_HEARTBEAT"))
            step = min(deadline, time.monotonic() + self.heartbeat_s / 2)
            try:
                frames = self._read(step)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise TimeoutError("no message from the gateway") from None
                continue
            except (OSError, SessionEndedError):
                frames = None  # connection lost (an END_OF_SESSION may precede it in frames)
            try:
                if frames is None:
                    raise SessionEndedError(0)
                for ftype, body in frames:
                    self._on_frame(ftype, body, self.pending)
            except SessionEndedError as e:
                if not self.auto_relogin or e.reason not in RELOGIN_REASONS:
                    raise
                self._relogin(deadline)
        return self.pending.popleft()

    def _relogin(self, deadline: float) -> None:
        while True:
            try:
                self.login()
                return
            except (OSError, SessionEndedError, LoginRejectedError) as e:
                # ALREADY_LOGGED_IN: the gateway has not seen the old connection close yet.
                if isinstance(e, LoginRejectedError) and e.reason != GwReason.ALREADY_LOGGED_IN:
                    raise
                if time.monotonic() >= deadline:
                    raise TimeoutError("gateway unreachable") from None
                time.sleep(0.1)

    def messages(self, timeout: float = 1.0) -> Iterator[codec.Msg]:
        """Every message until none arrives for ``timeout`` seconds."""
        while True:
            try:
                yield self.recv(timeout)
            except TimeoutError:
                return

    def wait_for(self, pred: Any, timeout: float = 10.0) -> list[codec.Msg]:
        """Receive until ``pred(msg)`` is true; returns every message received."""
        out: list[codec.Msg] = []
        deadline = time.monotonic() + timeout
        while True:
            m = self.recv(max(deadline - time.monotonic(), 0.001))
            out.append(m)
            if pred(m):
                return out


class AsyncGatewayClient(_Session):
    """asyncio client: :meth:`login`, order methods, ``await recv()``.

    A background task reads frames and sends heartbeats; when the connection is
    lost it logs in again from the next expected seq (``auto_relogin``).
    """

    writer: asyncio.StreamWriter | None = None

    async def login(self, next_seq: int | None = None, timeout: float = 10.0) -> codec.Msg:
        """Connect and log in; returns LOGIN_ACCEPTED (raises :class:`LoginRejectedError`)."""
        if next_seq is not None:
            self.next_seq = next_seq
        if not hasattr(self, "queue"):
            self.queue: asyncio.Queue[codec.Msg | BaseException] = asyncio.Queue()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), timeout
        )
        self.writer = writer
        self.reader = codec.FrameReader()
        writer.write(login_frame(self.key_id, self.private_key, self.next_seq, self.cod))
        while True:
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                raise SessionEndedError(0)
            frames = self.reader.feed(data)
            for i, (ftype, body) in enumerate(frames):
                msg = codec.decode(ftype, body, inbound=False)
                if msg.name == "LOGIN_REJECTED":
                    writer.close()
                    raise LoginRejectedError(int(msg.reason))
                if msg.name == "LOGIN_ACCEPTED":
                    self.user_id = int(msg.user_id)
                    self.heartbeat_s = int(msg.heartbeat_ms) / 1000
                    self.next_seq = int(msg.first_seq)
                    self.logins += 1
                    rest: deque[codec.Msg] = deque()
                    for t, b in frames[i + 1 :]:
                        self._on_frame(t, b, rest)
                    for m in rest:
                        self.queue.put_nowait(m)
                    self._task = asyncio.create_task(self._run(reader, writer))
                    return msg

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        out: deque[codec.Msg] = deque()
        while True:
            try:
                data = await asyncio.wait_for(reader.read(65536), self.heartbeat_s / 2)
            except TimeoutError:
                writer.write(codec.encode("CLIENT_HEARTBEAT"))
                continue
            except (ConnectionError, OSError):
                data = b""
            try:
                if not data:
                    raise SessionEndedError(0)
                for ftype, body in self.reader.feed(data):
                    self._on_frame(ftype, body, out)
            except (SessionEndedError, codec.WireError) as e:
                for m in out:
                    self.queue.put_nowait(m)
                out.clear()
                if (
                    isinstance(e, SessionEndedError)
                    and e.reason in RELOGIN_REASONS
                    and self.auto_relogin
                ):
                    await self._relogin()
                    return
                self.queue.put_nowait(e)
                return
            while out:
                self.queue.put_nowait(out.popleft())
            writer.write(codec.encode("CLIENT_HEARTBEAT"))

    async def _relogin(self) -> None:
        while True:
            try:
                await self.login()
                return
            except (OSError, SessionEndedError, TimeoutError):
                await asyncio.sleep(0.1)
            except LoginRejectedError as e:
                if e.reason != GwReason.ALREADY_LOGGED_IN:
                    self.queue.put_nowait(e)
                    return
                await asyncio.sleep(0.1)

    def send_raw(self, frame: bytes) -> None:
        """Queue bytes on the socket."""
        assert self.writer is not None, "not connected"
        self.writer.write(frame)

    def enter_order(self, cl_ord_id: int, **kw: Any) -> None:
        """ENTER_ORDER (see :func:`order_frame`)."""
        self.send_raw(order_frame(cl_ord_id, **kw))

    def send(self, name: str, **values: codec.Value) -> None:
        """Any application message by name (CANCEL_ORDER, MASS_CANCEL...)."""
        self.send_raw(codec.encode_spec(BY_NAME[name], values))

    async def recv(self, timeout: float = 10.0) -> codec.Msg:
        """The next sequenced message (raises what ended the session)."""
        item = await asyncio.wait_for(self.queue.get(), timeout)
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        """Stop the reader task and close the socket."""
        task = getattr(self, "_task", None)
        if task is not None:
            task.cancel()
        if self.writer is not None:
            self.writer.close()
