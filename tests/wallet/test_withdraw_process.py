"""The real `bursa wallet run` process withdrawing over a served simulated chain and a
real core, SIGKILLed right after each external effect of a withdrawal (the core's hold,
the broadcast, the core's commit) before recording it, then restarted: each
withdrawal completes, pays exactly once, and the core's balances and conservation hold.
Operator commands (withdraw, kyc, whitelist, review, treasury) run as subprocesses."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from embit import ec

from tests.wallet.conftest import ROOT, CoreHandle
from tests.wallet.simfix import BTC, utxo_cfg
from tests.wallet.walletproc import WalletProcess, bursa_wallet, cli, state_of, write_config
from wallet import custody
from wallet.keys import KeyFile, write_key_file
from wallet.simchain import SimChain
from wallet.simrpc import SimServer
from wallet.store import Store

NET = "btc-regtest"
HOT = ec.PrivateKey(ROOT.derive("m/84h/1h/5h/0/0").key.secret)
MS = [ec.PrivateKey(ROOT.derive(f"m/48h/1h/5h/2h/0/{i}").key.secret) for i in range(3)]
PASS = "process test passphrase"
DEPOSIT = 10**8


def dest(i: int) -> str:
    pub = ROOT.derive(f"m/84h/1h/6h/0/{i}").key.get_public_key().sec().hex()
    return custody.Source(NET, (pub,)).address()


@pytest.fixture
def served():
    sim = SimChain(seed=33, network=NET)
    srv = SimServer(sim).start()
    yield sim, srv
    srv.close()


def config(tmp_path: Path, core: CoreHandle, srv: SimServer, **top: object) -> tuple[Path, Path]:
    db = tmp_path / "wallet.db"
    key = tmp_path / "hot.key"
    if not key.exists():
        write_key_file(key, KeyFile(HOT, NET), PASS)
    conf = write_config(
        tmp_path / "wallet.toml", db, core.fund_ep, core.admin_ep, [utxo_cfg(url=srv.url)], **top
    )
    pubs = ", ".join(json.dumps(k.get_public_key().sec().hex()) for k in MS)
    conf.write_text(
        conf.read_text()
        + "[wallet.withdraw.sbtc]\n"
        + f"asset_id = {BTC}\nnetwork = {json.dumps(NET)}\n"
        + f"hot_pubkey = {json.dumps(HOT.get_public_key().sec().hex())}\n"
        + f"hot_key_file = {json.dumps(str(key))}\n"
        + f"multisig_pubkeys = [{pubs}]\nmultisig_m = 2\n"
        + "fee = 1000\nconfirmations = 2\nhot_max_tx = 1000000\nhot_daily = 10000000\n"
        + "[wallet.risk]\nwhitelist_delay_s = 0\ntier_limits = { 1 = 100000000 }\n"
    )
    return conf, db


def drive(
    sim: SimChain, srv: SimServer, db: Path, ref: str, want: str, timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    while state_of(db, ref) != want:
        assert time.monotonic() < deadline, f"{ref}: stuck in {state_of(db, ref)}"
        with srv.lock:
            sim.mine()
        time.sleep(0.2)


def test_kill9_at_each_withdrawal_step(
    core: CoreHandle, served, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("BURSA_KEY_PASSPHRASE", PASS)
    sim, srv = served
    conf, db = config(tmp_path, core, srv)
    hot = custody.Source(NET, (HOT.get_public_key().sec().hex(),)).address()
    with srv.lock:
        for _ in range(3):
            sim.send([(hot, 1_000_000)])
        sim.mine()
    assert core.funding.deposit(5, 1, BTC, DEPOSIT, 1)[0] == 1
    cli(conf, "kyc", "--user", "1", "--tier", "1")
    cli(conf, "whitelist", "--user", "1", "--chain", "sbtc", "--address", dest(0))
    points = ("after_hold", "after_broadcast", "after_commit")
    for n, point in enumerate(points):
        ref = f"k{n}"
        (row,) = cli(conf, "withdraw", "--client-ref", ref, "--user", "1", "--chain", "sbtc",
                     "--address", dest(0), "--amount", "100000")  # fmt: skip
        assert row["state"] == "requested"
        conf_k, _ = config(tmp_path, core, srv, fault_kill_at=point)
        proc = WalletProcess(conf_k, tmp_path)
        proc.start(wait=False)
        deadline = time.monotonic() + 90
        while proc.proc is not None and proc.proc.poll() is None:
            assert time.monotonic() < deadline, f"no kill at {point}"
            with srv.lock:
                sim.mine()
            time.sleep(0.2)
        assert proc.wait_exit() == -signal.SIGKILL
        conf, _ = config(tmp_path, core, srv)
        ok = WalletProcess(conf, tmp_path)
        ok.start()
        try:
            drive(sim, srv, db, ref, "committed")
        finally:
            assert ok.stop() == 0
    assert sim.balance(dest(0)) == 3 * 100_000
    assert core.balance(1, BTC) == (DEPOSIT - 3 * 101_000, 0)
    assert core.conservation_ok()
    rows = cli(conf, "withdrawals", "--user", "1")
    assert [r["state"] for r in rows] == ["committed"] * 3
    st = Store(str(db))
    n_tx = st.db.execute("SELECT COUNT(*) FROM withdrawal_txs").fetchone()[0]
    st.close()
    assert n_tx == 3  # one transaction each: the restarts re-sent, never re-signed
    # a review round trip through the CLI: a non-whitelisted address, user 2
    assert core.funding.deposit(6, 2, BTC, DEPOSIT, 1)[0] == 1
    cli(conf, "kyc", "--user", "2", "--tier", "1")
    cli(conf, "withdraw", "--client-ref", "rv", "--user", "2", "--chain", "sbtc",
        "--address", dest(1), "--amount", "50000")  # fmt: skip
    ok = WalletProcess(conf, tmp_path)
    ok.start()
    ready = json.loads(ok.out_path.read_text().splitlines()[0])
    assert ready["ready"] and ready["withdrawals"] == ["sbtc"]
    try:
        drive(sim, srv, db, "rv", "review")
        (queued,) = cli(conf, "review", "list")
        bad = bursa_wallet("review", "approve", "--config", str(conf), "--wid", str(queued["wid"]))
        assert bad.returncode == 2 and "--operator" in bad.stderr
        cli(conf, "review", "reject", "--wid", str(queued["wid"]), "--operator", "carol",
            "--reason", "unknown destination")  # fmt: skip
        drive(sim, srv, db, "rv", "released")
    finally:
        assert ok.stop() == 0
    assert core.balance(2, BTC) == (DEPOSIT, 0)
    (rv,) = cli(conf, "withdrawals", "--user", "2")
    assert (rv["reviewer"], rv["review_reason"]) == ("carol", "unknown destination")
    assert rv["reviewed_ns"] > 0 and "not_whitelisted" in str(rv["rules"])
    (rep,) = cli(conf, "treasury")
    assert rep["hot"] + rep["cold"] == 3_000_000 - 300_000 - sum(
        f for (f,) in Store(str(db)).db.execute("SELECT fee FROM withdrawal_txs")
    )
