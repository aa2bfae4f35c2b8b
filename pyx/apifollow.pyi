"""Type stubs of pyx/apifollow.pyx (the API's compiled event follower)."""

from collections.abc import Callable, Container
from typing import Any

class Applier:
    compiled: int
    fallback: int
    def __init__(
        self,
        follower: Any,
        order_cls: Callable[..., Any],
        fill_cls: Callable[..., Any],
        update_cls: Callable[..., Any],
        side_name: dict[int, str],
        type_name: dict[int, str],
        expired_reasons: Container[int],
    ) -> None: ...
    def apply(self, events: Any) -> None: ...
