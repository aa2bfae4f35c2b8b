"""Python clients of the core process: commands (:class:`CoreClient`) and events
(:class:`EventSubscriber`).

Used by tests, the gateway, the wallet and the admin CLI.  Wire shapes are in
:mod:`engine.wire.frames` and docs/commands.md ("Frames on the wire").

Example::

    fund = CoreClient("tcp://127.0.0.1:7004")          # the core's "fund" socket
    replies = fund.request(commands.deposit(ref=1, user_id=7, asset_id=1, amount_minor=10**8))
    core = RoutedClient.from_ready(ready_line)         # tests/tools: each kind to its socket
    sub = EventSubscriber("tcp://127.0.0.1:7002", "tcp://127.0.0.1:7003", from_seq=1)
    for frame in sub.poll(timeout_ms=100):
        print(frame.first_seq, frame.last_seq, len(frame.events))
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import zmq

from bursa_wire.layout import CMD_DTYPE, CMD_SIZE, REPLY_DTYPE
from engine.security import CurveClientKeys, make_client_socket
from engine.wire import commands
from engine.wire.frames import (
    CONTROL_TAG,
    REPLAY_NOT_AVAILABLE,
    REPLAY_OK,
    EventFrame,
    FrameError,
    decode_control,
    decode_event_frame,
    decode_replay_end,
    decode_replies,
    encode_control,
    encode_event_frame,
    encode_replay_request,
)
from engine.wire.roles import ROLES, role_of

# Largest command frame the server accepts (engine.server.MAX_FRAME_CMDS).
CLIENT_FRAME_CMDS_MAX = 16384
# Replay requests per gap fill / catch-up before giving up (each returns >= 1 frame).
REPLAY_ROUNDS_MAX = 1_000_000
DEFAULT_TIMEOUT_MS = 10_000

_client_refs = itertools.count(1)

Records = np.ndarray[Any, np.dtype[np.void]]

if TYPE_CHECKING:
    from bindings.streamlink import StreamEventSource


class CoreError(RuntimeError):
    """The core answered with an error (control request) or broke the protocol."""


def _as_cmds(cmds: Records | np.void) -> Records:
    arr = np.atleast_1d(np.asarray(cmds))
    if arr.dtype != CMD_DTYPE:
        raise TypeError(f"commands must be CMD_DTYPE records, not {arr.dtype}")
    return arr


class CoreClient:
    """DEALER client of one of the core's command sockets (``trade``, ``fund`` or
    ``admin``: engine/wire/roles.py says which commands each carries).

    Replies come back in the order commands were sent (one reply record per
    command; one record per malformed frame).  :meth:`send` pipelines;
    :meth:`request` sends and waits for exactly its own replies, keeping any
    earlier pipelined replies in :attr:`backlog`.

    Parameters
    ----------
    endpoint : str
        One of the core's command endpoints (``trade``, ``fund`` or ``admin`` in
        its ready line).
    ctx : zmq.Context, optional
        ZeroMQ context (the process-wide instance by default).
    curve : CurveClientKeys, optional
        Connect as a CURVE client (required when the core runs with CURVE).
    """

    def __init__(
        self,
        endpoint: str,
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
        curve: CurveClientKeys | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        # A DEALER with no live peer (core down, or a CURVE handshake it refused) blocks
        # in send: bound that wait so a caller gets TimeoutError instead of hanging.
        self.sock.setsockopt(zmq.SNDTIMEO, DEFAULT_TIMEOUT_MS)
        make_client_socket(self.sock, curve)
        self.sock.connect(endpoint)
        self.outstanding = 0  # replies expected for send() calls not yet received
        self.backlog: deque[Records] = deque()  # reply frames received for send() calls
        self._controls: deque[dict[str, Any]] = deque()
        self._poller: zmq.Poller | None = None

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> CoreClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, cmds: Records | np.void | bytes) -> int:
        """Send one command frame without waiting; returns replies to expect.

        Parameters
        ----------
        cmds : numpy.ndarray or bytes
            ``CMD_DTYPE`` records (at most :data:`CLIENT_FRAME_CMDS_MAX`), or raw
            bytes (sent as they are: a frame that is not whole records gets one
            ``MALFORMED_FRAME`` reply).
        """
        if isinstance(cmds, bytes | bytearray | memoryview):
            data = bytes(cmds)
            k = len(data) // CMD_SIZE
            expect = k if len(data) % CMD_SIZE == 0 and 0 < k <= CLIENT_FRAME_CMDS_MAX else 1
        else:
            arr = _as_cmds(cmds)
            if not 0 < len(arr) <= CLIENT_FRAME_CMDS_MAX:
                raise ValueError(f"a frame holds 1..{CLIENT_FRAME_CMDS_MAX} commands")
            data = arr.tobytes()
            expect = len(arr)
        self._send([data])
        self.outstanding += expect
        return expect

    def _send(self, parts: list[bytes]) -> None:
        """Send one message; TimeoutError if no peer took it within the send timeout."""
        try:
            self.sock.send_multipart(parts)
        except zmq.Again:
            raise TimeoutError(f"no core reachable at {self.endpoint} to send to") from None

    def send_parts(self, parts: list[bytes]) -> None:
        """Send a raw multipart message (protocol tests); expects one reply."""
        self._send(parts)
        self.outstanding += 1

    # The non-blocking surface (an asyncio loop's reader: the gateway, the API).  The
    # stream trade link (bindings.streamlink.StreamTradeClient) has the same methods,
    # so a caller never branches on the transport.  Reply accounting is the caller's.

    def try_send(self, data: bytes | bytearray) -> bool:
        """Send one command frame without blocking; False when it was not taken (no
        core connected, or the send queue full: ZMQ_IMMEDIATE / ZMQ_SNDHWM)."""
        try:
            self.sock.send(data, zmq.NOBLOCK)
        except zmq.Again:
            return False
        return True

    def read_nowait(self) -> list[bytes]:
        """Every reply frame readable now, undecoded, in order (control answers go to
        the control queue).  The zmq descriptor is edge-triggered: this drains it."""
        out: list[bytes] = []
        sock = self.sock
        while cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            parts = sock.recv_multipart(zmq.NOBLOCK)
            if len(parts) == 2 and parts[0] == CONTROL_TAG:
                self._controls.append(decode_control(parts[1]))
            elif len(parts) == 1:
                out.append(parts[0])
        return out

    @property
    def wants_write(self) -> bool:
        """Whether sent bytes wait for the socket to become writable (never: libzmq's
        I/O thread writes)."""
        return False

    def flush_nowait(self) -> bool:
        """Write what waits (nothing here); True when nothing is left."""
        return True

    def watch(
        self, on_open: Callable[[int], None] | None, on_close: Callable[[int], None] | None
    ) -> None:
        """Call ``on_open(fd)`` with the descriptor to watch for readability now and
        after each reconnect, ``on_close(fd)`` before a descriptor is closed (the zmq
        descriptor never changes: ``on_open`` once)."""
        if on_open is not None:
            on_open(self.sock.fileno())

    def fileno(self) -> int:
        """The descriptor to watch for readability (zmq's: edge-triggered)."""
        return int(self.sock.fileno())

    def _recv(self, timeout_ms: int) -> Records | None:
        """Receive one message: a reply frame is returned, a control answer queued."""
        if self._poller is None:
            # One Poller for the client's life: Socket.poll builds and registers a new
            # one on every call, a cost paid on every reply of a request/reply loop.
            self._poller = zmq.Poller()
            self._poller.register(self.sock, zmq.POLLIN)
        if not self._poller.poll(max(timeout_ms, 0)):
            raise TimeoutError(f"no answer from the core at {self.endpoint} in {timeout_ms} ms")
        parts = self.sock.recv_multipart()
        if len(parts) == 2 and parts[0] == CONTROL_TAG:
            self._controls.append(decode_control(parts[1]))
            return None
        if len(parts) != 1:
            raise CoreError(f"unexpected {len(parts)}-part message from the core")
        replies = decode_replies(parts[0])
        self.outstanding -= len(replies)
        return replies

    @staticmethod
    def _left_ms(deadline: float) -> int:
        return int((deadline - time.monotonic()) * 1000)

    def recv_replies(self, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Records:
        """The next reply frame (records for earlier :meth:`send` calls).

        Raises
        ------
        TimeoutError
            Nothing arrived within ``timeout_ms``.
        """
        deadline = time.monotonic() + timeout_ms / 1000
        while not self.backlog:
            rep = self._recv(self._left_ms(deadline))
            if rep is not None:
                self.backlog.append(rep)
        return self.backlog.popleft()

    def drain(self, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Records:
        """Wait for every outstanding reply; return them all (backlog first), in order."""
        deadline = time.monotonic() + timeout_ms / 1000
        while self.outstanding > 0:
            rep = self._recv(self._left_ms(deadline))
            if rep is not None:
                self.backlog.append(rep)
        out = list(self.backlog)
        self.backlog.clear()
        return np.concatenate(out) if out else np.zeros(0, dtype=REPLY_DTYPE)

    def request(
        self, cmds: Records | np.void | bytes, timeout_ms: int = DEFAULT_TIMEOUT_MS
    ) -> Records:
        """Send commands and return their replies (one per command, in order).

        Replies of earlier :meth:`send` calls that arrive first go to :attr:`backlog`.

        Raises
        ------
        TimeoutError
            Not all replies arrived within ``timeout_ms`` (the commands may still
            be applied: a timeout says nothing about their fate).
        """
        earlier = self.outstanding
        expect = self.send(cmds)
        deadline = time.monotonic() + timeout_ms / 1000
        got: list[Records] = []
        n_got = 0
        # Each pass receives one message; replies arrive in send order.
        while n_got < earlier + expect:
            rep = self._recv(self._left_ms(deadline))
            if rep is not None:
                got.append(rep)
                n_got += len(rep)
        allrep = np.concatenate(got)
        if earlier:
            self.backlog.append(allrep[:earlier])
        return allrep[earlier : earlier + expect]

    def control(self, op: str, timeout_ms: int = DEFAULT_TIMEOUT_MS, **args: Any) -> dict[str, Any]:
        """A control request (``ping``, ``status``, ``state_hash``, ``conservation``,
        ``snapshot``, ``balance``) answered from core state, not journaled.

        Raises
        ------
        TimeoutError
            No answer in time.
        CoreError
            The core answered ``ok: false``.
        """
        self._send([CONTROL_TAG, encode_control({"op": op, **args})])
        deadline = time.monotonic() + timeout_ms / 1000
        while not self._controls:
            rep = self._recv(self._left_ms(deadline))
            if rep is not None:
                self.backlog.append(rep)
        ans = self._controls.popleft()
        if not ans.get("ok", False) and op != "conservation":
            text = str(ans.get("error", f"control {op} failed"))
            raise CoreError(f"{ans['reason']}: {text}" if "reason" in ans else text)
        return ans

    # Convenience wrappers over engine/wire/commands.py builders: each builds one
    # command, sends it, waits and returns its reply record (REPLY_DTYPE).

    def submit(self, cmds: Records, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Records:
        """Like :meth:`request` but cuts any number of commands into frames."""
        out = []
        for i in range(0, len(cmds), CLIENT_FRAME_CMDS_MAX):
            out.append(self.request(cmds[i : i + CLIENT_FRAME_CMDS_MAX], timeout_ms))
        return np.concatenate(out) if out else np.zeros(0, dtype=REPLY_DTYPE)

    def one(self, rec: Records, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> np.void:
        """Send one command record (``client_ref`` filled in if 0); return its reply."""
        arr = _as_cmds(rec).copy()
        assert len(arr) == 1
        if not arr["client_ref"][0]:
            arr["client_ref"] = next(_client_refs)
        rep: np.void = self.request(arr, timeout_ms)[0]
        return rep

    def add_asset(self, asset_id: int, decimals: int = 0) -> np.void:
        """ADD_ASSET (see ``commands.add_asset``)."""
        return self.one(commands.add_asset(asset_id, decimals))

    def add_symbol(
        self, symbol_id: int, base_asset_id: int, quote_asset_id: int, **kw: int
    ) -> np.void:
        """ADD_SYMBOL (see ``commands.add_symbol`` for the keyword settings)."""
        return self.one(commands.add_symbol(symbol_id, base_asset_id, quote_asset_id, **kw))

    def add_fee_tier(self, tier: int, maker_ppm: int, taker_ppm: int) -> np.void:
        """ADD_FEE_TIER: rates in ppm of the notional."""
        return self.one(commands.add_fee_tier(tier, maker_ppm, taker_ppm))

    def add_user(self, user_id: int, fee_tier: int = 0) -> np.void:
        """ADD_USER in ``fee_tier``."""
        return self.one(commands.add_user(user_id, fee_tier))

    def deposit(
        self, ref: int, user_id: int, asset_id: int, amount_minor: int, account: int = 0
    ) -> np.void:
        """DEPOSIT ``amount_minor`` minor units, idempotent by ``ref`` (status 3 if seen)."""
        return self.one(commands.deposit(ref, user_id, asset_id, amount_minor, account=account))

    def withdraw_hold(
        self, withdrawal_id: int, user_id: int, asset_id: int, amount_minor: int, account: int = 0
    ) -> np.void:
        """WITHDRAW_HOLD: available -> held, idempotent by ``withdrawal_id``."""
        return self.one(
            commands.withdraw_hold(withdrawal_id, user_id, asset_id, amount_minor, account=account)
        )

    def withdraw_commit(self, withdrawal_id: int) -> np.void:
        """WITHDRAW_COMMIT: the held amount leaves the exchange."""
        return self.one(commands.withdraw_commit(withdrawal_id))

    def withdraw_release(self, withdrawal_id: int) -> np.void:
        """WITHDRAW_RELEASE: held back to available."""
        return self.one(commands.withdraw_release(withdrawal_id))

    def new_limit(
        self,
        order_id: int,
        user_id: int,
        symbol_id: int,
        side: int,
        price_ticks: int,
        qty_lots: int,
        **kw: Any,
    ) -> np.void:
        """NEW limit order (``tif``, ``stp``, ``post_only`` keywords as in the builder)."""
        return self.one(
            commands.new_limit(order_id, user_id, symbol_id, side, price_ticks, qty_lots, **kw)
        )

    def new_market(
        self, order_id: int, user_id: int, symbol_id: int, side: int, qty_lots: int, **kw: Any
    ) -> np.void:
        """NEW market order by base quantity (lots)."""
        return self.one(commands.new_market(order_id, user_id, symbol_id, side, qty_lots, **kw))

    def cancel(self, order_id: int, user_id: int) -> np.void:
        """CANCEL a live order."""
        return self.one(commands.cancel(order_id, user_id))

    def replace(self, order_id: int, user_id: int, price_ticks: int, qty_lots: int) -> np.void:
        """REPLACE price (ticks) and open quantity (lots)."""
        return self.one(commands.replace(order_id, user_id, price_ticks, qty_lots))

    def mass_cancel(self, user_id: int, symbol_id: int = 0, side: int = 0) -> np.void:
        """MASS_CANCEL a user's orders (symbol 0 = all, side 0 = both)."""
        return self.one(commands.mass_cancel(user_id, symbol_id=symbol_id, side=side))

    def halt_symbol(self, symbol_id: int) -> np.void:
        """HALT_SYMBOL."""
        return self.one(commands.halt_symbol(symbol_id))

    def resume_symbol(self, symbol_id: int) -> np.void:
        """RESUME_SYMBOL."""
        return self.one(commands.resume_symbol(symbol_id))

    def suspend_user(self, user_id: int) -> np.void:
        """SUSPEND_USER."""
        return self.one(commands.suspend_user(user_id))

    def resume_user(self, user_id: int) -> np.void:
        """RESUME_USER."""
        return self.one(commands.resume_user(user_id))


class RoutedClient(CoreClient):
    """Three :class:`CoreClient` s, one per command socket, behind one object: every
    command goes to the socket of its kind (engine/wire/roles.py), control requests
    to ``admin``.  For tests, demos and tools that act in several roles; a real
    gateway or wallet holds only its own socket (and its own keys).

    A frame mixing roles is cut into runs of one role, each run requested (sent and
    answered) before the next, so effects keep the frame's order.  :meth:`send`
    pipelines frames of one role only.
    """

    def __init__(
        self,
        endpoints: dict[str, str],
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
        curve: CurveClientKeys | None = None,
    ) -> None:
        self.clients = {r: CoreClient(endpoints[r], ctx, curve) for r in ROLES}
        admin = self.clients["admin"]
        # The inherited single-socket state is the admin client's (control requests).
        self.endpoint = admin.endpoint
        self.ctx = admin.ctx
        self.sock = admin.sock
        self.outstanding = 0
        self.backlog = admin.backlog
        self._controls = admin._controls
        self._poller = None
        self._pipelined: deque[list[tuple[str, int]]] = deque()
        self._leftover: dict[str, list[Records]] = {}

    @classmethod
    def from_ready(
        cls, ready: dict[str, Any], curve: CurveClientKeys | None = None
    ) -> RoutedClient:
        """A client of the endpoints in a core's ready line."""
        return cls({r: str(ready[r]) for r in ROLES}, curve=curve)

    def close(self) -> None:
        """Close the three sockets."""
        for c in self.clients.values():
            c.close()

    @staticmethod
    def _runs(arr: Records) -> list[tuple[str, Records]]:
        """Consecutive runs of commands of one role (unknown kinds go to ``trade``,
        where the core rejects them)."""
        out: list[tuple[str, Records]] = []
        start = 0
        roles = [_role_or_trade(int(k)) for k in arr["kind"]]
        for i in range(1, len(arr) + 1):
            if i == len(arr) or roles[i] != roles[start]:
                out.append((roles[start], arr[start:i]))
                start = i
        return out

    def send(self, cmds: Records | np.void | bytes) -> int:
        """Pipeline a frame: each run of one role goes to that role's socket.

        Runs of different roles travel on different sockets, so the core may apply
        them in another order than the frame's; use :meth:`request` when one run
        must take effect before the next (a deposit before the order it funds).
        """
        if isinstance(cmds, bytes | bytearray | memoryview):
            runs_n = [("trade", self.clients["trade"].send(cmds))]
        else:
            runs_n = [(r, self.clients[r].send(run)) for r, run in self._runs(_as_cmds(cmds))]
        n = sum(k for _, k in runs_n)
        self._pipelined.append(runs_n)
        self.outstanding += n
        return n

    def _take(self, role: str, n: int, deadline: float) -> Records:
        """The next ``n`` replies of one role's stream.

        The core answers all of a sender's frames of one turn in one reply frame, so
        the records are counted out of each role's stream."""
        buf = self._leftover.setdefault(role, [])
        while sum(len(b) for b in buf) < n:
            buf.append(self.clients[role].recv_replies(self._left_ms(deadline)))
        allrep = np.concatenate(buf)
        buf[:] = [allrep[n:]] if len(allrep) > n else []
        return allrep[:n]

    def recv_replies(self, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Records:
        """The replies of the oldest pipelined :meth:`send`, in the frame's order."""
        runs_n = self._pipelined.popleft()
        deadline = time.monotonic() + timeout_ms / 1000
        out = [self._take(role, n, deadline) for role, n in runs_n]
        self.outstanding -= sum(n for _, n in runs_n)
        return np.concatenate(out)

    def drain(self, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Records:
        """Every outstanding reply of :meth:`send`, in send order."""
        out = []
        while self._pipelined:
            out.append(self.recv_replies(timeout_ms))
        return np.concatenate(out) if out else np.zeros(0, dtype=REPLY_DTYPE)

    def request(
        self, cmds: Records | np.void | bytes, timeout_ms: int = DEFAULT_TIMEOUT_MS
    ) -> Records:
        """Send commands, each run to its role's socket (cut into frames of at most
        ``CLIENT_FRAME_CMDS_MAX``), and return all replies in order."""
        if isinstance(cmds, bytes | bytearray | memoryview):
            return self.clients["trade"].request(cmds, timeout_ms)
        out = [self.clients[r].submit(run, timeout_ms) for r, run in self._runs(_as_cmds(cmds))]
        return np.concatenate(out) if out else np.zeros(0, dtype=REPLY_DTYPE)

    def control(self, op: str, timeout_ms: int = DEFAULT_TIMEOUT_MS, **args: Any) -> dict[str, Any]:
        """A control request on the admin socket (see :meth:`CoreClient.control`)."""
        return self.clients["admin"].control(op, timeout_ms, **args)


def _role_or_trade(kind: int) -> str:
    try:
        return role_of(kind)
    except ValueError:
        return "trade"


class EventSubscriber:
    """Gap-free, duplicate-free event stream from any sequence number on.

    Subscribes to PUB at construction (so live frames queue while it catches up),
    then replays from ``from_seq`` through the replay service and continues with
    the live stream.  A live frame whose ``first_seq`` is past the next expected
    sequence reveals a gap, filled from the replay service before the frame is
    delivered; frames or events already delivered are dropped.

    Parameters
    ----------
    pub_endpoint, replay_endpoint : str
        The core's PUB and replay endpoints.  A ``unix:/path`` live source is the
        core's event stream link (``events_stream`` in its ready line;
        :class:`bindings.streamlink.StreamEventSource`): the same frames without
        ZeroMQ, gaps filled from the replay service as on PUB.
    from_seq : int
        First command sequence number whose events are wanted (1 = from the start).
    verify_crc : bool
        Check each live frame's CRC (replayed frames are always checked).
    curve : CurveClientKeys, optional
        Connect as a CURVE client (required when the core runs with CURVE).
    """

    def __init__(
        self,
        pub_endpoint: str,
        replay_endpoint: str,
        from_seq: int = 1,
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
        verify_crc: bool = True,
        curve: CurveClientKeys | None = None,
    ) -> None:
        self.ctx = ctx or zmq.Context.instance()
        self.sub: zmq.Socket[bytes] | StreamEventSource
        if pub_endpoint.startswith("unix:"):
            from bindings.streamlink import StreamEventSource

            self.sub = StreamEventSource(pub_endpoint)
        else:
            sub = self.ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.RCVHWM, 1_000_000)
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            make_client_socket(sub, curve)
            sub.connect(pub_endpoint)
            self.sub = sub
        self.replay_endpoint = replay_endpoint
        self.rep = self.ctx.socket(zmq.DEALER)
        self.rep.setsockopt(zmq.LINGER, 0)
        make_client_socket(self.rep, curve)
        self.rep.connect(replay_endpoint)
        self.next_seq = max(from_seq, 1)
        self.verify_crc = verify_crc
        self.caught_up = False
        self.gaps_filled = 0
        self.frames_live = 0
        self.frames_replayed = 0
        self.frames_dropped = 0
        self.replay_timeout_ms = DEFAULT_TIMEOUT_MS

    def close(self) -> None:
        """Close both sockets."""
        self.sub.close()
        self.rep.close()

    def __enter__(self) -> EventSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def replay(self, from_seq: int, max_events: int = 0) -> tuple[list[EventFrame], int, int]:
        """One replay request: ``(frames, next_seq, log_last_seq)``.

        Raises
        ------
        TimeoutError
            The replay service did not answer in time.
        CoreError
            Bad answer, or ``from_seq`` precedes the oldest event kept.
        """
        self.rep.send_multipart([b"", encode_replay_request(from_seq, max_events)])
        if not self.rep.poll(self.replay_timeout_ms):
            raise TimeoutError(f"replay service {self.replay_endpoint} did not answer")
        parts = self.rep.recv_multipart()
        if len(parts) < 2 or parts[0] != b"":
            raise CoreError("malformed replay answer")
        status, next_seq, last_seq = decode_replay_end(parts[-1])
        if status == REPLAY_NOT_AVAILABLE:
            raise CoreError(
                f"too old: events before seq {next_seq} are no longer kept "
                "(event-log retention); rebuild from a snapshot of the core's state"
            )
        if status != REPLAY_OK:
            raise CoreError(f"replay request refused (status {status})")
        frames = [decode_event_frame(p, verify=True) for p in parts[1:-1]]
        return frames, next_seq, last_seq

    def _accept(self, f: EventFrame, out: list[EventFrame]) -> None:
        """Deliver the part of ``f`` at or after next_seq (``f`` must not start past it)."""
        assert f.first_seq <= self.next_seq
        if f.last_seq < self.next_seq:
            self.frames_dropped += 1
            return
        if f.first_seq < self.next_seq:
            keep = f.events[f.events["seq"] >= self.next_seq]
            f = EventFrame(self.next_seq, f.last_seq, keep)
        out.append(f)
        self.next_seq = f.last_seq + 1

    def _fill(self, upto_seq: int | None, out: list[EventFrame]) -> None:
        """Replay until next_seq > upto_seq (None: until the log's end)."""
        for _ in range(REPLAY_ROUNDS_MAX):
            if upto_seq is not None and self.next_seq > upto_seq:
                return
            frames, _next_seq, last_seq = self.replay(self.next_seq)
            for f in frames:
                if f.first_seq > self.next_seq:
                    raise CoreError(f"replay skipped from {self.next_seq} to {f.first_seq}")
                self._accept(f, out)
                self.frames_replayed += 1
            if not frames:
                if upto_seq is not None and last_seq < upto_seq:
                    # The log is written before PUB, so this only happens if the
                    # core restarted; let the caller retry later.
                    return
                return
            if upto_seq is None and self.next_seq > last_seq:
                return
        raise CoreError("replay did not converge")

    def poll(
        self, timeout_ms: int = 0, max_frames: int = 1024, idle_replay: bool = True
    ) -> list[EventFrame]:
        """Frames in sequence order, gap-free, at most ``max_frames`` live ones.

        The first call catches up from ``from_seq`` through the replay service.
        When nothing live arrives within ``timeout_ms`` and ``idle_replay`` is
        set, the replay service is asked once, so events whose PUB frames were
        lost are never stuck behind a quiet stream.
        """
        out: list[EventFrame] = []
        if not self.caught_up:
            self._fill(None, out)
            self.caught_up = True
        got_live = False
        for i in range(max_frames):
            if not self.sub.poll(timeout_ms if i == 0 and not out else 0):
                break
            raw = self.sub.recv()
            try:
                f = decode_event_frame(raw, verify=self.verify_crc)
            except FrameError:
                # A damaged live frame is treated like a lost one: replay fills it.
                continue
            got_live = True
            self.frames_live += 1
            if f.first_seq > self.next_seq:
                self.gaps_filled += 1
                self._fill(f.first_seq - 1, out)
            if f.first_seq <= self.next_seq:
                self._accept(f, out)
        if idle_replay and not got_live and not out:
            self._fill(None, out)
        return out

    def events(self, timeout_ms: int = 0) -> Records:
        """The events of :meth:`poll` concatenated (``EV_DTYPE``)."""
        frames = self.poll(timeout_ms)
        if not frames:
            from bursa_wire.layout import EV_DTYPE

            return np.zeros(0, dtype=EV_DTYPE)
        return np.concatenate([f.events for f in frames])

    def __iter__(self) -> Iterator[np.void]:
        """Every event forever, one record at a time (blocks between frames)."""
        while True:
            for f in self.poll(timeout_ms=100):
                yield from f.events


def make_frame(first_seq: int, last_seq: int, events: Records) -> bytes:
    """An event frame (tests, tools): see :func:`engine.wire.frames.encode_event_frame`."""
    return encode_event_frame(first_seq, last_seq, events.tobytes())
