"""The simulated chain: determinism, mining, mempool conflicts and RBF, reorgs, node down."""

from __future__ import annotations

import pytest

from engine.clock import ManualClock
from wallet.chain import NATIVE, TOKEN, UTXO, NodeUnavailableError
from wallet.simchain import BLOCK_INTERVAL_NS, SimChain, SimLog


def script(sim: SimChain) -> list[str]:
    a = sim.send([("addr1", 5)])
    sim.mine(2)
    sim.send([("addr2", 7)], spends=[f"{a}:0"])
    sim.reorg(1)
    return [sim.tip().hash, *sim.best]


def test_same_seed_same_chain_other_seed_other_chain():
    assert script(SimChain(seed=3)) == script(SimChain(seed=3))
    assert script(SimChain(seed=3)) != script(SimChain(seed=4))


def test_clock_advances_one_interval_per_block():
    clock = ManualClock(1000)
    sim = SimChain(clock=clock)
    sim.mine(3)
    assert clock.now_ns() == 1000 + 3 * BLOCK_INTERVAL_NS


def test_payments_utxo_and_balance_spent_outputs():
    sim = SimChain()
    t = sim.send([("a", 5), ("b", 6), ("a", 7)])
    (h,) = sim.mine()
    pays = sim.payments_in_block(h, ["A"])  # case-insensitive
    assert [(p.kind, p.index, p.amount) for p in pays] == [(UTXO, 0, 5), (UTXO, 2, 7)]
    assert sim.balance("a") == 12
    sim.send([("c", 5)], spends=[f"{t}:0"])
    sim.mine()
    assert sim.balance("a") == 7
    assert sim.tx_status(t).confirmations == 2


def test_account_model_native_and_token_logs():
    sim = SimChain(model="account")
    t = sim.send([("acct", 10)], logs=[SimLog("tok", "acct", 3), SimLog("tok", "x", 1)])
    r = sim.send([("acct", 99)], success=False)
    (h,) = sim.mine()
    pays = sim.payments_in_block(h, ["acct"])
    assert [(p.txid, p.kind, p.index, p.amount, p.success) for p in pays] == [
        (t, NATIVE, 0, 10, True),
        (t, TOKEN, 0, 3, True),
        (r, NATIVE, 0, 99, False),
    ]
    assert sim.balance("acct") == 10
    assert sim.balance("acct", "tok") == 3


def test_mempool_conflicts_rbf_and_double_spend():
    sim = SimChain()
    a = sim.send([("x", 1)], spends=["coin:0"], rbf=False)
    with pytest.raises(ValueError):
        sim.send([("y", 1)], spends=["coin:0"])
    b = sim.send([("x", 1)], spends=["coin:1"], rbf=True)
    c = sim.send([("y", 1)], spends=["coin:1"])
    assert b not in sim.mempool and c in sim.mempool
    assert sim.tx_status(b).state == "unknown"
    sim.mine()
    with pytest.raises(ValueError):
        sim.send([("z", 1)], spends=["coin:0"])
    assert sim.tx_status(a).state == "confirmed"


def test_reorg_returns_txs_to_mempool_or_drops_them():
    sim = SimChain()
    t = sim.send([("x", 1)])
    sim.mine(3)
    old = sim.block_at(1)
    sim.reorg(3)
    assert sim.tip().height == 4
    assert sim.block_at(1) != old
    assert t in sim.mempool  # back in the mempool, like a real node
    assert sim.block_by_hash(old.hash if old else "") is not None  # still known
    sim.mine()
    sim.reorg(1, keep=False)
    assert t not in sim.mempool and sim.tx_status(t).state == "unknown"


def test_reorg_with_double_spend_evicts_the_original():
    sim = SimChain()
    t = sim.send([("us", 100)], spends=["c:0"])
    sim.mine()
    ds = sim.make_tx([("thief", 100)], spends=["c:0"])
    sim.reorg(1, txids=[ds])
    assert sim.tx_status(t).state == "unknown"
    assert sim.tx_status(ds).state == "confirmed"
    assert sim.balance("us") == 0


def test_competing_branches_longest_wins_first_seen_wins_tie():
    sim = SimChain()
    sim.mine(2)
    base = sim.best[1]
    tip_a = sim.best[2]
    b1 = sim.mine_on(base)
    assert sim.tip().hash == tip_a  # tie: the first seen stays
    b2 = sim.mine_on(b1)
    assert sim.tip().hash == b2 and sim.tip().height == 3
    a2 = sim.mine_on(tip_a)
    a3 = sim.mine_on(a2)
    assert sim.tip().hash == a3


def test_node_down_and_up():
    sim = SimChain()
    sim.stop()
    for call in (sim.tip, lambda: sim.block_at(0), lambda: sim.balance("x"), sim.fee_estimate):
        with pytest.raises(NodeUnavailableError):
            call()
    sim.start()
    assert sim.tip().height == 0
    assert sim.broadcast(b"raw") and sim.broadcasts == [b"raw"]
