"""The public order book of one symbol as the feed sees it (no user ids leave it).

Orders are keyed by the core's ``(user_id, order_id)`` (order ids live in the
namespace of their user) and named publicly by ``ref``, a per-symbol counter
assigned when an order starts resting.  Levels keep their orders in priority
(FIFO) order; every change records the level's state before it, so the feed can
emit one L2 message per changed level per core command.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from marketdata.wire.layout import CANDLE_INTERVALS_S, Channel, topic

BUY = 1
SELL = 2
# Closed candles kept per interval, recent trades kept per symbol (answers of the service).
CANDLE_HISTORY_MAX = 1000
RECENT_TRADES_MAX = 1000


@dataclass(slots=True)
class Order:
    """A resting order: public ``ref``, side, price (ticks), open quantity (lots)."""

    ref: int
    key: tuple[int, int]
    side: int
    price: int
    leaves: int


@dataclass(slots=True)
class Level:
    """One price level: total open lots and its orders by ref in priority order."""

    qty: int = 0
    orders: dict[int, Order] = field(default_factory=dict)


@dataclass(slots=True)
class Candle:
    """An in-progress candle (prices in ticks, volume in lots, quote volume ticks x lots)."""

    start_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    quote_volume: int = 0
    trades: int = 0


class SymbolBook:
    """State the feed keeps for one symbol: book, sequence numbers, status, candles."""

    def __init__(self, symbol_id: int, replay_window: int) -> None:
        self.symbol_id = symbol_id
        self.orders: dict[tuple[int, int], Order] = {}
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self.next_ref = 1
        # By channel value (an int: IntEnum members hash and compare equal to it).
        self.seqs: dict[int, int] = {int(ch): 0 for ch in Channel}
        self.topics: dict[int, bytes] = {int(ch): topic(ch, symbol_id) for ch in Channel}
        # The last messages of each channel, for the replay service (bounded).
        self.windows: dict[int, deque[bytes]] = {
            int(ch): deque(maxlen=replay_window) for ch in Channel
        }
        self.config: tuple[int, ...] = ()
        self.halted = False
        self.status_raw = b""
        self.bbo: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0)
        self.candles: dict[int, Candle | None] = dict.fromkeys(CANDLE_INTERVALS_S)
        self.candle_last_raw: dict[int, bytes] = {}
        self.candle_history: dict[int, deque[bytes]] = {
            iv: deque(maxlen=CANDLE_HISTORY_MAX) for iv in CANDLE_INTERVALS_S
        }
        self.trades: deque[bytes] = deque(maxlen=RECENT_TRADES_MAX)

    def side_levels(self, side: int) -> dict[int, Level]:
        """The levels of a side, by price."""
        return self.bids if side == BUY else self.asks

    def level_state(self, side: int, price: int) -> tuple[int, int]:
        """(total lots, order count) of a level; (0, 0) when it does not exist."""
        lv = self.side_levels(side).get(price)
        return (lv.qty, len(lv.orders)) if lv is not None else (0, 0)

    def add(self, order: Order) -> None:
        """Rest ``order`` at the back of its level."""
        levels = self.side_levels(order.side)
        lv = levels.get(order.price)
        if lv is None:
            lv = levels[order.price] = Level()
        lv.orders[order.ref] = order
        lv.qty += order.leaves
        self.orders[order.key] = order

    def remove(self, order: Order) -> None:
        """Take ``order`` off the book."""
        levels = self.side_levels(order.side)
        lv = levels[order.price]
        del lv.orders[order.ref]
        lv.qty -= order.leaves
        if not lv.orders:
            assert lv.qty == 0, lv.qty
            del levels[order.price]
        del self.orders[order.key]

    def reduce(self, order: Order, lots: int) -> None:
        """Remove ``lots`` from a resting order, keeping its place (0 < lots < leaves)."""
        assert 0 < lots < order.leaves, (lots, order.leaves)
        self.side_levels(order.side)[order.price].qty -= lots
        order.leaves -= lots

    def top(self) -> tuple[int, int, int, int, int, int]:
        """(bid price, bid lots, bid orders, ask price, ask lots, ask orders); 0s when empty."""
        bp = max(self.bids) if self.bids else 0
        ap = min(self.asks) if self.asks else 0
        bl = self.bids.get(bp)
        al = self.asks.get(ap)
        return (
            bp,
            bl.qty if bl else 0,
            len(bl.orders) if bl else 0,
            ap,
            al.qty if al else 0,
            len(al.orders) if al else 0,
        )

    def l2(self, depth: int = 0) -> tuple[list[list[int]], list[list[int]]]:
        """Bids and asks as ``[price, lots, orders]`` best first (depth 0 = all)."""
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        if depth > 0:
            bids, asks = bids[:depth], asks[:depth]
        return (
            [[p, lv.qty, len(lv.orders)] for p, lv in bids],
            [[p, lv.qty, len(lv.orders)] for p, lv in asks],
        )

    def l3(self) -> list[list[int]]:
        """Every resting order ``[ref, side, price, lots]``: bids best first, then asks."""
        out: list[list[int]] = []
        for levels, rev in ((self.bids, True), (self.asks, False)):
            for p in sorted(levels, reverse=rev):
                out += [[o.ref, o.side, p, o.leaves] for o in levels[p].orders.values()]
        return out
