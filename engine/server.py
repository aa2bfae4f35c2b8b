"""`bursa core`: the core as a process, one single-threaded loop around the Sequencer.

Each turn of the loop

1. waits for the command ROUTER socket to become readable, then drains every
   message already queued (non-blocking) up to :data:`MAX_BATCH_CMDS` commands;
2. submits all well-formed command records of the turn as ONE batch to the
   Sequencer (sequence numbers, journal; in ``fsync`` mode one fdatasync for the
   batch: group commit), which applies them to the core;
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
from typing import Any

import numpy as np
import zmq

from engine.clock import RealClock
from engine.corelike import CoreClass
from engine.eventlog import EventLog, split_event_frames
from engine.journal import JournalCorrupt, JournalWriteError
from engine.recovery import recover
from engine.replay_service import ReplayService
from engine.sequencer import Sequencer
from engine.snapshot import SnapshotWriteError, list_snapshots, write_snapshot
from engine.storage import FileStorage, StorageError
from engine.wire.frames import (
    CONTROL_TAG,
    STATUS_REJECTED,
    FrameError,
    decode_control,
    encode_control,
    encode_event_frame,
)
from engine.wire.layout import CMD_DTYPE, CMD_SIZE, EV_DTYPE, REPLY_DTYPE
from pyx.enums import Reason

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
SEQUENCER_SNAPSHOT_NEVER = 1 << 62

MALFORMED_FRAME = int(Reason.MALFORMED_FRAME)

DEFAULT_CMD_ENDPOINT = "tcp://127.0.0.1:7001"
DEFAULT_PUB_ENDPOINT = "tcp://127.0.0.1:7002"
DEFAULT_REPLAY_ENDPOINT = "tcp://127.0.0.1:7003"
MODES = ("fsync", "async", "none")


@dataclass
class ServerConfig:
    """Settings of one core process (file keys = field names, CLI flags override).

    Attributes
    ----------
    data_dir : str
        Directory of the journal, snapshots and event log.
    cmd_endpoint, pub_endpoint, replay_endpoint : str
        ZeroMQ endpoints to bind (``tcp://host:*`` picks a free port; the bound
        addresses are printed in the ready line).
    mode : str
        Journal durability: ``fsync`` (default), ``async`` or ``none`` (bench only).
    max_batch_cmds : int
        Commands per group commit at most.
    snapshot_every_cmds : int
        Snapshot after this many commands since the last one (0: never by count).
    snapshot_every_ms : int
        Snapshot after this many milliseconds with new commands (0: never by time).
    snapshot_in_background : bool
        Periodic snapshots are serialized and written by a forked child process
        (copy-on-write) while the loop keeps serving; False writes them inline
        (the loop stalls for the whole serialization).  Requested (``snapshot``
        control op) and shutdown snapshots are always inline.
    """

    data_dir: str = "data/core"
    cmd_endpoint: str = DEFAULT_CMD_ENDPOINT
    pub_endpoint: str = DEFAULT_PUB_ENDPOINT
    replay_endpoint: str = DEFAULT_REPLAY_ENDPOINT
    mode: str = "fsync"
    max_batch_cmds: int = MAX_BATCH_CMDS
    snapshot_every_cmds: int = 1_000_000
    snapshot_every_ms: int = 300_000
    snapshot_in_background: bool = True

    def validate(self) -> None:
        """Raise ValueError on a setting out of range."""
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if not 0 < self.max_batch_cmds <= MAX_BATCH_CMDS:
            raise ValueError(f"max_batch_cmds must be in 1..{MAX_BATCH_CMDS}")
        if self.snapshot_every_cmds < 0 or self.snapshot_every_ms < 0:
            raise ValueError("snapshot intervals must be >= 0")


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
        self.core_cls = core_cls
        self.accept_journal_loss = accept_journal_loss
        self.ctx = ctx or zmq.Context()
        self.storage = FileStorage(config.data_dir)
        self.eventlog = EventLog(self.storage)
        self.stopping = False
        self.n_batches = 0
        self.n_commands = 0
        self.n_malformed = 0
        self._cmds_since_snapshot = 0
        self._last_snapshot_ns = time.monotonic_ns()
        # (pid, seq) of the forked child writing a snapshot, if one runs
        self._snap_child: tuple[int, int] | None = None
        self.background_snapshots = 0
        self.background_snapshot_failures = 0
        self._stage = np.zeros(config.max_batch_cmds + MAX_FRAME_CMDS, dtype=CMD_DTYPE)
        self._stage_bytes = self._stage.view(np.uint8)
        self.sequencer = self._recover()
        self.cmd = self.ctx.socket(zmq.ROUTER)
        self.pub = self.ctx.socket(zmq.PUB)
        for s in (self.cmd, self.pub):
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.SNDHWM, SNDHWM_MSGS)
        # A reply to a client that went away is dropped, not an error.
        self.cmd.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self.pub.setsockopt(zmq.SNDHWM, PUB_SNDHWM_MSGS)
        self.cmd.bind(config.cmd_endpoint)
        self.pub.bind(config.pub_endpoint)
        self.cmd_endpoint = self.cmd.getsockopt_string(zmq.LAST_ENDPOINT)
        self.pub_endpoint = self.pub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.replay = ReplayService(self.ctx, config.replay_endpoint, config.data_dir)
        self.replay.start()
        self.replay.ready.wait()
        if self.replay.error is not None:
            raise self.replay.error
        self.replay_endpoint = self.replay.bound_endpoint

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
                self.turn(IDLE_POLL_MS)
                self._maybe_snapshot()
        except (JournalWriteError, StorageError) as e:
            what = "journal write" if isinstance(e, JournalWriteError) else "event log append"
            log.critical("%s failed, stopping without acknowledging the batch: %s", what, e)
            self._reap_snapshot(block=True)
            self.replay.stop()
            self.cmd.close()
            self.pub.close()
            return 3
        if not self.shutdown():
            return 3
        return 0

    def turn(self, timeout_ms: int) -> int:
        """One loop turn: drain, group-commit, publish, reply.  Returns commands applied."""
        if not self.cmd.poll(timeout_ms):
            return 0
        n_cmds = 0
        # (identity, delimiter?, first command index, command count or -1 malformed)
        senders: list[tuple[bytes, bool, int, int]] = []
        controls: list[tuple[bytes, bool, bytes]] = []
        limit = self.config.max_batch_cmds
        for _ in range(MAX_MESSAGES_PER_TURN):
            try:
                parts = self.cmd.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            ident, body = parts[0], parts[1:]
            delim = len(body) > 1 and body[0] == b""
            if delim:
                body = body[1:]
            if len(body) == 2 and body[0] == CONTROL_TAG:
                controls.append((ident, delim, body[1]))
                continue
            k = _command_count(body)
            if k <= 0:
                senders.append((ident, delim, len(body[0]) if len(body) == 1 else -1, -1))
                continue
            self._stage_bytes[n_cmds * CMD_SIZE : (n_cmds + k) * CMD_SIZE] = np.frombuffer(
                body[0], dtype=np.uint8
            )
            senders.append((ident, delim, n_cmds, k))
            n_cmds += k
            if n_cmds >= limit:
                break
        replies = self._commit(n_cmds)
        self._send_replies(senders, replies)
        for ident, delim, req in controls:
            answer = self._control(req)
            self.cmd.send_multipart([ident, *((b"",) if delim else ()), CONTROL_TAG, answer])
        return n_cmds

    def _commit(self, n_cmds: int) -> bytes:
        """Submit the staged commands as one batch; log and publish its events."""
        if n_cmds == 0:
            return b""
        prev_last = int(self.sequencer.last_seq)
        # A copy: the staging buffer is reused next turn, the Sequencer may keep it.
        events, replies = self.sequencer.submit(self._stage[:n_cmds].copy())
        last = int(self.sequencer.last_seq)
        assert len(replies) == n_cmds, (len(replies), n_cmds)
        assert last >= prev_last
        if last > prev_last:
            self._publish(prev_last + 1, last, events)
        self.n_batches += 1
        self.n_commands += n_cmds
        self._cmds_since_snapshot += last - prev_last
        return bytes(np.ascontiguousarray(replies, dtype=REPLY_DTYPE).data)

    def _publish(self, first_seq: int, last_seq: int, events: np.ndarray) -> None:
        """Cut ``events`` into frames on command boundaries, log them, then PUB them."""
        for a, b, ev in split_event_frames(first_seq, last_seq, events, MAX_FRAME_EVENTS):
            frame = encode_event_frame(a, b, ev.tobytes())
            self.eventlog.append_frame(frame, a, b)
            self.pub.send(frame, copy=False)

    def _send_replies(self, senders: list[tuple[bytes, bool, int, int]], replies: bytes) -> None:
        """One reply frame per sender, its records in the order its commands came."""
        rsize = REPLY_DTYPE.itemsize
        out: dict[tuple[bytes, bool], list[bytes]] = {}
        for ident, delim, start, count in senders:
            if count < 0:
                self.n_malformed += 1
                part = malformed_reply(start)  # -1: not one part
            else:
                part = replies[start * rsize : (start + count) * rsize]
            out.setdefault((ident, delim), []).append(part)
        for (ident, delim), parts in out.items():
            msg = [ident, b"", b"".join(parts)] if delim else [ident, b"".join(parts)]
            self.cmd.send_multipart(msg)

    # ------------------------------------------------------------------ control

    def _control(self, body: bytes) -> bytes:
        """Answer a control request (state queries are not journaled)."""
        try:
            req = decode_control(body)
            op = req.get("op")
            # The real Core has more than the CoreLike surface (balance queries).
            core: Any = self.sequencer.core
            if op == "ping":
                ans: dict[str, Any] = {"ok": True, "last_seq": int(self.sequencer.last_seq)}
            elif op == "status":
                ans = self.status()
            elif op == "state_hash":
                h = core.state_hash()
                ans = {
                    "ok": True,
                    "state_hash": h.hex() if isinstance(h, bytes) else str(h),
                    "last_seq": int(self.sequencer.last_seq),
                }
            elif op == "conservation":
                errors = [str(e) for e in core.conservation_errors()]
                ans = {"ok": not errors, "errors": errors, "last_seq": int(self.sequencer.last_seq)}
            elif op == "snapshot":
                ok = self.snapshot()
                ans = {"ok": ok, "last_seq": int(self.sequencer.last_seq)}
                if not ok:
                    ans["error"] = "snapshot failed (see the core's log); the journal is intact"
            elif op == "balance":
                account = int(req.get("account", 0))
                bal = core.balance(int(req["user_id"]), int(req["asset_id"]), account)
                ans = {"ok": True, "balance": [int(x) for x in bal]}
            else:
                ans = {"ok": False, "error": f"unknown op {op!r}"}
        except (FrameError, KeyError, TypeError, ValueError) as e:
            ans = {"ok": False, "error": str(e)}
        return encode_control(ans)

    def status(self) -> dict[str, Any]:
        """Counters and endpoints of the running core."""
        return {
            "ok": True,
            "pid": os.getpid(),
            "last_seq": int(self.sequencer.last_seq),
            "event_log_last_seq": self.eventlog.last_seq,
            "mode": self.config.mode,
            "batches": self.n_batches,
            "commands": self.n_commands,
            "malformed": self.n_malformed,
            "cmd": self.cmd_endpoint,
            "pub": self.pub_endpoint,
            "replay": self.replay_endpoint,
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
        self.cmd.close()
        self.pub.close()
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


def _command_count(body: list[bytes]) -> int:
    """Number of command records in a one-part message, or -1 if malformed."""
    if len(body) != 1:
        return -1
    size = len(body[0])
    if size == 0 or size % CMD_SIZE or size // CMD_SIZE > MAX_FRAME_CMDS:
        return -1
    return size // CMD_SIZE


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
    p.add_argument("--cmd-endpoint", help=f"command ROUTER bind (default {DEFAULT_CMD_ENDPOINT})")
    p.add_argument("--pub-endpoint", help=f"event PUB bind (default {DEFAULT_PUB_ENDPOINT})")
    p.add_argument(
        "--replay-endpoint", help=f"replay ROUTER bind (default {DEFAULT_REPLAY_ENDPOINT})"
    )
    p.add_argument("--mode", choices=MODES, help="journal durability (default fsync)")
    p.add_argument("--config", help="TOML or JSON file with the same keys (flags win)")
    p.add_argument("--snapshot-every-cmds", type=int)
    p.add_argument("--snapshot-every-ms", type=int)
    p.add_argument("--log-level", default="INFO")
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
        "cmd_endpoint",
        "pub_endpoint",
        "replay_endpoint",
        "mode",
        "snapshot_every_cmds",
        "snapshot_every_ms",
    ):
        v = getattr(args, key)
        if v is not None:
            values[key] = v
    return ServerConfig(**values)


def main(argv: list[str] | None = None) -> int:
    """Run the core until SIGTERM/SIGINT.

    Prints one JSON line ``{"ready": true, "cmd": ..., "pub": ..., "replay": ...,
    "last_seq": ..., "pid": ...}`` on stdout once the sockets are bound and
    recovery is done; logs go to stderr.
    """
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        config = config_from_args(args)
        core_cls = None
        if args.core_class:
            module, _, attr = args.core_class.partition(":")
            core_cls = getattr(importlib.import_module(module), attr)
        server = CoreServer(config, core_cls=core_cls, accept_journal_loss=args.accept_journal_loss)
    except (ValueError, OSError, zmq.ZMQError, JournalCorrupt, ImportError, AttributeError) as e:
        print(f"bursa core: {type(e).__name__}: {e}", file=sys.stderr)
        return 1

    def _stop(signum: int, frame: FrameType | None) -> None:
        server.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ready = {"ready": True, **server.status(), "config": asdict(config)}
    print(json.dumps(ready), flush=True)
    log.info("core ready: last_seq=%d", ready["last_seq"])
    return server.run()


if __name__ == "__main__":
    sys.exit(main())
