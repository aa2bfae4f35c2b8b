"""The review workflow through `bursa admin withdrawals` (the real command, a subprocess)
on the simulated chain against a real core, and API key events read from the gateway's
key database raising the risk score (the security_change rule)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.keys import KeyStore, connect
from tests.e2e.coreproc import REPO
from tests.wallet.conftest import CoreHandle
from tests.wallet.simfix import utxo_cfg
from tests.wallet.test_withdrawals import BTC, DEPOSIT, DEST, HOT, NET, World
from tests.wallet.walletproc import write_config
from wallet import custody, keyevents

HOUR = 3600 * 10**9


def admin(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`bursa admin withdrawals ARGS --config CONF` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "bursa", "admin", "withdrawals", *args, "--config", str(conf)],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip


def lines(r: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.splitlines() if x.strip()]


def config(tmp_path: Path, core: CoreHandle, db: Path) -> Path:
    """A wallet config over the test's database (the node URL is never contacted)."""
    conf = write_config(
        tmp_path / "wallet.toml", db, core.fund_ep, core.admin_ep,
        [utxo_cfg(url="http://127.0.0.1:9")],
    )  # fmt: skip
    conf.write_text(
        conf.read_text()
        + f'[wallet.withdraw.sbtc]\nasset_id = {BTC}\nnetwork = "{NET}"\n'
        + f'hot_pubkey = "{HOT.get_public_key().sec().hex()}"\n'
    )
    return conf


def test_review_through_bursa_admin(core: CoreHandle, tmp_path: Path) -> None:
    world = World(core, tmp_path / "w.db")
    conf = config(tmp_path, core, tmp_path / "w.db")
    fresh = custody.Source(NET, (world.cfg.multisig.pubkeys[0],)).address()  # type: ignore[union-attr]
    a = world.w.request("ra", 1, "sbtc", fresh, 40_000)  # not whitelisted: review
    b = world.w.request("rb", 1, "sbtc", fresh, 30_000)
    world.w.step()
    queue = lines(admin(conf, "list"))
    assert sorted(q["wid"] for q in queue) == sorted([a.wid, b.wid])
    assert all(q["state"] == "review" and "not_whitelisted" in q["rules"] for q in queue)
    # refused without a reviewer or a reason, or for an unknown id: exit 2, nothing changes
    for bad in (
        ("approve", "--wid", str(a.wid), "--reason", "ok"),
        ("approve", "--wid", str(a.wid), "--reviewer", "alice"),
        ("approve", "--wid", "12345", "--reviewer", "alice", "--reason", "ok"),
        ("approve", "--reviewer", "alice", "--reason", "ok"),
    ):
        r = admin(conf, *bad)
        assert r.returncode == 2 and r.stdout == "", (bad, r.stderr)
    assert {w.state for w in world.w.query()} == {"review"}
    t0 = time.time_ns()
    (ok,) = lines(admin(conf, "approve", "--wid", str(a.wid), "--reviewer", "alice",
                        "--reason", "called the user"))  # fmt: skip
    assert (ok["state"], ok["reviewer"], ok["review_reason"]) == (
        "approved", "alice", "called the user"
    )  # fmt: skip
    assert t0 <= ok["reviewed_ns"] <= time.time_ns()  # the CLI's own clock: when it was decided
    (no,) = lines(admin(conf, "reject", "--wid", str(b.wid), "--reviewer", "bob",
                        "--reason", "user did not confirm"))  # fmt: skip
    assert no["state"] == "rejected" and no["reviewer"] == "bob"
    # a decided withdrawal cannot be decided again
    again = admin(conf, "reject", "--wid", str(a.wid), "--reviewer", "bob", "--reason", "x")
    assert again.returncode == 2 and "not in review" in again.stderr
    world.run()
    (shown,) = lines(admin(conf, "show", "--wid", str(a.wid)))
    states = [s["state"] for s in shown["steps"]]
    assert states == ["requested", "held", "review", "approved", "signed", "broadcast",
                      "committed"]  # fmt: skip
    decided = shown["steps"][3]
    assert decided["detail"] == {"reviewer": "alice", "reason": "called the user"}
    assert abs(decided["ts_ns"] - shown["reviewed_ns"]) < 10**9 and len(shown["attempts"]) == 1
    b2 = world.w.get(b.wid)
    assert b2 is not None and b2.state == "released"
    assert world.paid(fresh) == 40_000
    assert core.balance(1, BTC) == (DEPOSIT - 41_000, 0)
    assert core.conservation_ok()
    assert lines(admin(conf, "list")) == []
    assert len(lines(admin(conf, "list", "--state", "all"))) == 2


def test_wallet_review_is_an_alias(core: CoreHandle, tmp_path: Path) -> None:
    from tests.wallet.walletproc import bursa_wallet

    world = World(core, tmp_path / "w.db")
    conf = config(tmp_path, core, tmp_path / "w.db")
    fresh = custody.Source(NET, (world.cfg.multisig.pubkeys[1],)).address()  # type: ignore[union-attr]
    a = world.w.request("al", 2, "sbtc", fresh, 40_000)
    world.w.step()
    r = bursa_wallet("review", "approve", "--wid", str(a.wid), "--config", str(conf))
    assert r.returncode == 2 and "--operator" in r.stderr
    r = bursa_wallet("review", "approve", "--wid", str(a.wid), "--operator", "carol",
                     "--reason", "verified", "--config", str(conf))  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = world.w.get(a.wid)
    assert got is not None and (got.state, got.reviewer) == ("approved", "carol")


def gateway_db(tmp_path: Path) -> tuple[Path, KeyStore]:
    path = tmp_path / "gateway" / "gateway.db"
    return path, KeyStore(connect(path))


def test_api_key_events_from_the_gateway_raise_the_score(core: CoreHandle, tmp_path: Path) -> None:
    path, keys = gateway_db(tmp_path)
    world = World(core, tmp_path / "w.db")
    world.rules = dataclasses.replace(world.rules, gateway_db=str(path))
    world.w = world.open()
    now = world.clock.now_ns()
    old, _ = keys.create(1)  # user 1: a key made long ago, revoked 3 hours ago
    new, _ = keys.create(2)  # user 2: a key made an hour ago
    keys.create(3)  # user 3: a key made three days ago, never revoked
    con = keys.con
    con.execute("UPDATE api_keys SET created_ns = ?, revoked_ns = ? WHERE key_id = ?",
                (now - 30 * 24 * HOUR, now - 3 * HOUR, old.key_id))  # fmt: skip
    con.execute("UPDATE api_keys SET created_ns = ? WHERE key_id = ?", (now - HOUR, new.key_id))
    con.execute("UPDATE api_keys SET created_ns = ? WHERE user_id = 3", (now - 72 * HOUR,))
    assert keyevents.last_key_change_ns(str(path), 1) == now - 3 * HOUR
    assert keyevents.last_key_change_ns(str(path), 9) is None
    ws = [world.w.request(f"k{u}", u, "sbtc", DEST[0], 40_000) for u in (1, 2, 3)]
    world.w.step()
    got = [world.w.get(w.wid) for w in ws]
    assert [g.state for g in got if g] == ["review", "review", "broadcast"]
    for g in got[:2]:
        assert g is not None and "security_change" in g.rules.split(",") and g.score > 30
    third = got[2]
    assert third is not None and "security_change" not in third.rules.split(",")
    assert third.score <= 30
    # read-only: the wallet changed nothing in the gateway's database
    assert [k.revoked for k in keys.list()] == [True, False, False]


def test_unreadable_gateway_db_holds_the_withdrawal(core: CoreHandle, tmp_path: Path) -> None:
    world = World(core, tmp_path / "w.db")
    missing = tmp_path / "nowhere" / "gateway.db"
    world.rules = dataclasses.replace(world.rules, gateway_db=str(missing))
    world.w = world.open()
    w = world.w.request("m1", 3, "sbtc", DEST[0], 40_000)
    world.w.step()
    got = world.w.get(w.wid)
    assert got is not None and got.state == "held" and "risk input unavailable" in got.error
    assert not missing.exists()  # never created by the reader
    assert world.w.store.counters()["wallet.risk_input_unavailable"] >= 1
    world.rules = dataclasses.replace(world.rules, gateway_db="")
    world.w = world.open()
    world.run()
    done = world.w.get(w.wid)
    assert done is not None and done.state == "committed"
    assert core.conservation_ok()


@pytest.mark.parametrize("revoked", [False, True])
def test_key_events_window_boundary(tmp_path: Path, revoked: bool) -> None:
    path, keys = gateway_db(tmp_path)
    k, _ = keys.create(5)
    keys.con.execute("UPDATE api_keys SET created_ns = 100 WHERE key_id = ?", (k.key_id,))
    if revoked:
        keys.revoke(k.key_id)
        keys.con.execute("UPDATE api_keys SET revoked_ns = 500 WHERE key_id = ?", (k.key_id,))
    assert keyevents.last_key_change_ns(str(path), 5) == (500 if revoked else 100)


def test_admin_withdrawals_without_a_withdraw_config_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "none.db"
    r = subprocess.run(
        [sys.executable, "-m", "bursa", "admin", "withdrawals", "list", "--db", str(db)],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert r.returncode == 2 and "withdrawals are off" in r.stderr and r.stdout == ""
    assert not db.exists()
