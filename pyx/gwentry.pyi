"""Type stubs of pyx/gwentry.pyx (the gateway's compiled inbound path)."""

from collections.abc import Callable
from typing import Any

ENTER_RUN: int

class EntryReader:
    """Frame splitter grouping ENTER_ORDER runs (see the module docstring)."""

    error: Exception | None
    def __init__(self, length_error: Callable[[int], Exception], max_len: int = ...) -> None: ...
    def check(self) -> None: ...
    def pending(self) -> int: ...
    def feed(self, data: bytes) -> list[tuple[int, bytes]]: ...

def order_objects(
    order_cls: Any,
    recs: bytes,
    idx: list[int] | None,
    user_id: int,
    key_id: int,
    first_id: int,
    state: int,
    pending: str,
    by_id: dict[int, Any] | None = None,
    by_cl: dict[int, Any] | None = None,
    tags: list[tuple[int, int, str]] | None = None,
) -> list[Any]: ...
def new_run_top(recs: bytes, top_cl: int) -> int: ...
def new_records(recs: bytes, idx: list[int] | None, user_id: int, first_id: int) -> bytes: ...
