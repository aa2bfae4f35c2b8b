"""`bursa core`: the core as a process, one single-threaded loop around the Sequencer.

Each turn of the loop

1. waits for one of the three command ROUTER sockets (``trade``, ``fund``,
   ``admin``: :mod:`engine.wire.roles`) to become readable, then drains every
   message already queued (non-blocking) up to :data:`MAX_BATCH_CMDS` commands;
   a frame holding a command kind its socket does not carry is answered
   ``Reason.WRONG_SOCKET`` and never reaches the Sequencer;
2. submits all well-formed command records of the turn as ONE batch to the
   Sequencer (sequence numbers, journal write, apply to the core), encodes the
   event frames and replies, and only then lets the Sequencer make the batch
   durable (in ``fsync`` mode one fdatasync for the batch: group commit);
3. appends the batch's event frames to the event log, publishes them on PUB, and
   only then sends every sender its replies (one reply frame per sender per turn,
   in command order) and answers control requests.

Replies and events therefore never leave before the batch is durable in ``fsync``
mode, and a kill -9 at any point loses nothing that was acknowledged: the
journal is written before anything leaves.  Malformed messages get a reject
reply with ``Reason.MALFORMED_FRAME`` and change nothing.  SIGTERM/SIGINT: finish
the turn, sync the event log, snapshot, exit 0.  A storage failure (journal or
event-log write, the final snapshot) exits 3 with a critical log line.

Wire shapes are in :mod:`engine.wire.frames` and docs/commands.md ("Frames on
the wire"); the replay service runs in its own thread (:mod:`engine.replay_service`).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import logging
import os
import signal
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, fields
from types import FrameType
from typing import Any, cast

import numpy as np
import zmq

from bursa_wire.layout import CMD_DTYPE, CMD_SIZE, EV_DTYPE, REPLY_DTYPE
from engine import logs
from engine.clock import RealClock
from engine.core import Core, sized
from engine.corelike import CoreClass
from engine.eventlog import (
    EVENT_SEGMENT_BYTES_MAX,
    EventLog,
    EventLogVerifier,
    split_event_frames,
)
from engine.eventlog import list_segments as list_event_segments
from engine.journal import MAGIC as JOURNAL_MAGIC
from engine.journal import VERSION as JOURNAL_VERSION
from engine.journal import JournalCorrupt, JournalWriteError
from engine.looppoll import MAX_EVENTS as POLL_MAX_EVENTS
from engine.looppoll import LoopPoller
from engine.metrics import CoreCollector, CoreMetrics, TimedStorage
from engine.metrics_http import serve as serve_metrics
from engine.recovery import recover, regenerate_events
from engine.replay_service import ReplayService
from engine.security import (
    CurveServerKeys,
    after_bind,
    is_local_endpoint,
    load_server_keys,
    make_server_socket,
    prepare_ipc,
    start_authenticator,
)
from engine.sequencer import SNAPSHOT_NEVER, Sequencer
from engine.snapshot import SnapshotWriteError, list_snapshots, write_snapshot
from engine.storage import FileStorage, StorageError
from engine.streamlink import StreamLink, stream_path
from engine.wire.frames import (
    CONTROL_TAG,
    EVENT_MAGIC,
    STATUS_REJECTED,
    FrameError,
    decode_control,
    encode_control,
    encode_event_frame,
)
from engine.wire.roles import EXPENSIVE_CONTROLS, ROLE_CONTROLS, ROLE_KINDS, ROLES
from pyx.enums import Reason
from pyx.smallturn import SmallTurn

log = logging.getLogger("bursa.core")

# Commands submitted as one group commit at most (bounds the turn and its latency).
MAX_BATCH_CMDS = 16384
# A command frame larger than this is rejected as malformed.
MAX_FRAME_CMDS = 16384
# Messages drained per turn at most (bounds control requests and malformed frames too).
MAX_MESSAGES_PER_TURN = 8192
# Events per PUB frame; frames are cut on command boundaries, so one command with
# more events than this still goes out whole in one frame.  Small frames bound the
# memory a subscriber's queue can hold in BYTES (PUB_SNDHWM_MSGS x about 64 KiB):
# ZeroMQ's high-water mark counts messages.
MAX_FRAME_EVENTS = 680
# PUB frames at least this large are sent zero-copy (below, a copy is cheaper than
# pyzmq's zero-copy bookkeeping: a Frame object and a release notification).
PUB_ZERO_COPY_BYTES = 65_536
# Event-log retention: bytes of event log kept (oldest whole segments removed beyond)
# and how often the server checks, ms.
EVENT_LOG_RETAIN_BYTES = 8 << 30
RETENTION_CHECK_MS = 1000
# While commands flow, the background event-log check reads one step at most this often.
VERIFY_BUSY_INTERVAL_MS = 200
# Messages queued per client connection on a command socket at most (ZMQ_RCVHWM):
# with MAX_MESSAGE_BYTES, at most 768 MiB of one peer's input can wait in the core.
RCVHWM_MSGS = 256
# Poll timeout when idle: how late a timer-based snapshot or a signal is noticed.
IDLE_POLL_MS = 50
# Outgoing queue bound per subscriber / client: beyond it ZeroMQ drops (PUB) or
# the send fails (ROUTER), and subscribers recover from the replay service.
SNDHWM_MSGS = 100_000
# PUB queue bound per subscriber: 2,048 frames of <= 64 KiB (MAX_FRAME_EVENTS) is
# <= 128 MiB for a subscriber that stopped reading; beyond it its frames are
# dropped and it fills the gap from the replay service.
PUB_SNDHWM_MSGS = 2048
# The Sequencer's own snapshot timers are set out of reach: this server takes the
# snapshots, so that it can sync the event log first.
SEQUENCER_SNAPSHOT_NEVER = SNAPSHOT_NEVER

# Largest message any socket of the core accepts (ZMQ_MAXMSGSIZE; a peer sending a
# larger one is disconnected by ZeroMQ before the bytes are buffered).  Twice the
# largest valid frame: a frame somewhat over the bound still gets its
# MALFORMED_FRAME reply, a huge one never reaches the core's memory.
MAX_MESSAGE_BYTES = 2 * MAX_FRAME_CMDS * CMD_SIZE
# A control request body larger than this is answered INVALID_REQUEST unparsed.
MAX_CONTROL_BYTES = 4096
# Expensive control requests (state hash, conservation, snapshot) answered per turn.
MAX_EXPENSIVE_CONTROLS = 2

# The role of a stream-link connection in a turn's sender list: the ``trade`` socket's
# commands, answered through the stream link (engine/streamlink.py).
STREAM_ROLE = "trade_stream"

MALFORMED_FRAME = int(Reason.MALFORMED_FRAME)
WRONG_SOCKET = int(Reason.WRONG_SOCKET)

DEFAULT_TRADE_ENDPOINT = "tcp://127.0.0.1:7001"
DEFAULT_PUB_ENDPOINT = "tcp://127.0.0.1:7002"
DEFAULT_REPLAY_ENDPOINT = "tcp://127.0.0.1:7003"
DEFAULT_FUND_ENDPOINT = "tcp://127.0.0.1:7004"
DEFAULT_ADMIN_ENDPOINT = "tcp://127.0.0.1:7005"
MODES = ("fsync", "async", "none")


@dataclass
class ServerConfig:
    """Settings of one core process (file keys = field names, CLI flags override).

    Attributes
    ----------
    data_dir : str
        Directory of the journal, snapshots and event log.
    trade_endpoint, fund_endpoint, admin_endpoint : str
        The three command sockets (:mod:`engine.wire.roles`).
    trade_stream_endpoint : str
        The stream trade link (:mod:`engine.streamlink`): ``unix:/abs/path`` to
        listen on, the ``trade`` socket's commands and replies as length-prefixed
        frames on a unix stream socket served by the loop itself (no I/O thread);
        empty: none.  Local only (the file is 0600 in a 0700 directory).
    events_stream_endpoint : str
        The event stream link: ``unix:/abs/path`` where every PUB frame (the same
        bytes, length-prefixed) goes to each connected subscriber, without
        ZeroMQ; empty: none.  Local only, as ``trade_stream_endpoint``.
    pub_endpoint, replay_endpoint : str
        The internal event stream (balances and both counterparties: never public).
        All endpoints: ZeroMQ addresses to bind (``tcp://host:*`` picks a free
        port; the bound addresses are printed in the ready line).
    mode : str
        Journal durability: ``fsync`` (default), ``async`` or ``none`` (bench only).
    max_batch_cmds : int
        Commands per group commit at most.
    snapshot_every_cmds : int
        Snapshot after this many commands since the last one (0: never by count).
    snapshot_every_ms : int
        Snapshot after this many milliseconds with new commands (0: never by time).
    max_frame_cmds : int
        Command records per message at most (more: ``MALFORMED_FRAME``).
    max_expensive_controls : int
        State hash / conservation / snapshot requests answered per loop turn; the
        rest are answered ``RATE_LIMITED``.
    curve : bool
        Require ZeroMQ CURVE on every socket even when all endpoints are local.
        CURVE is required (start refused without keys) when any endpoint is not.
    curve_secret_key : str
        The core's ``.key_secret`` file (``bursa admin keygen``).
    curve_clients_dir : str
        Directory of the ``.key`` public key files of the processes allowed in.
    event_log_retain_bytes : int
        Event-log retention: beyond this many bytes the oldest segments are removed
        while running; replay requests before the log's start are answered "too old".
    event_log_segment_bytes : int
        Size at which the event log starts a new segment (the unit of retention).
    snapshot_in_background : bool
        Periodic snapshots are serialized and written by a forked child process
        (copy-on-write) while the loop keeps serving; False writes them inline
        (the loop stalls for the whole serialization).  Requested (``snapshot``
        control op) and shutdown snapshots are always inline.
    capacity_users, capacity_assets, capacity_symbols : int
        Table sizes of the core allocated at start (user ids 1..capacity_users).
    capacity_orders : int
        Live orders over all books the hold map is sized for.
    capacity_book_orders : int
        Live orders each book's pool and id map are sized for.
    capacity_events : int
        Event records of one batch the event buffer holds without growing.
        Within these sizes no command grows a table; beyond them the tables grow
        (the fallback), counted as ``capacity_growths`` in the status and ready line.
    """

    data_dir: str = "data/core"
    trade_endpoint: str = DEFAULT_TRADE_ENDPOINT
    fund_endpoint: str = DEFAULT_FUND_ENDPOINT
    admin_endpoint: str = DEFAULT_ADMIN_ENDPOINT
    trade_stream_endpoint: str = ""
    events_stream_endpoint: str = ""
    pub_endpoint: str = DEFAULT_PUB_ENDPOINT
    replay_endpoint: str = DEFAULT_REPLAY_ENDPOINT
    mode: str = "fsync"
    max_batch_cmds: int = MAX_BATCH_CMDS
    snapshot_every_cmds: int = 1_000_000
    snapshot_every_ms: int = 300_000
    max_frame_cmds: int = MAX_FRAME_CMDS
    max_expensive_controls: int = MAX_EXPENSIVE_CONTROLS
    curve: bool = False
    curve_secret_key: str = ""
    curve_clients_dir: str = ""
    event_log_retain_bytes: int = EVENT_LOG_RETAIN_BYTES
    event_log_segment_bytes: int = EVENT_SEGMENT_BYTES_MAX

    snapshot_in_background: bool = True
    metrics: str = "127.0.0.1:0"  # Prometheus /metrics address ("" or "off": none)
    capacity_users: int = 10_000
    capacity_assets: int = 16
    capacity_symbols: int = 16
    capacity_orders: int = 100_000
    capacity_book_orders: int = 65_536
    capacity_events: int = 65_536

    def capacity(self) -> dict[str, int]:
        """The ``capacity_*`` settings as :meth:`pyx.core.CoreState.reserve` arguments."""
        n = len("capacity_")
        return {
            f.name[n:]: getattr(self, f.name)
            for f in fields(self)
            if f.name.startswith("capacity_")
        }

    def endpoints(self) -> dict[str, str]:
        """Every endpoint to bind, by ready-line key."""
        return {
            "trade": self.trade_endpoint,
            "fund": self.fund_endpoint,
            "admin": self.admin_endpoint,
            "pub": self.pub_endpoint,
            "replay": self.replay_endpoint,
        }

    def needs_curve(self) -> bool:
        """CURVE is on when forced or when any endpoint is reachable off this machine."""
        return self.curve or not all(is_local_endpoint(e) for e in self.endpoints().values())

    def validate(self) -> None:
        """Raise ValueError on a setting out of range."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if not 0 < self.max_batch_cmds <= MAX_BATCH_CMDS:
            raise ValueError(f"max_batch_cmds must be in 1..{MAX_BATCH_CMDS}")
        if self.snapshot_every_cmds < 0 or self.snapshot_every_ms < 0:
            raise ValueError("snapshot intervals must be >= 0")
        if not 0 < self.max_frame_cmds <= MAX_FRAME_CMDS:
            raise ValueError(f"max_frame_cmds must be in 1..{MAX_FRAME_CMDS}")
        if self.max_expensive_controls < 0:
            raise ValueError("max_expensive_controls must be >= 0")
        if self.event_log_retain_bytes <= 0:
            raise ValueError("event_log_retain_bytes must be > 0")
        if self.event_log_segment_bytes <= 4096:
            raise ValueError("event_log_segment_bytes must be > 4096")
        for ep in (self.trade_stream_endpoint, self.events_stream_endpoint):
            if ep:
                stream_path(ep)  # raises ValueError if not unix:/abs
        if min(self.capacity().values()) < 1:
            raise ValueError("capacity_* settings must be >= 1")
        if self.needs_curve() and not (self.curve_secret_key and self.curve_clients_dir):
            public = [e for e in self.endpoints().values() if not is_local_endpoint(e)]
            raise ValueError(
                f"endpoints {public or 'forced CURVE'} need CURVE: set curve_secret_key and "
                "curve_clients_dir (keys from `bursa admin keygen`)"
            )


def load_config(path: str | None) -> dict[str, Any]:
    """Read a TOML or JSON config file; keys under ``[core_server]`` or at top level."""
    if path is None:
        return {}
    with open(path, "rb") as f:
        raw = f.read()
    data: dict[str, Any] = (
        json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode())
    )
    section = data.get("core_server", data)
    known = {f.name for f in fields(ServerConfig)}
    # A misspelt key must not be ignored silently.  Without a [core_server] table
    # the top-level settings are this process's; other tables belong to other
    # processes sharing the file.
    unknown = {k for k, v in section.items() if k not in known}
    if section is data:
        unknown = {k for k in unknown if not isinstance(data[k], dict)}
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(unknown)}")
    return {k: v for k, v in section.items() if k in known}


class CoreServer:
    """The core process: sockets + Sequencer + event log (see module docstring).

    Parameters
    ----------
    config : ServerConfig
        Settings (validated).
    ctx : zmq.Context, optional
        ZeroMQ context (a new one by default).
    """

    def __init__(
        self,
        config: ServerConfig,
        ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
        core_cls: CoreClass | None = None,
        accept_journal_loss: bool = False,
    ) -> None:
        config.validate()
        self.config = config
        # The default core is sized from the config before recovery builds it.
        self.core_cls = core_cls or cast(CoreClass, sized(Core, **config.capacity()))
        self.accept_journal_loss = accept_journal_loss
        self.ctx = ctx or zmq.Context()
        self.metrics = CoreMetrics()  # plain counters; read at scrape time (engine.metrics)
        self.storage = TimedStorage(FileStorage(config.data_dir), self.metrics)
        self.eventlog = EventLog(self.storage, config.event_log_segment_bytes)
        self.stopping = False
        self.n_batches = 0
        self.n_commands = 0
        self.n_malformed = 0
        self._cmds_since_snapshot = 0
        self._last_snapshot_ns = time.monotonic_ns()
        self.n_wrong_socket = 0
        self.n_rate_limited = 0
        self._last_prune_ns = 0
        # (pid, seq) of the forked child writing a snapshot, if one runs
        self._snap_child: tuple[int, int] | None = None
        self.background_snapshots = 0
        self.background_snapshot_failures = 0
        self._stage = np.zeros(config.max_batch_cmds + MAX_FRAME_CMDS, dtype=CMD_DTYPE)
        self._stage_mv = memoryview(cast(Any, self._stage.view(np.uint8)))
        self.sequencer = self._recover()
        # Older event-log segments were not read at start (only the tail can be torn):
        # they are CRC-checked in the background and regenerated if damaged.
        self.verifier = EventLogVerifier(self.storage, list_event_segments(self.storage))
        self._last_verify_ns = 0
        self.curve_keys: CurveServerKeys | None = None
        self.auth = None
        if config.needs_curve():
            self.curve_keys = load_server_keys(config.curve_secret_key, config.curve_clients_dir)
            self.auth = start_authenticator(self.ctx, self.curve_keys)
        # One ROUTER per role (engine/wire/roles.py), in ROLES order.
        self.socks: dict[str, zmq.Socket[bytes]] = {r: self.ctx.socket(zmq.ROUTER) for r in ROLES}
        self.pub = self.ctx.socket(zmq.PUB)
        self.endpoints: dict[str, str] = {}
        for name, s in (*self.socks.items(), ("pub", self.pub)):
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDHWM, PUB_SNDHWM_MSGS if s is self.pub else SNDHWM_MSGS)
            s.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
            if s is not self.pub:
                # Per-peer inbound queue: bounds what one client can park in the core.
                s.setsockopt(zmq.RCVHWM, RCVHWM_MSGS)
                # A reply to a client that went away is dropped, not an error.
                s.setsockopt(zmq.ROUTER_MANDATORY, 0)
            make_server_socket(s, self.curve_keys, name)
            endpoint = config.endpoints()[name]
            prepare_ipc(endpoint)
            s.bind(endpoint)
            after_bind(endpoint)
            self.endpoints[name] = s.getsockopt_string(zmq.LAST_ENDPOINT)
        self.pub_endpoint = self.endpoints["pub"]
        self.poller = LoopPoller()
        for s in self.socks.values():
            self.poller.register(s, zmq.POLLIN)
        self.stream: StreamLink | None = None
        if config.trade_stream_endpoint:
            self.stream = StreamLink(config.trade_stream_endpoint, self.poller, MAX_MESSAGE_BYTES)
            self.endpoints["trade_stream"] = self.stream.endpoint
        self.events_stream: StreamLink | None = None
        if config.events_stream_endpoint:
            self.events_stream = StreamLink(
                config.events_stream_endpoint, self.poller, 0, "events_stream", inbound=False
            )
            self.endpoints["events_stream"] = self.events_stream.endpoint
        prepare_ipc(config.replay_endpoint)
        self.replay = ReplayService(
            self.ctx,
            config.replay_endpoint,
            config.data_dir,
            curve=self.curve_keys,
            max_message_bytes=MAX_MESSAGE_BYTES,
        )
        self.replay.start()
        self.replay.ready.wait()
        if self.replay.error is not None:
            raise self.replay.error
        self.replay_endpoint = self.replay.bound_endpoint
        after_bind(self.replay_endpoint)
        self.endpoints["replay"] = self.replay_endpoint
        self._small_turn: SmallTurn | None = None
        self.compiled_turn = True

    @property
    def compiled_turn(self) -> bool:
        """Whether stream-only turns run compiled (:mod:`pyx.smallturn`); set False
        to run every turn in Python (the oracle the tests compare it with)."""
        return self._small_turn is not None

    @compiled_turn.setter
    def compiled_turn(self, on: bool) -> None:
        self._small_turn = None
        if on and self.stream is not None:
            self._small_turn = SmallTurn(
                self, _KIND_BYTES["trade"], STREAM_ROLE, EVENT_MAGIC,
                MAX_FRAME_EVENTS, PUB_ZERO_COPY_BYTES,
                JournalWriteError, JOURNAL_MAGIC, JOURNAL_VERSION, POLL_MAX_EVENTS, StorageError,
            )  # fmt: skip

    @property
    def trade_endpoint(self) -> str:
        """Bound order-entry endpoint."""
        return self.endpoints["trade"]

    @property
    def fund_endpoint(self) -> str:
        """Bound funding endpoint."""
        return self.endpoints["fund"]

    @property
    def admin_endpoint(self) -> str:
        """Bound admin endpoint."""
        return self.endpoints["admin"]

    def _close_sockets(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        if self.events_stream is not None:
            self.events_stream.close()
            self.events_stream = None
        for s in self.socks.values():
            s.close()
        self.pub.close()
        self.poller.close()
        if self.auth is not None:
            self.auth.stop()

    # ----------------------------------------------------------------- recovery

    def _recover(self) -> Sequencer:
        """Open the Sequencer (snapshot + journal tail) and complete the event log.

        The event log is written after the journal and synced only before the
        snapshots this server takes, so it may end before the journal (a crash)
        or, after a power loss, after it.  Events the log lacks are regenerated
        by the recovery replay; if the log ends before the newest snapshot (a
        snapshot the server did not drive, then a power loss) they come from a
        from-scratch replay of the journal, archived segments included.

        In ``fsync`` mode every logged event was durable in the journal before it
        was logged, so a log that reaches further than the journal is evidence of
        lost acknowledged commands: recovery refuses (``JournalLoss``) unless the
        operator passed ``--accept-journal-loss``.
        """
        logged = self.eventlog.open()
        snaps = list_snapshots(self.storage)
        newest_snap = snaps[-1][0] if snaps else 0
        rebuilder = _EventRebuilder(self.eventlog)
        attached = logged >= newest_snap
        seq = Sequencer.open(
            self.storage,
            RealClock(),
            mode=self.config.mode,
            # The server drives snapshots itself (it syncs the event log first).
            snapshot_every_cmds=SEQUENCER_SNAPSHOT_NEVER,
            snapshot_every_ns=SEQUENCER_SNAPSHOT_NEVER,
            on_events=rebuilder.on_events if attached else None,
            core_cls=self.core_cls,
            known_seq=logged if self.config.mode == "fsync" else 0,
            accept_journal_loss=self.accept_journal_loss,
            # The high-water record's own fdatasync runs after the turn's replies
            # (turn()), never between a batch's sync and its acknowledgement.
            defer_high_water=True,
        )
        last = seq.last_seq
        truncated = self.eventlog.last_seq > last
        if truncated:
            # Only after losing unsynced journal bytes (power loss): the log must
            # not hold events of commands the journal forgot.
            self.eventlog.truncate_after(last)
        replayed_from = seq.report.snapshot_seq + 1
        covered = attached and not truncated and logged + 1 >= replayed_from
        if self.eventlog.last_seq < last and not covered:
            log.warning(
                "event log ends at seq %d, journal at %d: regenerating from scratch",
                self.eventlog.last_seq,
                last,
            )
            recover(
                self.storage,
                on_events=rebuilder.on_events,
                core_cls=self.core_cls,
                repair=False,
                use_snapshots=False,
                include_archived=True,
            )
        rebuilder.finish(last)
        assert self.eventlog.last_seq == last, (self.eventlog.last_seq, last)
        log.info("%s; event log complete to seq %d", seq.report.summary(), last)
        return seq

    # --------------------------------------------------------------------- loop

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; then sync, snapshot and return 0.

        A storage failure ends the process with exit status 3 (the documented
        storage-failure path) and one critical log line saying what failed:
        a journal write (the failed batch is not acknowledged: only a restart
        through recovery knows what is durable), an event-log append (a full
        disk: the batch is durable in the journal and unacknowledged; a restart
        rebuilds the log from the journal), or the final snapshot or sync of a
        graceful stop.
        """
        try:
            while not self.stopping:
                applied = self.turn(IDLE_POLL_MS)
                self._maybe_snapshot()
                self._maybe_prune()
                self._maybe_verify(busy=applied > 0)
        except (JournalWriteError, StorageError) as e:
            what = "journal write" if isinstance(e, JournalWriteError) else "event log append"
            log.critical("%s failed, stopping without acknowledging the batch: %s", what, e)
            self._reap_snapshot(block=True)
            self.replay.stop()
            self._close_sockets()
            return 3
        if not self.shutdown():
            return 3
        return 0

    def turn(self, timeout_ms: int) -> int:
        """One loop turn: drain, group-commit, publish, reply.  Returns commands applied.

        A turn whose poll found only stream-link descriptors ready runs compiled
        (:mod:`pyx.smallturn`, the same calls and bytes; with ``compiled_turn`` on
        the poll itself runs there too); every other turn, and every turn with
        ``compiled_turn`` off, runs :meth:`_turn_ready`.
        """
        if self._small_turn is not None:
            return self._small_turn.turn(timeout_ms)  # the poll too (then run or Python)
        stream = self.stream
        deferred = stream is not None and bool(stream.deferred)
        ready = dict(self.poller.poll(0 if deferred else timeout_ms))
        if not ready and not deferred:
            return 0
        return self._turn_ready(ready)

    def _turn_ready(self, ready: dict[Any, int]) -> int:
        """The Python turn after the poll (the compiled one's oracle): drain every
        ready socket and link, group-commit, publish, reply, answer controls."""
        stream = self.stream
        t0_ns = time.perf_counter_ns()
        n_cmds = 0
        # (role, identity, delimiter?, first command index, command count); a count of
        # -1 is a malformed message (index = its length), -2 a frame refused on this
        # socket (index into ``refused``).
        senders: list[tuple[str, bytes, bool, int, int]] = []
        refused: list[bytes] = []
        controls: list[tuple[str, bytes, bool, bytes]] = []
        limit = self.config.max_batch_cmds
        max_frame_cmds = self.config.max_frame_cmds
        stage = self._stage_mv
        for role in ROLES:
            sock = self.socks[role]
            if sock not in ready:
                continue
            allowed_kinds = _KIND_BYTES[role]
            # Received from and answered on this turn: the poller asks it first next time.
            self.poller.touch(sock)
            # The poll said readable: one message is there.  Further ones are taken
            # while ZMQ_EVENTS says so (a C getsockopt; ending the drain on zmq.Again
            # costs a Python exception every turn).
            for _ in range(MAX_MESSAGES_PER_TURN):
                if n_cmds >= limit:
                    break
                try:
                    parts = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                ident, body = parts[0], parts[1:]
                delim = len(body) > 1 and body[0] == b""
                if delim:
                    body = body[1:]
                if len(body) == 2 and body[0] == CONTROL_TAG:
                    controls.append((role, ident, delim, body[1]))
                elif len(body) != 1 or (k := _command_count(body[0], max_frame_cmds)) <= 0:
                    senders.append((role, ident, delim, len(body[0]) if len(body) == 1 else -1, -1))
                elif not kinds_allowed(body[0], allowed_kinds):
                    senders.append((role, ident, delim, len(refused), -2))
                    refused.append(body[0])
                else:
                    stage[n_cmds * CMD_SIZE : (n_cmds + k) * CMD_SIZE] = body[0]
                    senders.append((role, ident, delim, n_cmds, k))
                    n_cmds += k
                if not cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                    break
        if stream is not None:
            n_cmds = self._stage_stream(stream, ready, senders, refused, n_cmds)
        events_stream = self.events_stream
        if events_stream is not None:
            events_stream.read(ready)  # accepts, writes queued frames, closes senders
        replies = self._commit(n_cmds)
        self._send_replies(senders, replies, refused)
        if stream is not None and stream.doomed:
            stream.end_turn()
        if events_stream is not None and events_stream.doomed:
            events_stream.end_turn()
        self.metrics.turn_done(
            t0_ns, n_cmds, len(senders) + len(controls), replies, n_cmds >= limit
        )
        expensive = 0
        for role, ident, delim, req in controls:
            answer, costly = self._control(role, req, expensive)
            expensive += costly
            self.socks[role].send_multipart(
                [ident, *((b"",) if delim else ()), CONTROL_TAG, answer]
            )
        if n_cmds:
            self.sequencer.note_durable()
        return n_cmds

    def _stage_stream(
        self,
        stream: StreamLink,
        ready: dict[Any, int],
        senders: list[tuple[str, bytes, bool, int, int]],
        refused: list[bytes],
        n_cmds: int,
    ) -> int:
        """Stage the command frames the stream link read this turn, as the ``trade``
        socket's (same checks, same replies); returns the commands staged so far.
        Bodies beyond the batch limit wait in the link for the next turn."""
        limit = self.config.max_batch_cmds
        max_frame_cmds = self.config.max_frame_cmds
        allowed_kinds = _KIND_BYTES["trade"]
        stage = self._stage_mv
        for conn, bodies in stream.read(ready):
            key = conn.key
            for i, body in enumerate(bodies):
                if n_cmds >= limit:
                    stream.defer(conn, bodies[i:])
                    break
                k = _command_count(body, max_frame_cmds)
                if k <= 0:
                    senders.append((STREAM_ROLE, key, False, len(body), -1))
                elif not kinds_allowed(body, allowed_kinds):
                    senders.append((STREAM_ROLE, key, False, len(refused), -2))
                    refused.append(body)
                else:
                    stage[n_cmds * CMD_SIZE : (n_cmds + k) * CMD_SIZE] = body
                    senders.append((STREAM_ROLE, key, False, n_cmds, k))
                    n_cmds += k
        return n_cmds

    def _commit(self, n_cmds: int) -> bytes:
        """Submit the staged commands as one batch; log and publish its events.

        The event frames and the reply bytes are built between the Sequencer's
        ``stage`` and ``make_durable`` (the fdatasync in fsync mode): after the sync
        only the event-log append, the publish and the replies remain, so less
        work waits behind the sync's wake-up.  Nothing leaves and nothing is
        logged before the sync returned.
        """
        if n_cmds == 0:
            return b""
        seq = self.sequencer
        prev_last = int(seq.last_seq)
        # A view of the staging buffer, no copy: the Sequencer stamps it in place,
        # copies it into the journal and the core reads it during apply; none of them
        # keeps it past this call (CoreLike.apply), and it is rewritten next turn.
        events, replies = seq.stage(self._stage[:n_cmds])
        last = int(seq.last_seq)
        assert len(replies) == n_cmds, (len(replies), n_cmds)
        assert last >= prev_last
        frames = self._event_frames(prev_last + 1, last, events) if last > prev_last else ()
        if replies.dtype is not REPLY_DTYPE and replies.dtype != REPLY_DTYPE:
            replies = replies.astype(REPLY_DTYPE)
        out = replies.tobytes()  # C order whatever the array's strides
        seq.make_durable()
        for frame, a, b in frames:
            self.eventlog.append_frame(frame, a, b)
            self._pub_send(frame)
        self.n_batches += 1
        self.n_commands += n_cmds
        self._cmds_since_snapshot += last - prev_last
        return out

    @staticmethod
    def _event_frames(
        first_seq: int, last_seq: int, events: np.ndarray
    ) -> list[tuple[bytes, int, int]] | tuple[tuple[bytes, int, int]]:
        """``events`` as encoded frames cut on command boundaries, with their seq ranges."""
        if len(events) <= MAX_FRAME_EVENTS:  # one frame (every small batch)
            return (
                (encode_event_frame(first_seq, last_seq, events.tobytes()), first_seq, last_seq),
            )
        return [
            (encode_event_frame(a, b, ev.tobytes()), a, b)
            for a, b, ev in split_event_frames(first_seq, last_seq, events, MAX_FRAME_EVENTS)
        ]

    def _pub_send(self, frame: bytes) -> None:
        if self.events_stream is not None:
            self.events_stream.broadcast(frame)
        if len(frame) < PUB_ZERO_COPY_BYTES:
            self.pub.send(frame)
        else:
            self.pub.send(frame, copy=False)
        self.metrics.pub_frames += 1

    def _send_replies(
        self,
        senders: list[tuple[str, bytes, bool, int, int]],
        replies: bytes,
        refused: list[bytes],
    ) -> None:
        """One reply frame per sender, its records in the order its commands came."""
        rsize = REPLY_DTYPE.itemsize
        if len(senders) == 1 and senders[0][4] > 0:
            # The common small turn: one sender, one well-formed frame.
            role, ident, delim, start, count = senders[0]
            if role == STREAM_ROLE:
                assert self.stream is not None
                self.stream.send(ident, replies[start * rsize : (start + count) * rsize])
                return
            sock = self.socks[role]
            sock.send(ident, zmq.SNDMORE)
            if delim:
                sock.send(b"", zmq.SNDMORE)
            sock.send(replies[start * rsize : (start + count) * rsize])
            return
        out: dict[tuple[str, bytes, bool], list[bytes]] = {}
        for role, ident, delim, start, count in senders:
            if count == -1:
                self.n_malformed += 1
                part = malformed_reply(start)  # -1: not one part
            elif count == -2:
                self.n_wrong_socket += 1
                kinds = ROLE_KINDS["trade" if role == STREAM_ROLE else role]
                part = wrong_socket_reply(refused[start], kinds)
            else:
                part = replies[start * rsize : (start + count) * rsize]
            out.setdefault((role, ident, delim), []).append(part)
        for (role, ident, delim), parts in out.items():
            if role == STREAM_ROLE:
                assert self.stream is not None
                self.stream.send(ident, b"".join(parts))
                continue
            msg = [ident, b"", b"".join(parts)] if delim else [ident, b"".join(parts)]
            self.socks[role].send_multipart(msg)

    # ------------------------------------------------------------------ control

    def _control(self, role: str, body: bytes, expensive_so_far: int) -> tuple[bytes, int]:
        """Answer a control request received on ``role``'s socket (not journaled).

        Returns the answer and 1 if it was an expensive request that ran, else 0.
        Every error is an answer ``{"ok": false, "reason": NAME, "code": N, "error": text}``
        with a ``Reason``: WRONG_SOCKET, RATE_LIMITED, INVALID_REQUEST, UNKNOWN_COMMAND.
        No request ends the process.
        """
        try:
            if len(body) > MAX_CONTROL_BYTES:
                raise ControlError(Reason.INVALID_REQUEST, f"body over {MAX_CONTROL_BYTES} bytes")
            try:
                req = decode_control(body)
            except FrameError as e:
                raise ControlError(Reason.INVALID_REQUEST, str(e)) from e
            op = req.get("op")
            if not isinstance(op, str) or op not in ROLE_CONTROLS["admin"]:
                raise ControlError(Reason.UNKNOWN_COMMAND, f"unknown op {op!r}"[:200])
            if op not in ROLE_CONTROLS[role]:
                raise ControlError(Reason.WRONG_SOCKET, f"{op} is not served on the {role} socket")
            costly = op in EXPENSIVE_CONTROLS
            if costly and expensive_so_far >= self.config.max_expensive_controls:
                self.n_rate_limited += 1
                raise ControlError(Reason.RATE_LIMITED, f"{op}: too many this turn, retry later")
            ans = self._control_op(op, req)
            return encode_control(ans), int(costly)
        except ControlError as e:
            return encode_control(e.answer()), 0
        except JournalWriteError:
            raise
        except Exception as e:
            log.exception("control request failed")
            err = ControlError(Reason.INVALID_REQUEST, f"{type(e).__name__}: {e}"[:200])
            return encode_control(err.answer()), 0

    def _control_op(self, op: str, req: dict[str, Any]) -> dict[str, Any]:
        """Run one validated, allowed control request."""
        # The real Core has more than the CoreLike surface (balance queries).
        core: Any = self.sequencer.core
        if op == "ping":
            return {"ok": True, "last_seq": int(self.sequencer.last_seq)}
        if op == "status":
            return self.status()
        if op == "state_hash":
            h = core.state_hash()
            return {
                "ok": True,
                "state_hash": h.hex() if isinstance(h, bytes) else str(h),
                "last_seq": int(self.sequencer.last_seq),
            }
        if op == "conservation":
            errors = [str(e) for e in core.conservation_errors()]
            return {"ok": not errors, "errors": errors, "last_seq": int(self.sequencer.last_seq)}
        if op == "snapshot":
            ok = self.snapshot()
            ans: dict[str, Any] = {"ok": ok, "last_seq": int(self.sequencer.last_seq)}
            if not ok:
                ans["error"] = "snapshot failed (see the core's log); the journal is intact"
            return ans
        assert op == "balance"
        user_id = _int_field(req, "user_id", 0, U32_MAX)
        asset_id = _int_field(req, "asset_id", 0, U16_MAX)
        account = _int_field(req, "account", 0, 1, default=0)
        bal = core.balance(user_id, asset_id, account)
        return {"ok": True, "balance": [int(x) for x in bal]}

    def _maybe_prune(self) -> None:
        """Event-log retention, checked at most every RETENTION_CHECK_MS."""
        now = time.monotonic_ns()
        if now - self._last_prune_ns < RETENTION_CHECK_MS * 1_000_000:
            return
        self._last_prune_ns = now
        try:
            self.eventlog.prune(self.config.event_log_retain_bytes)
        except StorageError as e:
            log.error("event log retention failed, will retry: %s", e)

    def _maybe_verify(self, busy: bool) -> None:
        """One bounded step of the background event-log check (every idle turn, or every
        VERIFY_BUSY_INTERVAL_MS while busy); a damaged segment is regenerated from the
        journal at once (a storage failure ends the loop like any other)."""
        v = self.verifier
        if v.done:
            return
        now = time.monotonic_ns()
        if busy and now - self._last_verify_ns < VERIFY_BUSY_INTERVAL_MS * 1_000_000:
            return
        self._last_verify_ns = now
        damaged = v.step()
        if v.done:
            log.info(
                "event log: %d older segment(s) checked in the background (%d bytes)",
                v.segments_checked,
                v.bytes_read,
            )
        if damaged is None:
            return
        first, last, name = damaged
        try:
            frames = regenerate_events(
                self.storage,
                first,
                last,
                max_frame_events=MAX_FRAME_EVENTS,
                core_cls=self.core_cls,
            )
            self.eventlog.replace_segment(name, frames)
        except JournalCorrupt as e:
            log.critical("event log %s is damaged and cannot be regenerated: %s", name, e)

    def status(self) -> dict[str, Any]:
        """Counters and endpoints of the running core."""
        return {
            "ok": True,
            "pid": os.getpid(),
            "last_seq": int(self.sequencer.last_seq),
            "event_log_first_seq": self.eventlog.first_seq,
            "event_log_last_seq": self.eventlog.last_seq,
            "event_log_verified": self.verifier.done,
            "mode": self.config.mode,
            "batches": self.n_batches,
            "commands": self.n_commands,
            "malformed": self.n_malformed,
            "wrong_socket": self.n_wrong_socket,
            "rate_limited": self.n_rate_limited,
            "capacity_growths": int(getattr(self.sequencer.core, "growth_count", 0)),
            "curve": self.curve_keys is not None,
            **self.endpoints,
            **(self.stream.counters() if self.stream is not None else {}),
            **(self.events_stream.counters() if self.events_stream is not None else {}),
        }

    # ---------------------------------------------------------------- snapshots

    def _maybe_snapshot(self) -> None:
        self._reap_snapshot(block=False)
        if not self._cmds_since_snapshot or self._snap_child is not None:
            return
        cfg = self.config
        by_count = cfg.snapshot_every_cmds and self._cmds_since_snapshot >= cfg.snapshot_every_cmds
        age_ms = (time.monotonic_ns() - self._last_snapshot_ns) // 1_000_000
        by_time = cfg.snapshot_every_ms and age_ms >= cfg.snapshot_every_ms
        if by_count or by_time:
            if cfg.snapshot_in_background:
                self._snapshot_in_background()
            else:
                self.snapshot()

    def _snapshot_in_background(self) -> None:
        """Sync the event log and the journal, then fork a child that serializes the
        core (a copy-on-write image of this moment) and writes the snapshot, while
        this loop keeps serving.  :meth:`_reap_snapshot` completes it."""
        self._cmds_since_snapshot = 0
        self._last_snapshot_ns = time.monotonic_ns()
        try:
            self.eventlog.sync()
            seq = self.sequencer.prepare_snapshot()
        except StorageError as e:
            log.error("snapshot failed, will retry later: %s", e)
            self._cmds_since_snapshot = 1
            return
        if seq is None:
            return
        self.metrics.background_started_ns = time.monotonic_ns()
        pid = os.fork()
        if pid == 0:  # the child: write, then leave without running any cleanup
            code = 1
            try:
                storage = FileStorage(self.config.data_dir)
                write_snapshot(storage, self.sequencer.core, self.sequencer.variants)
                code = 0
            finally:
                os._exit(code)
        self._snap_child = (pid, seq)

    def _reap_snapshot(self, *, block: bool) -> None:
        """Collect the snapshot child if it ended (or wait for it): keep its snapshot,
        prune and archive as an inline snapshot would, or log its failure."""
        if self._snap_child is None:
            return
        pid, seq = self._snap_child
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        if done == 0:
            return
        self._snap_child = None
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            self.background_snapshots += 1
            self.metrics.snapshot_done("background", self.metrics.background_started_ns)
            self.sequencer.snapshot_written(seq)
            log.info("snapshot at seq %d written in the background", seq)
        else:
            self.background_snapshot_failures += 1
            self._cmds_since_snapshot = max(1, self._cmds_since_snapshot)
            log.error("background snapshot at seq %d failed (child exit %d), will retry later",
                      seq, code)  # fmt: skip

    def snapshot(self, final: bool = False) -> bool:
        """Sync the event log, then snapshot (a snapshot-based recovery then never
        needs events from before the snapshot).

        A failed snapshot (disk full, I/O error) is logged and retried at the next
        interval: the journal alone keeps the state recoverable, so trading goes on.
        Returns whether the snapshot was written.  ``final``: the shutdown
        snapshot, which is not retried (the caller exits non-zero).
        """
        self._reap_snapshot(block=True)
        self._cmds_since_snapshot = 0
        self._last_snapshot_ns = time.monotonic_ns()
        try:
            self.eventlog.sync()
            self.sequencer.snapshot()
            self.metrics.snapshot_done("inline", self._last_snapshot_ns)
        except (SnapshotWriteError, StorageError, JournalWriteError) as e:
            if isinstance(e, JournalWriteError) and not final:
                raise  # the journal is dead: run() stops with exit 3
            if final:
                log.critical(
                    "shutdown snapshot failed: %s; the journal holds every acknowledged "
                    "command, the next start replays it",
                    e,
                )
            else:
                log.error("snapshot failed, will retry later: %s", e)
            self._cmds_since_snapshot = 1
            return False
        return True

    def shutdown(self) -> bool:
        """Graceful stop: snapshot, close the journal and the sockets.

        Returns False when the final snapshot, event-log sync or journal sync
        failed (said in a critical log line; the process then exits 3).
        """
        ok = True
        self._reap_snapshot(block=True)
        if self._cmds_since_snapshot:
            ok = self.snapshot(final=True)
        else:
            try:
                self.eventlog.sync()
            except StorageError as e:
                log.critical("shutdown: event log sync failed: %s", e)
                ok = False
        try:
            self.sequencer.close()
        except JournalWriteError as e:
            log.critical("shutdown: journal sync failed: %s", e)
            ok = False
        self.replay.stop()
        self._close_sockets()
        self.storage.close()
        return ok


class _EventRebuilder:
    """Appends to the event log the events a recovery replay regenerates for
    commands after the log's last record (earlier ones are skipped)."""

    def __init__(self, eventlog: EventLog) -> None:
        self.eventlog = eventlog

    def on_events(self, events: np.ndarray) -> None:
        """Recovery callback: the events of one replayed batch, in sequence order."""
        if len(events) == 0:
            return
        seqs = events["seq"]
        upto = self.eventlog.last_seq
        keep = events[seqs > upto]
        if len(keep) == 0:
            return
        last = int(keep["seq"][-1])
        for a, b, ev in split_event_frames(upto + 1, last, keep, MAX_FRAME_EVENTS):
            self.eventlog.append_events(a, b, ev)

    def finish(self, journal_last_seq: int) -> None:
        """Cover trailing commands that produced no events with an empty frame."""
        upto = self.eventlog.last_seq
        if journal_last_seq > upto:
            self.eventlog.append_events(upto + 1, journal_last_seq, np.zeros(0, dtype=EV_DTYPE))


U16_MAX = (1 << 16) - 1
U32_MAX = (1 << 32) - 1
# Allowed kinds per role as the bytes of those kind values: a frame's kind bytes (a
# strided slice) with these deleted (bytes.translate) is empty iff every kind is
# allowed; C speed at any frame size, no numpy call on the ack path.
_KIND_BYTES = {r: bytes(sorted(k)) for r, k in ROLE_KINDS.items()}
_KIND_AT: int = CMD_DTYPE.fields["kind"][1]  # type: ignore[index]


class ControlError(Exception):
    """A control request answered with an error reason (nothing done)."""

    def __init__(self, reason: Reason, text: str) -> None:
        super().__init__(text)
        self.reason = reason

    def answer(self) -> dict[str, Any]:
        """The JSON answer: ``ok`` false, the reason's name and code, a message."""
        return {
            "ok": False,
            "reason": self.reason.name,
            "code": int(self.reason),
            "error": str(self),
        }


def _int_field(req: dict[str, Any], name: str, lo: int, hi: int, default: int | None = None) -> int:
    """An integer field of a control request within ``lo..hi`` (bools and floats refused)."""
    if name not in req:
        if default is None:
            raise ControlError(Reason.INVALID_REQUEST, f"{name} missing")
        return default
    v = req[name]
    if type(v) is not int or not lo <= v <= hi:
        raise ControlError(Reason.INVALID_REQUEST, f"{name} must be an integer in {lo}..{hi}")
    return v


def kinds_allowed(frame: bytes, allowed: bytes) -> bool:
    """True iff every record of a command frame (whole records) has a kind in
    ``allowed`` (the kind values as bytes, :data:`_KIND_BYTES`)."""
    return not frame[_KIND_AT::CMD_SIZE].translate(None, allowed)


def _command_count(frame: bytes, max_cmds: int = MAX_FRAME_CMDS) -> int:
    """Number of command records in a command frame (a zmq message's one part, or a
    stream link body), or -1 if malformed."""
    size = len(frame)
    if size == 0 or size % CMD_SIZE or size // CMD_SIZE > max_cmds:
        return -1
    return size // CMD_SIZE


def wrong_socket_reply(frame: bytes, allowed: frozenset[int]) -> bytes:
    """The replies to a command frame refused on its socket: one per record, each
    ``status`` rejected, ``reason`` ``WRONG_SOCKET``, ``seq`` 0 (nothing sequenced),
    the record's ids echoed, ``value`` 1 on the records whose kind is not allowed
    there and 0 on the others (refused with their frame)."""
    cmds = np.frombuffer(frame, dtype=CMD_DTYPE)
    rec = np.zeros(len(cmds), dtype=REPLY_DTYPE)
    rec["status"] = STATUS_REJECTED
    rec["reason"] = WRONG_SOCKET
    for name in ("client_ref", "order_id", "user_id", "kind"):
        rec[name] = cmds[name]
    rec["value"] = ~np.isin(cmds["kind"], np.array(sorted(allowed), dtype=np.uint8))
    return rec.tobytes()


def malformed_reply(frame_bytes: int) -> bytes:
    """The single reply record answering a malformed message.

    ``status`` = rejected, ``reason`` = ``MALFORMED_FRAME``, ``seq`` = 0 (nothing was
    sequenced), ``value`` = the frame's length in bytes (-1 if not one part).
    """
    rec = np.zeros(1, dtype=REPLY_DTYPE)
    rec["status"] = STATUS_REJECTED
    rec["reason"] = MALFORMED_FRAME
    rec["value"] = frame_bytes
    return rec.tobytes()


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bursa core", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="journal/snapshot/event-log directory (default data/core)")
    p.add_argument(
        "--trade-endpoint", help=f"order-entry ROUTER bind (default {DEFAULT_TRADE_ENDPOINT})"
    )
    p.add_argument(
        "--trade-stream-endpoint",
        help="stream trade link: unix:/abs/path (the trade socket's frames, length-prefixed, "
        "on a unix stream socket; default none)",
    )
    p.add_argument(
        "--events-stream-endpoint",
        help="event stream link: unix:/abs/path (every PUB frame, length-prefixed, to each "
        "connected subscriber; default none)",
    )
    p.add_argument("--fund-endpoint", help=f"funding ROUTER bind (default {DEFAULT_FUND_ENDPOINT})")
    p.add_argument("--admin-endpoint", help=f"admin ROUTER bind (default {DEFAULT_ADMIN_ENDPOINT})")
    p.add_argument("--pub-endpoint", help=f"event PUB bind (default {DEFAULT_PUB_ENDPOINT})")
    p.add_argument(
        "--replay-endpoint", help=f"replay ROUTER bind (default {DEFAULT_REPLAY_ENDPOINT})"
    )
    p.add_argument("--mode", choices=MODES, help="journal durability (default fsync)")
    p.add_argument("--config", help="TOML or JSON file with the same keys (flags win)")
    p.add_argument("--snapshot-every-cmds", type=int)
    p.add_argument("--snapshot-every-ms", type=int)
    p.add_argument(
        "--curve",
        action="store_true",
        default=None,
        help="require CURVE even on local endpoints (always on for non-local ones)",
    )
    p.add_argument("--curve-secret-key", help="the core's .key_secret file (bursa admin keygen)")
    p.add_argument("--curve-clients-dir", help="directory of allowed clients' .key files")
    p.add_argument("--metrics", help="Prometheus /metrics HOST:PORT (default 127.0.0.1:0; off)")
    logs.add_arguments(p)
    p.add_argument(
        "--accept-journal-loss",
        action="store_true",
        help="start even though the journal ends before what was acknowledged (operator "
        "override, only after restoring what a replica holds: the missing commands are lost)",
    )
    p.add_argument(
        "--core-class",
        help="module:Class of the state machine (tests only; default engine.core:Core)",
    )
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """File settings overridden by command-line flags."""
    values = load_config(args.config)
    for key in (
        "data_dir",
        "trade_endpoint",
        "trade_stream_endpoint",
        "events_stream_endpoint",
        "fund_endpoint",
        "admin_endpoint",
        "pub_endpoint",
        "replay_endpoint",
        "mode",
        "snapshot_every_cmds",
        "snapshot_every_ms",
        "curve",
        "curve_secret_key",
        "curve_clients_dir",
        "metrics",
    ):
        v = getattr(args, key)
        if v is not None:
            values[key] = v
    return ServerConfig(**values)


def main(argv: list[str] | None = None) -> int:
    """Run the core until SIGTERM/SIGINT.

    Prints one JSON line ``{"ready": true, "trade": ..., "fund": ..., "admin": ...,
    "pub": ..., "replay": ..., "last_seq": ..., "pid": ...}`` (and ``"trade_stream":
    "unix:/path"`` with a stream trade link) on stdout once the
    sockets are bound and recovery is done; logs go to stderr.
    """
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    logs.setup("core", args.log_format, args.log_level)
    try:
        config = config_from_args(args)
        core_cls = None
        if args.core_class:
            module, _, attr = args.core_class.partition(":")
            core_cls = getattr(importlib.import_module(module), attr)
        server = CoreServer(config, core_cls=core_cls, accept_journal_loss=args.accept_journal_loss)
        metrics_url, _ = serve_metrics(config.metrics, CoreCollector(server))
    except (ValueError, OSError, zmq.ZMQError, JournalCorrupt, ImportError, AttributeError) as e:
        print(f"bursa core: {type(e).__name__}: {e}", file=sys.stderr)
        return 1

    def _stop(signum: int, frame: FrameType | None) -> None:
        server.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # Everything built so far (imports, recovery) lives as long as the process: out of
    # the cyclic collector's generations, a full collection no longer walks it on
    # the ack path (only objects allocated while serving are examined).
    gc.collect()
    gc.freeze()
    ready = {"ready": True, **server.status(), "metrics": metrics_url, "config": asdict(config)}
    print(json.dumps(ready), flush=True)
    log.info("core ready: last_seq=%d", ready["last_seq"], extra={"seq": ready["last_seq"]})
    return server.run()


if __name__ == "__main__":
    sys.exit(main())
