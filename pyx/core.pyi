"""Stubs of pyx.core (the compiled core state machine; see pyx/core.pyx)."""

from typing import Any

import numpy as np
import numpy.typing as npt

from pyx.book import Book
from pyx.evbuf import EventBuf

VARIANTS: frozenset[str]
VARIANTS_BUILT: bool

REF_MEMORY: int
ORDER_ID_LANE_SHIFT: int  # bit of an order id that picks its lane (pyx/core.pxd)
ORDER_ID_LANES: int

class CoreState:
    """Accounts, risk, books and settlement of one core (no I/O)."""

    last_seq: int
    evbuf: EventBuf
    variants: frozenset[str]
    ref_memory: int
    def __init__(self, variants: frozenset[str] = ..., ref_memory: int = ...) -> None: ...
    def reserve(
        self,
        *,
        users: int = 0,
        assets: int = 0,
        symbols: int = 0,
        orders: int = 0,
        book_orders: int = 0,
        events: int = 0,
    ) -> None: ...
    @property
    def growth_count(self) -> int: ...
    def apply(
        self, cmds: npt.NDArray[np.void]
    ) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]]: ...
    def balance(self, user_id: int, asset_id: int, account: int = 0) -> tuple[int, int]: ...
    def fee_balance(self, asset_id: int) -> int: ...
    def book(self, symbol_id: int) -> Book | None: ...
    def order_hold(self, order_id: int, user_id: int | None = None) -> dict[str, int] | None: ...
    def order_marks(
        self, lane: int = 0
    ) -> dict[int, tuple[int, int, list[tuple[int, int, int]]]]: ...
    def open_orders(self, user_id: int | None = None) -> list[dict[str, int]]: ...
    @property
    def n_live_orders(self) -> int: ...
    def _symbol_ids(self) -> list[int]: ...
    def _dump(self, with_books: bool = True) -> dict[str, Any]: ...
    def _load(self, d: dict[str, Any]) -> None: ...
    def _arrays(
        self,
    ) -> tuple[
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        npt.NDArray[np.int64],
        list[int],
        list[int],
        list[int],
        list[int],
        list[int],
    ]: ...

def _reply_layout() -> tuple[int, dict[str, int]]: ...
def internal_order_id(user_id: int, order_id: int) -> int: ...
def client_order_id(internal_id: int) -> tuple[int, int]: ...
def stamp_batch(cmds: npt.NDArray[np.void], first_seq: int, ts_ns: int) -> None: ...
