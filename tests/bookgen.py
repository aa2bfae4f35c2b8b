"""Command streams and invariant checks shared by the order-book tests.

A command is ``(method_name, args)``: a call of the per-command API that both the
Cython ``pyx.book.Book`` and ``tests.refbook.RefBook`` have.  :func:`to_records`
turns a list of them into the equivalent CMD_DTYPE array for the batch API.
:class:`EventTracker` rebuilds the live orders from the event stream alone and
:func:`check_book` checks the structural invariants of any book, so the Cython
book is checked without trusting the reference.  :func:`exchange_stream` makes a
long seeded stream in the style of exchange-core's single-symbol benchmark.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import numpy as np

from bursa_wire.layout import CMD_DTYPE
from pyx.enums import CmdFlag, CmdKind, EvFlag, EvKind, OrdType, Side, Tif

Cmd = tuple[str, tuple[int, ...]]


def call(book: Any, cmd: Cmd) -> int:
    """Run one command on ``book`` through the per-command API."""
    name, args = cmd
    return int(getattr(book, name)(*args))


def new_order_args(cmd: Cmd) -> tuple[int, ...]:
    """The ``new_order`` arguments equivalent to a new_* helper call."""
    name, a = cmd
    if name == "new_order":
        return a
    if name == "new_limit":  # oid, uid, side, price, qty, tif, stp, post_only
        flags = int(CmdFlag.POST_ONLY) if a[7] else 0
        return (a[0], a[1], a[2], OrdType.LIMIT, a[5], a[3], a[4], 0, a[6], flags)
    if name == "new_market":  # oid, uid, side, qty, stp, price
        return (a[0], a[1], a[2], OrdType.MARKET, Tif.IOC, a[5], a[3], 0, a[4], 0)
    if name == "new_market_quote":  # oid, uid, budget, stp
        return (a[0], a[1], Side.BUY, OrdType.MARKET_QUOTE, Tif.IOC, 0, a[2], 0, a[3], 0)
    if name == "new_stop":  # oid, uid, side, ord_type, stop, price, qty, tif, stp
        return (a[0], a[1], a[2], a[3], a[7], a[5], a[6], a[4], a[8], 0)
    raise ValueError(name)


def to_records(cmds: list[Cmd], seq0: int = 1, noise: int = 0) -> np.ndarray:
    """CMD_DTYPE array of ``cmds`` (seq = seq0 + i, ts_ns = 1000 * seq).

    With ``noise`` != 0 the fields a kind does not read (docs/book.md, batch) are
    filled with junk derived from it: the book must ignore them.
    """
    recs = np.zeros(len(cmds), dtype=CMD_DTYPE)
    for i, cmd in enumerate(cmds):
        r = recs[i]
        seq = seq0 + i
        r["seq"] = seq
        r["ts_ns"] = 1000 * seq
        if noise:
            j = (noise * 7919 + i * 104729) & 0xFFFF
            r["client_ref"] = j
            r["a0"], r["a1"], r["a2"], r["a3"] = j, -j, j * 3, j
            r["symbol_id"] = j
        name, a = cmd
        if name.startswith("new_"):
            oid, uid, side, ot, tif, price, qty, stop, stp, flags = new_order_args(cmd)
            r["kind"] = CmdKind.NEW
            r["order_id"], r["user_id"], r["side"], r["ord_type"] = oid, uid, side, ot
            r["tif"], r["price_ticks"], r["qty_lots"] = tif, price, qty
            r["stop_price_ticks"], r["stp"], r["flags"] = stop, stp, flags
            continue
        if noise:
            r["user_id"], r["side"], r["ord_type"], r["tif"], r["stp"] = 5, 1, 1, 1, 1
            r["stop_price_ticks"] = 77
        if name == "cancel":
            r["kind"], r["order_id"] = CmdKind.CANCEL, a[0]
            if noise:
                r["price_ticks"], r["qty_lots"] = 3, 4
        elif name == "reduce":
            r["kind"], r["order_id"], r["qty_lots"] = CmdKind.REDUCE, a[0], a[1]
            if noise:
                r["price_ticks"] = 3
        elif name == "replace":
            r["kind"], r["order_id"] = CmdKind.REPLACE, a[0]
            r["price_ticks"], r["qty_lots"] = a[1], a[2]
        elif name == "mass_cancel":
            r["kind"], r["user_id"], r["side"] = CmdKind.MASS_CANCEL, a[0], a[1]
            r["flags"] = int(CmdFlag.MASS_ALL_USERS) if a[2] else 0
            if noise:
                r["order_id"], r["price_ticks"], r["qty_lots"] = 9, 3, 4
                r["ord_type"], r["tif"], r["stp"] = 1, 1, 1
        else:
            raise ValueError(name)
    return recs


def ev_tuples(arr: np.ndarray) -> list[tuple[int, ...]]:
    """Event records as plain int tuples (comparable, printable)."""
    return [tuple(int(x) for x in r) for r in arr.tolist()]


class EventTracker:
    """Live orders and their open quantity, rebuilt from the event stream only.

    ``feed`` asserts that the events are consistent with each other (a maker that
    trades is live, MAKER_DONE exactly when its open quantity reaches 0, ...);
    ``check`` asserts that a book's L3 and stop set hold exactly the live orders.
    """

    def __init__(self) -> None:
        self.open_lots: dict[int, int] = {}

    def feed(self, events: np.ndarray) -> None:
        """Apply a batch of EV_DTYPE records."""
        for e in events:
            kind = int(e["kind"])
            oid = int(e["order_id"])
            leaves = int(e["leaves_lots"])
            if kind == EvKind.ACCEPTED:
                assert oid not in self.open_lots, ("accepted twice", oid)
                assert leaves == int(e["qty_lots"]) > 0
                self.open_lots[oid] = leaves
            elif kind == EvKind.TRADE:
                mid = int(e["maker_order_id"])
                qty = int(e["qty_lots"])
                assert qty > 0 and oid in self.open_lots and mid in self.open_lots, (oid, mid)
                self.open_lots[mid] -= qty
                assert self.open_lots[mid] >= 0
                maker_done = bool(int(e["flags"]) & EvFlag.MAKER_DONE)
                assert maker_done == (self.open_lots[mid] == 0), ("MAKER_DONE", mid)
                if maker_done:
                    del self.open_lots[mid]
                taker_done = bool(int(e["flags"]) & EvFlag.TAKER_DONE)
                assert taker_done == (leaves == 0), ("TAKER_DONE", oid)
                assert 0 <= leaves < self.open_lots[oid]
                self.open_lots[oid] = leaves
                if taker_done:
                    del self.open_lots[oid]
            elif kind == EvKind.CANCELED:
                assert oid in self.open_lots, ("canceled unknown", oid)
                assert int(e["qty_lots"]) == self.open_lots[oid] > 0
                assert leaves == 0
                del self.open_lots[oid]
            elif kind in (EvKind.REDUCED, EvKind.REPLACED):
                assert oid in self.open_lots, ("changed unknown", oid)
                assert leaves > 0
                if kind == EvKind.REDUCED:
                    assert int(e["qty_lots"]) == self.open_lots[oid] - leaves > 0
                self.open_lots[oid] = leaves
            elif kind == EvKind.TRIGGERED:
                assert self.open_lots.get(oid) == int(e["qty_lots"]) == leaves
            else:
                assert kind == EvKind.REJECTED, kind
                assert int(e["reason"]) >= 100 and leaves == 0

    def check(self, book: Any) -> None:
        """The book holds exactly the live orders, with their open quantities."""
        held = {r[0]: r[4] for r in book.l3()}
        for r in book.stops():
            assert r[0] not in held, ("resting and stop", r[0])
            held[r[0]] = r[7]
        assert held == self.open_lots


def check_book(book: Any) -> None:
    """Structural invariants of a book, from its public dumps only.

    No crossed book at rest, levels sorted best first, each level's total and
    count equal to the sum of its L3 orders, ids unique, best prices and
    ``n_orders`` consistent.
    """
    bids, asks = book.l2(Side.BUY), book.l2(Side.SELL)
    assert all(a[0] > b[0] for a, b in itertools.pairwise(bids)), bids
    assert all(a[0] < b[0] for a, b in itertools.pairwise(asks)), asks
    assert book.best_bid() == (bids[0][0] if bids else 0)
    assert book.best_ask() == (asks[0][0] if asks else 0)
    if bids and asks:
        assert bids[0][0] < asks[0][0], ("crossed", bids[0], asks[0])
    l3 = book.l3()
    stops = book.stops()
    ids = [r[0] for r in l3] + [r[0] for r in stops]
    assert len(ids) == len(set(ids)), "duplicate order id"
    assert book.n_orders == len(ids)
    levels: list[tuple[int, int, int, int]] = []  # side, price, total, count in l3 order
    for oid, _uid, side, price, open_lots, _flags in l3:
        assert open_lots > 0, oid
        if levels and levels[-1][:2] == (side, price):
            s, p, tot, cnt = levels[-1]
            levels[-1] = (s, p, tot + open_lots, cnt + 1)
        else:
            levels.append((side, price, open_lots, 1))
    expect = [(Side.BUY, *lv) for lv in bids] + [(Side.SELL, *lv) for lv in asks]
    assert levels == expect, ("l2 vs l3", levels, expect)
    for r in stops:
        assert r[3] in (OrdType.STOP_LIMIT, OrdType.STOP_MARKET) and r[7] > 0, r


def reason_counts(events: np.ndarray) -> Counter[tuple[int, int]]:
    """How often each (event kind, reason) pair occurs."""
    return Counter(zip(events["kind"].tolist(), events["reason"].tolist(), strict=True))


# ----------------------------------------------------------------------- streams

STREAM_CONFIG: dict[str, Any] = {
    "tick_step": 1,
    "lot_step": 1,
    "min_qty_lots": 1,
    "max_qty_lots": 1_000_000,
    "min_price_ticks": 1,
    "max_price_ticks": 1_000_000,
    "protection_ticks": 50,
    "capacity_orders": 256,
    "max_orders": 1 << 20,
}

# Command mix (fractions): exchange-core's 9% GTC, 3% IOC, 6% cancel, 82% move,
# with a slice of the move share given to every other command kind and bad input.
STREAM_MIX = (
    ("gtc", 0.09),
    ("ioc", 0.03),
    ("cancel", 0.06),
    ("move", 0.70),
    ("fok", 0.01),
    ("market", 0.015),
    ("quote", 0.01),
    ("stop", 0.02),
    ("reduce", 0.02),
    ("resize", 0.01),
    ("mass", 0.001),
    ("bad", 0.014),
)


STREAM_TRACKED_MAX = 3000  # GTC ids the stream generator keeps as move/cancel targets


def exchange_stream(seed: int, n: int) -> np.ndarray:
    """A seeded CMD_DTYPE stream of ``n`` commands for STREAM_CONFIG books.

    Resting orders sit around a slowly drifting mid price (several hundred orders
    over several hundred levels); a move replaces a resting order to a new price
    near the mid, sometimes crossing.  The generator does not run a book: it
    targets GTC orders it has not canceled or moved across the mid itself (some of
    them have traded away meanwhile, which gives UNKNOWN_ORDER_ID rejects) and,
    one time in ten, any recent id.  Fifty users and random STP modes make
    self-trades occasional.
    """
    rng = np.random.default_rng(seed)
    names = [m[0] for m in STREAM_MIX]
    probs = np.array([m[1] for m in STREAM_MIX])
    kinds = rng.choice(len(names), size=n, p=probs / probs.sum()).tolist()
    mid = (100_000 + np.cumsum(rng.integers(-1, 2, size=n))).tolist()
    offs = rng.geometric(0.004, size=n).clip(max=3000).tolist()  # distance from the mid
    qtys = rng.integers(1, 100, size=n).tolist()
    users = rng.integers(1, 51, size=n).tolist()
    sides = rng.integers(1, 3, size=n).tolist()
    stps = rng.choice(5, size=n, p=[0.6, 0.1, 0.1, 0.1, 0.1]).tolist()
    cross = (rng.random(size=n) < 0.05).tolist()
    pick = rng.random(size=n).tolist()
    junk = rng.integers(0, 12, size=n).tolist()
    col: dict[str, list[int]] = {f: [0] * n for f in CMD_DTYPE.names or ()}
    side_of = [0] * (n + 2)  # side of each order id issued
    resting: list[int] = []  # GTC ids the generator believes rest
    next_id = 1
    for i in range(n):
        kind = names[kinds[i]]
        side = sides[i]
        sign = 1 if side == Side.SELL else -1  # passive side of the mid
        px = mid[i] + sign * offs[i]
        if cross[i]:
            px = mid[i] - sign * (offs[i] % 20)
        if kind in ("cancel", "move", "reduce", "resize"):
            if resting and pick[i] < 0.9:
                k = int(pick[i] * 1e6) % len(resting)
                target = resting[k]
                # cancel, reduce to 0, and a crossing move (it usually trades away)
                gone = kind == "cancel" or (kind == "reduce" and qtys[i] < 3)
                if gone or (kind in ("move", "resize") and cross[i]):
                    resting[k] = resting[-1]
                    resting.pop()
            else:
                target = max(1, next_id - int(pick[i] * 2000))
            col["order_id"][i] = target
            tsign = 1 if side_of[target] == Side.SELL else -1
            if kind == "cancel":
                col["kind"][i] = CmdKind.CANCEL
            elif kind == "reduce":
                col["kind"][i], col["qty_lots"][i] = CmdKind.REDUCE, qtys[i] // 3
            else:
                col["kind"][i] = CmdKind.REPLACE
                tpx = mid[i] + tsign * offs[i]
                if cross[i]:
                    tpx = mid[i] - tsign * (offs[i] % 20)
                col["price_ticks"][i] = tpx
                col["qty_lots"][i] = qtys[i]
            continue
        if kind == "mass":
            col["kind"][i], col["user_id"][i] = CmdKind.MASS_CANCEL, users[i]
            col["side"][i] = junk[i] % 3
            continue
        col["kind"][i] = CmdKind.NEW
        col["order_id"][i] = next_id
        side_of[next_id] = side
        col["user_id"][i], col["side"][i], col["stp"][i] = users[i], side, stps[i]
        col["qty_lots"][i] = qtys[i]
        col["ord_type"][i], col["tif"][i], col["price_ticks"][i] = OrdType.LIMIT, Tif.GTC, px
        if kind == "gtc":
            resting.append(next_id)
            if len(resting) > STREAM_TRACKED_MAX:  # the oldest have mostly traded away
                del resting[: STREAM_TRACKED_MAX // 2]
            if junk[i] == 0:
                col["flags"][i] = CmdFlag.POST_ONLY
        elif kind == "ioc":
            col["tif"][i] = Tif.IOC
        elif kind == "fok":
            col["tif"][i] = Tif.FOK
        elif kind == "market":
            col["ord_type"][i], col["tif"][i], col["price_ticks"][i] = OrdType.MARKET, Tif.IOC, 0
        elif kind == "quote":
            col["ord_type"][i], col["tif"][i] = OrdType.MARKET_QUOTE, Tif.IOC
            col["side"][i], col["price_ticks"][i] = Side.BUY, 0
            col["qty_lots"][i] = qtys[i] * 50_000
        elif kind == "stop":
            # A stop just beyond the mid on the side it protects, so some trigger.
            stop_px = mid[i] - sign * (1 + offs[i] % 30)
            col["stop_price_ticks"][i] = stop_px
            if junk[i] % 2:
                col["ord_type"][i], col["tif"][i] = OrdType.STOP_MARKET, Tif.IOC
                col["price_ticks"][i] = 0
            else:
                col["ord_type"][i] = OrdType.STOP_LIMIT
                col["price_ticks"][i] = stop_px - sign * 5
                col["tif"][i] = (Tif.GTC, Tif.IOC, Tif.FOK)[junk[i] % 3]
        else:  # bad input of every kind
            _make_bad(col, i, junk[i], max(1, next_id - int(pick[i] * 50)))
        next_id += 1
    recs = np.zeros(n, dtype=CMD_DTYPE)
    for f, values in col.items():
        recs[f] = values
    recs["seq"] = np.arange(1, n + 1)
    recs["ts_ns"] = recs["seq"] * 1000
    return recs


def _make_bad(col: dict[str, list[int]], i: int, which: int, target: int) -> None:
    """Turn new-order command ``i`` into one of several invalid commands."""
    if which == 0:
        col["side"][i] = 3
    elif which == 1:
        col["ord_type"][i] = 9
    elif which == 2:
        col["tif"][i] = 7
    elif which == 3:
        col["stp"][i] = 6
    elif which == 4:
        col["qty_lots"][i] = 0
    elif which == 5:
        col["qty_lots"][i] = 10**7  # above max_qty_lots
    elif which == 6:
        col["price_ticks"][i] = 2_000_000  # above the band
    elif which == 7:
        col["order_id"][i] = target  # maybe a duplicate
    elif which == 8:
        col["flags"][i] = CmdFlag.POST_ONLY
        col["tif"][i] = Tif.IOC
    elif which == 9:
        col["ord_type"][i], col["stop_price_ticks"][i] = OrdType.STOP_LIMIT, 0
    elif which == 10:
        col["kind"][i] = 17  # not a book command
    else:
        col["qty_lots"][i] = -5


def apply_record(book: Any, rec: np.ndarray, i: int) -> int:
    """Run command ``rec[i]`` through the per-command API of ``book``.

    ``seq`` / ``ts_ns`` are taken from the record, as the batch API does.  Kinds
    the per-command API has no method for go through ``process`` (which clears the
    book's events first).
    """
    c = rec[i]
    book.seq, book.ts_ns = int(c["seq"]), int(c["ts_ns"])
    kind = int(c["kind"])
    oid = int(c["order_id"])
    if kind == CmdKind.NEW:
        return int(
            book.new_order(
                oid,
                int(c["user_id"]),
                int(c["side"]),
                int(c["ord_type"]),
                int(c["tif"]),
                int(c["price_ticks"]),
                int(c["qty_lots"]),
                int(c["stop_price_ticks"]),
                int(c["stp"]),
                int(c["flags"]),
            )
        )
    if kind == CmdKind.CANCEL:
        return int(book.cancel(oid))
    if kind == CmdKind.REDUCE:
        return int(book.reduce(oid, int(c["qty_lots"])))
    if kind == CmdKind.REPLACE:
        return int(book.replace(oid, int(c["price_ticks"]), int(c["qty_lots"])))
    if kind == CmdKind.MASS_CANCEL:
        all_users = bool(int(c["flags"]) & CmdFlag.MASS_ALL_USERS)
        return int(book.mass_cancel(int(c["user_id"]), int(c["side"]), all_users))
    return len(book.process(rec[i : i + 1]))
