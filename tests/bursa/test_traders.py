"""The demo traders' order ids and order flow (bursa/exchange/traders.py)."""

from __future__ import annotations

from bursa import run as tour
from bursa.exchange.market import MAKER, TAKERS
from bursa.exchange.traders import EPOCH_MS, IDS_PER_MS, MAX_ORDER_ID, Flow, OrderIds
from pyx.enums import CmdKind


def test_order_ids_increase_per_user_and_across_restarts() -> None:
    now = EPOCH_MS + 10_000
    first = OrderIds(now)
    a = [first.take(MAKER) for _ in range(1000)]
    b = first.take(TAKERS[0])
    assert a == sorted(set(a)) and a[0] > 0 and b == a[0]  # each user counts on its own
    # A restart 1 s later (at most IDS_PER_MS orders per ms meanwhile) starts above.
    later = OrderIds(now + 1000)
    assert later.take(MAKER) > a[-1]
    # Still below 2**40 in 2030.
    assert OrderIds(EPOCH_MS + 4 * 365 * 86_400_000).take(MAKER) < MAX_ORDER_ID
    assert len(a) < IDS_PER_MS * 1000


def test_a_cycle_is_cancel_ladder_then_takers_on_the_grid() -> None:
    flow = Flow(7, OrderIds(EPOCH_MS + 1))
    for _ in range(200):
        cmds = flow.cycle()
        assert cmds["kind"][0] == CmdKind.MASS_CANCEL and cmds["user_id"][0] == MAKER
        new = cmds[1:]
        assert (new["kind"] == CmdKind.NEW).all()
        assert (new["price_ticks"] % tour.TICK_STEP == 0).all()
        assert (new["price_ticks"] > tour.MIN_PRICE_TICKS).all()
        assert (new["price_ticks"] < tour.MAX_PRICE_TICKS).all()
        maker = new[new["user_id"] == MAKER]
        assert len(maker) == 10
        assert set(new["user_id"].tolist()) <= {MAKER, *TAKERS}
    assert abs(flow.mid - tour.MID_PRICE_TICKS) < 100_000  # pulled back towards 60,000
