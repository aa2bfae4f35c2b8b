"""The deposit scanner on simulated chains against a real core process.

After every scenario: the core's conservation check passes and each user's core
balance equals exactly the deposits the wallet recorded as credited (each once).
"""

from __future__ import annotations

import pytest

from tests.wallet.conftest import CoreHandle
from tests.wallet.simfix import (
    BTC,
    ETH,
    FAKE_CONTRACT,
    TOKEN_CONTRACT,
    USDT,
    eth_cfg,
    make_wallet,
    utxo_cfg,
)
from wallet.scanner import Wallet, deposit_ref
from wallet.simchain import SimChain, SimLog


def credited_sum(w: Wallet, user: int, asset: int) -> int:
    return sum(
        d.credit_amount
        for d in w.store.deposits("user_id = ? AND asset_id = ?", (user, asset))
        if d.credit_state in ("credited", "held", "released", "written_off")
    )


def check(core: CoreHandle, w: Wallet, users=(1, 2, 3), assets=(BTC,)) -> None:
    """Conservation holds and every credited deposit is in the core exactly once."""
    assert core.conservation_ok()
    for u in users:
        for a in assets:
            avail, held = core.balance(u, a)
            written_off = sum(
                d.held_amount
                for d in w.store.deposits("user_id = ? AND asset_id = ?", (u, a))
                if d.credit_state == "written_off"
            )
            assert avail + held == credited_sum(w, u, a) - written_off, (u, a)


def mine_and_scan(sim: SimChain, w: Wallet, n: int) -> None:
    for _ in range(n):
        sim.mine()
        w.step_all()


def statuses(w: Wallet, user: int) -> list[str]:
    return [h["status"] for h in w.history(user)]


def test_credit_after_confirmations_once_with_history(core, db, tmp_path):
    sim = SimChain(seed=1)
    w = make_wallet(db, core, [(utxo_cfg(), sim)])
    a1, a2 = w.deposit_address("sbtc", 1), w.deposit_address("sbtc", 2)
    sim.send([(a1, 50_000), (a2, 70_000), (a1, 999)])  # the last is below the minimum
    w.step_all()
    assert w.history(1) == []  # mempool not shown with pending_confirmations 1
    mine_and_scan(sim, w, 1)
    h = w.history(1)
    assert [(x["status"], x["confirmations"], x["display"]) for x in h] == [
        ("confirming", 1, "confirming 1/3"),
        ("rejected", 1, "rejected"),
    ]
    assert "below minimum" in h[1]["reason"]
    mine_and_scan(sim, w, 1)
    assert core.balance(1, BTC) == (0, 0)
    mine_and_scan(sim, w, 1)
    assert core.balance(1, BTC) == (50_000, 0)
    assert core.balance(2, BTC) == (70_000, 0)
    mine_and_scan(sim, w, 3)
    assert statuses(w, 1) == ["credited", "rejected"]
    assert w.store.counters()["sbtc.credited"] == 2
    check(core, w)


@pytest.mark.parametrize("depth", range(1, 11))
def test_reorg_depth_both_sides_of_threshold(core, db, tmp_path, depth):
    """A deposit ``depth`` blocks deep vanishes in a reorg of that depth (credit at 6)."""
    sim = SimChain(seed=depth)
    w = make_wallet(db, core, [(utxo_cfg(credit_confirmations=6), sim)])
    addr = w.deposit_address("sbtc", 1)
    other = w.deposit_address("sbtc", 2)
    mine_and_scan(sim, w, 2)
    sim.send([(other, 30_000)])
    mine_and_scan(sim, w, 1)  # an older deposit the reorg does not reach
    sim.send([(addr, 10_000)])
    mine_and_scan(sim, w, depth)  # the deposit has exactly ``depth`` confirmations
    credited_before = depth >= 6
    assert (core.balance(1, BTC)[0] == 10_000) is credited_before
    sim.reorg(depth, keep=False)
    w.step_all()
    (dep,) = w.history(1)
    if not credited_before:
        assert dep["status"] == "orphaned" and "reorg" in dep["reason"]
        assert w.store.halted("sbtc") is None
        mine_and_scan(sim, w, 8)
        assert core.balance(1, BTC) == (0, 0)
        assert statuses(w, 1) == ["orphaned"]
    else:
        assert dep["status"] == "reversed"
        assert w.store.halted("sbtc")
        assert core.balance(1, BTC) == (0, 10_000)  # held, never negative
        kinds = [e["kind"] for e in w.store.events("sbtc")]
        assert "incident" in kinds and "hold" in kinds
        assert w.store.counters()["sbtc.incidents"] == 1
    assert core.balance(2, BTC) == (30_000, 0)
    check(core, w)


def test_reorg_that_reconfirms_the_deposit_credits_it_once(core, db, tmp_path):
    sim = SimChain(seed=5)
    w = make_wallet(db, core, [(utxo_cfg(credit_confirmations=4), sim)])
    addr = w.deposit_address("sbtc", 1)
    sim.send([(addr, 10_000)])
    mine_and_scan(sim, w, 2)
    sim.reorg(2, length=3)  # the tx returns to the mempool; mined again below
    w.step_all()
    assert statuses(w, 1) == ["orphaned"]
    mine_and_scan(sim, w, 4)
    assert statuses(w, 1) == ["credited"]
    assert core.balance(1, BTC) == (10_000, 0)
    check(core, w)


def test_double_spend_of_a_deposit_is_never_credited(core, db, tmp_path):
    sim = SimChain(seed=6)
    w = make_wallet(db, core, [(utxo_cfg(), sim)])
    addr = w.deposit_address("sbtc", 1)
    sim.send([(addr, 40_000)], spends=["coin7:0"])
    mine_and_scan(sim, w, 2)
    theft = sim.make_tx([("attacker", 40_000)], spends=["coin7:0"])
    sim.reorg(2, txids=[theft])  # the original goes back but conflicts: evicted
    w.step_all()
    mine_and_scan(sim, w, 10)
    assert statuses(w, 1) == ["orphaned"]
    assert core.balance(1, BTC) == (0, 0)
    check(core, w)


def test_rbf_replaced_mempool_deposit_is_orphaned(core, db, tmp_path):
    sim = SimChain(seed=7)
    w = make_wallet(db, core, [(utxo_cfg(pending_confirmations=0), sim)])
    addr = w.deposit_address("sbtc", 1)
    first = sim.send([(addr, 20_000)], spends=["c1:0"], rbf=True)
    w.step_all()
    assert [(h["txid"], h["status"]) for h in w.history(1)] == [(first, "pending")]
    second = sim.send([(addr, 19_000)], spends=["c1:0"])  # fee bump: replaces the first
    w.step_all()
    hist = {h["txid"]: h for h in w.history(1)}
    assert hist[first]["status"] == "orphaned" and "replaced" in hist[first]["reason"]
    assert hist[second]["status"] == "pending"
    mine_and_scan(sim, w, 3)
    hist = {h["txid"]: h for h in w.history(1)}
    assert hist[second]["status"] == "credited" and hist[first]["status"] == "orphaned"
    assert core.balance(1, BTC) == (19_000, 0)
    check(core, w)


def test_node_down_and_back(core, db, tmp_path):
    sim = SimChain(seed=8)
    w = make_wallet(db, core, [(utxo_cfg(), sim)])
    addr = w.deposit_address("sbtc", 1)
    sim.send([(addr, 11_000)])
    mine_and_scan(sim, w, 1)
    sim.stop()
    for _ in range(3):
        w.step_all()  # never raises
    assert w.store.counters()["sbtc.node_unavailable"] == 3
    sim.start()
    sim.mine(2)
    sim.stop()
    w.step_all()
    sim.start()
    w.step_all()
    assert core.balance(1, BTC) == (11_000, 0)
    check(core, w)


def test_duplicate_notifications_and_rescan_from_scratch(core, db, tmp_path):
    sim = SimChain(seed=9)
    cfg = utxo_cfg()
    w = make_wallet(db, core, [(cfg, sim)])
    addr = w.deposit_address("sbtc", 1)
    txid = sim.send([(addr, 12_000), (addr, 13_000)])
    mine_and_scan(sim, w, 3)
    assert core.balance(1, BTC) == (25_000, 0)
    # The same blocks reported again: forget the cursor, scan again.
    w.store.db.execute("DELETE FROM blocks")
    w.step_all()
    w.step_all()
    assert core.balance(1, BTC) == (25_000, 0)
    # A wallet that lost its database rebuilds from the chain: every credit is a DUPLICATE.
    w2 = make_wallet(tmp_path / "fresh.db", core, [(cfg, sim)])
    assert w2.deposit_address("sbtc", 1) == addr
    w2.step_all()
    assert core.balance(1, BTC) == (25_000, 0)
    assert w2.store.counters()["sbtc.credit_duplicates"] == 2
    # The core refuses a second credit of the same reference directly as well.
    st, _ = core.funding.deposit(deposit_ref("sbtc", txid, "utxo", 0), 1, BTC, 12_000, 1)
    assert st == 3
    check(core, w)


def test_restart_mid_scan_and_crash_inside_a_block(core, db, tmp_path):
    sim = SimChain(seed=10)
    cfg = utxo_cfg(max_blocks_per_step=2)
    w = make_wallet(db, core, [(cfg, sim)])
    addrs = [w.deposit_address("sbtc", u) for u in (1, 2, 3)]
    for i in range(12):
        sim.send([(addrs[i % 3], 1_000 + i)])
        sim.mine()
    w.step_all()  # 2 blocks of 12
    w.store.close()
    w = make_wallet(db, core, [(cfg, sim)])  # restart
    # A crash in the middle of a block's transaction: nothing of that block is kept.
    orig = w._record
    calls = [0]

    def crashing(*a, **k):
        calls[0] += 1
        if calls[0] == 1:
            orig(*a, **k)
            raise RuntimeError("crash inside the block transaction")
        orig(*a, **k)

    w._record = crashing  # type: ignore[method-assign]
    last = w.store.last_block("sbtc")
    with pytest.raises(RuntimeError):
        w.step_all()
    assert w.store.last_block("sbtc") == last
    w.store.close()
    for _ in range(10):
        w = make_wallet(db, core, [(cfg, sim)])
        w.step_all()
        w.store.close()
    w = make_wallet(db, core, [(cfg, sim)])
    sim.mine(3)
    w.step_all()
    w.step_all()
    for u in (1, 2, 3):
        expect = sum(1_000 + i for i in range(12) if i % 3 == u - 1)
        assert core.balance(u, BTC) == (expect, 0)
        assert statuses(w, u) == ["credited"] * 4
    check(core, w)


def test_crash_between_credit_and_record_credits_once(core, db, tmp_path):
    sim = SimChain(seed=11)

    def boom() -> None:
        raise SystemExit("killed after the core applied the DEPOSIT")

    w = make_wallet(db, core, [(utxo_cfg(), sim)], after_credit=boom)
    addr = w.deposit_address("sbtc", 1)
    sim.send([(addr, 77_000)])
    sim.mine(3)
    with pytest.raises(SystemExit):
        w.step_all()
    (d,) = w.store.deposits()
    assert d.credit_state == "intent" and core.balance(1, BTC) == (77_000, 0)
    w.store.close()
    w = make_wallet(db, core, [(utxo_cfg(), sim)])
    w.step_all()
    assert statuses(w, 1) == ["credited"]
    assert core.balance(1, BTC) == (77_000, 0)
    assert w.store.counters()["sbtc.credit_duplicates"] == 1
    check(core, w)


def test_incident_halts_holds_and_operator_resumes_and_settles(core, db, tmp_path):
    sim = SimChain(seed=12)
    w = make_wallet(db, core, [(utxo_cfg(), sim)])
    addr = w.deposit_address("sbtc", 1)
    sim.send([(addr, 60_000)])
    mine_and_scan(sim, w, 3)
    assert core.balance(1, BTC) == (60_000, 0)
    # The user moves 45,000 out (a pending withdrawal) before the reorg.
    assert core.funding.withdraw_hold(999, 1, BTC, 45_000, 1) == (1, 0)
    sim.reorg(3, keep=False)
    w.step_all()
    (d,) = w.store.deposits()
    assert d.status == "reversed" and d.credit_state == "held" and d.held_amount == 15_000
    hold = next(e for e in w.store.events("sbtc") if e["kind"] == "hold")
    assert hold["shortfall"] == 45_000
    assert core.balance(1, BTC) == (0, 60_000)  # 45,000 withdrawal + 15,000 quarantine
    # Halted: a new deposit is not even scanned until an operator resumes.
    sim.send([(addr, 5_000)])
    mine_and_scan(sim, w, 4)
    assert len(w.history(1)) == 1
    w.resume("sbtc", operator="alice")
    w.step_all()
    assert core.balance(1, BTC) == (5_000, 60_000)
    assert w.settle(d.ref, "commit") == {"ref": d.ref, "action": "commit", "held": 15_000}
    assert core.balance(1, BTC) == (5_000, 45_000)
    with pytest.raises(ValueError):
        w.settle(d.ref, "commit")
    assert core.conservation_ok()


def test_incident_hold_release_when_tx_reconfirms(core, db, tmp_path):
    sim = SimChain(seed=13)
    w = make_wallet(db, core, [(utxo_cfg(), sim)])
    addr = w.deposit_address("sbtc", 1)
    sim.send([(addr, 8_000)])
    mine_and_scan(sim, w, 4)
    sim.reorg(4)  # deeper than the 3 credit confirmations; the tx is mined again
    w.step_all()
    (d,) = w.store.deposits()
    assert d.status == "reversed" and core.balance(1, BTC) == (0, 8_000)
    w.settle(d.ref, "release")
    w.resume("sbtc")
    mine_and_scan(sim, w, 3)
    assert core.balance(1, BTC) == (8_000, 0)
    check(core, w)


def test_account_chain_eth_token_and_adversarial(core, db, tmp_path):
    sim = SimChain(chain="seth", model="account", seed=14)
    w = make_wallet(db, core, [(eth_cfg(), sim)])
    a1, a2 = w.deposit_address("seth", 1), w.deposit_address("seth", 2)
    assert a1.startswith("0x") and len(a1) == 42
    ok_eth = sim.send(
        [(a1, 1_500_000_001 * 10**9 // 1000)]
    )  # 0.0015 ETH + 1 wei: 1 wei below a gwei is not credited
    sim.send([(a1, 10**18)], success=False)  # reverted: value never moved
    sim.send([], logs=[SimLog(TOKEN_CONTRACT, a1, 2_500)])
    sim.send([], logs=[SimLog(FAKE_CONTRACT, a1, 10**9)])  # a token we do not list
    sim.send([], logs=[SimLog(TOKEN_CONTRACT, a2, 7_000)], success=False)  # reverted tx's log
    sim.send([], logs=[SimLog(TOKEN_CONTRACT, a2, 9_000, moves=False)])  # transfer() lied
    sim.send([], logs=[SimLog(TOKEN_CONTRACT, a2, 50)])  # below minimum
    mine_and_scan(sim, w, 5)
    assert core.balance(1, ETH) == (1_500_000_001 // 1000, 0)
    assert core.balance(1, USDT) == (2_500, 0)
    assert core.balance(2, USDT) == (0, 0)
    reasons = sorted((h["status"], h["reason"].split(" ")[0]) for u in (1, 2) for h in w.history(u))
    assert reasons == [
        ("credited", ""),
        ("credited", ""),
        ("rejected", "below"),
        ("rejected", "on-chain"),
        ("rejected", "transaction"),
        ("rejected", "transaction"),
        ("rejected", "unknown"),
    ]
    assert any(h["txid"] == ok_eth for h in w.history(1))
    check(core, w, users=(1, 2), assets=(ETH, USDT))
