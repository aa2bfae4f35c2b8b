from typing import Any

import numpy as np

def apply_events(gw: Any, events: np.ndarray[Any, np.dtype[np.void]]) -> int: ...
def session_frames(
    outbox: list[tuple[int, int, bytes]], sessions: dict[int, Any]
) -> dict[Any, bytes]: ...
