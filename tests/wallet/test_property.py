"""Property test of the deposit ledger: random interleavings of payments, mining, reorgs
of any depth (with and without the transactions coming back), double-spends, RBF,
node outages, wallet restarts and crashes right after a credit, against the real
deterministic core in process (engine.core.Core).

Invariants after every step: the core's conservation holds; each user's core balance is
exactly the sum of the deposits the wallet recorded as credited (so none twice); every
deposit still marked ``credited`` is on the node's best chain with at least N
confirmations (no credit survives for coins that vanished). At the end, with the
node up and the chain final, every payment on the best chain at or above the minimum
is credited (or was reversed by an incident and is held)."""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core import Core
from engine.wire import commands
from tests.wallet.simfix import BTC, utxo_cfg
from wallet.chain import UTXO
from wallet.corelink import InProcessCore
from wallet.scanner import ChainRuntime, Wallet
from wallet.simchain import SimChain
from wallet.store import Store

USERS = (1, 2, 3)
N = 3
MIN = 1000

op = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 2), st.integers(1, 60_000), st.booleans()),
    st.tuples(st.just("mine"), st.integers(1, 3)),
    st.tuples(st.just("reorg"), st.integers(1, 10), st.booleans()),
    st.tuples(st.just("doublespend"), st.integers(0, 20)),
    st.tuples(st.just("rbf"), st.integers(0, 20)),
    st.tuples(
        st.just("down"),
    ),
    st.tuples(
        st.just("up"),
    ),
    st.tuples(
        st.just("restart"),
    ),
    st.tuples(
        st.just("crash_after_credit"),
    ),
    st.tuples(
        st.just("step"),
    ),
)


class CrashError(Exception):
    pass


def new_core() -> Core:
    core = Core()
    cmds = [commands.add_asset(BTC, 8), commands.add_fee_tier(0, 0, 0)]
    cmds += [commands.add_user(u, 0) for u in USERS]
    for c in cmds:
        _ev, rep = core.run(c)
        assert rep[0]["status"] == 1
    return core


def credited(w: Wallet, user: int, states: tuple[str, ...] = ("credited", "held")) -> int:
    return sum(
        d.credit_amount
        for d in w.store.deposits("user_id = ?", (user,))
        if d.credit_state in states
    )


def check(core: Core, w: Wallet, sim: SimChain) -> None:
    assert core.conservation_errors() == []
    for u in USERS:
        avail, held = core.balance(u, BTC, 1)
        # A crash right after a credit leaves an intent the core may have applied;
        # the next step resolves it (exact equality once no intent is left).
        pending = credited(w, u, ("intent", "hold_pending"))
        assert credited(w, u) <= avail + held <= credited(w, u) + pending
        if pending == 0:
            assert avail + held == credited(w, u)
    if sim.down:
        return
    tip = sim.tip().height
    for d in w.store.deposits("status = 'credited'"):
        blk = sim.blocks[d.block_hash]
        assert sim.block_at(blk.height) is not None
        assert sim.best[blk.height] == d.block_hash, "credited deposit not on the best chain"
        assert tip - blk.height + 1 >= N


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2**32), st.lists(op, min_size=5, max_size=50), st.sampled_from([0, 1, 2]))
def test_ledger_invariants(seed, ops, pending):
    with TemporaryDirectory() as tmp:
        run(seed, ops, Path(tmp) / "w.db", pending)


def run(seed: int, ops: list[tuple[Any, ...]], db: Path, pending: int) -> None:
    sim = SimChain(seed=seed)
    core = new_core()
    link = InProcessCore(core)
    cfg = utxo_cfg(credit_confirmations=N, pending_confirmations=pending)
    crash = [False]

    def hook() -> None:
        if crash[0]:
            crash[0] = False
            raise CrashError

    def wallet() -> Wallet:
        return Wallet(Store(str(db)), [ChainRuntime(cfg, sim)], link, after_credit=hook)

    w = wallet()
    addrs = [w.deposit_address("sbtc", u) for u in USERS]
    coins: list[tuple[str, str]] = []  # (txid, coin spent) of our deposits
    for o in ops:
        kind = o[0]
        if kind == "send":
            coin = f"coin{len(coins)}:{seed}"
            txid = sim.send([(addrs[o[1]], o[2])], spends=[coin], rbf=o[3])
            coins.append((txid, coin))
        elif kind == "mine":
            sim.mine(o[1])
        elif kind == "reorg":
            depth = min(o[1], len(sim.best) - 1)
            if depth > 0:
                sim.reorg(depth, keep=o[2])
        elif kind in ("doublespend", "rbf") and coins and not sim.down:
            txid, coin = coins[o[1] % len(coins)]
            if kind == "rbf" and txid in sim.mempool and sim.mempool[txid].rbf:
                tx = sim.mempool[txid]
                coins.append((sim.send(tx.outputs, spends=[coin]), coin))
            elif kind == "doublespend" and sim.tx_status(txid).state == "confirmed":
                depth = sim.tx_status(txid).confirmations
                if depth < len(sim.best):
                    thief = sim.make_tx([("thief", 1)], spends=[coin])
                    sim.reorg(depth, txids=[thief])
        elif kind == "down":
            sim.stop()
        elif kind == "up":
            sim.start()
        elif kind == "restart":
            w.store.close()
            w = wallet()
        elif kind == "crash_after_credit":
            crash[0] = True
        elif kind == "step":
            try:
                w.step_all()
            except CrashError:
                w.store.close()
                w = wallet()
            check(core, w, sim)
    # Finality: node up, no crash, the chain grows past N; an operator resumes if halted.
    sim.start()
    crash[0] = False
    for _ in range(3):
        sim.mine(N + 1)
        w.step_all()
        if w.store.halted("sbtc"):
            w.resume("sbtc")
        w.step_all()
        check(core, w, sim)
    for u in USERS:
        assert sum(core.balance(u, BTC, 1)) == credited(w, u)
        assert credited(w, u, ("intent", "hold_pending")) == 0
    tip = sim.tip().height
    for h in range(1, tip - N + 2):
        blk = sim.blocks[sim.best[h]]
        for p in sim.payments_in_block(blk.hash, addrs):
            d = w.store.deposit("sbtc", p.txid, UTXO, p.index)
            assert d is not None, "a final payment was never seen"
            if p.amount < MIN:
                assert d.status == "rejected"
            else:
                assert d.status in ("credited", "reversed"), d
