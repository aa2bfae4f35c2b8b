"""Type stubs of pyx/gwload.pyx (the load generator's ACCEPTED scanner)."""

from collections.abc import Callable

class AckScanner:
    """Frame splitter returning the client ids of ACCEPTED reports (see the module)."""

    found: list[int]
    def __init__(self, length_error: Callable[[int], Exception], max_len: int = ...) -> None: ...
    def feed(self, data: bytes) -> list[int]: ...
