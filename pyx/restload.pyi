"""Type stubs of pyx/restload.pyx (the REST load generator's loops and answer parser)."""

from collections.abc import Callable

MAX_ANSWER_BYTES: int
MAX_CONNECTIONS: int
MAX_DEPTH: int
IDLE_LIMIT_MS: int

class AnswerSplitter:
    """Splits one connection's stream into HTTP/1.1 answers (see the module)."""

    def __init__(self, error: Callable[[str], Exception]) -> None: ...
    def feed(self, data: bytes) -> list[tuple[int, bytes]]: ...

def closed_loop(
    fds: list[int],
    requests: tuple[bytes, ...],
    expect: tuple[bytes, ...],
    seconds: float,
    depth: int,
    error: Callable[[str], Exception],
) -> tuple[int, int]: ...
def open_loop(
    fds: list[int],
    requests: tuple[bytes, ...],
    expect: tuple[bytes, ...],
    rate: int,
    error: Callable[[str], Exception],
) -> tuple[list[int], int]: ...
