"""Core snapshots restore books through the book's restore API (Book.restore_order).

The book section of a snapshot is the book's own dump (``l3_full()`` and ``stops()``
rows, counters): orders that a plain re-submission could not recreate (below the
minimum quantity, a triggered STOP_LIMIT resting with its stop price, a LIMIT sent
with a stop price, post-only) come back exactly, and a book section that no valid
book could have, or that disagrees with the hold records, is a SnapshotError.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.core import Core, SnapshotError
from engine.wire import commands as cmd
from pyx.core import client_order_id
from pyx.enums import CmdFlag, OrdType, Side, Stp, Tif
from tests.engine.corekit import SYM, Ex


def _state() -> Ex:
    ex = Ex(min_qty=5)
    ex.user(1, base=10**6, quote=10**8)
    ex.user(2, base=10**6, quote=10**8)
    ex.ok(
        cmd.new_order(
            10, 1, SYM, Side.SELL, OrdType.STOP_LIMIT, 6, price_ticks=99,
            stop_price_ticks=100, tif=Tif.GTC, stp=Stp.DECREMENT,
        ),
        cmd.new_limit(1, 1, SYM, Side.BUY, 100, 6),
        cmd.new_limit(2, 2, SYM, Side.SELL, 100, 5),  # order 1 left with 1 lot; 10 triggers
        cmd.new_order(
            11, 2, SYM, Side.SELL, OrdType.LIMIT, 5, price_ticks=120, stop_price_ticks=77,
            tif=Tif.GTC, stp=Stp.CANCEL_BOTH,
        ),
        cmd.new_limit(14, 1, SYM, Side.BUY, 95, 6),
        cmd.new_limit(15, 2, SYM, Side.SELL, 95, 5, tif=Tif.IOC),  # 14 left with 1 < min 5
        cmd.new_limit(12, 1, SYM, Side.BUY, 90, 7, post_only=True),
        cmd.new_order(
            13, 2, SYM, Side.BUY, OrdType.STOP_MARKET, 5, stop_price_ticks=130, tif=Tif.IOC
        ),
    )  # fmt: skip
    return ex


def test_book_rows_round_trip_exactly() -> None:
    ex = _state()
    book = ex.core.book(SYM)
    assert book is not None
    rows = {client_order_id(r[0])[1]: r for r in book.l3_full()}
    assert rows[10][6:] == (OrdType.STOP_LIMIT, Tif.GTC, 100, Stp.DECREMENT)
    assert rows[11][6:] == (OrdType.LIMIT, Tif.GTC, 77, Stp.CANCEL_BOTH)
    assert rows[14][4] == 1 and rows[12][5] == CmdFlag.POST_ONLY
    twin = Core.from_snapshot(ex.core.to_snapshot())
    tbook = twin.book(SYM)
    assert tbook is not None
    assert tbook.l3_full() == book.l3_full() and tbook.stops() == book.stops()
    assert tbook.state_hash() == book.state_hash()
    assert twin.to_snapshot() == ex.core.to_snapshot()
    more = (
        cmd.CmdBatch()
        .add(cmd.new_limit(20, 2, SYM, Side.SELL, 90, 8))
        .add(cmd.replace(11, 2, 90, 5))
    )
    ev1, rep1 = ex.core.run(more.to_array())
    ev1, rep1 = ev1.copy(), rep1.copy()
    ev2, rep2 = twin.run(more.to_array())
    assert ev1.tobytes() == ev2.tobytes() and rep1.tobytes() == rep2.tobytes()
    assert twin.state_hash() == ex.core.state_hash()


def _resnap(core: Core, edit: Any) -> bytes:
    """The snapshot of ``core`` with its dump changed by ``edit(dump)``."""
    d = core._dump()
    edit(d)
    fake = Core()
    fake._dump = lambda with_books=True: d  # type: ignore[method-assign]
    return fake.to_snapshot()


def _edit_book(d: dict[str, Any], fn: Any) -> None:
    sid, (last, nm, rows, stops) = d["books"][0]
    d["books"][0] = (sid, fn(last, nm, list(rows), list(stops)))


def _crossing(last: int, nm: int, rows: list[Any], stops: list[Any]) -> Any:
    r = list(rows[0])
    assert r[2] == Side.BUY
    r[3] = 125  # the best bid above the asks: restoring the first ask crosses
    rows[0] = tuple(r)
    return last, nm, tuple(rows), tuple(stops)


def _stop_reached(last: int, nm: int, rows: list[Any], stops: list[Any]) -> Any:
    return 130, nm, tuple(rows), tuple(stops)  # buy stop 13 at 130 reached by last 130


def _dropped(last: int, nm: int, rows: list[Any], stops: list[Any]) -> Any:
    return last, nm, tuple(rows[1:]), tuple(stops)  # an order with a hold, not in the book


def _duplicate(last: int, nm: int, rows: list[Any], stops: list[Any]) -> Any:
    return last, nm, tuple(rows + rows[:1]), tuple(stops)


@pytest.mark.parametrize(
    ("fn", "msg"),
    [
        (_crossing, "crosses"),
        (_stop_reached, "reaches stop"),
        (_dropped, "books hold"),
        (_duplicate, "already live"),
    ],
)
def test_corrupt_book_section_is_a_snapshot_error(fn: Any, msg: str) -> None:
    ex = _state()
    good = _resnap(ex.core, lambda d: None)
    assert Core.from_snapshot(good).state_hash() == ex.core.state_hash()
    bad = _resnap(ex.core, lambda d: _edit_book(d, fn))
    with pytest.raises(SnapshotError, match=msg):
        Core.from_snapshot(bad)


def test_hold_record_disagreeing_with_the_book_is_a_snapshot_error() -> None:
    ex = _state()

    def other_user(d: dict[str, Any]) -> None:
        o = list(d["orders"][0])
        o[1] = 2 if o[1] == 1 else 1
        d["orders"][0] = tuple(o)

    with pytest.raises(SnapshotError, match="disagree"):
        Core.from_snapshot(_resnap(ex.core, other_user))
