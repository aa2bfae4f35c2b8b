"""Capacity from configuration (issue 16): ``Core.reserve`` sizes the hot path's tables
at start, so a workload within the configured sizes never grows a table mid-command;
beyond them growth is the fallback, counted in ``growth_count`` (the core's status)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core import Core
from engine.wire import commands as cmd
from engine.wire.commands import ReplyStatus
from pyx.book import Book
from pyx.enums import Side

USERS = 500
ORDERS_PER_USER = 40  # 20,000 resting orders, 4,000 per book, one batch
SYMBOLS = (1, 2, 3, 4, 5)  # above the tables' initial 4 symbols and 4 assets
BIG_USER_ID = 4_000  # above the id map's initial 1,024 entries

#: Sizes that cover the workload: nothing grows.
ENOUGH = {
    "users": BIG_USER_ID,
    "assets": 8,
    "symbols": 8,
    "orders": USERS * ORDERS_PER_USER,
    "book_orders": USERS * ORDERS_PER_USER // len(SYMBOLS),
    "events": 4 * USERS * ORDERS_PER_USER,
}


def _user_id(i: int) -> int:
    return BIG_USER_ID - i


def _setup() -> np.ndarray:
    b = cmd.CmdBatch()
    quote = len(SYMBOLS) + 1
    for asset in range(1, quote + 1):
        b.add(cmd.add_asset(asset, 6))
    b.add(cmd.add_fee_tier(0, 1_000, 2_000))
    for sid in SYMBOLS:
        b.add(cmd.add_symbol(sid, sid, quote, max_price_ticks=1_000_000))
    for i in range(USERS):
        uid = _user_id(i)
        b.add(cmd.add_user(uid))
        for asset in range(1, quote + 1):
            b.add(cmd.deposit(10_000 * uid + asset, uid, asset, 10**12))
    return b.to_array()


def _orders() -> np.ndarray:
    # Bids below 100,000 and asks above it on both books: every order rests.
    b = cmd.CmdBatch()
    for i in range(USERS):
        uid = _user_id(i)
        for k in range(ORDERS_PER_USER):
            sid = SYMBOLS[k % len(SYMBOLS)]
            buy = k % 4 < 2
            px = 100_000 - 1 - i - k * USERS if buy else 100_000 + 1 + i + k * USERS
            b.add(cmd.new_limit(k + 1, uid, sid, Side.BUY if buy else Side.SELL, px, 1))
    return b.to_array()


def _run(core: Core) -> tuple[int, int]:
    """Set up then place every order in ONE batch; (growths during it, events of it)."""
    _, rep = core.run(_setup())
    assert (rep["status"] == ReplyStatus.APPLIED).all()
    before = core.growth_count
    ev, rep = core.run(_orders())
    assert (rep["status"] == ReplyStatus.APPLIED).all()
    assert core.n_live_orders == USERS * ORDERS_PER_USER
    return core.growth_count - before, len(ev)


def test_configured_capacity_never_grows() -> None:
    core = Core()
    core.reserve(**ENOUGH)
    grown, n_events = _run(core)
    assert n_events > 1 << 14  # the event buffer's default size is really exceeded
    assert grown == 0 and core.growth_count == 0


def test_below_capacity_the_fallback_grows_and_is_counted() -> None:
    sized = Core()
    sized.reserve(**ENOUGH)
    _run(sized)
    default = Core()
    grown, _ = _run(default)
    assert grown > 0
    small = Core()
    small.reserve(**{k: max(1, v // 8) for k, v in ENOUGH.items()})
    grown_small, _ = _run(small)
    assert grown_small > 0
    # Capacity is not state: same commands, same state, however the tables were sized.
    assert default.state_hash() == sized.state_hash() == small.state_hash()
    assert Core.from_snapshot(sized.to_snapshot()).state_hash() == sized.state_hash()


@pytest.mark.parametrize("table", sorted(ENOUGH))
def test_each_table_below_its_capacity_grows(table: str) -> None:
    """Every configured size matters: one too-small table alone shows up as growth."""
    core = Core()
    core.reserve(**{k: (1 if k == table else v) for k, v in ENOUGH.items()})
    grown, _ = _run(core)
    # users/assets/symbols also grow during the setup batch, before ``before``
    assert core.growth_count > 0
    if table in ("orders", "book_orders", "events"):
        assert grown > 0


def test_reserve_rejects_bad_sizes() -> None:
    core = Core()
    with pytest.raises(ValueError):
        core.reserve(orders=-1)
    with pytest.raises(ValueError):
        core.reserve(users=1 << 30)
    with pytest.raises(ValueError):
        core.reserve(orders=1 << 40)
    with pytest.raises(ValueError, match="balance cells"):
        core.reserve(users=10_000_000, assets=60_000)
    assert core.growth_count == 0


def test_book_reserve_sizes_pool_and_id_map() -> None:
    book = Book(1, capacity_orders=16)
    book.reserve(5_000)
    assert book.capacity == 5_000
    for i in range(5_000):
        book.new_limit(i + 1, 1, Side.BUY, 1_000 + i, 1)
    assert book.grows == 0 and book.n_orders == 5_000
    small = Book(1, capacity_orders=16)
    for i in range(100):
        small.new_limit(i + 1, 1, Side.BUY, 1_000 + i, 1)
    assert small.grows > 0
