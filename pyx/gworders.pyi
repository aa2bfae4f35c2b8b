"""Type stubs of pyx/gworders.pyx (the gateway's order log records)."""

import struct
from collections import deque
from typing import Any

ORDER_REC: struct.Struct
ORDER_FIELDS: tuple[str, ...]
ORDER_KEY_SHIFT: int
MAX_KEY_USER_ID: int
MAX_KEY_ORDER_ID: int

def order_key(user_id: int, order_id: int) -> int: ...
def split_key(key: int) -> tuple[int, int]: ...

class Order:
    """One order the gateway entered (compiled; see the module docstring)."""

    user_id: int
    order_id: int
    key_id: int
    cl_ord_id: int
    symbol_id: int
    side: int
    ord_type: int
    price: int
    qty: int
    leaves: int
    filled: int
    state: int
    reason: int
    pending: list[str]
    stored: bool
    log_id: int
    def __init__(
        self,
        user_id: int,
        order_id: int,
        key_id: int,
        cl_ord_id: int,
        symbol_id: int,
        side: int,
        ord_type: int,
        price: int,
        qty: int,
        leaves: int,
        filled: int = ...,
        state: int = ...,
        reason: int = ...,
        pending: list[str] | None = ...,
    ) -> None: ...
    @property
    def key(self) -> int: ...
    @property
    def is_open(self) -> bool: ...
    def astuple(self) -> tuple[int | list[str], ...]: ...

def pack_orders(
    orders: list[Any],
    log_id: int | None = None,
    ended: deque[Order] | list[Order | None] | None = None,
) -> bytes: ...
def order_row(o: Order) -> tuple[int, int, int, bytearray]: ...
def fold_rows(
    orders: list[Any],
    log_id: int,
    rows: list[Any],
    runs: dict[int, list[Any]] | None = None,
) -> None: ...
def sort_by_cl(run: list[Order]) -> None: ...
def evict_ended(
    ended: list[Order | None],
    head: int,
    orders: dict[int, Order],
    by_cl: dict[int, dict[int, Order]],
    bound: int,
) -> tuple[int, int, int]: ...
