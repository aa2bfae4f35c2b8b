"""Request weights and order counts (Binance's REQUEST_WEIGHT and ORDERS limits).

Fixed windows, as Binance: the weight of every request of an IP adds up per
minute (``X-MBX-USED-WEIGHT-1M``), new orders per API key per 10 seconds and per day
(``X-MBX-ORDER-COUNT-10S``, ``X-MBX-ORDER-COUNT-1D``).  Past a limit the request is
refused with HTTP 429 and -1003 (weight) or -1015 (orders), before it does anything.
The tables are bounded: a window's counters are dropped when the window turns.
"""

from __future__ import annotations

import time

from api.errors import TOO_MANY_ORDERS, TOO_MANY_REQUESTS, ApiError

MAX_TRACKED = 100_000  # distinct IPs / keys counted in one window, at most


class Window:
    """Counts per name in a fixed window of ``seconds``."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.start = 0
        self.counts: dict[str, int] = {}

    def add(self, name: str, n: int, now_s: float) -> int:
        """Add ``n`` to ``name``'s count in the current window; return the new count."""
        w = int(now_s) // self.seconds
        if w != self.start:
            self.start, self.counts = w, {}
        if name not in self.counts and len(self.counts) >= MAX_TRACKED:
            # Too many distinct names this window: count them all as one.
            name = "*"
        c = self.counts.get(name, 0) + n
        self.counts[name] = c
        return c

    def get(self, name: str, now_s: float) -> int:
        """``name``'s count in the current window."""
        return self.counts.get(name, 0) if int(now_s) // self.seconds == self.start else 0


class RateLimiter:
    """The API's limits; ``weight`` per IP and ``order`` per key (module docstring)."""

    def __init__(self, weight_per_min: int, orders_per_10s: int, orders_per_day: int) -> None:
        self.weight_per_min = weight_per_min
        self.orders_per_10s = orders_per_10s
        self.orders_per_day = orders_per_day
        self.weight = Window(60)
        self.orders10 = Window(10)
        self.orders1d = Window(86_400)

    def charge(self, ip: str, weight: int) -> int:
        """Add a request's weight; return the IP's used weight.

        Raises
        ------
        ApiError
            429 / -1003 if the minute's weight is exceeded.
        """
        used = self.weight.add(ip, weight, time.time())
        if used > self.weight_per_min:
            raise ApiError(
                429,
                TOO_MANY_REQUESTS,
                f"Too much request weight used; current limit is {self.weight_per_min} request"
                " weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid"
                " polling the API.",
            )
        return used

    def used_weight(self, ip: str) -> int:
        """The IP's weight used in the current minute."""
        return self.weight.get(ip, time.time())

    def order(self, api_key: str) -> tuple[int, int]:
        """Count one new order of a key; return (count 10 s, count day).

        Raises
        ------
        ApiError
            429 / -1015 past either order limit.
        """
        now = time.time()
        n10 = self.orders10.add(api_key, 1, now)
        n1d = self.orders1d.add(api_key, 1, now)
        if n10 > self.orders_per_10s:
            raise ApiError(
                429,
                TOO_MANY_ORDERS,
                f"Too many new orders; current limit is {self.orders_per_10s} orders per 10"
                " SECOND.",
            )
        if n1d > self.orders_per_day:
            raise ApiError(
                429,
                TOO_MANY_ORDERS,
                f"Too many new orders; current limit is {self.orders_per_day} orders per DAY.",
            )
        return n10, n1d
