"""`bursa run` as a user runs it: real processes, Ctrl-C, restart, kill -9 of a child."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bindings.marketdata import MarketDataClient
from bursa.exchange.market import DEPOSITS, USERS
from tests.bursa.exchange_proc import ROOT, TEST_CONFIG, WAIT_S, Exchange

SYMBOL = 1
STREAMS = ("trades", "bbo")


def feed(ex: Exchange) -> MarketDataClient:
    """A feed client of the running market-data process."""
    md = ex.ready["children"]["marketdata"]
    return MarketDataClient(str(md["pub"]), str(md["service"]), [SYMBOL], STREAMS)


def feed_seqs(client: MarketDataClient) -> dict[tuple[int, int], int]:
    """Each stream's last sequence number."""
    return {k: st.last_seq for k, st in client.streams.items()}


def wait_trades(client: MarketDataClient, n: int) -> None:
    """Poll the feed until ``n`` trades arrived after this call."""
    seen: list[object] = []
    client.on("trades", seen.append)
    deadline = time.monotonic() + WAIT_S
    while len(seen) < n:
        assert time.monotonic() < deadline, f"{len(seen)} trades on the feed"
        client.poll(100)


def balances(ex: Exchange) -> dict[tuple[int, int], tuple[int, int]]:
    """(user, asset) -> (available, held) of the demo users, from the core."""
    with ex.core() as c:
        return {
            (u, a): tuple(int(x) for x in c.control("balance", user_id=u, asset_id=a)["balance"])  # type: ignore[misc]
            for u in USERS
            for a in DEPOSITS
        }


def traders_stats(ex: Exchange, executed: int = 1, logins: int = 1) -> dict[str, Any]:
    """The demo traders' stats file once their gateway sessions received ``executed``
    EXECUTED reports and every session logged in ``logins`` times."""
    path = ex.data_dir / "run" / "traders.json"
    deadline = time.monotonic() + WAIT_S
    while True:
        stats: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        if (
            stats.get("received", {}).get("EXECUTED", 0) >= executed
            and len(stats["logins"]) == len(USERS)
            and min(stats["logins"].values()) >= logins
        ):
            return stats
        assert time.monotonic() < deadline, stats
        time.sleep(0.2)


def key_files(ex: Exchange) -> dict[str, bytes]:
    """The demo users' private API key files (mode 0600 each)."""
    files = sorted((ex.data_dir / "gateway" / "keys").glob("user-*.key"))
    assert len(files) == len(USERS), files
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    return {f.name: f.read_bytes() for f in files}


def check_books(ex: Exchange) -> None:
    """Conservation in the core and a ledger that reconciles with it (the demo traders
    paused with SIGSTOP meanwhile: reconcile compares at one quiet seq)."""
    pids = [
        int((ex.data_dir / "run" / "logs" / f"{name}.pid").read_text())
        for name in ("traders", "payments")
        if name in ex.ready["children"]
    ]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        with ex.core() as c:
            cons = c.control("conservation")
        assert cons["ok"], cons
        rec = ex.reconcile()
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert json.loads(rec.stdout.splitlines()[-1])["differences"] == 0


def test_run_trades_stops_on_ctrl_c_and_resumes(tmp_path: Path) -> None:
    ex = Exchange(tmp_path)
    try:
        assert set(ex.ready["children"]) == {
            "core", "chain", "marketdata", "clearing", "wallet", "gateway", "api", "traders",
            "payments",
        }  # fmt: skip
        assert ex.ready["children"]["api"]["api"].startswith("http://127.0.0.1:")
        assert ex.ready["children"]["core"]["mode"] == "fsync"
        assert ex.ready["children"]["gateway"]["gateway"].startswith("tcp://127.0.0.1:")
        # The gateway reaches the core through its stream trade link (engine/streamlink.py).
        stream = ex.ready["children"]["core"]["trade_stream"]
        assert stream.startswith("unix:")
        assert ex.ready["children"]["gateway"]["config"]["core_trade_endpoint"] == stream
        assert "created the demo market" in ex.output()
        client = feed(ex)
        wait_trades(client, 20)
        bbo = client.books[SYMBOL].bbo
        assert 0 < bbo[0] < bbo[3], bbo
        # The demo flows through the gateway: the traders' sessions get execution reports.
        stats = traders_stats(ex, executed=10)
        assert stats["received"]["ACCEPTED"] > 0, stats
        keys1 = key_files(ex)
        seqs1 = feed_seqs(client)
        client.close()
        ex.wait_for("trades seen")  # the plain-text summary (no terminal)
        second = subprocess.run(
            [sys.executable, "-m", "bursa", "run", "--data-dir", str(ex.data_dir), "--for", "1"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 2 and "another bursa run" in second.stderr, second
        with urllib.request.urlopen(ex.ready["metrics"], timeout=30) as r:
            metrics = r.read().decode()
        assert 'bursa_child_up{child="core"} 1.0' in metrics
        assert 'bursa_child_restarts{child="traders"} 0.0' in metrics
        assert re.search(r"^bursa_core_seq [1-9]", metrics, re.M), metrics
        assert re.search(r"^bursa_ledger_lag \d", metrics, re.M), metrics
        seq1 = ex.wait_seq(0)
        check_books(ex)
        assert ex.stop(signal.SIGINT) == 0
    finally:
        ex.kill()
    stopped = json.loads(ex.output().split("stopped: ")[-1].splitlines()[0])
    assert all(rc == 0 for rc in stopped.values()), stopped
    assert list(stopped)[-1] == "core"  # stopped last
    assert any((ex.data_dir / "core").glob("snapshot-*"))

    # Resume without the traders: the same state, no new setup, seqs continue.
    ex2 = Exchange(tmp_path, "--no-demo")
    try:
        seq2 = int(ex2.ready["children"]["core"]["last_seq"])
        assert seq2 >= seq1
        assert "created the demo market" not in ex2.output()
        # The gateway runs without the demo too, on the same port, with the same keys.
        assert ex2.ready["children"]["gateway"]["port"] == ex.ready["children"]["gateway"]["port"]
        assert key_files(ex2) == keys1
        client = feed(ex2)
        assert all(feed_seqs(client)[k] >= s for k, s in seqs1.items())
        client.close()
        check_books(ex2)
        assert balances(ex2)
        assert ex2.stop(signal.SIGTERM) == 0
    finally:
        ex2.kill()
    # The wallet may still credit a deposit of the first run while ex2 runs (its chain keeps
    # confirming blocks): the state to resume is the journal's at ex2's stop.
    replay = subprocess.run(
        [sys.executable, "-m", "bursa", "replay", "--json", str(ex2.data_dir / "core")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    final = json.loads(replay.stdout.strip().splitlines()[-1])
    assert final["last_seq"] >= seq2 and final["conservation"] == "ok", final

    ex3 = Exchange(tmp_path, "--no-demo")
    try:
        assert int(ex3.ready["children"]["core"]["last_seq"]) == final["last_seq"]
        with ex3.core() as c:  # the hash covers every balance, order and book
            assert c.control("state_hash")["state_hash"] == final["state_hash"]
        assert ex3.stop() == 0
    finally:
        ex3.kill()

    # --fresh starts over.
    ex4 = Exchange(tmp_path, "--no-demo", "--fresh")
    try:
        assert "created the demo market" in ex4.output()
        assert ex4.core_seq() < seq2
        assert ex4.stop() == 0
    finally:
        ex4.kill()


def kill_child_and_check(tmp_path: Path, victim: str) -> None:
    """kill -9 one child; the supervisor restarts it and nothing is lost."""
    ex = Exchange(tmp_path)
    try:
        client = feed(ex)
        wait_trades(client, 5)
        before = ex.wait_seq(0)
        seqs_before = feed_seqs(client)
        pid = int((ex.data_dir / "run" / "logs" / f"{victim}.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        ex.wait_for(f"{victim} restarted")
        after = ex.wait_seq(before + 200)  # the traders trade again
        assert after > before
        if victim == "gateway":  # the same traders' sessions logged in again (with replay)
            traders_stats(ex, logins=2)
            assert "traders restarted" not in ex.output()
        if victim == "marketdata":
            client.close()
            client = feed(ex)
        wait_trades(client, 5)  # the feed continues
        assert all(feed_seqs(client)[k] > s for k, s in seqs_before.items())
        client.close()
        check_books(ex)
        ex.wait_for(f"{victim}=running/1")  # the summary counts the restart
        assert ex.stop() == 0
    finally:
        ex.kill()


def test_kill_9_of_the_core_is_restored(tmp_path: Path) -> None:
    kill_child_and_check(tmp_path, "core")


def test_kill_9_of_the_gateway_is_restored(tmp_path: Path) -> None:
    kill_child_and_check(tmp_path, "gateway")


def test_kill_9_of_a_random_child_is_restored(tmp_path: Path) -> None:
    victim = random.choice(
        ["chain", "marketdata", "clearing", "wallet", "api", "traders", "payments"]
    )
    print(f"killing {victim}")
    kill_child_and_check(tmp_path, victim)


def test_dashboard_in_a_real_terminal(tmp_path: Path) -> None:
    """`bursa run` in a headless tmux terminal shows the rich dashboard, not summary lines:
    book, trades, processes, latency, fdatasync, ledger lag, hot wallet, alerts."""
    cfg = tmp_path / "bursa.toml"
    cfg.write_text(TEST_CONFIG)
    session = f"bursa-test-{os.getpid()}"
    # A tmux server of our own (not one another process started, with its environment);
    # the size comes from the terminal, not from inherited COLUMNS/LINES.
    tmux = ["tmux", "-L", session]
    cmd = (
        f"cd {ROOT} && unset COLUMNS LINES && PYTHONPATH={ROOT} {sys.executable} -m bursa run "
        f"--config {cfg} --data-dir {tmp_path / 'data'} --for 600; sleep 600"
    )
    subprocess.run([*tmux, "new-session", "-d", "-s", session, "-x", "150", "-y", "50", cmd])

    def capture(*extra: str) -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", *extra, "-t", session], capture_output=True, text=True
        ).stdout

    def wait_screen(*patterns: str) -> str:
        deadline = time.monotonic() + WAIT_S
        screen = ""
        while time.monotonic() < deadline:
            screen = capture()
            if all(re.search(p, screen) for p in patterns):
                return screen
            time.sleep(0.5)
        missing = [p for p in patterns if not re.search(p, screen)]
        raise AssertionError(f"{missing} not on the screen:\n{screen}")

    try:
        screen = wait_screen(
            r"trades seen\s+[1-9]",
            r"BTC/USDT book",
            r"│\s+0\.\d{4} │\s+\d\d,\d{3}\.\d\d │",  # a bid level: qty, price
            r"trades \([1-9][\d,]* seen\)",
            r"ack latency p99\s+│\s+≤ \d+\.\d\d ms",
            r"fdatasync mean\s+│\s+\d+\.\d\d ms",
            r"ledger lag\s+│\s+\d",
            r"hot wallet \(hot\)\s+│\s+4\.99\d+ BTC",  # funded 5 BTC, one withdrawal paid
            r"withdrawals done\s+│\s+1",
        )
        assert "bursa run - up" in screen, screen
        assert "best bid" in screen and "recent alerts" in screen, screen
        for name in ("core", "marketdata", "clearing", "wallet", "chain", "traders", "payments"):
            assert re.search(rf"{name}\s+│\s+running", screen), screen
        assert "trades seen 0 |" not in screen  # no plain summary line on a terminal
        # A crash is an alert on the dashboard.
        pid = int((tmp_path / "data" / "run" / "logs" / "traders.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_screen(r"traders exited with status -9")
        subprocess.run([*tmux, "send-keys", "-t", session, "C-c"])
        deadline = time.monotonic() + WAIT_S
        while "stopped:" not in screen and time.monotonic() < deadline:
            time.sleep(0.5)
            screen = capture("-S", "-200")
        assert '"core": 0' in screen, screen
    finally:
        subprocess.run([*tmux, "kill-server"])
