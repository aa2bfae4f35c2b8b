"""The public order book of one symbol as the feed sees it (no user ids leave it).

Orders are keyed by the core's ``(user_id, order_id)`` (order ids live in the
namespace of their user) and named publicly by ``ref``, a per-symbol counter
assigned when an order starts resting.  Levels keep their orders in priority
(FIFO) order; the feed records a level's state before its first change in a
command, so it can emit one L2 message per changed level per core command.
The classes are Cython (:mod:`pyx.mdfeed`), shared with the feed's hot path.
"""

from __future__ import annotations

from pyx.mdfeed import (
    BUY,
    CANDLE_HISTORY_MAX,
    RECENT_TRADES_MAX,
    SELL,
    Candle,
    Level,
    Order,
    SymbolBook,
)

__all__ = [
    "BUY",
    "CANDLE_HISTORY_MAX",
    "RECENT_TRADES_MAX",
    "SELL",
    "Candle",
    "Level",
    "Order",
    "SymbolBook",
]
