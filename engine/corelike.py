"""What the durability layer needs from the state machine (``engine.core.Core``).

The journal, snapshots, recovery and the sequencer only use this surface, so
tests can drive them with a small stand-in core and the simulator can plug in
the real one with broken variants switched on.
"""

from __future__ import annotations

import importlib
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt


class CoreLike(Protocol):
    """A deterministic state machine over sequenced command batches."""

    @property
    def last_seq(self) -> int:
        """Sequence number of the last command applied (0 when empty)."""
        ...

    def apply(
        self, cmds: npt.NDArray[np.void]
    ) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]]:
        """Apply a batch of CMD_DTYPE records (seq/ts_ns set); return (events, replies).

        ``cmds`` may be a view of a buffer the caller reuses: copy what you keep."""
        ...

    def state_hash(self) -> bytes:
        """Hash (>= 128 bits) of the canonical serialization of the whole state."""
        ...

    def to_snapshot(self) -> bytes:
        """Canonical serialization of the whole state."""
        ...

    def conservation_errors(self) -> list[str]:
        """Violations of the conservation invariant (empty when it holds)."""
        ...


class CoreClass(Protocol):
    """The class of a :class:`CoreLike`: builds an empty core or loads a snapshot."""

    def __call__(self, variants: frozenset[str] = ...) -> CoreLike:
        """An empty core (``last_seq == 0``)."""
        ...

    def from_snapshot(self, data: bytes, variants: frozenset[str] = ...) -> CoreLike:
        """A core rebuilt from :meth:`CoreLike.to_snapshot` bytes."""
        ...


def default_core_class() -> CoreClass:
    """``engine.core.Core``, imported lazily (it is compiled code owned by another layer)."""
    module = importlib.import_module("engine.core")
    return cast(CoreClass, module.Core)
