from collections import deque

import numpy as np
import numpy.typing as npt

REPLAY_WINDOW_DEFAULT: int
CANDLE_HISTORY_MAX: int
RECENT_TRADES_MAX: int
BUY: int
SELL: int

class Order:
    """A resting order: public ``ref``, core key ``(user_id, order_id)``, side, price, open lots."""

    ref: int
    key: tuple[int, int]
    side: int
    price: int
    leaves: int
    def __init__(
        self, ref: int, key: tuple[int, int], side: int, price: int, leaves: int
    ) -> None: ...

class Level:
    """One price level: total open lots and its orders by ref in priority order."""

    qty: int
    orders: dict[int, Order]
    def __init__(self) -> None: ...

class Candle:
    """An in-progress candle (prices in ticks, volume in lots, quote volume ticks x lots)."""

    start_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    trades: int
    def __init__(
        self,
        start_ns: int,
        open: int,
        high: int,
        low: int,
        close: int,
        volume: int = 0,
        quote_volume: int = 0,
        trades: int = 0,
    ) -> None: ...

class SymbolBook:
    """State the feed keeps for one symbol: book, sequence numbers, status, candles."""

    symbol_id: int
    orders: dict[tuple[int, int], Order]
    bids: dict[int, Level]
    asks: dict[int, Level]
    next_ref: int
    windows: dict[int, deque[bytes]]
    config: tuple[int, ...]
    halted: bool
    status_raw: bytes
    candle_last_raw: dict[int, bytes]
    candle_history: dict[int, deque[bytes]]
    trades: deque[bytes]
    def __init__(self, symbol_id: int, replay_window: int) -> None: ...
    @property
    def seqs(self) -> dict[int, int]: ...
    @property
    def topics(self) -> dict[int, bytes]: ...
    @property
    def bbo(self) -> tuple[int, int, int, int, int, int]: ...
    @property
    def candles(self) -> dict[int, Candle | None]: ...
    def side_levels(self, side: int) -> dict[int, Level]: ...
    def level_state(self, side: int, price: int) -> tuple[int, int]: ...
    def top(self) -> tuple[int, int, int, int, int, int]: ...
    def l2(self, depth: int = 0) -> tuple[list[list[int]], list[list[int]]]: ...
    def l3(self) -> list[list[int]]: ...

class Feed:
    """Core events -> feed messages, with the state the service answers from."""

    replay_window: int
    symbols: dict[int, SymbolBook]
    asset_decimals: dict[int, int]
    core_seq: int
    out: list[tuple[bytes, bytes]]
    def __init__(self, replay_window: int = ...) -> None: ...
    def apply_events(self, events: npt.NDArray[np.void], last_seq: int) -> None: ...
    def take(self) -> list[tuple[bytes, bytes]]: ...

def group_parts(
    out: list[tuple[bytes, bytes]], part_max: int, drop_every: int = 0, sent: int = 0
) -> tuple[list[tuple[bytes, bytes]], int, int]: ...
