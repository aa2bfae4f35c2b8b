"""Property test of withdrawals: random interleavings of requests (auto, review and
rejected paths, some above the hot limit), reviews, multisig signatures, mining, empty
blocks (stuck transactions, RBF bumps), refused broadcasts, node outages, shallow reorgs
that drop and re-add transactions, restarts and crashes at every fault point, against
the real deterministic core in process.

Invariants after every step: the core's conservation; each user's held amount is
amount + fee of that user's withdrawals the core holds (between those certainly held
and those held unless a crash came between a core command and its record); at
most one attempt of a withdrawal is on the best chain or in the mempool; no coin is
reserved by two withdrawals. At the end (node up, chain final, every review decided,
every multisig signed): every withdrawal is committed, released or refused, each
destination received exactly the committed amounts (none twice), and each user's
available balance is the deposit minus what was committed."""

from __future__ import annotations

import os
import random
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core import Core
from engine.wire import commands
from tests.wallet.test_withdrawals import COSIGNERS, DEST, HOT, NET, chain_cfg
from wallet import custody
from wallet.corelink import InProcessCore
from wallet.risk import Rules
from wallet.simchain import SimChain
from wallet.store import Store
from wallet.withdrawals import Withdrawals

BTC = 1
USERS = (1, 2, 3)
DEPOSIT = 50_000_000
POINTS = (
    "after_hold",
    "after_broadcast",
    "after_commit",
    "after_refused_broadcast",
    "after_release",
)

op = st.one_of(
    st.tuples(st.just("request"), st.integers(0, 2), st.integers(0, 4), st.sampled_from(
        [20_000, 300_000, 900_000, 1_500_000])),
    st.tuples(st.just("review"), st.booleans()),
    st.tuples(st.just("sign"),),
    st.tuples(st.just("mine"), st.integers(1, 2)),
    st.tuples(st.just("empty"),),
    st.tuples(st.just("reorg"),),
    st.tuples(st.just("refuse"),),
    st.tuples(st.just("down"),),
    st.tuples(st.just("up"),),
    st.tuples(st.just("restart"),),
    st.tuples(st.just("crash"), st.sampled_from(POINTS)),
    st.tuples(st.just("step"),),
)  # fmt: skip


SURE = ("held", "review", "approved", "awaiting_signatures", "signed")
MAYBE = ("requested", "broadcast", "rejected", "failed")


class CrashError(Exception):
    pass


def new_core() -> Core:
    core = Core()
    cmds = [commands.add_asset(BTC, 8), commands.add_fee_tier(0, 0, 0)]
    cmds += [commands.add_user(u, 0) for u in USERS]
    cmds += [commands.deposit(100 + u, u, BTC, DEPOSIT, account=1) for u in USERS]
    for c in cmds:
        _ev, rep = core.run(c)
        assert rep[0]["status"] == 1
    return core


class Model:
    def __init__(self, db: Path) -> None:
        self.db = db
        self.core = new_core()
        self.link = InProcessCore(self.core)
        self.sim = SimChain(network=NET, seed=5)
        self.cfg = chain_cfg()
        for _ in range(6):
            self.sim.send([(self.cfg.hot.address(), 2_000_000)])
        assert self.cfg.multisig is not None
        for _ in range(3):
            self.sim.send([(self.cfg.multisig.address(), 10_000_000)])
        self.sim.mine()
        self.now = 10**18
        self.fault_at = ""
        self.w = self.open()
        for u in USERS:
            self.w.set_kyc(u, 2)
            for i, a in enumerate(DEST):
                if i != 4:  # DEST[4] is not in anyone's book: review
                    self.w.whitelist(u, "sbtc", a, at_ns=0)
        self.w.blacklist("sbtc", DEST[3])
        self.n = 0

    def fault(self, p: str) -> None:
        if p == self.fault_at:
            self.fault_at = ""
            raise CrashError(p)

    def open(self) -> Withdrawals:
        return Withdrawals(
            Store(str(self.db)), {"sbtc": (self.cfg, self.sim)}, self.link, hot_keys={"sbtc": HOT},
            rules=Rules(tier_limits={2: 10**9}, max_per_hour=10**6),
            now=lambda: self.now, fault=self.fault,
        )  # fmt: skip

    def step(self) -> None:
        if self.sim.down:
            return
        try:
            self.w.step()
        except CrashError:
            self.w.store.close()
            self.w = self.open()

    def sign_all(self) -> None:
        keys = [custody.Source(NET, (k.get_public_key().sec().hex(),)) for k in COSIGNERS]
        assert keys
        for row in self.w.query("state = 'awaiting_signatures'"):
            from embit.psbt import PSBT

            for k in COSIGNERS[:2]:
                p = PSBT.from_string(row.psbt)
                p.sign_with(k)
                self.w.add_signatures(row.wid, p.to_string())

    def apply(self, o: tuple[Any, ...]) -> None:
        kind = o[0]
        self.now += 10**9
        if kind == "request":
            self.n += 1
            self.w.request(f"r{self.n}", USERS[o[1]], "sbtc", DEST[o[2]], o[3])
        elif kind == "review":
            for row in self.w.query("state = 'review'")[:1]:
                self.w.review(row.wid, o[1], "prop", "random decision")
        elif kind == "sign":
            self.sign_all()
        elif kind == "mine" and not self.sim.down:
            self.sim.mine(o[1])
        elif kind == "empty" and not self.sim.down:
            self.sim.mine_on(self.sim.best[-1])
        elif kind == "reorg" and not self.sim.down and len(self.sim.best) > 3:
            self.sim.reorg(1)  # the disconnected transactions return to the mempool
        elif kind == "refuse":
            self.sim.reject_broadcasts = 1
        elif kind == "down":
            self.sim.stop()
        elif kind == "up":
            self.sim.start()
        elif kind == "restart":
            self.w.store.close()
            self.w = self.open()
        elif kind == "crash":
            self.fault_at = o[1]
        self.step()

    def check(self) -> None:
        assert not self.core.conservation_errors()
        rows = self.w.query()
        for u in USERS:
            mine = [r for r in rows if r.user_id == u]
            held = self.core.balance(u, BTC, 1)[1]
            # Certainly held; or held unless a crash hit right after the core command
            # that changed it (the hold, the commit, the release) and before recording.
            sure = sum(r.amount + r.fee for r in mine if r.state in SURE)
            maybe = sum(r.amount + r.fee for r in mine if r.state in MAYBE)
            assert sure <= held <= sure + maybe, (u, held, sure, maybe)
        if self.sim.down:
            return
        for r in rows:
            txids = [t for t, _, _ in self.w.attempts(r.wid)]
            live_tx = [
                t
                for t in txids
                if t in self.sim.mempool or self.sim.tx_status(t).state == "confirmed"
            ]
            assert len(live_tx) <= 1, (r, live_tx)
        ops = [o for (o,) in self.w.store.db.execute("SELECT outpoint FROM spent_outpoints")]
        assert len(ops) == len(set(ops))

    def finish(self) -> None:
        self.sim.start()
        self.fault_at = ""
        self.sim.reject_broadcasts = 0
        for _ in range(12):
            for row in self.w.query("state = 'review'"):
                self.w.review(row.wid, True, "prop", "final approve")
            self.sign_all()
            self.step()
            self.sim.mine()
        self.step()
        rows = self.w.query()
        assert {r.state for r in rows} <= {"committed", "released", "refused"}, [
            (r.client_ref, r.state, r.error)
            for r in rows
            if r.state not in ("committed", "released", "refused")
        ]
        for i, a in enumerate(DEST):
            paid = sum(r.amount for r in rows if r.address == a.lower() and r.state == "committed")
            assert self.sim.balance(a) == paid, (i, paid, self.sim.balance(a))
        for u in USERS:
            out = sum(r.amount + r.fee for r in rows if r.user_id == u and r.state == "committed")
            assert self.core.balance(u, BTC, 1) == (DEPOSIT - out, 0)


@settings(
    max_examples=int(os.environ.get("WITHDRAW_PROPERTY_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(op, min_size=5, max_size=40))
def test_random_withdrawal_histories(ops: list[tuple[Any, ...]]) -> None:
    with TemporaryDirectory() as d:
        m = Model(Path(d) / "w.db")
        for o in ops:
            m.apply(o)
            m.check()
        m.finish()
        m.check()


@pytest.mark.parametrize("seed", range(40))
def test_seeded_long_histories(seed: int) -> None:
    """Longer histories than hypothesis draws by default (40 operations, every kind
    equally likely), replayable by seed; seeds 8 and 13 found a refused fee bump
    escaping the step."""
    r = random.Random(seed)
    kinds = ["request", "request", "review", "sign", "mine", "empty", "reorg", "refuse",
             "down", "up", "restart", "crash", "step"]  # fmt: skip
    with TemporaryDirectory() as d:
        m = Model(Path(d) / "w.db")
        for _ in range(40):
            k = r.choice(kinds)
            o: tuple[Any, ...] = {
                "request": ("request", r.randint(0, 2), r.randint(0, 4),
                            r.choice([20_000, 300_000, 900_000, 1_500_000])),
                "review": ("review", r.random() < 0.5),
                "mine": ("mine", 1),
                "crash": ("crash", r.choice(POINTS)),
            }.get(k, (k,))  # fmt: skip
            m.apply(o)
            m.check()
        m.finish()
        m.check()
