"""kill -9 of the real core process under load, at random points, many times in one run.

A client pipelines funded trading commands and deposits and records every
command acknowledged (reply received); a subscriber records the live event
stream.  After each kill the core restarts and the test checks:

- every acknowledged command is applied: its seq <= the recovered last_seq, no
  two acknowledged commands share a seq, and every acknowledged deposit is now a
  duplicate when sent again;
- the events seen live before the kill are exactly the events the restarted
  core serves from its rebuilt event log (nothing published is lost or changed);
- the recovered state hash equals `bursa replay` from scratch of the same
  directory (run as a subprocess on a copy, in the background), so nothing is
  half applied;
- conservation holds.

Some rounds also kill the core while it is still recovering.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bindings.client import CoreClient, EventSubscriber
from bursa_wire.layout import EV_DTYPE
from engine.wire import commands
from engine.wire.frames import STATUS_APPLIED, STATUS_DUPLICATE
from pyx.enums import CmdKind, Side, Tif
from tests.e2e.coreproc import REPO, CoreProcess, parse_state_hash

KILLS = 22
SEED = 20261128
BASE, QUOTE, SYMBOL = 1, 2, 1
USERS = tuple(range(101, 121))
# Commands sent and not yet answered, at most (the client pipelines up to this).
WINDOW_CMDS = 128
CMDS_PER_FRAME_MAX = 8
# Load time before the kill, seconds (uniform): from "barely started" to "busy".
LOAD_S_MIN, LOAD_S_MAX = 0.02, 0.5
# Small, so kills also land around snapshots and segment archiving.
SNAPSHOT_EVERY_CMDS = 3000
KILL_DURING_RECOVERY_PERMILLE = 250


@dataclass
class Ledger:
    """What the client knows: acknowledged commands and the next ids to use."""

    next_oid: int = 1
    next_ref: int = 1_000_000
    next_client_ref: int = 1
    acked_seqs: set[int] = field(default_factory=set)
    acked_deposits: list[tuple[int, int, int, int]] = field(default_factory=list)
    acked_total: int = 0


def make_frame(rng: random.Random, led: Ledger) -> np.ndarray:
    recs = []
    for _ in range(rng.randint(1, CMDS_PER_FRAME_MAX)):
        user = rng.choice(USERS)
        r = rng.random()
        if r < 0.1:
            recs.append(commands.deposit(led.next_ref, user, rng.choice((BASE, QUOTE)), 1_000))
            led.next_ref += 1
        elif r < 0.25 and led.next_oid > 1:
            # Cancel a recent order (may be gone already: a reject is fine).
            recs.append(
                commands.cancel(rng.randint(max(1, led.next_oid - 50), led.next_oid - 1), user)
            )
        else:
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            tif = Tif.IOC if rng.random() < 0.3 else Tif.GTC
            price = 1000 + rng.randint(-10, 10)
            recs.append(
                commands.new_limit(
                    led.next_oid, user, SYMBOL, side, price, rng.randint(1, 9), tif=tif
                )
            )
            led.next_oid += 1
    cmds = np.concatenate(recs)
    cmds["client_ref"] = np.arange(led.next_client_ref, led.next_client_ref + len(cmds))
    led.next_client_ref += len(cmds)
    return cmds


def record_replies(replies: np.ndarray, sent: dict[int, np.ndarray], led: Ledger) -> None:
    """Remember acknowledged commands (replies come in send order)."""
    for rep in replies:
        seq = int(rep["seq"])
        assert seq > 0
        assert seq not in led.acked_seqs, f"seq {seq} acknowledged twice"
        led.acked_seqs.add(seq)
        led.acked_total += 1
        cmd = sent.pop(int(rep["client_ref"]))
        if int(cmd["kind"]) == CmdKind.DEPOSIT and int(rep["status"]) == STATUS_APPLIED:
            led.acked_deposits.append(
                (
                    int(cmd["order_id"]),
                    int(cmd["user_id"]),
                    int(cmd["symbol_id"]),
                    int(cmd["qty_lots"]),
                )
            )


def load_until(
    core: CoreProcess,
    deadline: float,
    rng: random.Random,
    led: Ledger,
    sub: EventSubscriber,
    seen: list[np.ndarray],
) -> None:
    """Pipeline frames and record replies and live events until ``deadline``, then kill -9.

    Orders go to the trading socket, deposits to the funding socket (as the gateway
    and the wallet would), each pipelined on its own connection."""
    trade, fund = CoreClient(core.trade), CoreClient(core.fund)
    sent: dict[int, np.ndarray] = {}
    try:
        while time.monotonic() < deadline:
            while trade.outstanding + fund.outstanding < WINDOW_CMDS:
                cmds = make_frame(rng, led)
                for rec in cmds:
                    sent[int(rec["client_ref"])] = rec
                is_fund = cmds["kind"] == CmdKind.DEPOSIT
                for c, part in ((fund, cmds[is_fund]), (trade, cmds[~is_fund])):
                    if len(part):
                        c.send(part)
            for c in (trade, fund):
                if c.sock.poll(2):
                    rep = c._recv(0)
                    if rep is not None:
                        record_replies(rep, sent, led)
            seen += [f.events for f in sub.poll(0, idle_replay=False)]
        core.kill9()
        # Replies already delivered to this process before the kill were acknowledged.
        for c in (trade, fund):
            while c.sock.poll(0):
                rep = c._recv(0)
                if rep is not None:
                    record_replies(rep, sent, led)
        seen += [f.events for f in sub.poll(0, idle_replay=False)]
    finally:
        trade.close()
        fund.close()


def setup(core: CoreProcess, led: Ledger) -> None:
    c = core.client()
    try:
        cmds = np.concatenate(
            [
                commands.add_asset(BASE, 8),
                commands.add_asset(QUOTE, 2),
                commands.add_fee_tier(0, 1_000, 2_000),
                commands.add_symbol(SYMBOL, BASE, QUOTE, max_price_ticks=10**6, max_qty_lots=10**4),
                *[commands.add_user(u) for u in USERS],
                *[commands.deposit(u, u, QUOTE, 10**11) for u in USERS],
                *[commands.deposit(10_000 + u, u, BASE, 10**9) for u in USERS],
            ]
        )
        rep = c.request(cmds)
        assert (rep["status"] == STATUS_APPLIED).all()
        led.acked_seqs.update(int(s) for s in rep["seq"])
    finally:
        c.close()


def replay_events(sub: EventSubscriber, first: int, last: int) -> np.ndarray:
    out, nxt = [], first
    while nxt <= last:
        frames, nxt, _ = sub.replay(nxt)
        assert frames, f"replay stuck at {nxt}"
        out += [f.events for f in frames]
    evs = np.concatenate(out) if out else np.zeros(0, EV_DTYPE)
    return evs[evs["seq"] <= last]


def check_after_restart(
    core: CoreProcess,
    led: Ledger,
    seen: list[np.ndarray],
    seen_from: int,
    sub_next: int,
    copies: Path,
    rnd: int,
    pending: list[tuple[subprocess.Popen[str], str, int]],
) -> None:
    ready = core.ready
    last = int(ready["last_seq"])
    assert max(led.acked_seqs) <= last, (max(led.acked_seqs), last)
    c = core.client()
    sub = EventSubscriber(core.pub, core.replay)
    try:
        # The event log is complete and agrees with what was published before the kill.
        assert ready["event_log_last_seq"] == last
        if seen:
            live = np.concatenate(seen)
            assert replay_events(sub, seen_from, sub_next - 1).tobytes() == live.tobytes()
        h = c.control("state_hash")
        assert h["last_seq"] == last
        assert c.control("conservation")["errors"] == []
        # A from-scratch replay of a copy, in the background (checked later).
        copy = copies / f"r{rnd}"
        shutil.copytree(core.data_dir, copy)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bursa", "replay", "--json", str(copy)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        pending.append((proc, h["state_hash"], last))
        # Acknowledged deposits (the newest, plus a sample of older ones) are duplicates.
        recent = led.acked_deposits[-40:] + random.Random(rnd).sample(
            led.acked_deposits, min(10, len(led.acked_deposits))
        )
        if recent:
            again = np.concatenate([commands.deposit(*d) for d in recent])
            reps = c.request(again)
            assert (reps["status"] == STATUS_DUPLICATE).all(), reps
            led.acked_seqs.update(int(s) for s in reps["seq"])
    finally:
        sub.close()
        c.close()


def finish_replays(pending: list[tuple[subprocess.Popen[str], str, int]]) -> None:
    for proc, want, last in pending:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert parse_state_hash(out) == want, f"replay differs at seq {last}"
    pending.clear()


def test_kill9_under_load(tmp_path):
    rng = random.Random(SEED)
    logs = tmp_path / "logs"
    logs.mkdir()
    copies = tmp_path / "copies"
    copies.mkdir()
    core = CoreProcess(
        tmp_path / "data", logs, "fsync", "--snapshot-every-cmds", str(SNAPSHOT_EVERY_CMDS)
    )
    led = Ledger()
    pending: list[tuple[subprocess.Popen[str], str, int]] = []
    next_event_seq = 1
    kills = 0
    try:
        core.start()
        setup(core, led)
        for rnd in range(KILLS):
            sub = EventSubscriber(core.pub, core.replay, from_seq=next_event_seq)
            seen: list[np.ndarray] = []
            seen_from = next_event_seq
            try:
                seen += [f.events for f in sub.poll(100)]  # catch-up, then live
                deadline = time.monotonic() + rng.uniform(LOAD_S_MIN, LOAD_S_MAX)
                load_until(core, deadline, rng, led, sub, seen)
                kills += 1
                sub_next = sub.next_seq
            finally:
                sub.close()
            if rng.randrange(1000) < KILL_DURING_RECOVERY_PERMILLE:
                core.start_nowait()
                time.sleep(rng.uniform(0.0, 0.5))
                core.kill9()
                kills += 1
            core.start()
            check_after_restart(core, led, seen, seen_from, sub_next, copies, rnd, pending)
            next_event_seq = sub_next
            if len(pending) >= 4:
                finish_replays(pending)
        assert kills >= 20
        assert led.acked_total > 1000, "the load never got going"
        # Finally a clean stop, and a from-scratch replay of the real directory.
        c = core.client()
        try:
            want = c.control("state_hash")["state_hash"]
        finally:
            c.close()
        assert core.stop() == 0
        finish_replays(pending)
        out = subprocess.run(
            [sys.executable, "-m", "bursa", "replay", "--json", str(core.data_dir)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        assert parse_state_hash(out.stdout) == want
    finally:
        core.cleanup()
        for proc, _, _ in pending:
            proc.kill()
            proc.wait()
