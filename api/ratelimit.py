"""Request weights and order counts (Binance's REQUEST_WEIGHT and ORDERS limits).

Fixed windows, as Binance: the weight of every request of an IP adds up per
minute (``X-MBX-USED-WEIGHT-1M``), new orders per API key per 10 seconds and per day
(``X-MBX-ORDER-COUNT-10S``, ``X-MBX-ORDER-COUNT-1D``).  Past a limit the request is
refused with HTTP 429 and -1003 (weight) or -1015 (orders), before it does anything.
The tables are bounded: a window's counters are dropped when the window turns.

:class:`RateLimiter` (the API's) counts in C (:class:`pyx.apilimits.Limits`: two C
calls per order instead of five Python frames); :class:`RateLimiterPy` is its
oracle (``tests/api/test_ratelimit.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NoReturn

from api.errors import TOO_MANY_ORDERS, TOO_MANY_REQUESTS, ApiError
from pyx.apilimits import Limits

MAX_TRACKED = 100_000  # distinct IPs / keys counted in one window, at most


def weight_error(weight_per_min: int) -> ApiError:
    """429 / -1003: the minute's request weight is used up."""
    return ApiError(
        429,
        TOO_MANY_REQUESTS,
        f"Too much request weight used; current limit is {weight_per_min} request"
        " weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid"
        " polling the API.",
    )


def orders_error(limit: int, period: str) -> ApiError:
    """429 / -1015: too many new orders in ``period`` ("10 SECOND" or "DAY")."""
    return ApiError(
        429, TOO_MANY_ORDERS, f"Too many new orders; current limit is {limit} orders per {period}."
    )


class RateLimiter(Limits):
    """The API's limits; ``weight`` per IP and ``order`` per key (module docstring),
    counted by :class:`pyx.apilimits.Limits`: ``charge(ip, weight)`` (the IP's used
    weight; 429 / -1003 past the minute's limit), ``used_weight(ip)``,
    ``order(api_key)`` ((count 10 s, count day); 429 / -1015 past either limit)."""

    def __init__(
        self,
        weight_per_min: int,
        orders_per_10s: int,
        orders_per_day: int,
        max_tracked: int = MAX_TRACKED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(weight_per_min, orders_per_10s, orders_per_day, max_tracked, clock)

    def weight_exceeded(self) -> NoReturn:
        """Raise the weight refusal (called by the compiled ``charge``)."""
        raise weight_error(self.weight_per_min)

    def orders_exceeded(self, limit: int, period: str) -> NoReturn:
        """Raise the order-count refusal (called by the compiled ``order``)."""
        raise orders_error(limit, period)


class Window:
    """Counts per name in a fixed window of ``seconds`` (:class:`RateLimiterPy`'s)."""

    def __init__(self, seconds: int, max_tracked: int = MAX_TRACKED) -> None:
        self.seconds = seconds
        self.max_tracked = max_tracked
        self.start = 0
        self.counts: dict[str, int] = {}

    def add(self, name: str, n: int, now_s: float) -> int:
        """Add ``n`` to ``name``'s count in the current window; return the new count."""
        w = int(now_s) // self.seconds
        if w != self.start:
            self.start, self.counts = w, {}
        if name not in self.counts and len(self.counts) >= self.max_tracked:
            # Too many distinct names this window: count them all as one.
            name = "*"
        c = self.counts.get(name, 0) + n
        self.counts[name] = c
        return c

    def get(self, name: str, now_s: float) -> int:
        """``name``'s count in the current window."""
        return self.counts.get(name, 0) if int(now_s) // self.seconds == self.start else 0


class RateLimiterPy:
    """:class:`RateLimiter` in Python (the oracle of the compiled one)."""

    def __init__(
        self,
        weight_per_min: int,
        orders_per_10s: int,
        orders_per_day: int,
        max_tracked: int = MAX_TRACKED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.weight_per_min = weight_per_min
        self.orders_per_10s = orders_per_10s
        self.orders_per_day = orders_per_day
        self.clock = clock
        self.weight = Window(60, max_tracked)
        self.orders10 = Window(10, max_tracked)
        self.orders1d = Window(86_400, max_tracked)

    def charge(self, ip: str, weight: int) -> int:
        """Add a request's weight; return the IP's used weight.

        Raises
        ------
        ApiError
            429 / -1003 if the minute's weight is exceeded.
        """
        used = self.weight.add(ip, weight, self.clock())
        if used > self.weight_per_min:
            raise weight_error(self.weight_per_min)
        return used

    def used_weight(self, ip: str) -> int:
        """The IP's weight used in the current minute."""
        return self.weight.get(ip, self.clock())

    def order(self, api_key: str) -> tuple[int, int]:
        """Count one new order of a key; return (count 10 s, count day).

        Raises
        ------
        ApiError
            429 / -1015 past either order limit.
        """
        now = self.clock()
        n10 = self.orders10.add(api_key, 1, now)
        n1d = self.orders1d.add(api_key, 1, now)
        if n10 > self.orders_per_10s:
            raise orders_error(self.orders_per_10s, "10 SECOND")
        if n1d > self.orders_per_day:
            raise orders_error(self.orders_per_day, "DAY")
        return n10, n1d
