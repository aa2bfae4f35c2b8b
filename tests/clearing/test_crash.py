"""Crash test in the style of Jepsen's bank workload, on both backends.

A real core takes a random flow of orders, deposits (some duplicates),
withdrawals and transfers while the clearing process is killed -9 at random
points (during catch-up, mid-batch, during start-up), and on PostgreSQL the
database server is crash-restarted under the running process.  Afterwards:

- reconcile finds zero differences (every balance of every user, conservation);
- per asset, the ledger's supply equals what the client itself counted
  (applied deposits - committed withdrawals) and users + fees equal it;
- the stored entries are exactly those of a clean replay of the core's whole
  event log into an empty ledger: none doubled, none missing, same balances after.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest

from bindings.client import EventSubscriber, RoutedClient
from clearing import queries
from clearing.db import Db
from clearing.ledger import Ledger
from clearing.pgtmp import PgCluster
from engine.wire.commands import CmdBatch, ReplyStatus
from pyx.enums import CmdKind
from tests.clearing.bankflow import BankFlow, setup
from tests.clearing.clearingproc import ClearingChild, wait_ledger_at
from tests.clearing.test_process import reconcile
from tests.e2e.coreproc import CoreProcess

KILLS = 22
PG_RESTART_ROUNDS = (5, 11, 17)
N_USERS = 6

ENTRY_SQL = (
    "SELECT seq, ev_idx, line, cause, user_id, account, bucket, asset, amount, balance_after,"
    " order_id, match_id, ref FROM entries ORDER BY seq, ev_idx, line"
)


class Supply:
    """The client's own count of each asset's supply, from commands and replies."""

    def __init__(self) -> None:
        self.net: dict[int, int] = {}
        self.wd: dict[int, tuple[int, int]] = {}

    def account(self, cmds: np.ndarray, replies: np.ndarray) -> None:
        """Count the applied deposits and committed withdrawals."""
        assert len(cmds) == len(replies)
        for c, r in zip(cmds, replies, strict=True):
            if int(r["status"]) != ReplyStatus.APPLIED:
                continue
            k, asset, amt = int(c["kind"]), int(c["symbol_id"]), int(c["qty_lots"])
            if k == CmdKind.DEPOSIT:
                self.net[asset] = self.net.get(asset, 0) + amt
            elif k == CmdKind.WITHDRAW_HOLD:
                self.wd[int(c["order_id"])] = (asset, amt)
            elif k == CmdKind.WITHDRAW_COMMIT:
                a, amt = self.wd[int(c["order_id"])]
                self.net[a] -= amt


def _frames(cmds: list[np.ndarray], rng: random.Random) -> list[np.ndarray]:
    out = []
    i = 0
    while i < len(cmds):
        n = rng.randint(1, 40)
        b = CmdBatch()
        for c in cmds[i : i + n]:
            b.add(c)
        out.append(b.to_array())
        i += n
    return out


def _rebuild(pub: str, replay: str, last_seq: int) -> list[tuple[object, ...]]:
    """Entries of a clean replay of the core's whole log into an empty ledger."""
    with Db(":memory:") as db, EventSubscriber(pub, replay, from_seq=1) as sub:
        led = Ledger(db)
        while led.last_seq < last_seq:
            for f in sub.poll(timeout_ms=200):
                led.apply_frame(f.first_seq, f.last_seq, f.events)
        led.flush()
        return [
            tuple(int(x) if not isinstance(x, str) else x for x in r) for r in db.query(ENTRY_SQL)
        ]


@pytest.mark.slow
def test_bank_workload_with_kill9_and_database_restarts(
    db_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    postgres = db_url.startswith("postgresql")
    cluster: PgCluster | None = request.getfixturevalue("pg_cluster") if postgres else None
    rng = random.Random(20261205)
    core = CoreProcess(tmp_path / "core", tmp_path, "async")
    ready = core.start()
    child = ClearingChild(db_url, ready["pub"], ready["replay"], tmp_path)
    supply = Supply()
    try:
        client = RoutedClient.from_ready(ready)
        admin = str(ready["admin"])
        for fr in _frames(setup(N_USERS), rng):
            supply.account(fr, client.request(fr))
        child.start()
        flow = BankFlow(rng.randrange(2**32), N_USERS)
        restarts_before = cluster.restarts if cluster else 0
        kills = 0
        for rnd in range(KILLS):
            frames = _frames(flow.commands(rng.randint(50, 300)), rng)
            for fr in frames:
                client.send(fr)
            time.sleep(rng.uniform(0.0, 0.25))
            replies = None
            if cluster is not None and rnd in PG_RESTART_ROUNDS:
                child.wait_ready()
                cluster.restart()  # under the running process: it must reconnect
                more = _frames(flow.commands(20), rng)  # so that it has to write
                for fr in more:
                    client.send(fr)
                frames += more
                replies = client.drain()
                # Only a process that reconnected reaches the core's seq.
                wait_ledger_at(db_url, int(client.control("ping")["last_seq"]))
                assert child.proc is not None and child.proc.poll() is None
            child.kill9()
            kills += 1
            if replies is None:
                replies = client.drain()
            supply.account(np.concatenate(frames), replies)
            # Half the time the next kill may land during start-up.
            child.start(wait=rng.random() < 0.5)
        child.cleanup()
        child.start()
        last = int(client.control("ping")["last_seq"])
        wait_ledger_at(db_url, last)
        child.stop()
        assert kills >= 20
        if cluster is not None:
            assert cluster.restarts - restarts_before >= 3
            logs = [p.read_text() for p in tmp_path.glob("clearing-*.err")]
            assert sum("connection lost" in t for t in logs) >= 3

        rc, lines = reconcile(db_url, admin)
        assert rc == 0, lines
        assert lines[-1]["differences"] == 0
        with Db(db_url) as db:
            totals = {t["asset"]: t for t in queries.totals(db)}
            for asset, net in supply.net.items():
                t = totals[asset]
                assert t["supply"] == net, (asset, t, net)
                assert t["available"] + t["held"] + t["fee"] == net
                assert t["sum"] == 0
            stored = [tuple(int(x) if not isinstance(x, str) else x for x in r)
                      for r in db.query(ENTRY_SQL)]  # fmt: skip
        assert stored == _rebuild(ready["pub"], ready["replay"], last)
    finally:
        child.cleanup()
        core.cleanup()
