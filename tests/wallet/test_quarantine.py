"""Quarantined coins: outputs received from a reorged / invalidated transaction or from
a blacklisted source are never spent by withdrawals or sweeps until an operator
releases them (who, when, why). Simulated chain, real core."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.wallet.conftest import ROOT, XPUB_BIP84, CoreHandle
from tests.wallet.simfix import make_wallet, utxo_cfg
from tests.wallet.test_review_admin import config
from tests.wallet.test_withdrawals import DEST, NET, World
from tests.wallet.walletproc import bursa_wallet
from wallet import custody, signer
from wallet.keys import KeyFile
from wallet.withdrawals import RequestError, Withdrawals

ATTACKER = custody.Source(
    NET, (ROOT.derive("m/84h/1h/66h/0/0").key.get_public_key().sec().hex(),)
).address()


def inputs_of(w: Withdrawals, wid: int) -> set[str]:
    rows = w.store.db.execute("SELECT outpoint FROM spent_outpoints WHERE wid = ?", (wid,))
    return {str(r[0]) for r in rows}


def test_hot_coin_from_a_blacklisted_source(core: CoreHandle, tmp_path: Path) -> None:
    world = World(core, tmp_path / "w.db")
    world.w.blacklist("sbtc", ATTACKER)
    t0 = world.sim.send([(ATTACKER, 6_000_000)])
    world.sim.mine()
    t1 = world.sim.send([(world.cfg.hot.address(), 5_000_000)], spends=[f"{t0}:0"])
    world.sim.mine()
    tainted = f"{t1}:0"
    a = world.w.request("q1", 1, "sbtc", DEST[0], 900_000)
    world.run()
    got = world.w.get(a.wid)
    assert got is not None and got.state == "committed"
    # largest-first selection would have taken the 5M coin: it is quarantined
    assert tainted not in inputs_of(world.w, a.wid)
    (q,) = world.w.quarantine_rows("sbtc")
    assert (q["outpoint"], q["amount"], q["released_ns"]) == (tainted, 5_000_000, 0)
    assert ATTACKER.lower() in q["reason"]
    alerts = [e for e in world.w.store.events("sbtc") if e.get("what") == "coin quarantined"]
    assert len(alerts) == 1  # once, not every poll
    # release needs who and why; then the coin is spendable again
    for who, why in (("", "checked"), ("alice", "")):
        try:
            world.w.release_coin("sbtc", tainted, who, why)
        except RequestError:
            pass
        else:
            raise AssertionError("a release without operator and reason was accepted")
    world.w.release_coin("sbtc", tainted, "alice", "source cleared by compliance")
    try:
        world.w.release_coin("sbtc", tainted, "alice", "again")
        raise AssertionError("released twice")
    except RequestError:
        pass
    b = world.w.request("q2", 1, "sbtc", DEST[0], 900_000)
    world.run()
    assert tainted in inputs_of(world.w, b.wid)  # released: not quarantined again
    (q,) = world.w.quarantine_rows("sbtc")
    assert q["released_by"] == "alice" and q["released_ns"] > 0
    assert world.paid(DEST[0]) == 1_800_000 and core.conservation_ok()


def test_hot_coin_whose_transaction_left_the_chain(core: CoreHandle, tmp_path: Path) -> None:
    world = World(core, tmp_path / "w.db")
    t = world.sim.send([(world.cfg.hot.address(), 7_000_000)])
    world.sim.mine()
    world.w.step()  # the wallet knows the coin
    world.sim.reorg(1, keep=False)  # its transaction vanishes
    world.w.step()
    world.sim.mine_on(world.sim.best[-1], [t])  # and comes back
    a = world.w.request("r1", 1, "sbtc", DEST[1], 900_000)
    world.run()
    got = world.w.get(a.wid)
    assert got is not None and got.state == "committed"
    assert f"{t}:0" not in inputs_of(world.w, a.wid)
    assert world.w.quarantined("sbtc") == {f"{t}:0"}
    assert not world.w.halted("sbtc")  # a vanished incoming coin is not an outflow


def test_deposit_sweeps_skip_reversed_and_blacklisted_deposits(
    core: CoreHandle, tmp_path: Path
) -> None:
    db = tmp_path / "w.db"
    world = World(core, db, deposit_sweep_threshold=100_000, deposit_xpub=XPUB_BIP84)
    scan = make_wallet(db, core, [(utxo_cfg(), world.sim)])
    a, b, c = (scan.deposit_address("sbtc", u) for u in (1, 2, 3))
    world.w.blacklist("sbtc", ATTACKER)
    t0 = world.sim.send([(ATTACKER, 1_000_000)])
    world.sim.mine()
    tb = world.sim.send([(b, 200_000)], spends=[f"{t0}:0"])  # from a blacklisted source
    for _ in range(4):
        world.sim.mine()
        scan.step_all()
    ta = world.sim.send([(a, 150_000)])
    for _ in range(3):
        world.sim.mine()
        scan.step_all()
    assert {d.txid: d.status for d in scan.store.deposits()} == {ta: "credited", tb: "credited"}
    world.sim.reorg(3, 4, txids=[ta])  # credited, then reorged (and mined again)
    scan.step_all()
    assert scan.store.deposit("sbtc", ta, "utxo", 0).status == "reversed"  # type: ignore[union-attr]
    tc = world.sim.send([(c, 300_000)])
    world.sim.mine()
    world.w.step()
    assert world.w.quarantined("sbtc") == {f"{ta}:0", f"{tb}:0"}
    (sw,) = world.w.query("custody = 'deposit-sweep'")
    assert inputs_of(world.w, sw.wid) == {f"{tc}:0"}
    account = ROOT.derive("m/84h/1h/0h")
    kf = KeyFile(account.key, NET, xprv=account.to_base58(), sweep_to=(world.cfg.hot.address(),))
    world.w.add_signatures(sw.wid, signer.sign(sw.psbt, kf, tmp_path / "l"))
    world.run()
    done = world.w.get(sw.wid)
    assert done is not None and done.state == "committed"
    assert world.sim.balance(a) == 150_000 and world.sim.balance(b) == 200_000
    # the operator releases the reorged deposit through the CLI: the next sweep takes it
    conf = config(tmp_path, core, db)
    listed = bursa_wallet("quarantine", "--config", str(conf))
    assert listed.returncode == 0 and f"{ta}:0" in listed.stdout, listed.stderr
    bad = bursa_wallet("release-coin", "--chain", "sbtc", "--outpoint", f"{ta}:0",
                       "--operator", "bob", "--config", str(conf))  # fmt: skip
    assert bad.returncode == 2 and "--reason" in bad.stderr
    why = "re-mined, user made whole"
    ok = bursa_wallet("release-coin", "--chain", "sbtc", "--outpoint", f"{ta}:0", "--operator",
                      "bob", "--reason", why, "--config", str(conf))  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    world.clock.advance(10**9)
    world.w.step()
    sw2 = [s for s in world.w.query("custody = 'deposit-sweep'") if s.wid != sw.wid]
    assert len(sw2) == 1 and inputs_of(world.w, sw2[0].wid) == {f"{ta}:0"}
    assert world.w.quarantined("sbtc") == {f"{tb}:0"}


def test_own_change_back_after_a_reorg_is_not_quarantined(core: CoreHandle, tmp_path: Path) -> None:
    world = World(core, tmp_path / "w.db")
    a = world.w.request("c1", 1, "sbtc", DEST[2], 500_000)
    world.run()
    got = world.w.get(a.wid)
    assert got is not None and got.state == "committed"
    change = f"{got.txid}:1"
    assert change in {op for op, _ in world.sim.unspent(world.cfg.hot.address())}
    world.w.step()  # the wallet knows the change coin
    world.sim.reorg(world.cfg.confirmations + 1)  # the withdrawal's block leaves, then returns
    world.w.step()
    world.run()
    assert world.w.quarantined("sbtc") == set()
    assert not world.w.halted("sbtc") and world.paid(DEST[2]) == 500_000


def test_unreadable_sources_never_block_withdrawals(
    core: CoreHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(core, tmp_path / "w.db")

    def broken(txid: str) -> list[str]:
        raise RuntimeError("no -txindex")

    monkeypatch.setattr(world.sim, "sources", broken)
    world.sim.send([(world.cfg.hot.address(), 3_000_000)])
    world.sim.mine()
    a = world.w.request("u1", 1, "sbtc", DEST[3], 400_000)
    world.run()
    got = world.w.get(a.wid)
    assert got is not None and got.state == "committed"
    assert world.w.store.counters()["wallet.sbtc.sources_unavailable"] >= 1
