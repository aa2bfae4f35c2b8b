"""Type stubs of pyx/apiauth.pyx (the usual signed request checked in C)."""

from typing import Any

class Signer:
    _cache: dict[str, tuple[float, Any, bytes]]
    _macs: dict[bytes, Any]
    recv_window_max_ms: int
    def __init__(
        self,
        recv_window_max_ms: int,
        ttl_s: float,
        hmac_type: str,
        rw_default_ms: int,
        future_ms: int,
    ) -> None: ...
    def signed_key(
        self, header: str, peer: str, params: dict[str, str], payload: str, trade: bool = False
    ) -> Any: ...
    def signed_key_py(
        self, header: str, peer: str, params: dict[str, str], payload: str, trade: bool = False
    ) -> Any: ...
