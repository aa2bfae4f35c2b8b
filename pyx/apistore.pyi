"""Type stubs of pyx/apistore.pyx (the store's order-entry side in C)."""

from typing import Any

def configure(
    order_cls: type, rec_size: int, layout: tuple[tuple[int, int], ...], kind: int,
    consts: tuple[Any, ...],
) -> None: ...  # fmt: skip
def new_record(
    order_id: int, price: int, qty: int, user_id: int, symbol_id: int, side: int,
    ord_type: int, tif: int, stp: int, flags: int,
) -> bytes: ...  # fmt: skip

class ClientIdFilter:
    _bits: bytearray
    _mask: int
    count: int
    def __init__(self, bits_log2: int = 24) -> None: ...
    def add(self, user_id: int, client_order_id: str) -> None: ...
    def may_hold(self, user_id: int, client_order_id: str) -> bool: ...

class OrderEntry:
    client_ids: Any
    next_order_id: int
    reserved_order_id: int
    def __init__(
        self, open: dict[tuple[int, int], Any], open_by_cl: dict[tuple[int, str], Any],
        intents: dict[tuple[int, int], Any], meta: dict[str, int], new: set[tuple[int, int]],
        unlogged: list[Any], cl_filter: ClientIdFilter, id_base: int, max_order_id: int,
        id_reserve: int,
    ) -> None: ...  # fmt: skip
    def open_usual(
        self, params: dict[str, str], by_name: dict[str, Any], uid: int, key: str,
        limits: Any, now_ns: int = -1,
    ) -> tuple[Any, Any, bytes, str, bool] | None: ...  # fmt: skip
