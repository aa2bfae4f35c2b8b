"""The real `bursa core` process on loopback: admin and trading round trips, malformed
frames, the event stream and its replay, gap recovery, graceful restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from bindings.client import CoreClient, EventSubscriber
from bursa_wire.layout import CMD_DTYPE, EV_DTYPE
from engine.wire import commands
from engine.wire.frames import STATUS_APPLIED, STATUS_DUPLICATE, STATUS_REJECTED
from pyx.enums import CmdKind, EvKind, Reason, Side, Tif
from tests.e2e.coreproc import REPO, CoreProcess, run_replay, running_core

BASE, QUOTE, SYMBOL = 1, 2, 1
USERS = (11, 12, 13)


@pytest.fixture
def core(tmp_path) -> Iterator[CoreProcess]:
    with running_core(tmp_path) as proc:
        yield proc


def admin(core: CoreProcess, *args: str) -> tuple[int, list[dict[str, Any]]]:
    """Run `bursa admin --endpoint <core> ...`; returns (exit status, JSON answers)."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bursa",
            "admin",
            "--endpoint",
            core.admin,
            "--fund-endpoint",
            core.fund,
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=60,
        check=False,
    )
    return out.returncode, [json.loads(line) for line in out.stdout.splitlines() if line]


def setup_market(c: CoreClient) -> None:
    """Two assets, a fee tier, a symbol and funded users, through the client."""
    cmds = np.concatenate(
        [
            commands.add_asset(BASE, 8),
            commands.add_asset(QUOTE, 2),
            commands.add_fee_tier(0, 1_000, 2_000),
            commands.add_symbol(SYMBOL, BASE, QUOTE, max_price_ticks=10**6, max_qty_lots=10**4),
            *[commands.add_user(u) for u in USERS],
            *[commands.deposit(1000 + u, u, QUOTE, 10**10) for u in USERS],
            *[commands.deposit(2000 + u, u, BASE, 10**8) for u in USERS],
        ]
    )
    rep = c.request(cmds)
    assert (rep["status"] == STATUS_APPLIED).all(), rep


def replay_all(sub: EventSubscriber, from_seq: int = 1) -> np.ndarray:
    out, nxt = [], from_seq
    for _ in range(100_000):
        frames, nxt, last = sub.replay(nxt)
        out += [f.events for f in frames]
        if nxt > last:
            break
    return np.concatenate(out) if out else np.zeros(0, EV_DTYPE)


def collect_until(sub: EventSubscriber, last_seq: int, **kw) -> np.ndarray:
    out = []
    for _ in range(2000):
        out += [f.events for f in sub.poll(timeout_ms=50, **kw)]
        if sub.next_seq > last_seq:
            return np.concatenate(out) if out else np.zeros(0, EV_DTYPE)
    raise AssertionError(f"stream stuck at {sub.next_seq}, wanted {last_seq}")


def trade_flow(c: CoreClient, n: int, first_oid: int) -> np.ndarray:
    """``n`` limit orders crossing around price 1000, sent in frames of 10."""
    rng = np.random.default_rng(first_oid)
    recs = []
    for i in range(n):
        side = Side.BUY if rng.integers(2) else Side.SELL
        price = int(1000 + rng.integers(-5, 6))
        user = USERS[int(rng.integers(len(USERS)))]
        tif = Tif.IOC if rng.integers(4) == 0 else Tif.GTC
        recs.append(
            commands.new_limit(first_oid + i, user, SYMBOL, side, price, int(rng.integers(1, 9)),
                               tif=tif)
        )  # fmt: skip
    cmds = np.concatenate(recs)
    for i in range(0, n, 10):
        c.send(cmds[i : i + 10])
    return c.drain()


def test_admin_cli_and_trading_round_trip(core, tmp_path):
    assert admin(core, "add-asset", "1", "--decimals", "8")[0] == 0
    assert admin(core, "add-asset", "2", "--decimals", "2")[0] == 0
    code, (ans,) = admin(core, "add-asset", "2")
    assert code == 1 and ans["status"] == "rejected" and ans["reason"] == "ASSET_EXISTS"
    assert admin(core, "add-fee-tier", "0", "--maker-ppm", "1000", "--taker-ppm", "2000")[0] == 0
    code, _ = admin(core, "add-symbol", "1", "1", "2", "--max-price-ticks", "1000000")
    assert code == 0
    for u in USERS:
        assert admin(core, "add-user", str(u))[0] == 0
        assert admin(core, "deposit", str(u), "2", str(10**10), "--ref", str(1000 + u))[0] == 0
        assert admin(core, "deposit", str(u), "1", str(10**8), "--ref", str(2000 + u))[0] == 0
    code, (dup,) = admin(core, "deposit", "11", "2", str(10**10), "--ref", "1011")
    assert code == 0 and dup["status"] == "duplicate"

    c = core.client()
    try:
        reps = trade_flow(c, 400, first_oid=1)
        assert len(reps) == 400
        assert set(reps["status"].tolist()) <= {STATUS_APPLIED, STATUS_REJECTED}
        assert (reps["status"] == STATUS_APPLIED).sum() > 300
        assert c.control("conservation")["ok"]
        bal = c.control("balance", user_id=11, asset_id=2)["balance"]
        assert len(bal) == 2 and bal[0] + bal[1] > 0
    finally:
        c.close()
    code, (h,) = admin(core, "state-hash")
    assert code == 0
    code, (cons,) = admin(core, "conservation")
    assert code == 0 and cons["errors"] == []
    code, (halt,) = admin(core, "halt", "1")
    assert code == 0 and halt["kind"] == "HALT_SYMBOL"
    c = core.client()
    try:
        rep = c.new_limit(9999, 11, SYMBOL, Side.BUY, 1000, 1)
        assert rep["status"] == STATUS_REJECTED and rep["reason"] == Reason.SYMBOL_NOT_TRADING
    finally:
        c.close()
    assert admin(core, "resume", "1")[0] == 0
    assert admin(core, "snapshot")[0] == 0
    code, (st,) = admin(core, "state-hash")

    # Graceful stop, restart: same state, and a from-scratch replay agrees.
    assert core.stop() == 0
    assert run_replay(core.data_dir) == st["state_hash"]
    core.start()
    assert core.ready["last_seq"] == st["last_seq"]
    code, (again,) = admin(core, "state-hash")
    assert again["state_hash"] == st["state_hash"]
    assert h["last_seq"] < st["last_seq"]


def test_malformed_frames_rejected_by_the_process(core):
    c = core.client()
    try:
        setup_market(c)
        before = c.control("state_hash")
        trade = c.clients["trade"]
        for parts in ([b"\x01" * 95], [b""], [b"\x00" * 96, b"\x00" * 96]):
            trade.send_parts(parts)
            (rep,) = trade.drain()
            assert rep["status"] == STATUS_REJECTED and rep["reason"] == Reason.MALFORMED_FRAME
        # A whole record of garbage is a command of no socket's kind: refused at the
        # socket, never sequenced.
        junk = np.frombuffer(bytes(range(96)), dtype=CMD_DTYPE).copy()
        (rep,) = c.request(junk)
        assert rep["status"] == STATUS_REJECTED and rep["reason"] == Reason.WRONG_SOCKET
        assert rep["seq"] == 0
        after = c.control("state_hash")
        assert after == before
        assert c.control("conservation")["ok"]
        assert c.control("status")["malformed"] == 3
    finally:
        c.close()


def test_replay_from_zero_equals_live_stream(core):
    c = core.client()
    live = EventSubscriber(core.pub, core.replay)
    try:
        setup_market(c)
        trade_flow(c, 300, first_oid=1)
        last = c.control("ping")["last_seq"]
        got = collect_until(live, last)
        assert np.all(np.diff(got["seq"].astype(np.int64)) >= 0)
        assert int(got["seq"][-1]) == last
        assert (got["kind"] == EvKind.TRADE).any()
        # Replay from seq 0 gives the same bytes; a fresh subscriber from 0 too.
        assert replay_all(live, 0).tobytes() == got.tobytes()
        late = EventSubscriber(core.pub, core.replay, from_seq=0)
        try:
            assert collect_until(late, last).tobytes() == got.tobytes()
        finally:
            late.close()
        # Bounded answers: max_events is honoured frame by frame.
        frames, nxt, log_last = live.replay(1, max_events=1)
        assert len(frames) == 1 and nxt <= log_last
    finally:
        live.close()
        c.close()


def test_late_subscriber_fills_the_gap(core):
    """A subscriber that joins late sees a live frame past seq 1 and fills the gap."""
    c = core.client()
    setup_market(c)  # published before the subscriber exists: it can only replay these
    sub = EventSubscriber(core.pub, core.replay, from_seq=1)
    sub.caught_up = True  # no initial catch-up: the gap shows on the first live frame
    try:
        oid = 1
        got = []
        for _ in range(500):
            trade_flow(c, 10, first_oid=oid)
            oid += 10
            got += sub.poll(timeout_ms=20, idle_replay=False)
            if got:
                break
        last = c.control("ping")["last_seq"]
        events = np.concatenate([f.events for f in got] + [collect_until(sub, last)])
        assert sub.gaps_filled >= 1
        assert events.tobytes() == replay_all(sub).tobytes()
    finally:
        sub.close()
        c.close()


def test_restart_after_kill9_keeps_acknowledged_work(core):
    c = core.client()
    try:
        setup_market(c)
        reps = trade_flow(c, 200, first_oid=1)
        last = int(reps["seq"].max())
        events_before = replay_all(EventSubscriber(core.pub, core.replay))
        h = c.control("state_hash")["state_hash"]
    finally:
        c.close()
    core.kill9()
    core.start()
    assert core.ready["last_seq"] == last
    c = core.client()
    sub = EventSubscriber(core.pub, core.replay)
    try:
        assert c.control("state_hash")["state_hash"] == h
        assert replay_all(sub).tobytes() == events_before.tobytes()
        # Deposits acknowledged before the crash are duplicates now.
        rep = c.deposit(1000 + USERS[0], USERS[0], QUOTE, 10**10)
        assert rep["status"] == STATUS_DUPLICATE and rep["kind"] == CmdKind.DEPOSIT
    finally:
        sub.close()
        c.close()


def test_corruption_inside_the_journal_stops_startup(core):
    c = core.client()
    try:
        setup_market(c)
        trade_flow(c, 50, first_oid=1)
    finally:
        c.close()
    assert core.stop() == 0
    seg = sorted(core.data_dir.glob("journal-*.seg"))[0]
    data = bytearray(seg.read_bytes())
    data[32 + 10] ^= 0x40  # a payload byte of the first batch; valid batches follow
    seg.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="JournalCorrupt"):
        core.start()
    assert core.proc is not None and core.proc.returncode == 1
