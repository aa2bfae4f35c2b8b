"""engine.core.Core: property tests over random good and bad commands.

Random funded users send every command kind with ids drawn from small ranges (so
duplicates, unknown ids and other users' orders are frequent) and values that
are often out of range.  After every command: conservation and hold accounting
hold, the balances rebuilt from the event stream alone equal the core's, a
rejected command changed nothing, and every command got exactly one reply.
Snapshots taken mid-stream continue exactly like the original.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core import Core
from engine.wire import commands as cmd
from engine.wire.commands import ReplyStatus
from pyx.enums import OrdType, Side, Tif
from tests.engine.corekit import BASE, QUOTE, SYM, Ex

USERS = (1, 2, 3)
SYMBOLS = (SYM, 2)
BAD = 12  # one field in BAD is out of range


class Flow:
    """Random commands of every kind from a seeded ``random.Random``.

    Mostly valid (so orders rest, cross and trade), with a bad value in about one
    field out of :data:`BAD`; amends target live orders most of the time.
    """

    def __init__(self, rng: random.Random, ex: Ex) -> None:
        self.rng = rng
        self.ex = ex
        self.next_oid = 1

    def pick(self, good: Sequence[int], bad: Sequence[int]) -> int:
        r = self.rng
        return r.choice(bad) if r.randrange(BAD) == 0 else r.choice(good)

    def price(self) -> int:
        return self.pick(range(95, 106), [0, -1, 7, 10**6, 10**6 + 1])

    def qty(self) -> int:
        return self.pick(range(1, 7), [0, -2, 10**7, 2**61])

    def oid(self) -> int:
        self.next_oid += 1
        return self.pick([self.next_oid], [0, 2**64 - 1, max(1, self.next_oid - 3)])

    def live(self) -> tuple[int, int]:
        orders = self.ex.core.open_orders()
        if orders and self.rng.randrange(8):
            o = self.rng.choice(orders)
            return int(o["order_id"]), int(o["user_id"])
        return self.rng.randrange(40), self.rng.choice(USERS)

    def __call__(self) -> np.ndarray:
        r = self.rng.randrange(100)
        if r < 60:
            return self.new()
        if r < 85:
            return self.amend()
        if r < 96:
            return self.funding()
        return self.admin()

    def new(self) -> np.ndarray:
        r = self.rng
        user = self.pick(USERS, [9, 0])
        sym = self.pick([SYM, SYM, 2], [5, 0])
        side = self.pick([Side.BUY, Side.SELL], [0, 3])
        stp = r.choice([0, 0, 0, 0, 1, 2, 3, 4])
        kind = r.randrange(20)
        if kind < 12:
            tif = r.choice([Tif.GTC, Tif.GTC, Tif.GTC, Tif.IOC, Tif.FOK])
            post = tif == Tif.GTC and r.randrange(6) == 0
            return cmd.new_limit(
                self.oid(),
                user,
                sym,
                side,
                self.price(),
                self.qty(),
                tif=tif,
                stp=stp,
                post_only=post,
            )
        if kind < 14:
            worst = r.choice([0, 0, 0, 95, 105, 3])
            return cmd.new_market(
                self.oid(), user, sym, side, self.qty(), worst_price_ticks=worst, stp=stp
            )
        if kind < 16:
            budget = self.pick(range(1, 5_000), [0, 10**12])
            return cmd.new_market_quote(self.oid(), user, sym, budget, stp=stp)
        if kind < 19:
            ot = r.choice([OrdType.STOP_LIMIT, OrdType.STOP_MARKET])
            price = self.price() if ot == OrdType.STOP_LIMIT else r.choice([0, 104])
            return cmd.new_stop(
                self.oid(), user, sym, side, ot, self.price(), self.qty(), price_ticks=price
            )
        return cmd.new_order(
            self.oid(), user, sym, r.randrange(4), r.randrange(7), self.qty(),
            price_ticks=self.price(), tif=r.randrange(5), stop_price_ticks=self.price(),
            stp=r.randrange(6), flags=r.randrange(4),
        )  # fmt: skip

    def amend(self) -> np.ndarray:
        r = self.rng
        oid, user = self.live()
        if r.randrange(10) == 0:
            user = r.choice(USERS)  # often someone else's order
        what = r.randrange(10)
        if what < 3:
            return cmd.cancel(oid, user)
        if what < 5:
            return cmd.reduce(oid, user, self.pick(range(0, 5), [-1, 100]))
        if what < 9:
            return cmd.replace(oid, user, self.price(), self.qty())
        return cmd.mass_cancel(user, symbol_id=r.choice([0, *SYMBOLS]), side=r.randrange(4))

    def funding(self) -> np.ndarray:
        r = self.rng
        user = self.pick(USERS, [9])
        asset = self.pick([BASE, QUOTE], [3, 0])
        amount = self.pick(range(1, 20_000), [0, -1, 2**62])
        account = self.pick([0, 0, 1], [2, -1])
        ref = r.randrange(1, 16)
        what = r.randrange(5)
        if what == 0:
            return cmd.deposit(ref, user, asset, amount, account=account)
        if what == 1:
            return cmd.withdraw_hold(ref, user, asset, amount, account=account)
        if what == 2:
            return cmd.withdraw_commit(ref)
        if what == 3:
            return cmd.withdraw_release(ref)
        return cmd.transfer(user, asset, amount, account, self.pick([0, 1], [0, 2]))

    def admin(self) -> np.ndarray:
        r = self.rng
        sym = self.pick(SYMBOLS, [5])
        user = self.pick(USERS, [9])
        return r.choice(
            [
                cmd.halt_symbol(sym),
                cmd.resume_symbol(SYM),
                cmd.resume_symbol(2),
                cmd.suspend_user(user),
                cmd.resume_user(1),
                cmd.resume_user(2),
                cmd.resume_user(3),
                cmd.set_fee_tier(user, r.randrange(3)),
                cmd.cancel_all_symbol(sym),
            ]
        )


def _exchange() -> Ex:
    ex = Ex(maker_ppm=1_500, taker_ppm=2_500, mult=3, base_per_lot=7, tick_step=1, protection=8)
    ex.ok(
        cmd.add_symbol(2, QUOTE, BASE, price_multiplier=2, base_per_lot=5, min_qty_lots=2),
        cmd.add_fee_tier(1, 0, 0),
        cmd.add_fee_tier(2, 333_333, 999_999),
        cmd.set_min_notional(2, 50),
    )
    for uid in USERS:
        ex.user(uid, base=200_000, quote=200_000)
    ex.check()
    return ex


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(0, 2**32 - 1)


@SETTINGS
@given(SEEDS, st.integers(20, 200))
def test_every_step_conserves_money_and_holds(seed: int, n: int) -> None:
    ex = _exchange()
    flow = Flow(random.Random(seed), ex)
    for _ in range(n):
        rec = flow()
        before = ex.core.content_hash()
        _ev, rep = ex.run(rec)
        assert len(rep) == 1 and rep["kind"][0] == rec["kind"][0]
        assert rep["seq"][0] == ex.core.last_seq
        if rep["status"][0] != ReplyStatus.APPLIED:
            assert ex.core.content_hash() == before
        ex.check()


def _stream(seed: int, n: int) -> list[np.ndarray]:
    """n commands of a flow run against its own core (so amends hit live orders)."""
    ex = _exchange()
    flow = Flow(random.Random(seed), ex)
    out = []
    for _ in range(n):
        out.append(flow())
        ex.run(out[-1])
    return out


@SETTINGS
@given(SEEDS, st.integers(20, 250), st.integers(5, 40))
def test_snapshots_continue_identically(seed: int, n: int, every: int) -> None:
    """Every ``every`` commands the core is rebuilt from its snapshot; the rebuilt twin
    then runs in lockstep with the original: same events, replies and state hash."""
    ex = _exchange()
    flow = Flow(random.Random(seed), ex)
    twin: Core | None = None
    for i in range(n):
        rec = flow()
        ev, rep = ex.run(rec)
        if twin is not None:
            ev2, rep2 = twin.run(rec)
            assert ev.tobytes() == ev2.tobytes()
            assert rep.tobytes() == rep2.tobytes()
            assert twin.state_hash() == ex.core.state_hash()
        if i % every == 0:
            twin = Core.from_snapshot(ex.core.to_snapshot())
            assert twin.to_snapshot() == ex.core.to_snapshot()
    assert twin is not None and twin.conservation_errors() == []


@SETTINGS
@given(SEEDS, st.integers(20, 200))
def test_batching_does_not_change_the_outcome(seed: int, n: int) -> None:
    cmds = _stream(seed, n)
    one, many = _exchange(), _exchange()
    batch = cmd.CmdBatch()
    for rec in cmds:
        batch.add(rec)
        many.run(rec)
    _ev, rep = one.run(batch.to_array())
    assert len(rep) == n
    assert one.core.state_hash() == many.core.state_hash()
    one.check()
