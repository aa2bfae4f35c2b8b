"""The clock interface: the only way the core reads time.

Production uses :class:`RealClock`; tests and the simulator use
:class:`ManualClock`, which only moves when told, so runs are deterministic.
Timestamps are integer nanoseconds since the Unix epoch.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Source of time for the core."""

    def now_ns(self) -> int:
        """Wall-clock time, ns since the Unix epoch (stamped into commands)."""
        ...

    def monotonic_ns(self) -> int:
        """Monotonic time in ns (for intervals: snapshot timers, batching)."""
        ...


class RealClock:
    """The operating system's clocks."""

    def now_ns(self) -> int:
        """time.time_ns()."""
        return time.time_ns()

    def monotonic_ns(self) -> int:
        """time.monotonic_ns()."""
        return time.monotonic_ns()


class ManualClock:
    """A clock that moves only by :meth:`advance` (deterministic tests, simulator)."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000) -> None:
        assert start_ns >= 0
        self._now_ns = start_ns

    def now_ns(self) -> int:
        """Current simulated time."""
        return self._now_ns

    def monotonic_ns(self) -> int:
        """Same as :meth:`now_ns` (simulated time never goes backwards)."""
        return self._now_ns

    def advance(self, delta_ns: int) -> None:
        """Move time forward by ``delta_ns`` (>= 0)."""
        assert delta_ns >= 0
        self._now_ns += delta_ns
