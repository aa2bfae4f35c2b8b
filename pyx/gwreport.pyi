from typing import Any

import numpy as np

def apply_events(gw: Any, events: np.ndarray[Any, np.dtype[np.void]]) -> int: ...
