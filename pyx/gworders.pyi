"""Type stubs of pyx/gworders.pyx (the gateway's order log records)."""

import struct
from collections import deque
from typing import Any

ORDER_REC: struct.Struct

def pack_orders(
    orders: list[Any],
    unfolded: dict[tuple[int, int], int] | None = None,
    log_id: int | None = None,
    ended: deque[tuple[int, int]] | None = None,
) -> bytes: ...
def fold_rows(
    orders: list[Any], unfolded: dict[tuple[int, int], int], log_id: int, rows: list[Any]
) -> None: ...
