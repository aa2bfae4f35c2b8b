"""End to end: a real core, the clearing process, queries and reconcile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from bindings.client import CoreClient, RoutedClient
from clearing import queries
from clearing.db import Db
from engine.wire.commands import CmdBatch
from tests.clearing.bankflow import BankFlow, setup
from tests.clearing.clearingproc import REPO, ClearingChild, wait_ledger_at
from tests.e2e.coreproc import CoreProcess


def reconcile(db_url: str, admin: str) -> tuple[int, list[dict[str, object]]]:
    """`bursa reconcile` as a subprocess: (exit code, its JSON lines)."""
    out = subprocess.run(
        [sys.executable, "-m", "bursa", "reconcile", "--db", db_url,
         "--core-admin-endpoint", admin],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    return out.returncode, [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]


def cli(db_url: str, *args: str) -> list[dict[str, object]]:
    """`bursa clearing <query>` output as JSON rows."""
    out = subprocess.run(
        [sys.executable, "-m", "bursa", "clearing", *args, "--db", db_url],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    return [json.loads(x) for x in out.stdout.splitlines()]


def submit(client: CoreClient, cmds: list[np.ndarray]) -> None:
    """Send commands in frames and wait for their replies."""
    b = CmdBatch()
    for c in cmds:
        b.add(c)
    client.submit(b.to_array())


def test_follow_query_reconcile_and_detect_a_difference(db_url: str, tmp_path: Path) -> None:
    core = CoreProcess(tmp_path / "core", tmp_path, "async")
    ready = core.start()
    child = ClearingChild(db_url, ready["pub"], ready["replay"], tmp_path)
    try:
        admin = str(ready["admin"])
        client = RoutedClient.from_ready(ready)
        submit(client, setup(4))
        child.start()
        submit(client, BankFlow(5, 4).commands(400))
        last = int(client.control("ping")["last_seq"])
        wait_ledger_at(db_url, last)
        rc, lines = reconcile(db_url, admin)
        assert rc == 0, lines
        assert lines[-1]["differences"] == 0 and lines[-1]["checked"] == 4 * 3 * 2
        # Queries through the CLI agree with the core.
        bal = cli(db_url, "balances", "1")
        core_bal = {(r["asset"], r["account"]): [r["available"], r["held"]] for r in bal}
        for (asset, acc), v in core_bal.items():
            got = client.control("balance", user_id=1, asset_id=asset, account=acc)["balance"]
            assert got == v
        assert cli(db_url, "history", "1", "--limit", "5")
        totals = cli(db_url, "totals")
        assert all(t["sum"] == 0 for t in totals) and totals
        assert cli(db_url, "fees")
        with Db(db_url) as db:
            fills = queries.fills(db, 1, limit=1000)
            for f in fills[:3]:
                h = queries.order_history(db, 1, int(f["order_id"]))
                assert h["events"][0]["kind"] == "ACCEPTED"
            first_seq = int(db.query("SELECT MIN(seq) FROM entries")[0][0])
            early = queries.balances(db, 1, as_of_seq=first_seq + 40)
            assert early != queries.balances(db, 1)
        assert child.stop() == 0  # SIGTERM: commit and exit cleanly
        # A tampered ledger is caught: every difference printed, exit 1.
        with Db(db_url) as db:
            db.execute("UPDATE balances SET balance = balance + 1 WHERE user_id = 2 AND bucket = 0"
                       " AND asset = 2 AND account = 0")  # fmt: skip
        rc, lines = reconcile(db_url, admin)
        assert rc == 1
        kinds = [x.get("what") for x in lines[:-1]]
        assert "balance" in kinds and "ledger does not sum to zero" in kinds
    finally:
        child.cleanup()
        core.cleanup()
