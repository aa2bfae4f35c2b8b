"""Recovery time of a real core data directory (helper of ``bench.core``).

:func:`build_data_dir` writes what a running ``bursa core`` leaves behind, through
the same code (``Sequencer`` with a real ``Core`` on ``FileStorage``, mode
``async``; the event log framed as the server frames it; optionally a snapshot
written by ``write_snapshot`` after syncing the event log, as the server does),
fed by :func:`generate_commands`, a vectorised command stream: 1,000 funded users
place limit orders and cancel the order they placed 20 rounds earlier (so ~10
orders per user rest).  As on a real venue most orders are passive (a buy below the
mid, a sell above it, up to ``PASSIVE_TICKS`` away) and ``--marketable-pct``
(default 5%) cross the mid by up to ``CROSS_TICKS`` and trade.  It is much faster than
``sim.bookflow`` (10M commands in seconds, not minutes), and every command is
a real command the core applies.

:func:`time_restart` starts the real ``bursa core`` process on the directory and
times it to its ready line (process start, imports, recovery replay, event-log
check, socket binds); the process is then killed with SIGKILL so the directory
is left as it was (a SIGTERM would write a shutdown snapshot).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bursa_wire.layout import CMD_DTYPE
from engine.clock import RealClock
from engine.eventlog import EventLog, split_event_frames
from engine.sequencer import Sequencer
from engine.server import MAX_FRAME_EVENTS
from engine.snapshot import write_snapshot
from engine.storage import FileStorage
from engine.wire import commands
from pyx.enums import Side

USERS = 1_000
SYMBOL = 1
BASE, QUOTE = 1, 2
MID_TICKS = 1_000_000
PASSIVE_TICKS = 500  # a passive order rests 1..500 ticks away from the mid
CROSS_TICKS = 50  # a marketable one crosses the mid by 0..50 ticks
MARKETABLE_PCT = 5  # share of NEWs that cross (and trade)
MAX_LOTS = 10
CANCEL_LAG_ROUNDS = 20  # a user's cancel targets its order of 20 rounds earlier
FUNDS_MINOR = 10**15
BATCH = 4096
NEVER = 1 << 62
READY_TIMEOUT_S = 600.0
REPO = Path(__file__).resolve().parents[1]


def setup_commands() -> np.ndarray:
    """Assets, fee tier, the symbol, ``USERS`` users funded in both assets."""
    recs = [
        commands.add_asset(BASE, 8),
        commands.add_asset(QUOTE, 2),
        commands.add_fee_tier(0, 1_000, 2_000),
        commands.add_symbol(
            SYMBOL,
            BASE,
            QUOTE,
            min_price_ticks=1,
            max_price_ticks=10 * MID_TICKS,
            max_qty_lots=1_000_000,
            protection_ticks=10 * MID_TICKS,
        ),
    ]
    for uid in range(1, USERS + 1):
        recs.append(commands.add_user(uid, 0))
        recs.append(commands.deposit(uid, uid, QUOTE, FUNDS_MINOR))
        recs.append(commands.deposit(10**9 + uid, uid, BASE, FUNDS_MINOR))
    return np.concatenate(recs)


def generate_commands(n: int, seed: int = 1, marketable_pct: int = MARKETABLE_PCT) -> np.ndarray:
    """``n`` trading commands (NEW limit GTC and CANCEL), unstamped, vectorised.

    Command ``i`` belongs to user ``i % USERS + 1`` in round ``r = i // USERS``; even
    rounds place order ``r // 2 + 1``, odd rounds cancel the order placed
    ``CANCEL_LAG_ROUNDS`` rounds earlier (a NOT_FOUND reject when it was filled).
    """
    rng = np.random.default_rng(seed)
    i = np.arange(n, dtype=np.int64)
    user = (i % USERS + 1).astype(np.uint32)
    rnd = i // USERS
    is_new = rnd % 2 == 0
    new_tpl = commands.new_limit(1, 1, SYMBOL, Side.BUY, MID_TICKS, 1)[0]
    cancel_tpl = commands.cancel(1, 1, symbol_id=SYMBOL)[0]
    out = np.empty(n, dtype=CMD_DTYPE)
    out[is_new] = new_tpl
    out[~is_new] = cancel_tpl
    out["user_id"] = user
    out["client_ref"] = i + 1
    new_id = rnd // 2 + 1
    cancel_id = (rnd - CANCEL_LAG_ROUNDS + 1) // 2 + 1
    out["order_id"] = np.where(is_new, new_id, np.maximum(cancel_id, 1))
    sides = rng.integers(0, 2, n)
    out["side"][is_new] = np.where(sides == 0, Side.BUY, Side.SELL)[is_new]
    # distance from the mid towards the passive side (negative: crosses the mid)
    away = np.where(
        rng.integers(0, 100, n) < marketable_pct,
        -rng.integers(0, CROSS_TICKS + 1, n),
        rng.integers(1, PASSIVE_TICKS + 1, n),
    )
    px = np.where(sides == 0, MID_TICKS - away, MID_TICKS + away)
    out["price_ticks"][is_new] = px[is_new]
    out["qty_lots"][is_new] = rng.integers(1, MAX_LOTS + 1, n)[is_new]
    out["seq"] = 0
    out["ts_ns"] = 0
    return out


def build_data_dir(
    data_dir: str,
    n_commands: int,
    snapshot_before_end: int | None = None,
    seed: int = 1,
    marketable_pct: int = MARKETABLE_PCT,
) -> dict[str, Any]:
    """Write a core data directory holding ``n_commands`` journaled commands (plus the
    setup) and their event log; with ``snapshot_before_end``, a snapshot that many
    commands before the end.  Returns what was written (counts, bytes, seconds)."""
    t0 = time.perf_counter()
    stream = np.concatenate([setup_commands(), generate_commands(n_commands, seed, marketable_pct)])
    total = len(stream)
    snap_at = total - snapshot_before_end if snapshot_before_end else -1
    storage = FileStorage(data_dir)
    elog = EventLog(storage)
    elog.open()
    seq = Sequencer.open(
        storage,
        RealClock(),
        mode="async",
        snapshot_every_cmds=NEVER,
        snapshot_every_ns=NEVER,
    )
    snapshot_seq = 0
    try:
        pos = 0
        while pos < total:
            end = min(pos + BATCH, total)
            if pos < snap_at < end:
                end = snap_at
            events, _replies = seq.submit(stream[pos:end].copy())
            first, last = seq.last_seq - (end - pos) + 1, seq.last_seq
            upto = first - 1
            for a, b, ev in split_event_frames(upto + 1, last, events, MAX_FRAME_EVENTS):
                elog.append_events(a, b, ev)
            pos = end
            if pos == snap_at:
                elog.sync()  # the server syncs the event log before a snapshot
                write_snapshot(storage, seq.core)
                snapshot_seq = seq.last_seq
        core: Any = seq.core
        assert core.conservation_errors() == []
        elog.sync()
        seq.close()
        last_seq = seq.last_seq
    finally:
        storage.close()
    size = sum(p.stat().st_size for p in Path(data_dir).iterdir() if p.is_file())
    return {
        "commands": n_commands,
        "last_seq": last_seq,
        "snapshot_seq": snapshot_seq,
        "bytes": size,
        "build_s": round(time.perf_counter() - t0, 2),
    }


def time_restart(data_dir: str, mode: str = "fsync") -> tuple[float, dict[str, Any]]:
    """Seconds from starting ``bursa core`` on ``data_dir`` to its ready line (which is
    returned too); the process is then SIGKILLed, leaving the directory unchanged."""
    local = "tcp://127.0.0.1:*"
    cmd = [sys.executable, "-m", "bursa", "core", "--data-dir", data_dir, "--mode", mode]
    for flag in ("trade", "fund", "admin", "pub", "replay"):
        cmd += [f"--{flag}-endpoint", local]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO, env=env
    )
    try:
        assert proc.stdout is not None
        deadline = t0 + READY_TIMEOUT_S
        while time.perf_counter() < deadline:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"core exited with {proc.wait()} before its ready line")
            if line.startswith(b"{"):
                elapsed = time.perf_counter() - t0
                ready: dict[str, Any] = json.loads(line)
                return elapsed, ready
        raise TimeoutError(f"no ready line in {READY_TIMEOUT_S} s")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
