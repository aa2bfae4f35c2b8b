"""The real `bursa wallet` process over a served simulated chain and a real core:
kill -9 right after the core applied a DEPOSIT (before the wallet recorded it),
random kill -9 while scanning, SIGTERM, and the operator subcommands."""

from __future__ import annotations

import json
import random
import signal
import time

import pytest

from tests.wallet.conftest import CoreHandle
from tests.wallet.simfix import BTC, utxo_cfg
from tests.wallet.walletproc import WalletProcess, bursa_wallet, write_config
from wallet.scanner import ChainRuntime, Wallet
from wallet.simchain import SimChain
from wallet.simrpc import SimRpcAdapter, SimServer
from wallet.store import Store


@pytest.fixture
def served():
    sim = SimChain(seed=21)
    srv = SimServer(sim).start()
    yield sim, srv
    srv.close()


def setup(tmp_path, core: CoreHandle, srv: SimServer, **top):
    cfg = utxo_cfg(url=srv.url, credit_confirmations=2)
    db = tmp_path / "wallet.db"
    conf = write_config(tmp_path / "wallet.toml", db, core.fund_ep, core.admin_ep, [cfg], **top)
    return cfg, db, conf


def wait_until(pred, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_kill9_between_crediting_and_recording(core, served, tmp_path):
    sim, srv = served
    cfg, db, conf = setup(tmp_path, core, srv, fault_kill_after_credits=1)
    users = (1, 2, 3, 4)
    addrs = {}
    for u in users:
        r = bursa_wallet("address", "--config", str(conf), "--chain", "sbtc", "--user", str(u))
        assert r.returncode == 0, r.stderr
        addrs[u] = json.loads(r.stdout)["address"]
    with srv.lock:
        for u in users:
            sim.send([(addrs[u], 10_000 * u)])
        sim.mine(3)
    kills = 0
    # Run k > 1 first resends the intent the previous run left (DUPLICATE, recorded),
    # then applies one new DEPOSIT in the core and is SIGKILLed before recording it.
    for k in range(1, len(users) + 1):
        conf = write_config(
            tmp_path / "wallet.toml",
            db,
            core.fund_ep,
            core.admin_ep,
            [cfg],
            fault_kill_after_credits=1 if k == 1 else 2,
        )
        proc = WalletProcess(conf, tmp_path)
        proc.start(wait=False)
        assert proc.wait_exit() == -signal.SIGKILL
        kills += 1
        st = Store(str(db))
        states = sorted(d.credit_state for d in st.deposits())
        assert states == ["credited"] * (k - 1) + ["intent"] + ["none"] * (len(users) - k)
        st.close()
        assert sum(core.balance(u, BTC)[0] for u in users) == sum(10_000 * u for u in users[:k])
    # Without the fault: every intent resolves as DUPLICATE, nothing twice.
    conf2 = write_config(tmp_path / "ok.toml", db, core.fund_ep, core.admin_ep, [cfg])
    proc = WalletProcess(conf2, tmp_path)
    proc.start()
    try:
        wait_until(lambda: all(core.balance(u, BTC)[0] == 10_000 * u for u in users))
        with srv.lock:
            sim.mine(3)
        time.sleep(0.5)  # more scans: still exactly once
    finally:
        assert proc.stop() == 0
    for u in users:
        assert core.balance(u, BTC) == (10_000 * u, 0)
    st = Store(str(db))
    assert [d.status for d in st.deposits()] == ["credited"] * 4
    assert st.counters()["sbtc.credit_duplicates"] == kills
    st.close()
    assert core.conservation_ok()


def test_random_kill9_while_scanning_then_operator_commands(core, served, tmp_path):
    sim, srv = served
    cfg, db, conf = setup(tmp_path, core, srv)
    w = Wallet(Store(str(db)), [ChainRuntime(cfg, SimRpcAdapter(srv.url, "sbtc"))], core.funding)
    addrs = {u: w.deposit_address("sbtc", u) for u in (1, 2)}
    w.store.close()
    rng = random.Random(5)
    expect = {1: 0, 2: 0}
    proc = WalletProcess(conf, tmp_path)
    for _round in range(6):
        proc.start()
        for _ in range(5):
            u = rng.choice((1, 2))
            amt = rng.randrange(1_000, 50_000)
            expect[u] += amt
            with srv.lock:
                sim.send([(addrs[u], amt)])
                sim.mine()
            time.sleep(rng.random() * 0.05)
        proc.kill9()
    with srv.lock:
        sim.mine(2)
    proc.start()
    try:
        wait_until(lambda: all(core.balance(u, BTC)[0] == expect[u] for u in (1, 2)))
        time.sleep(0.3)
    finally:
        assert proc.stop() == 0
    assert core.balance(1, BTC) == (expect[1], 0)
    assert core.balance(2, BTC) == (expect[2], 0)
    assert core.conservation_ok()
    hist = bursa_wallet("history", "--config", str(conf), "--user", "1")
    assert hist.returncode == 0
    rows = [json.loads(x) for x in hist.stdout.splitlines()]
    assert sum(r["credit_amount"] for r in rows) == expect[1]
    assert {r["status"] for r in rows} == {"credited"}

    # An incident through the process, resumed with the admin subcommand.
    with srv.lock:
        sim.reorg(3, keep=False)
    proc.start()
    try:
        wait_until(
            lambda: 'halted": true' in bursa_wallet("incidents", "--config", str(conf)).stdout
        )
    finally:
        assert proc.stop() == 0
    assert "INCIDENT" in proc.err_path.read_text()
    inc = bursa_wallet("incidents", "--config", str(conf)).stdout
    assert '"kind": "incident"' in inc and '"kind": "hold"' in inc
    r = bursa_wallet("resume", "--config", str(conf), "--chain", "sbtc", "--operator", "bob")
    assert r.returncode == 0 and json.loads(r.stdout)["resumed"] is True
    assert '"halted": false' in bursa_wallet("incidents", "--config", str(conf)).stdout
    assert core.conservation_ok()


def test_bad_config_and_bad_commands_are_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[wallet]\n[wallet.chains.x]\nkind = "nope"\nnetwork = "btc"\nxpub = "x"\n')
    r = bursa_wallet("run", "--config", str(bad))
    assert r.returncode == 2 and "bad configuration" in r.stderr
    r = bursa_wallet("history", "--db", "postgresql://nobody@127.0.0.1:1/x")
    assert r.returncode == 2 and "cannot open database" in r.stderr
    r = bursa_wallet("history", "--db", "mysql://localhost/x")
    assert r.returncode == 2 and "unsupported database URL" in r.stderr
    r = bursa_wallet("history", "--db", str(tmp_path / "w.db"))
    assert r.returncode == 2 and "--user" in r.stderr
