from typing import Any

import numpy as np
import numpy.typing as npt

def bind_rules(rules: Any) -> None:
    """Take clearing.rules' constants and types (clearing.ledger calls it at import)."""

def apply_events(led: Any, events: npt.NDArray[np.void], applied_seq: int) -> tuple[int, int]:
    """Apply the events above ``applied_seq`` to the ledger ``led``; (events, entries)."""
