"""`bursa gateway`: the order-entry door of the exchange (TCP sessions -> core).

One asyncio loop.  Clients connect over TCP and speak docs/protocol.md; each loop
turn collects the commands of every session into one frame for the core's trade
socket (:class:`bindings.client.CoreClient`), and the core's events
(:class:`bindings.client.EventSubscriber`) become each session's sequenced
execution reports.  The user of every command is the authenticated session's
user; a client never names a user or a core order id.

State and replay are described in :mod:`gateway.store` and docs/gateway.md.
Ready line: ``{"ready": true, "gateway": "tcp://host:port", "port": ..., ...}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import signal
import socket
import sqlite3
import struct
import sys
import time
import tomllib
import typing
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import uvloop
import zmq

from bindings.client import CoreClient, CoreError, EventSubscriber
from bindings.loopwatch import LoopWatch
from bindings.streamlink import StreamEventSource, StreamTradeClient, trade_client
from bursa_wire.gw_layout import (
    APP_OUT,
    BY_NAME,
    LIQUIDITY_MAKER,
    LIQUIDITY_TAKER,
    LOGIN_CANCEL_ON_DISCONNECT,
    ORDER_POST_ONLY,
    REQUEST_CANCEL,
    REQUEST_REDUCE,
    REQUEST_REPLACE,
    SEQUENCED,
    STATE_CANCELED,
    STATE_FILLED,
    STATE_OPEN,
    STATE_PENDING,
    STATE_REJECTED,
    STATE_UNKNOWN,
    UNSEQUENCED,
    MsgSpec,
)
from bursa_wire.layout import CMD_DTYPE, CMD_FIELDS, EV_DTYPE
from engine import logs
from engine.metrics_http import Collector
from engine.metrics_http import serve as serve_metrics
from engine.server import (
    DEFAULT_ADMIN_ENDPOINT,
    DEFAULT_PUB_ENDPOINT,
    DEFAULT_REPLAY_ENDPOINT,
    DEFAULT_TRADE_ENDPOINT,
)
from engine.wire.frames import (
    CONTROL_TAG,
    STATUS_APPLIED,
    STATUS_DUPLICATE,
    FrameError,
    decode_control,
    decode_replies,
    encode_control,
)
from engine.wire.views import EV_VIEWS
from gateway import batch, keys, metrics
from gateway.store import DEFAULT_MAX_ORDERS_IN_MEMORY, MAX_ORDER_ID, OPEN_STATES, Order, Store
from gateway.wire import codec
from gateway.wire.codes import GwReason
from pyx import gwentry, gwreport
from pyx.enums import CmdFlag, CmdKind, EvFlag, EvKind, OrdType, Reason, Side
from pyx.gwentry import ENTER_RUN
from pyx.gworders import order_key

log = logging.getLogger("bursa.gateway")

OUT = {m.name: m for m in APP_OUT}
LOGIN = BY_NAME["LOGIN"]
CMD_STRUCT = struct.Struct(
    "<"
    + "".join(
        {"<u8": "Q", "<i8": "q", "<u4": "I", "<u2": "H", "u1": "B"}[f.code] for f in CMD_FIELDS
    )
)
CMD_INDEX = {f.name: i for i, f in enumerate(CMD_FIELDS)}
# Plain ints: IntEnum attribute lookups cost more than the event handling itself.
EVK_ACCEPTED = int(EvKind.ACCEPTED)
EVK_CANCELED = int(EvKind.CANCELED)
EVK_REDUCED = int(EvKind.REDUCED)
EVK_REJECTED = int(EvKind.REJECTED)
EVK_REPLACED = int(EvKind.REPLACED)
EVK_SYMBOL_ADDED = int(EvKind.SYMBOL_ADDED)
EVK_TRADE = int(EvKind.TRADE)
EVK_TRIGGERED = int(EvKind.TRIGGERED)
EVF_MAKER_DONE = int(EvFlag.MAKER_DONE)
EVF_TAKER_DONE = int(EvFlag.TAKER_DONE)
USER_CANCELED = int(Reason.USER_CANCELED)
U_TYPE = UNSEQUENCED[0]
SEQ_TYPE = SEQUENCED[0]
S_FRAME_HEAD = struct.Struct("<HBQ")  # FRAME_HEAD + SEQ_HEAD of an S frame, in one pack
S_FRAME_OVERHEAD = 1 + 8  # the length counts the type byte and the sequence number
FRAME_SHIFT = gwreport.FRAME_SHIFT  # client_ref = frame number << 16 | index in the frame
MAX_CORE_FRAME = 4096  # commands per frame to the core (its own limit is 16,384)
# Each command's client_ref (its place in CMD_DTYPE), set per frame in _send_frame:
# frames of up to SMALL_FRAME commands by struct stores, larger ones by numpy.
CLIENT_REF_OFFSET = CMD_DTYPE.fields["client_ref"][1]  # type: ignore[index]
CLIENT_REF = struct.Struct("<Q")
SMALL_FRAME = 8
# A read of at most this many messages, replies or events (one order in flight) is
# flushed in the same loop iteration (Gateway.flush_now_if_small); a larger one at
# the end of the loop turn, batched with the other reads of the turn.
IMMEDIATE_FLUSH_MAX = SMALL_FRAME
EV = {name: i for i, name in enumerate(EV_DTYPE.names or ())}
EV_FLAGS = EV["flags"]
EV_KIND = EV["kind"]
EV_LEAVES_LOTS = EV["leaves_lots"]
EV_MAKER_FEE = EV["maker_fee"]
EV_MAKER_ORDER_ID = EV["maker_order_id"]
EV_MAKER_USER_ID = EV["maker_user_id"]
EV_MATCH_ID = EV["match_id"]
EV_ORDER_ID = EV["order_id"]
EV_PRICE_TICKS = EV["price_ticks"]
EV_QTY_LOTS = EV["qty_lots"]
EV_REASON = EV["reason"]
EV_SIDE = EV["side"]
EV_SYMBOL_ID = EV["symbol_id"]
EV_TAKER_FEE = EV["taker_fee"]
EV_TS_NS = EV["ts_ns"]
EV_USER_ID = EV["user_id"]
# SYMBOL_ADDED by the names of its view (engine.wire.views): the symbol's quote asset
_SYMBOL_ADDED = EV_VIEWS[EvKind.SYMBOL_ADDED]
EV_SYM_SYMBOL_ID = _SYMBOL_ADDED.index("symbol_id")
EV_SYM_QUOTE_ASSET_ID = _SYMBOL_ADDED.index("quote_asset_id")
# NEWs whose ACCEPTED may be built from the core's reply (Gateway._accepted_by_reply).
REPLY_ACK_TYPES = (int(OrdType.LIMIT), int(OrdType.STOP_LIMIT))
EVENT_LOOPS = ("uvloop", "asyncio")  # config event_loop
# Plain ints for the per-turn zmq calls and per-order records (enum operators are slow).
ZMQ_EVENTS = int(zmq.EVENTS)
ZMQ_POLLIN = int(zmq.POLLIN)
ZMQ_NOBLOCK = int(zmq.NOBLOCK)
CMD_NEW = int(CmdKind.NEW)
CMD_POST_ONLY = int(CmdFlag.POST_ONLY)
REQUEST_OF_OP = {"C": REQUEST_CANCEL, "U": REQUEST_REPLACE, "D": REQUEST_REDUCE}
# The cyclic GC's thresholds: the gateway allocates several objects per order and
# report (nearly all freed by reference counting, few cycles), so CPython's default
# gen-0 threshold (700) ran a collection every ~100 orders, ~13% of the gateway's CPU in
# the sustained run (gc.callbacks timing); at 50,000 it is ~3%.
GC_THRESHOLDS = (50_000, 20, 10)
# Stream retention runs at most this often (seconds), removing at most this many
# chunks per session and looking at this many sessions per run, so one run never
# stalls the loop for long.
RETENTION_CHECK_S = 1.0
RETENTION_MAX_CHUNKS = 10_000
RETENTION_MAX_KEYS = 256  # sessions looked at per run (round-robin)


@dataclass
class GatewayConfig:
    """Settings of one gateway (TOML section ``[gateway]``; flags override).

    Rates are per second (fixed one-second windows); ``flood_factor`` x the message
    limit in one window disconnects the session (FLOOD).
    """

    host: str = "127.0.0.1"
    port: int = 7100
    db_path: str = keys.DEFAULT_DB
    # Orders: the core's trade socket (zmq), or its stream trade link (unix:/path).
    core_trade_endpoint: str = DEFAULT_TRADE_ENDPOINT
    # Events: the core's PUB socket (zmq), or its event stream link (unix:/path), whose
    # frames the loop reads in the same wake-up as the replies on the trade link.
    core_pub_endpoint: str = DEFAULT_PUB_ENDPOINT
    core_replay_endpoint: str = DEFAULT_REPLAY_ENDPOINT
    # Balance queries are control requests: the core answers them on its admin socket.
    core_admin_endpoint: str = DEFAULT_ADMIN_ENDPOINT
    heartbeat_ms: int = 1000
    login_timeout_ms: int = 5000
    timestamp_skew_ms: int = 30_000
    max_msgs_per_s: int = 100_000
    max_orders_per_s: int = 50_000
    max_user_orders_per_s: int = 100_000
    max_open_orders: int = 50_000
    max_user_open_orders: int = 100_000
    flood_factor: int = 4
    max_out_buffer: int = 4 << 20
    max_logins_per_s_per_ip: int = 50
    max_connections: int = 1000
    replay_chunk: int = 1000
    socket_sndbuf: int = 262_144  # kernel send buffer per client (bounds it, with max_out_buffer)
    core_send_hwm: int = 100_000  # frames queued for the core before sends are refused
    core_reply_timeout_ms: int = 5000  # unanswered frames older than this were lost
    metrics: str = "127.0.0.1:0"  # Prometheus /metrics address ("" or "off": none)
    # Session stream retention (0 disables a bound): stored messages older than this
    # many seconds, or beyond this many newest messages of their session, are removed;
    # a re-login asking for a removed one gets SEQUENCE_BEFORE_RETENTION.
    stream_retain_s: int = 7 * 86_400
    stream_retain_msgs: int = 10_000_000
    # Orders kept in memory: ended ones beyond this are evicted and served from SQLite
    # (open orders always stay; their number is bounded by the open-order throttles).
    max_orders_in_memory: int = DEFAULT_MAX_ORDERS_IN_MEMORY
    # "uvloop" (libuv: fewer syscalls and less Python per loop turn, the default) or
    # "asyncio" (the standard library's loop: the reference, for debugging).
    event_loop: str = "uvloop"
    # The turn file (docs/gateway.md, "Replay design"): the ticker fills its records
    # into SQLite once the oldest is this old (0: every tick, at most 50 ms); the file's
    # bound or a busier turn's commit fills them sooner.
    turn_fill_ms: int = 0


class Conn(asyncio.Protocol):
    """One TCP connection: framing, login state, throttles, output."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.transport: asyncio.Transport | None = None
        self.reader = gwentry.EntryReader(codec.frame_length_error)
        self.peer_ip = ""
        self.key: keys.ApiKey | None = None
        self.cod = False
        self.live = False  # logged in
        self.closed = False
        self.replaying = False
        self.sent_seq = 0
        now = time.monotonic()
        self.opened = now
        self.last_recv = now
        self.last_sent = now
        self.window = 0
        self.msgs = 0
        self.orders = 0
        self.drained = asyncio.Event()
        self.drained.set()

    # ------------------------------------------------------------ asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Accept (or refuse above ``max_connections``)."""
        # uvloop's TCP transports implement asyncio.Transport without subclassing it
        # (config event_loop): no isinstance.
        transport = typing.cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer_ip = str(peer[0]) if peer else ""
        transport.set_write_buffer_limits(high=self.gw.cfg.max_out_buffer // 2)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.gw.cfg.socket_sndbuf)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.gw.conns.add(self)
        if len(self.gw.conns) > self.gw.cfg.max_connections:
            self.reject_login(GwReason.LOGIN_RATE_EXCEEDED)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the connection; cancel-on-disconnect if chosen at login."""
        self.closed = True
        self.drained.set()
        self.gw.conns.discard(self)
        if self.key is not None and self.gw.sessions.get(self.key.key_id) is self:
            del self.gw.sessions[self.key.key_id]
            if self.cod and not self.gw.stopping:
                self.gw.cancel_session_orders(self.key)

    def pause_writing(self) -> None:
        """The socket's buffer is above the high mark."""
        self.drained.clear()

    def resume_writing(self) -> None:
        """The socket's buffer drained below the low mark."""
        self.drained.set()

    def data_received(self, data: bytes) -> None:
        """Split frames and handle each; a bad frame ends the session."""
        if self.closed:
            return
        self.last_recv = time.monotonic()
        gw = self.gw
        was_scheduled = gw.flush_scheduled
        msgs = 0  # messages in this read (a run of ENTER_ORDERs counts each)
        try:
            for ftype, body in self.reader.feed(data):
                if self.closed:
                    return
                if ftype != ENTER_RUN:
                    msgs += 1
                    self.on_frame(ftype, body)
                    continue
                # A run of ENTER_ORDERs (bodies back to back, gateway.batch.ENTER_DTYPE),
                # one order too (one in flight): handled together in compiled code
                # unless a limit is near, else one by one (the Python oracle).
                size = batch.ENTER_BODY_LEN
                msgs += len(body) // size
                if self.live and gw.enter_orders(self, body):
                    continue
                for k in range(0, len(body), size):
                    if self.closed:
                        return
                    self.on_frame(U_TYPE, body[k : k + size])
            self.reader.check()
        except codec.WireError as e:
            self.end(e.reason)
        # A large read can take the loop a while: the client was alive when it sent it.
        self.last_recv = time.monotonic()
        # One order in flight: its NEW leaves for the core in this loop iteration.
        gw.flush_now_if_small(was_scheduled, msgs)

    # ------------------------------------------------------------- output

    def write(self, data: bytes) -> None:
        """Write bytes; a client whose buffer exceeds the bound is disconnected."""
        if self.closed or self.transport is None:
            return
        self.transport.write(data)
        self.last_sent = time.monotonic()
        if self.transport.get_write_buffer_size() > self.gw.cfg.max_out_buffer:
            self.end(GwReason.SLOW_CONSUMER, abort=True)

    def end(self, reason: GwReason, abort: bool = False) -> None:
        """END_OF_SESSION with ``reason`` and close."""
        if self.closed or self.transport is None:
            return
        log.info("session end %s key=%s", reason.name, self.key.key_id if self.key else None)
        if reason == GwReason.FLOOD:
            self.gw.throttled("FLOOD")
        if not abort:
            self.transport.write(codec.encode("END_OF_SESSION", reason=int(reason)))
        self.closed = True
        if abort:
            self.transport.abort()
        else:
            self.transport.close()

    def reject_login(self, reason: GwReason) -> None:
        """LOGIN_REJECTED with ``reason`` and close."""
        if self.transport is not None and not self.closed:
            if reason == GwReason.LOGIN_RATE_EXCEEDED:
                self.gw.throttled(reason.name)
            self.transport.write(codec.encode("LOGIN_REJECTED", reason=int(reason)))
            self.closed = True
            self.transport.close()

    # -------------------------------------------------------------- input

    def on_frame(self, ftype: int, body: bytes) -> None:
        """One inbound frame (login state machine, then application messages)."""
        msg = codec.decode(ftype, body, inbound=True)
        name = msg.name
        if not self.live:
            if name != "LOGIN":
                self.end(GwReason.PROTOCOL_VIOLATION)
                return
            self.gw.login(self, body, msg)
            return
        if name == "CLIENT_HEARTBEAT":
            return
        if name == "LOGOUT":
            self.end(GwReason.LOGOUT)
            return
        if name == "LOGIN":
            self.end(GwReason.PROTOCOL_VIOLATION)
            return
        # Throttle every application message (fixed one-second windows).
        cfg = self.gw.cfg
        sec = int(time.monotonic())
        if sec != self.window:
            self.window, self.msgs, self.orders = sec, 0, 0
        self.msgs += 1
        self.gw.stats["messages_in"] += 1
        if self.msgs > cfg.max_msgs_per_s:
            self.gw.throttled("MESSAGE_RATE_EXCEEDED")
        if self.msgs > cfg.max_msgs_per_s * cfg.flood_factor:
            self.end(GwReason.FLOOD)
            return
        assert self.key is not None
        self.gw.on_app(self, self.key, msg, self.msgs > cfg.max_msgs_per_s)


class Gateway:
    """The gateway's state and the core I/O (see the module docstring)."""

    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self.store = Store(cfg.db_path, cfg.max_orders_in_memory)
        self.keystore = keys.KeyStore(self.store.con, cfg.timestamp_skew_ms * 1_000_000)
        self.conns: set[Conn] = set()
        self.sessions: dict[int, Conn] = {}
        # Queue only to a connected core: while it is down, orders are refused at once
        # (CORE_UNAVAILABLE) instead of executing, stale, when it comes back.
        self.core = trade_client(cfg.core_trade_endpoint, send_hwm=cfg.core_send_hwm)
        self.core_watch: LoopWatch | None = None  # the loop on the trade link (serve)
        self.events_watch: LoopWatch | None = None  # ... and on the live event source
        self.query = CoreClient(cfg.core_admin_endpoint)
        self.sub = EventSubscriber(
            cfg.core_pub_endpoint, cfg.core_replay_endpoint, from_seq=self.store.last_core_seq + 1
        )
        self.sub.replay_timeout_ms = 500
        # This turn's command records (chunks of whole records: bytes, or a view of a
        # run's CMD_DTYPE array, joined from its buffer in flush).
        self.cmds: list[bytes | memoryview] = []
        self.cmd_tags: list[tuple[int, int, str]] = []  # (user_id, order_id, op) per command
        self.mass: dict[int, tuple[int, int]] = {}  # mass ref -> (key_id, request_id)
        self.next_ref = 1
        self.controls: deque[tuple[int, int, int, int]] = deque()  # key, request, asset, acct
        # Command frames sent and not answered yet, oldest first: frame number ->
        # (send time, tags, frame).  Each command's client_ref is frame << 16 | index,
        # so a reply finds its frame even after an older frame was given up on.
        self.inflight: dict[int, tuple[float, list[tuple[int, int, str]], bytes | bytearray]] = {}
        self.next_frame = 1
        # NEWs resent after a lost reply (the core answers an applied one DUPLICATE).
        self.retried: set[int] = set()  # order keys (pyx.gworders.order_key)
        self.reprobe: set[tuple[int, int]] = set()  # probes the core could not take yet
        self.flush_scheduled = False
        self._flush_handle: asyncio.Handle | None = None
        # Both core links are stream links (level-triggered descriptors): each has a
        # reader of its own and flush reads neither (see serve); with a zmq link (its
        # descriptor edge-triggered) every wake-up and flush reads all (pump_core).
        self.level_links = isinstance(self.core, StreamTradeClient) and isinstance(
            self.sub.sub, StreamEventSource
        )
        self.login_window = 0
        self.logins_by_ip: dict[str, int] = {}
        self.user_window: dict[int, tuple[int, int]] = {}  # user -> (second, orders)
        self.open_by_key: dict[int, int] = {}
        self.open_by_user: dict[int, int] = {}
        for o in self.store.orders.values():
            if o.is_open:
                self._count_open(o, 1)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.caught_up = False
        self.stopping = False
        self.stats = {"orders": 0, "events": 0, "frames_to_core": 0, "retries": 0, "duplicates": 0,
                      "messages_in": 0, "reports": 0, "acks_from_reply": 0}  # fmt: skip
        self.throttles: dict[str, int] = {}  # reason name -> count (gateway.metrics)

    def throttled(self, reason: str) -> None:
        """Count one throttle (a rate or open-orders limit hit) under ``reason``."""
        self.throttles[reason] = self.throttles.get(reason, 0) + 1

    # ------------------------------------------------------------ helpers

    def _count_open(self, o: Order, d: int) -> None:
        self.open_by_key[o.key_id] = self.open_by_key.get(o.key_id, 0) + d
        self.open_by_user[o.user_id] = self.open_by_user.get(o.user_id, 0) + d

    def _set_state(self, o: Order, state: int) -> None:
        was = o.state in OPEN_STATES
        o.state = state
        if was and state not in OPEN_STATES:
            self._count_open(o, -1)

    def emit(self, key_id: int, spec: MsgSpec, values: Mapping[str, codec.Value]) -> None:
        """Store the session's next sequenced message; sent after this turn's commit."""
        payload = codec.app_payload(spec, values)
        self.stats["reports"] += 1
        self.store.append(key_id, payload)  # also listed to send live (Store.outbox)
        self.schedule_flush()

    def emit_payload(self, key_id: int, payload: bytes) -> None:
        """:meth:`emit` of an already packed payload (code + body)."""
        self.stats["reports"] += 1
        self.store.append(key_id, payload)  # also listed to send live (Store.outbox)
        if not self.flush_scheduled:
            self.schedule_flush()

    def schedule_flush(self) -> None:
        """Run :meth:`flush` once at the end of this loop turn."""
        if not self.flush_scheduled and self.loop is not None:
            self.flush_scheduled = True
            self._flush_handle = self.loop.call_soon(self.flush)

    def flush_now_if_small(self, was_scheduled: bool, records: int) -> None:
        """After a read (a session's messages, the core's replies or events) that
        scheduled a flush: flush in this loop iteration instead (the NEW or the
        acknowledgement leaves now, not after one more turn of the loop) when the read
        was small (at most :data:`IMMEDIATE_FLUSH_MAX` messages, replies or events: one
        order in flight) and no flush was scheduled before it (no other read of this
        turn waits for it); else the scheduled end-of-turn flush, so a busy turn's
        commands and reports share one frame to the core and one commit.  Stream
        links only (:attr:`level_links`): with a zmq link every flush reads all the
        core's sockets, and flushing from the read measured no gain there
        (docs/gateway.md, tenth pass)."""
        if was_scheduled or not self.flush_scheduled or records > IMMEDIATE_FLUSH_MAX:
            return
        if not self.level_links:
            return
        handle = self._flush_handle
        if handle is not None:
            handle.cancel()  # flush runs here instead
            self._flush_handle = None
        self.flush()

    def queue_cmd(self, tag: tuple[int, int, str], **v: int) -> None:
        """Add one command record to this turn's frame for the core."""
        rec = [0] * len(CMD_FIELDS)
        for k, x in v.items():
            rec[CMD_INDEX[k]] = x
        self.cmds.append(CMD_STRUCT.pack(*rec))
        self.cmd_tags.append(tag)
        self.schedule_flush()

    # -------------------------------------------------------------- login

    def login(self, conn: Conn, body: bytes, msg: codec.Msg) -> None:
        """Verify a LOGIN; accept (and start the replay) or reject with its code."""
        sec = int(time.monotonic())
        if sec != self.login_window:
            self.login_window, self.logins_by_ip = sec, {}
        n = self.logins_by_ip.get(conn.peer_ip, 0) + 1
        self.logins_by_ip[conn.peer_ip] = n
        if n > self.cfg.max_logins_per_s_per_ip:
            conn.reject_login(GwReason.LOGIN_RATE_EXCEEDED)
            return
        try:
            key = self.keystore.verify_login(body, msg.values, conn.peer_ip, time.time_ns())
        except keys.LoginError as e:
            conn.reject_login(e.reason)
            return
        if key.key_id in self.sessions:
            conn.reject_login(GwReason.ALREADY_LOGGED_IN)
            return
        last = self.store.last_seq.get(key.key_id, 0)
        first = int(msg.next_seq) or last + 1
        if first > last + 1:
            conn.reject_login(GwReason.INVALID_SEQUENCE)
            return
        if first < self.store.first_kept(key.key_id):
            # Removed by retention: a silent gap would be worse than a clear refusal.
            conn.reject_login(GwReason.SEQUENCE_BEFORE_RETENTION)
            return
        conn.key = key
        conn.live = True
        conn.cod = bool(int(msg.flags) & LOGIN_CANCEL_ON_DISCONNECT)
        conn.sent_seq = first - 1
        self.sessions[key.key_id] = conn
        conn.write(
            codec.encode(
                "LOGIN_ACCEPTED",
                key_id=key.key_id,
                first_seq=first,
                last_seq=last,
                user_id=key.user_id,
                heartbeat_ms=self.cfg.heartbeat_ms,
            )
        )
        log.info("login key=%d user=%d from seq %d (last %d)", key.key_id, key.user_id, first, last)
        if first <= last:
            conn.replaying = True
            assert self.loop is not None
            self.loop.create_task(self.replay(conn))

    async def replay(self, conn: Conn) -> None:
        """Send the stored messages the client missed, chunk by chunk, then go live."""
        assert conn.key is not None
        key_id = conn.key.key_id
        while not conn.closed:
            await conn.drained.wait()
            if conn.closed:
                return
            limit = self.store.committed_seq.get(key_id, 0)
            rows = [
                r
                for r in self.store.stream(key_id, conn.sent_seq + 1, self.cfg.replay_chunk)
                if r[0] <= limit
            ]
            if not rows:
                conn.replaying = False  # same step as the check: no message can slip between
                return
            # Small groups, each after the buffer drained below its high mark: a replay
            # never pushes the output buffer past max_out_buffer.
            for i in range(0, len(rows), 64):
                await conn.drained.wait()
                if conn.closed:
                    return
                group = rows[i : i + 64]
                conn.write(b"".join(codec.sequenced_frame(s, p) for s, p in group))
                conn.sent_seq = group[-1][0]
            await asyncio.sleep(0)

    # ----------------------------------------------------- app messages

    def on_app(self, conn: Conn, key: keys.ApiKey, msg: codec.Msg, over_rate: bool) -> None:
        """One application message of a logged-in session."""
        name = msg.name
        kid, uid = key.key_id, key.user_id
        if name == "ENTER_ORDER":
            self.enter_order(conn, key, msg, over_rate)
        elif name in ("CANCEL_ORDER", "REPLACE_ORDER", "REDUCE_ORDER"):
            op = {"CANCEL_ORDER": "C", "REPLACE_ORDER": "U", "REDUCE_ORDER": "D"}[name]
            self.modify(key, msg, op, over_rate)
        elif name == "MASS_CANCEL":
            reason = self._trade_gate(key, over_rate)
            if reason:
                self.emit(
                    kid, OUT["MASS_CANCEL_ACK"], {"request_id": msg.request_id, "reason": reason}
                )
                return
            ref = self.next_ref
            self.next_ref += 1
            self.mass[ref] = (kid, int(msg.request_id))
            self.queue_cmd(
                (uid, ref, "M"),
                kind=CmdKind.MASS_CANCEL,
                user_id=uid,
                symbol_id=int(msg.symbol_id),
                side=int(msg.side),
            )
        elif name == "ORDER_STATUS":
            o = self.store.find_cl(kid, int(msg.cl_ord_id))
            v: dict[str, codec.Value] = {"cl_ord_id": msg.cl_ord_id}
            if over_rate:
                v["reason"] = GwReason.MESSAGE_RATE_EXCEEDED
            elif o is None:
                v.update(state=STATE_UNKNOWN, reason=GwReason.UNKNOWN_CL_ORD_ID)
            else:
                v.update(
                    price_ticks=o.price,
                    qty_lots=o.qty,
                    leaves_lots=o.leaves if o.is_open else 0,
                    filled_lots=o.filled,
                    symbol_id=o.symbol_id,
                    side=o.side,
                    state=o.state,
                    reason=o.reason,
                )
            self.emit(kid, OUT["ORDER_STATUS_REPLY"], v)
        elif name == "BALANCE_QUERY":
            base = {"request_id": msg.request_id, "asset_id": msg.asset_id, "account": msg.account}
            if over_rate:
                self.emit(kid, OUT["BALANCE"], {**base, "reason": GwReason.MESSAGE_RATE_EXCEEDED})
                return
            req = {"op": "balance", "user_id": uid, "asset_id": int(msg.asset_id)}
            req["account"] = int(msg.account)
            try:
                self.query.sock.send_multipart([CONTROL_TAG, encode_control(req)], zmq.NOBLOCK)
            except zmq.Again:
                self.emit(kid, OUT["BALANCE"], {**base, "reason": GwReason.CORE_UNAVAILABLE})
                return
            self.controls.append((kid, int(msg.request_id), int(msg.asset_id), int(msg.account)))
            self.pump_core()

    def _trade_gate(self, key: keys.ApiKey, over_rate: bool) -> int:
        if over_rate:
            return int(GwReason.MESSAGE_RATE_EXCEEDED)
        if not key.can_trade:
            return int(GwReason.READ_ONLY_KEY)
        return 0

    def enter_order(self, conn: Conn, key: keys.ApiKey, msg: codec.Msg, over_rate: bool) -> None:
        """ENTER_ORDER: checks, a new core order id, then NEW to the core."""
        kid, uid = key.key_id, key.user_id
        # The field values by name (Msg's attribute access goes through __getattr__
        # after a failed normal lookup: an AttributeError built per field).
        v: Mapping[str, Any] = msg.values
        cl = int(v["cl_ord_id"])
        reason = self._trade_gate(key, over_rate)
        if not reason and (cl == 0 or self.store.find_cl(kid, cl) is not None):
            reason = GwReason.DUPLICATE_CL_ORD_ID
        if not reason and int(v["side"]) not in (Side.BUY, Side.SELL):
            # Refused here with the core's own code: the core's reject of such a NEW
            # would carry side 0, like a cancel's, and could not be told apart.
            reason = Reason.INVALID_SIDE
        if not reason:
            conn.orders += 1
            sec, n = self.user_window.get(uid, (0, 0))
            now = int(time.monotonic())
            n = n + 1 if sec == now else 1
            self.user_window[uid] = (now, n)
            if conn.orders > self.cfg.max_orders_per_s or n > self.cfg.max_user_orders_per_s:
                reason = GwReason.ORDER_RATE_EXCEEDED
            elif (
                self.open_by_key.get(kid, 0) >= self.cfg.max_open_orders
                or self.open_by_user.get(uid, 0) >= self.cfg.max_user_open_orders
            ):
                reason = GwReason.OPEN_ORDERS_EXCEEDED
        if reason:
            if reason in (GwReason.ORDER_RATE_EXCEEDED, GwReason.OPEN_ORDERS_EXCEEDED):
                self.throttled(GwReason(reason).name)
            self.emit(kid, OUT["REJECTED"], {"cl_ord_id": cl, "reason": reason})
            return
        o = Order(
            user_id=uid,
            order_id=0,
            key_id=kid,
            cl_ord_id=cl,
            symbol_id=int(v["symbol_id"]),
            side=int(v["side"]),
            ord_type=int(v["ord_type"]),
            price=int(v["price_ticks"]),
            qty=int(v["qty_lots"]),
            leaves=int(v["qty_lots"]),
        )
        try:
            self.store.new_order(o)
        except OverflowError:
            self.emit(kid, OUT["REJECTED"], {"cl_ord_id": cl, "reason": Reason.INVALID_ORDER_ID})
            return
        self._count_open(o, 1)
        self.stats["orders"] += 1
        flags = CMD_POST_ONLY if int(v["flags"]) & ORDER_POST_ONLY else 0
        self.queue_cmd(
            (uid, o.order_id, "N"),
            kind=CMD_NEW,
            order_id=o.order_id,
            user_id=uid,
            symbol_id=o.symbol_id,
            side=o.side,
            ord_type=o.ord_type,
            tif=int(v["tif"]),
            price_ticks=o.price,
            qty_lots=o.qty,
            stop_price_ticks=int(v["stop_price_ticks"]),
            stp=int(v["stp"]),
            flags=flags | (int(v["flags"]) & ~ORDER_POST_ONLY & 0xFF),
        )

    def enter_orders(self, conn: Conn, recs: bytes) -> bool:
        """A run of ENTER_ORDERs of one session (one or many) at once, the checks, the
        orders and their NEW records in compiled code (:mod:`pyx.gwentry`).

        Returns False, having done nothing, if the run could reach a throttle or
        limit (or the key cannot trade): then each is handled by :meth:`enter_order`,
        which decides message by message.  Otherwise the outcome is the same as
        handling them one by one.
        """
        key, cfg, n = conn.key, self.cfg, len(recs) // batch.ENTER_BODY_LEN
        assert key is not None
        kid, uid = key.key_id, key.user_id
        sec = int(time.monotonic())
        if sec != conn.window:
            conn.window, conn.msgs, conn.orders = sec, 0, 0
        usec, un = self.user_window.get(uid, (0, 0))
        if usec != sec:
            un = 0
        if (
            not key.can_trade
            or conn.msgs + n > cfg.max_msgs_per_s
            or conn.orders + n > cfg.max_orders_per_s
            or un + n > cfg.max_user_orders_per_s
            or self.open_by_key.get(kid, 0) + n > cfg.max_open_orders
            or self.open_by_user.get(uid, 0) + n > cfg.max_user_open_orders
            or self.store.next_order_id + n > MAX_ORDER_ID
        ):
            return False
        conn.msgs += n
        self.stats["messages_in"] += n
        ok: list[int] | None = None  # None: all of them
        top_cl = gwentry.new_run_top(recs, self.store.max_cl.get(kid, 0))
        if top_cl:  # the common case (ids upwards, valid sides), checked in C
            m = n
        else:  # some may be duplicates or invalid: checked one by one
            e = batch.decode_enters(recs)
            ok = self._check_enters(kid, e)
            m = len(ok)
            if not m:
                return True
            top_cl = int(e["cl_ord_id"][ok].max())
        conn.orders += m
        self.user_window[uid] = (sec, un + m)
        first = self.store.reserve_ids(m)
        # The orders, and their command tags (uid, order id, "N"), in one compiled pass.
        self.store.enter_run(recs, ok, uid, kid, first, top_cl, self.cmd_tags)
        self.open_by_key[kid] = self.open_by_key.get(kid, 0) + m
        self.open_by_user[uid] = self.open_by_user.get(uid, 0) + m
        self.stats["orders"] += m
        # Their NEW records, built in C (oracle: gateway.batch.new_records).
        self.cmds.append(gwentry.new_records(recs, ok, uid, first))
        self.schedule_flush()
        return True

    def _check_enters(self, kid: int, e: np.ndarray[Any, np.dtype[np.void]]) -> list[int]:
        """Indexes of the ENTER_ORDERs of a run that pass the duplicate and side checks;
        each other one is answered REJECTED (the order of :meth:`enter_order`'s checks)."""
        cls = e["cl_ord_id"].tolist()
        used = self.store.known_cls(kid, cls)
        ok: list[int] = []
        seen: set[int] = set()
        for i, (cl, side) in enumerate(zip(cls, e["side"].tolist(), strict=True)):
            if cl == 0 or cl in seen or cl in used:
                self.emit(
                    kid, OUT["REJECTED"], {"cl_ord_id": cl, "reason": GwReason.DUPLICATE_CL_ORD_ID}
                )
            elif side != Side.BUY and side != Side.SELL:
                self.emit(kid, OUT["REJECTED"], {"cl_ord_id": cl, "reason": Reason.INVALID_SIDE})
            else:
                ok.append(i)
                seen.add(cl)
        return ok

    def modify(self, key: keys.ApiKey, msg: codec.Msg, op: str, over_rate: bool) -> None:
        """CANCEL / REPLACE / REDUCE of the session's own order."""
        kid, uid = key.key_id, key.user_id
        cl = int(msg.cl_ord_id)
        o = self.store.find_cl(kid, cl)
        reason = self._trade_gate(key, over_rate)
        if not reason and o is None:
            reason = GwReason.UNKNOWN_CL_ORD_ID
        if not reason and o is not None and not o.is_open:
            reason = GwReason.ORDER_NOT_OPEN
        if reason or o is None:
            v = {"cl_ord_id": cl, "reason": reason, "request": REQUEST_OF_OP[op]}
            self.emit(kid, OUT["CANCEL_REJECTED"], v)
            return
        o.pending.append(op)
        self.store.save_order(o)
        kind = {"C": CmdKind.CANCEL, "U": CmdKind.REPLACE, "D": CmdKind.REDUCE}[op]
        extra: dict[str, int] = {}
        if op == "U":
            extra = {"price_ticks": int(msg.price_ticks), "qty_lots": int(msg.qty_lots)}
        elif op == "D":
            extra = {"qty_lots": int(msg.qty_lots)}
        self.queue_cmd((uid, o.order_id, op), kind=kind, order_id=o.order_id, user_id=uid, **extra)

    def cancel_session_orders(self, key: keys.ApiKey, op: str = "C") -> None:
        """Cancel every open order of a session (cancel-on-disconnect, recovery)."""
        for o in self.store.open_orders(key.key_id):
            if "C" in o.pending or "R" in o.pending:
                continue
            o.pending.append(op)
            self.store.save_order(o)
            self.queue_cmd(
                (o.user_id, o.order_id, op),
                kind=CmdKind.CANCEL,
                order_id=o.order_id,
                user_id=o.user_id,
            )

    # ------------------------------------------------------------- flush

    def flush(self) -> None:
        """End of a loop turn: commit, send the core frame, write the outbox."""
        self.flush_scheduled = False
        if self.cmds:
            # One copy of the turn's records, into the mutable buffer _send_frame
            # stamps and keeps for a resend (bytes would need a second copy there).
            data, tags = bytearray().join(self.cmds), self.cmd_tags
            self.cmds, self.cmd_tags = [], []
            # Store first: an order id reaches the core only once it is stored.  One
            # order in flight: its row goes to the turn file (one write) and into
            # SQLite with the ticker's next commit (Store.log_turn).
            if not self.store.log_turn():
                self.store.commit()
            if len(tags) <= MAX_CORE_FRAME:
                self._send_frame(data, tags)  # the usual case: no slice, no copy
            else:
                step = MAX_CORE_FRAME * CMD_STRUCT.size
                for i in range(0, len(tags), MAX_CORE_FRAME):
                    k = i * CMD_STRUCT.size
                    self._send_frame(data[k : k + step], tags[i : i + MAX_CORE_FRAME])
        # The reports go out once durable: in the turn file (one write; one order in
        # flight) or committed (a busier turn).
        if not self.store.log_turn():
            self.store.commit()
        outbox = self.store.take_outbox()
        # One write per connection per turn (fewer syscalls under load); the frames
        # are built in compiled code (reference: session_frames_py).
        if outbox:
            for conn, frames in gwreport.session_frames(outbox, self.sessions).items():
                conn.write(frames)
        if self.level_links:
            # Level-triggered links wake the loop themselves: no read here (it found
            # nothing at one order in flight: a recv raising BlockingIOError, a select).
            # The admin socket is zmq (edge-triggered): a balance query's send may have
            # taken the edge of its answer, so look while one is awaited.
            if self.controls:
                self._pump_query()
        else:
            self.pump_core()

    def _send_frame(self, buf: bytearray, tags: list[tuple[int, int, str]]) -> None:
        """One command frame to the core, each client_ref naming (frame, index),
        stamped into ``buf`` in place; ``buf`` is then kept (``inflight``, for a
        resend) and must not be changed by the caller."""
        no = self.next_frame
        self.next_frame += 1
        n = len(tags)
        if n <= SMALL_FRAME:
            # A few commands (one order in flight): a struct store per record costs
            # less than numpy's per-call overhead.
            ref, pack, size = no << FRAME_SHIFT, CLIENT_REF.pack_into, CMD_DTYPE.itemsize
            for i in range(n):
                pack(buf, i * size + CLIENT_REF_OFFSET, ref + i)
        else:
            recs = np.frombuffer(buf, dtype=CMD_DTYPE)
            recs["client_ref"] = (no << FRAME_SHIFT) + np.arange(n, dtype=np.uint64)
        if not self.core.try_send(buf):
            self.core_unavailable(tags)
            return
        if self.core_watch is not None:
            self.core_watch.sent(self.core)
        self.inflight[no] = (time.monotonic(), tags, buf)
        self.stats["frames_to_core"] += 1

    def core_unavailable(self, tags: list[tuple[int, int, str]]) -> None:
        """The core's socket refused a frame: every command in it is rejected."""
        for uid, oid, op in tags:
            if op == "M":
                m = self.mass.pop(oid, None)
                if m is not None:
                    v = {"request_id": m[1], "reason": GwReason.CORE_UNAVAILABLE}
                    self.emit(m[0], OUT["MASS_CANCEL_ACK"], v)
                continue
            if op == "n":
                self.retried.discard(order_key(uid, oid))
                self.reprobe.add((uid, oid))  # the resend never left: probe later
                continue
            o = self.store.orders.get(order_key(uid, oid))
            if o is None or op not in o.pending:
                continue
            # This request never left: take exactly it out (earlier ones may be in flight).
            i = len(o.pending) - 1 - o.pending[::-1].index(op)
            del o.pending[i]
            self.store.save_order(o)
            code = int(GwReason.CORE_UNAVAILABLE)
            if op == "N":
                self._set_state(o, STATE_REJECTED)
                o.reason, o.leaves = code, 0
                self.emit(o.key_id, OUT["REJECTED"], {"cl_ord_id": o.cl_ord_id, "reason": code})
            elif op in REQUEST_OF_OP:
                v = {"cl_ord_id": o.cl_ord_id, "reason": code, "request": REQUEST_OF_OP[op]}
                self.emit(o.key_id, OUT["CANCEL_REJECTED"], v)
            elif op == "R":
                self.reprobe.add((uid, oid))  # probe again once the core is back

    # -------------------------------------------------------------- core

    def pump_core(self) -> None:
        """Read every control answer, reply and event available now (the ticker,
        shutdown; with a zmq link every wake-up and flush: its descriptor is
        edge-triggered, a send may have taken the edge of what is already in)."""
        got = self._pump_query()
        if self._pump_replies() >= 0:
            got = True
        if self._pump_events() >= 0:
            got = True
        if self._events_left():
            got = True
        if got:
            self.schedule_flush()

    def _pump_query(self) -> bool:
        """Every control answer on the admin socket (zmq: ``ZMQ_EVENTS``, no
        exception); whether one was read."""
        got = False
        qsock = self.query.sock
        while typing.cast(int, qsock.getsockopt(ZMQ_EVENTS)) & ZMQ_POLLIN:
            parts = qsock.recv_multipart(ZMQ_NOBLOCK)
            got = True
            if len(parts) == 2 and parts[0] == CONTROL_TAG:
                self.on_control(decode_control(parts[1]))
        return got

    def _pump_replies(self) -> int:
        """Every reply frame on the trade link; the number of replies read, -1 when
        no frame was there."""
        bodies = self.core.read_nowait()
        if not bodies:
            return -1
        n = 0
        for body in bodies:
            try:
                replies = decode_replies(body)
            except FrameError:
                log.warning("undecodable reply frame from the core")
                continue
            n += len(replies)
            self.on_replies(replies)
        return n

    def _pump_events(self) -> int:
        """Every event frame available now; the number of events read, -1 when no
        frame was there."""
        if not self._events_readable():
            return -1
        try:
            frames = self.sub.poll(0, max_frames=256, idle_replay=False)
        except (TimeoutError, CoreError) as e:
            log.warning("event stream: %s (retrying)", e)
            return -1
        if not frames:
            return -1
        n = 0
        for f in frames:
            n += len(f.events)
            self.on_events(f.events)
            self.store.set_core_seq(f.last_seq)
        self.stats["events"] += n
        return n

    def _on_query_readable(self) -> None:
        """The admin socket's reader (stream links; see :attr:`level_links`)."""
        if self._pump_query():
            self.schedule_flush()

    def _on_trade_readable(self) -> None:
        """The trade link's reader (stream links): its replies only (the event link
        has its own reader), flushed at once when few (:meth:`flush_now_if_small`)."""
        was = self.flush_scheduled
        n = self._pump_replies()
        if n >= 0:
            self.schedule_flush()
            self.flush_now_if_small(was, n)

    def _on_events_readable(self) -> None:
        """The event link's reader (stream links): its events only, flushed at once
        when few; frames read off the socket and not taken yet (over ``max_frames``)
        do not make it readable again: read them in the next turn."""
        was = self.flush_scheduled
        n = self._pump_events()
        if self._events_left() and self.loop is not None:
            self.loop.call_soon(self._on_events_readable)
        if n >= 0:
            self.schedule_flush()
            self.flush_now_if_small(was, n)

    def _events_left(self) -> bool:
        """Whether the stream link holds event frames read off its socket and not
        taken yet (over ``max_frames``): they do not make the descriptor readable
        again, so whoever read must come back for them."""
        live = self.sub.sub
        return isinstance(live, StreamEventSource) and live.pending > 0

    def _events_readable(self) -> bool:
        """Whether the event stream may have a frame now: a zmq SUB socket is asked
        for ``ZMQ_EVENTS`` (one call, where ``EventSubscriber.poll`` builds a poller
        per frame; pump_core runs several times per order, mostly for nothing), any
        other live source is polled by the subscriber itself."""
        sub = self.sub.sub
        if not self.sub.caught_up or not isinstance(sub, zmq.Socket):
            return True
        return bool(typing.cast(int, sub.getsockopt(ZMQ_EVENTS)) & ZMQ_POLLIN)

    def on_control(self, ans: dict[str, Any]) -> None:
        """A control answer: the oldest balance query's."""
        if not self.controls:
            return
        kid, req, asset, account = self.controls.popleft()
        v: dict[str, codec.Value] = {"request_id": req, "asset_id": asset, "account": account}
        if ans.get("ok"):
            bal = ans.get("balance", [0, 0])
            v.update(available_minor=int(bal[0]), held_minor=int(bal[1]))
        else:
            v["reason"] = int(Reason.UNKNOWN_ASSET)
        self.emit(kid, OUT["BALANCE"], v)

    def on_replies(self, replies: Any) -> None:
        """One reply frame of the core: the NEWs it applied are acknowledged from it
        (ACCEPTED, see :meth:`_accepted_by_reply`), mass cancels answered; the events
        tell the rest.  The loop runs in compiled code
        (:func:`pyx.gwreport.apply_replies`; reference :meth:`on_replies_py`)."""
        if not len(replies):
            return
        n = gwreport.apply_replies(self, replies, time.time_ns())
        self.stats["reports"] += n
        self.stats["acks_from_reply"] += n

    def on_replies_py(self, replies: Any, ts_ns: int) -> None:
        """The reference of :func:`pyx.gwreport.apply_replies` (which :meth:`on_replies`
        calls; tests/gateway/test_reply_ack.py holds them to the same answers): the
        ACCEPTEDs from this frame's replies are stamped ``ts_ns``."""
        if not len(replies):
            return
        # The core answers all frames of one loop turn in one reply frame: split it by
        # the frame number in each client_ref.
        refs = replies["client_ref"].tolist()
        statuses = replies["status"].tolist()
        values = replies["value"].tolist()
        reasons = replies["reason"].tolist()
        mask = (1 << FRAME_SHIFT) - 1
        entry = None
        cur = -1
        acked: list[int] = []  # keys of the NEWs applied: ACCEPTED unless reported already
        for ref, status, value, reason in zip(refs, statuses, values, reasons, strict=True):
            no = ref >> FRAME_SHIFT
            if no != cur:
                cur = no
                entry = self.inflight.pop(no, None)  # None: given up on after the timeout
            if entry is None or (ref & mask) >= len(entry[1]):
                continue
            uid, oid, op = entry[1][ref & mask]
            if status == STATUS_APPLIED and (op == "N" or op == "n"):
                acked.append(order_key(uid, oid))
            elif op == "M" or (op == "n" and status == STATUS_DUPLICATE):
                self._reply_other(uid, oid, op, status, value, reason)
        if acked:
            n = gwreport.accept_from_replies(self, acked, ts_ns)
            self.stats["reports"] += n
            self.stats["acks_from_reply"] += n

    def _reply_other(
        self, user_id: int, order_id: int, op: str, status: int, value: int, reason: int
    ) -> None:
        """The reply to a mass cancel (op M: its acknowledgement) or to a resent NEW
        answered DUPLICATE (op n: its first copy was applied, the events tell the
        outcome); :func:`pyx.gwreport.apply_replies` hands these here."""
        if op == "M":
            m = self.mass.pop(order_id, None)
            if m is not None:
                v = {"request_id": m[1], "canceled": value if status == 1 else 0, "reason": reason}
                self.emit(m[0], OUT["MASS_CANCEL_ACK"], v)
        elif op == "n" and status == STATUS_DUPLICATE:
            self.stats["duplicates"] += 1
            log.info("resent NEW answered DUPLICATE user=%d order=%d", user_id, order_id)

    def _accepted_by_reply(self, user_id: int, order_id: int) -> None:
        """The core applied a NEW: report ACCEPTED now unless its ACCEPTED event came
        first (then ``pending`` no longer starts with N and this does nothing).

        The core publishes a turn's events before its replies, but they travel on
        different sockets; whichever is read first answers the client.  Only LIMIT and
        STOP_LIMIT orders: for them the event's price and quantity are the order's own
        (a MARKET order's book price is set by the core), so the report is the same
        either way except ``ts_ns``, which is the gateway's clock here.

        The reference of :func:`pyx.gwreport.accept_from_replies`, which
        :meth:`on_replies` calls (tests/gateway/test_reply_ack.py compares them).
        """
        key = order_key(user_id, order_id)
        o = self.store.orders.get(key)
        if o is None or o.ord_type not in REPLY_ACK_TYPES or o.pending[:1] != ["N"]:
            return
        if self.retried:
            self.retried.discard(key)
        o.pending.pop(0)
        if o.state == STATE_PENDING:
            o.state = STATE_OPEN  # open either way: the open counts do not change
        self.stats["acks_from_reply"] += 1
        self.emit_payload(
            o.key_id,
            batch.ACCEPTED_CODE
            + batch.ACCEPTED_STRUCT.pack(
                o.cl_ord_id, time.time_ns(), o.price, o.qty, o.leaves, o.symbol_id, o.side,
                o.ord_type,
            ),
        )  # fmt: skip
        self.store.save_order(o)

    def _answer_reject(self, o: Order, reason: int, ts: int, of_new: bool) -> None:
        """A REJECTED event answers the order's oldest request of its kind.

        ``of_new``: the event rejects a NEW (the core copies the order's side into it;
        rejects of cancel/replace/reduce carry side 0).  A rejected probe cancel (R) of
        an order whose NEW never reached the core ends it: REJECTED(CORE_UNAVAILABLE).
        """
        key = o.key
        if key in self.retried:
            self.retried.discard(key)
            if of_new and reason in (Reason.ORDER_ID_TOO_OLD, Reason.EXISTS_WITH_DIFFERENT_FIELDS):
                # Our resend of a NEW the core no longer remembers: the first copy's
                # fate is unknown here, so a cancel probe settles it.
                self._probe(o)
                return
        op = ""
        for i, p in enumerate(o.pending):
            if (p == "N") == of_new:
                op = o.pending.pop(i)
                break
        if not op and o.pending:
            op = o.pending.pop(0)
        if op == "R" and o.state == STATE_PENDING and "N" in o.pending:
            o.pending.remove("N")  # the NEW was lost: no event will ever answer it
        if op == "N" or (op == "R" and o.state == STATE_PENDING):
            self._set_state(o, STATE_REJECTED)
            o.reason = reason if op == "N" else int(GwReason.CORE_UNAVAILABLE)
            o.leaves = 0
            self.emit(
                o.key_id,
                OUT["REJECTED"],
                {"cl_ord_id": o.cl_ord_id, "ts_ns": ts, "reason": o.reason},
            )
        elif op in REQUEST_OF_OP:
            v = {
                "cl_ord_id": o.cl_ord_id,
                "ts_ns": ts,
                "reason": reason,
                "request": REQUEST_OF_OP[op],
            }
            self.emit(o.key_id, OUT["CANCEL_REJECTED"], v)
        self.store.save_order(o)

    def _executed(
        self, o: Order, ev: tuple[Any, ...], ts: int, liq: int, fee: int, done: int, leaves: int
    ) -> None:
        """One side of a TRADE event: the order's fill and its EXECUTED report."""
        qty = ev[EV_QTY_LOTS]
        o.filled += qty
        o.leaves = leaves
        if done:
            o.leaves = 0
            self._set_state(o, STATE_FILLED)
        self.store.save_order(o)
        self.emit_payload(
            o.key_id,
            batch.EXECUTED_CODE
            + batch.EXECUTED_STRUCT.pack(
                o.cl_ord_id,
                ts,
                ev[EV_MATCH_ID],
                ev[EV_PRICE_TICKS],
                qty,
                o.leaves,
                fee,
                self.store.quote_asset.get(o.symbol_id, 0),
                o.symbol_id,
                o.side,
                liq,
            ),
        )

    def on_events(self, events: np.ndarray[Any, np.dtype[np.void]]) -> None:
        """Every event of one core frame, in order: ACCEPTED, TRADE and CANCELED in
        compiled code (:func:`pyx.gwreport.apply_events`), the rest through
        :meth:`on_event`."""
        # The compiled path emits without :meth:`emit`: count its reports here, after
        # the call (``stats[k] += f()`` would read the count before f() and drop the
        # reports that :meth:`on_event` counts through :meth:`emit` meanwhile).
        n = gwreport.apply_events(self, events)
        self.stats["reports"] += n

    def on_event(self, ev: tuple[Any, ...]) -> None:
        """Turn one core event into the owning sessions' messages.

        The reference behaviour: :func:`pyx.gwreport.apply_events` must do exactly
        this for ACCEPTED, TRADE and CANCELED (tests/gateway/test_gwreport.py)."""
        kind = ev[EV_KIND]
        if kind == EVK_SYMBOL_ADDED:
            self.store.set_quote_asset(ev[EV_SYM_SYMBOL_ID], ev[EV_SYM_QUOTE_ASSET_ID])
            return
        if kind > EVK_TRIGGERED:
            return
        ts = ev[EV_TS_NS]
        o = self.store.orders.get(order_key(ev[EV_USER_ID], ev[EV_ORDER_ID]))
        if kind == EVK_TRADE:
            flags = ev[EV_FLAGS]
            if o is not None:
                self._executed(o, ev, ts, LIQUIDITY_TAKER, ev[EV_TAKER_FEE],
                               flags & EVF_TAKER_DONE, ev[EV_LEAVES_LOTS])  # fmt: skip
            maker = self.store.orders.get(order_key(ev[EV_MAKER_USER_ID], ev[EV_MAKER_ORDER_ID]))
            if maker is not None:
                leaves = maker.leaves - ev[EV_QTY_LOTS]
                self._executed(maker, ev, ts, LIQUIDITY_MAKER, ev[EV_MAKER_FEE],
                               flags & EVF_MAKER_DONE, leaves if leaves > 0 else 0)  # fmt: skip
            return
        if o is None:
            return
        cl = o.cl_ord_id
        if kind == EVK_ACCEPTED:
            if self.retried:
                self.retried.discard(o.key)
            changed = o.state == STATE_PENDING or o.leaves != ev[EV_LEAVES_LOTS]
            if o.state == STATE_PENDING:
                self._set_state(o, STATE_OPEN)
            o.leaves = ev[EV_LEAVES_LOTS]
            if not (o.pending and o.pending[0] == "N"):
                # Reported from the reply already.  Unchanged by this event, its current
                # image is stored already (every change is saved in its turn): not
                # logged again.
                if changed:
                    self.store.save_order(o)
                return
            o.pending.pop(0)
            self.emit_payload(
                o.key_id,
                batch.ACCEPTED_CODE
                + batch.ACCEPTED_STRUCT.pack(
                    cl,
                    ts,
                    ev[EV_PRICE_TICKS],
                    ev[EV_QTY_LOTS],
                    o.leaves,
                    o.symbol_id,
                    o.side,
                    o.ord_type,
                ),
            )
        elif kind == EVK_REJECTED:
            self._answer_reject(o, ev[EV_REASON], ts, of_new=ev[EV_SIDE] != 0)
            return
        elif kind == EVK_CANCELED:
            reason = ev[EV_REASON]
            if reason == USER_CANCELED and o.pending and o.pending[0] in "CDR":
                o.pending.pop(0)
            self._set_state(o, STATE_CANCELED)
            o.reason = reason
            o.leaves = 0
            v = {"cl_ord_id": cl, "ts_ns": ts, "qty_lots": ev[EV_QTY_LOTS], "reason": reason}
            self.emit(o.key_id, OUT["CANCELED"], v)
        elif kind == EVK_REDUCED:
            if o.pending and o.pending[0] == "D":
                o.pending.pop(0)
            o.leaves = ev[EV_LEAVES_LOTS]
            v = {
                "cl_ord_id": cl,
                "ts_ns": ts,
                "qty_lots": ev[EV_QTY_LOTS],
                "leaves_lots": o.leaves,
            }
            self.emit(o.key_id, OUT["REDUCED"], v)
        elif kind == EVK_REPLACED:
            if o.pending and o.pending[0] == "U":
                o.pending.pop(0)
            o.price, o.leaves = ev[EV_PRICE_TICKS], ev[EV_LEAVES_LOTS]
            v = {"cl_ord_id": cl, "ts_ns": ts, "price_ticks": o.price, "leaves_lots": o.leaves}
            self.emit(o.key_id, OUT["REPLACED"], v)
        elif kind == EVK_TRIGGERED:
            v = {"cl_ord_id": cl, "ts_ns": ts, "price_ticks": ev[EV_PRICE_TICKS]}
            self.emit(o.key_id, OUT["TRIGGERED"], v)
        self.store.save_order(o)

    # -------------------------------------------------------------- run

    def recover_pending(self) -> None:
        """After a restart: resolve orders whose NEW may never have reached the core.

        A CANCEL (op R) is sent for each: if the NEW was applied the order is canceled
        (its ACCEPTED and CANCELED are reported); if not, the cancel is rejected and the
        order is reported REJECTED (CORE_UNAVAILABLE).  Either way it ends known.
        """
        for o in list(self.store.orders.values()):
            if o.state == STATE_PENDING and o.pending[:1] == ["N"] and "R" not in o.pending:
                o.pending.append("R")
                self.store.save_order(o)
                self.queue_cmd(
                    (o.user_id, o.order_id, "R"),
                    kind=CmdKind.CANCEL,
                    order_id=o.order_id,
                    user_id=o.user_id,
                )

    def _probe(self, o: Order) -> None:
        """Send a CANCEL probe (op R) for a pending order whose NEW may be lost."""
        if "R" not in o.pending:
            o.pending.append("R")
            self.store.save_order(o)
            self.queue_cmd(
                (o.user_id, o.order_id, "R"),
                kind=CmdKind.CANCEL,
                order_id=o.order_id,
                user_id=o.user_id,
            )

    def expire_inflight(self) -> None:
        """Frames the core never answered (it died before journaling them, or before
        replying).  Each NEW in them whose order is still pending is resent once,
        byte for byte (op n): the core answers DUPLICATE if the first copy was
        applied (its events tell the outcome), or applies it now.  A resend that is
        not answered either gets a CANCEL probe, as at startup
        (:meth:`recover_pending`), so the order ends known."""
        limit = time.monotonic() - self.cfg.core_reply_timeout_ms / 1000
        for uid, oid in list(self.reprobe):
            self.reprobe.discard((uid, oid))
            o = self.store.orders.get(order_key(uid, oid))
            if o is not None and o.state == STATE_PENDING:
                self._probe(o)
        size = CMD_STRUCT.size
        while self.inflight:
            no = next(iter(self.inflight))
            sent, tags, data = self.inflight[no]
            if sent >= limit:
                break
            del self.inflight[no]
            for i, (uid, oid, op) in enumerate(tags):
                o = self.store.orders.get(order_key(uid, oid)) if op in "Nn" else None
                if o is not None and o.state == STATE_PENDING and o.pending[:1] == ["N"]:
                    if op == "N" and "R" not in o.pending:
                        self.retried.add(order_key(uid, oid))
                        self.stats["retries"] += 1
                        log.info("no reply in time: resending NEW user=%d order=%d", uid, oid)
                        self.cmds.append(bytes(data[i * size : (i + 1) * size]))
                        self.cmd_tags.append((uid, oid, "n"))
                        self.schedule_flush()
                    else:
                        self.retried.discard(order_key(uid, oid))
                        self._probe(o)
                elif op == "M":
                    m = self.mass.pop(oid, None)
                    if m is not None:
                        v = {"request_id": m[1], "reason": GwReason.CORE_UNAVAILABLE}
                        self.emit(m[0], OUT["MASS_CANCEL_ACK"], v)

    def prune_streams(self) -> None:
        """Stream retention (:meth:`gateway.store.Store.prune_streams`); sessions being
        replayed right now are skipped (their replay must not skip a removed chunk)."""
        cfg = self.cfg
        busy = {c.key.key_id for c in self.conns if c.replaying and c.key is not None}
        try:
            n = self.store.prune_streams(
                cfg.stream_retain_msgs, cfg.stream_retain_s * 1000, time.time_ns() // 1_000_000,
                busy, RETENTION_MAX_CHUNKS, RETENTION_MAX_KEYS,
            )  # fmt: skip
        except sqlite3.Error as e:
            log.error("stream retention failed (retried): %s", e)
            return
        if n:
            log.info("stream retention removed %d messages", n)

    async def catch_up(self) -> None:
        """Apply every core event up to the end of the core's log (blocking replay calls)."""
        while True:
            try:
                frames = self.sub.poll(0, max_frames=0)
                for f in frames:
                    self.on_events(f.events)
                    self.store.set_core_seq(f.last_seq)
                self.flush()
                return
            except (TimeoutError, CoreError) as e:
                log.warning("core not reachable yet: %s", e)
                await asyncio.sleep(0.2)

    async def ticker(self) -> None:
        """Heartbeats, timeouts and the idle event replay."""
        hb = self.cfg.heartbeat_ms / 1000
        period = min(hb / 4, 0.05)
        last_replay = last_prune = 0.0
        prev = time.monotonic()
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            # A stalled loop (a huge read, a slow disk) did not read anyone's heartbeats:
            # that time is not held against the clients.
            stall = now - prev - period
            prev = now
            if stall > period:
                for c in self.conns:
                    c.last_recv += stall
                    c.opened += stall
            for c in list(self.conns):
                if c.closed:
                    continue
                if not c.live:
                    if now - c.opened > self.cfg.login_timeout_ms / 1000:
                        c.end(GwReason.LOGIN_TIMEOUT)
                    continue
                if now - c.last_recv > 3 * hb:
                    c.end(GwReason.HEARTBEAT_TIMEOUT)
                elif now - c.last_sent >= hb:
                    c.write(codec.encode("SERVER_HEARTBEAT"))
            if now - last_replay > 0.5:
                last_replay = now
                try:
                    frames = self.sub.poll(0, max_frames=256, idle_replay=True)
                except (TimeoutError, CoreError):
                    # The core is away: each try blocks the loop for the replay timeout,
                    # so try again only in a few seconds.
                    last_replay = now + 5.0
                    frames = []
                for f in frames:
                    self.on_events(f.events)
                    self.store.set_core_seq(f.last_seq)
            if now - last_prune >= RETENTION_CHECK_S:
                last_prune = now
                self.prune_streams()
            # The order log's fold and the turn file's fill (Store.commit), here rather
            # than in the turns that acknowledge orders; what this tick's events changed
            # goes to the turn file first if it is small (else this commit stores it).
            self.store.log_turn()
            self.store.commit(fold=True)
            self.expire_inflight()
            self.pump_core()

    async def serve(self, ready: asyncio.Future[dict[str, Any]] | None = None) -> None:
        """Catch up with the core, listen, run until cancelled."""
        self.loop = asyncio.get_running_loop()
        await self.catch_up()
        # Everything loaded so far (keys, the order map of past sessions) lives as long
        # as the process: out of the cyclic GC's scans (gc.freeze), see GC_THRESHOLDS.
        gc.collect()
        gc.freeze()
        self.recover_pending()
        self.flush()
        self.store.start_checkpointer()
        self.store.fill_after_s = self.cfg.turn_fill_ms / 1000
        loop = self.loop
        # Stream links: a reader per descriptor, each reading its own link only (no
        # select or recv that finds nothing); zmq: every wake-up reads all.
        level = self.level_links
        loop.add_reader(
            self.query.sock.fileno(), self._on_query_readable if level else self.pump_core
        )
        # The live event source: the zmq SUB socket (one descriptor for life), or the
        # core's event stream link (unix:, a new descriptor after each reconnect).
        self.events_watch = LoopWatch(loop, self._on_events_readable if level else self.pump_core)
        live = self.sub.sub
        if isinstance(live, StreamEventSource):
            self.events_watch.start(live)
        else:
            self.events_watch.start_fixed(live.fileno())
        self.core_watch = LoopWatch(loop, self._on_trade_readable if level else self.pump_core)
        self.core_watch.start(self.core)
        server = await loop.create_server(lambda: Conn(self), self.cfg.host, self.cfg.port)
        port = server.sockets[0].getsockname()[1]
        info = {"ready": True, "gateway": f"tcp://{self.cfg.host}:{port}", "port": port}
        if ready is not None:
            ready.set_result(info)
        tick = loop.create_task(self.ticker())
        try:
            await asyncio.Future()
        finally:
            tick.cancel()
            server.close()
            self.stopping = True
            for c in list(self.conns):
                if c.key is not None and c.cod and self.sessions.get(c.key.key_id) is c:
                    self.cancel_session_orders(c.key)
                c.end(GwReason.SHUTDOWN)
            self.flush()
            # Let the core answer the cancel-on-disconnect cancels, so they are reported.
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and any(
                "C" in o.pending for o in self.store.orders.values() if o.is_open
            ):
                await asyncio.sleep(0.02)
                self.pump_core()
                self.flush()
            loop.remove_reader(self.query.sock.fileno())
            if self.events_watch is not None:
                self.events_watch.stop()
            if self.core_watch is not None:
                self.core_watch.stop()
            self.flush()
            self.store.close()
            self.core.close()
            self.query.close()
            self.sub.close()


def outbox_messages(outbox: list[tuple[int, int, list[bytes]]]) -> list[tuple[int, int, bytes]]:
    """The ``(key_id, seq, payload)`` of every message of ``outbox`` (:attr:`Store.outbox`
    entries: key, first seq, payloads), in order (tests, :func:`session_frames_py`)."""
    return [(k, first + i, p) for k, first, ps in outbox for i, p in enumerate(ps)]


def session_frames_py(
    outbox: list[tuple[int, int, list[bytes]]], sessions: Mapping[int, Conn]
) -> dict[Conn, bytes]:
    """Reference of :func:`pyx.gwreport.session_frames` (same result, tested): the S
    frames of each message that goes out live now, one byte string per connection."""
    out: dict[Conn, list[bytes]] = {}
    head = S_FRAME_HEAD.pack
    for key_id, seq, payload in outbox_messages(outbox):
        conn = sessions.get(key_id)
        if conn is not None and not conn.replaying and conn.sent_seq == seq - 1:
            # = codec.sequenced_frame(seq, payload), one pack per message
            out.setdefault(conn, []).append(
                head(len(payload) + S_FRAME_OVERHEAD, SEQ_TYPE, seq) + payload
            )
            conn.sent_seq = seq
    return {conn: b"".join(frames) for conn, frames in out.items()}


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bursa gateway", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="TOML file; settings in its [gateway] section")
    for f in fields(GatewayConfig):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None)
    logs.add_arguments(p)
    p.add_argument("--profile", help="write a cProfile of the whole run to this file at exit")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> GatewayConfig:
    """``[gateway]`` of the TOML file, overridden by flags."""
    values: dict[str, Any] = {}
    if args.config:
        with open(args.config, "rb") as fh:
            values = dict(tomllib.load(fh).get("gateway", {}))
    for f in fields(GatewayConfig):
        v = getattr(args, f.name)
        if v is not None:
            values[f.name] = v
    return GatewayConfig(**values)


def main(argv: list[str] | None = None) -> int:
    """Run the gateway until SIGTERM/SIGINT; prints one JSON ready line."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    logs.setup("gateway", args.log_format, args.log_level)
    try:
        cfg = config_from_args(args)
    except (OSError, TypeError, tomllib.TOMLDecodeError) as e:
        print(f"bursa gateway: {e}", file=sys.stderr)
        return 1

    async def run() -> None:
        gw = Gateway(cfg)
        url, _ = serve_metrics(cfg.metrics, Collector(lambda: metrics.families(gw)))
        ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(gw.serve(ready))
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([ready, task], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
        if ready.done():
            print(json.dumps({**ready.result(), "metrics": url, "config": asdict(cfg)}), flush=True)
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    if cfg.event_loop not in EVENT_LOOPS:
        print(f"bursa gateway: event_loop must be one of {EVENT_LOOPS}", file=sys.stderr)
        return 1
    gc.set_threshold(*GC_THRESHOLDS)
    with asyncio.Runner(loop_factory=loop_factory(cfg.event_loop)) as runner:
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
            try:
                prof.runcall(runner.run, run())
            finally:
                prof.dump_stats(args.profile)
        else:
            runner.run(run())
    return 0


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop constructor for config ``event_loop`` (see EVENT_LOOPS)."""
    if name == "uvloop":
        return typing.cast(Callable[[], asyncio.AbstractEventLoop], uvloop.new_event_loop)
    return asyncio.new_event_loop


if __name__ == "__main__":
    sys.exit(main())
