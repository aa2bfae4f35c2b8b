# cython: language_level=3
"""The API's rate limits (request weight per IP, new orders per key) in Cython.

:class:`Limits` is the compiled twin of ``api.ratelimit.RateLimiterPy`` (its oracle;
``tests/api/test_ratelimit.py`` holds the two to the same counts and refusals over
random runs with hypothesis).  Every ``POST /api/v3/order`` charges a weight and
counts an order: in Python that was five frames per order (``charge``, ``order``,
three ``Window.add``); here it is two C calls.

Nothing here imports bursa (pyx sits below ``api``): a limit passed is reported by
calling the subclass's ``weight_exceeded`` / ``orders_exceeded``, which raise the
API's error (``api.ratelimit.RateLimiter``).
"""

cimport cython
from libc.stdint cimport int64_t


@cython.final
cdef class _Window:
    """Counts per name in a fixed window of ``seconds`` (``api.ratelimit.Window``)."""

    cdef int64_t seconds
    cdef int64_t start
    cdef Py_ssize_t max_tracked
    cdef dict counts

    def __cinit__(self, int64_t seconds, Py_ssize_t max_tracked):
        assert seconds > 0 and max_tracked > 0
        self.seconds = seconds
        self.start = 0
        self.max_tracked = max_tracked
        self.counts = {}

    # Python's floor division (the build's cdivision truncates): the same window
    # index as ``int(now_s) // seconds`` for any clock value.
    @cython.cdivision(False)
    cdef inline int64_t index(self, double now_s):
        return (<int64_t>now_s) // self.seconds

    cdef object add(self, str name, object n, double now_s):
        cdef int64_t w = self.index(now_s)
        if w != self.start:
            self.start = w
            self.counts = {}
        cdef dict counts = self.counts
        cdef object c = counts.get(name)
        if c is None:
            if len(counts) >= self.max_tracked:
                # Too many distinct names this window: count them all as one.
                name = "*"
                c = counts.get(name, 0)
            else:
                c = 0
        c = c + n
        counts[name] = c
        return c

    cdef object get(self, str name, double now_s):
        if self.index(now_s) != self.start:
            return 0
        return self.counts.get(name, 0)


cdef class Limits:
    """Weight per IP per minute, new orders per key per 10 s and per day; ``clock()``
    is the wall clock in seconds (``time.time``).  A subclass defines
    ``weight_exceeded()`` and ``orders_exceeded(limit, period)``: they raise."""

    cdef readonly object weight_per_min
    cdef readonly object orders_per_10s
    cdef readonly object orders_per_day
    cdef object clock
    cdef _Window weight
    cdef _Window orders10
    cdef _Window orders1d

    def __init__(self, weight_per_min, orders_per_10s, orders_per_day,
                 Py_ssize_t max_tracked, clock):
        self.weight_per_min = weight_per_min
        self.orders_per_10s = orders_per_10s
        self.orders_per_day = orders_per_day
        self.clock = clock
        self.weight = _Window(60, max_tracked)
        self.orders10 = _Window(10, max_tracked)
        self.orders1d = _Window(86_400, max_tracked)

    def charge(self, str ip, weight):
        """Add a request's weight; return the IP's used weight (past the minute's
        limit: ``weight_exceeded()``)."""
        used = self.weight.add(ip, weight, self.clock())
        if used > self.weight_per_min:
            self.weight_exceeded()
        return used

    def used_weight(self, str ip):
        """The IP's weight used in the current minute."""
        return self.weight.get(ip, self.clock())

    def order(self, str api_key):
        """Count one new order of a key; return (count 10 s, count day) (past either
        limit: ``orders_exceeded``)."""
        cdef double now = self.clock()
        n10 = self.orders10.add(api_key, 1, now)
        n1d = self.orders1d.add(api_key, 1, now)
        if n10 > self.orders_per_10s:
            self.orders_exceeded(self.orders_per_10s, "10 SECOND")
        if n1d > self.orders_per_day:
            self.orders_exceeded(self.orders_per_day, "DAY")
        return n10, n1d
