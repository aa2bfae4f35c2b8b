"""Stubs of pyx.book (the compiled order book; semantics in docs/book.md)."""

import numpy as np
import numpy.typing as npt

from pyx.evbuf import EventBuf

BUILD_DEBUG: bool

class Book:
    """Order book of one symbol: integer ticks and lots, price-time priority."""

    seq: int
    ts_ns: int
    symbol_id: int
    protection_ticks: int
    @property
    def last_price_ticks(self) -> int: ...
    @property
    def next_match_id(self) -> int: ...
    @property
    def tick_step(self) -> int: ...
    @property
    def lot_step(self) -> int: ...
    @property
    def min_qty_lots(self) -> int: ...
    @property
    def max_qty_lots(self) -> int: ...
    @property
    def min_price_ticks(self) -> int: ...
    @property
    def max_price_ticks(self) -> int: ...
    @property
    def capacity(self) -> int: ...
    @property
    def max_orders(self) -> int: ...
    @property
    def n_orders(self) -> int: ...
    @property
    def grows(self) -> int: ...
    def reserve(self, orders: int) -> None: ...
    @property
    def evbuf(self) -> EventBuf: ...
    def __init__(
        self,
        symbol_id: int = 1,
        *,
        tick_step: int = 1,
        lot_step: int = 1,
        min_qty_lots: int = 1,
        max_qty_lots: int = 10**12,
        min_price_ticks: int = 1,
        max_price_ticks: int = 10**12,
        protection_ticks: int = 10**12,
        capacity_orders: int = 1 << 16,
        max_orders: int = 1 << 24,
        events: EventBuf | None = None,
    ) -> None: ...
    def new_order(
        self,
        order_id: int,
        user_id: int,
        side: int,
        ord_type: int,
        tif: int,
        price_ticks: int,
        qty_lots: int,
        stop_price_ticks: int = 0,
        stp: int = 0,
        flags: int = 0,
    ) -> int: ...
    def new_limit(
        self,
        order_id: int,
        user_id: int,
        side: int,
        price_ticks: int,
        qty_lots: int,
        tif: int = 1,
        stp: int = 0,
        post_only: bool = False,
    ) -> int: ...
    def new_market(
        self,
        order_id: int,
        user_id: int,
        side: int,
        qty_lots: int,
        stp: int = 0,
        price_ticks: int = 0,
    ) -> int: ...
    def new_market_quote(self, order_id: int, user_id: int, budget: int, stp: int = 0) -> int: ...
    def new_stop(
        self,
        order_id: int,
        user_id: int,
        side: int,
        ord_type: int,
        stop_price_ticks: int,
        price_ticks: int,
        qty_lots: int,
        tif: int = 1,
        stp: int = 0,
    ) -> int: ...
    def cancel(self, order_id: int) -> int: ...
    def reduce(self, order_id: int, new_leaves_lots: int) -> int: ...
    def replace(self, order_id: int, price_ticks: int, qty_lots: int) -> int: ...
    def mass_cancel(self, user_id: int = 0, side: int = 0, all_users: bool = False) -> int: ...
    def best_bid(self) -> int: ...
    def best_ask(self) -> int: ...
    def last_price(self) -> int: ...
    def process(self, cmds: npt.NDArray[np.void]) -> npt.NDArray[np.void]: ...
    def events(self) -> npt.NDArray[np.void]: ...
    def clear_events(self) -> None: ...
    def order(self, order_id: int) -> tuple[int, int, int, int, int, int] | None: ...
    def l2(self, side: int, depth: int = 2**31) -> list[tuple[int, int, int]]: ...
    def l3(self) -> list[tuple[int, int, int, int, int, int]]: ...
    def l3_full(self) -> list[tuple[int, int, int, int, int, int, int, int, int, int]]: ...
    def stops(self) -> list[tuple[int, int, int, int, int, int, int, int, int]]: ...
    def state_hash(self) -> bytes: ...
    def restore_order(
        self,
        order_id: int,
        user_id: int,
        side: int,
        ord_type: int,
        tif: int,
        price_ticks: int,
        open_lots: int,
        stop_price_ticks: int = 0,
        stp: int = 0,
        flags: int = 0,
        is_stop: bool = False,
    ) -> None: ...
    def restore_counters(self, last_price_ticks: int, next_match_id: int) -> None: ...
    def check_invariants(self) -> None: ...
    def _level_stats(self) -> tuple[tuple[int, int], tuple[int, int]]: ...

def _layout_offsets() -> dict[str, dict[str, int]]: ...
