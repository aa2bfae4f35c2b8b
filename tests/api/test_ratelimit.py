"""``api.ratelimit.RateLimiter`` (counted by the compiled ``pyx.apilimits.Limits``)
against ``RateLimiterPy``, its Python oracle: random runs of charges, order counts
and weight reads over a clock that moves across window boundaries, with few names
allowed per window (the ``"*"`` overflow bucket), give the same counts and the same
refusals (HTTP status, code, message)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from api.errors import ApiError
from api.ratelimit import RateLimiter, RateLimiterPy


class _Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def _run(limiter: RateLimiter | RateLimiterPy, op: tuple[str, str, int]) -> object:
    kind, name, n = op
    try:
        if kind == "charge":
            return limiter.charge(name, n)
        if kind == "order":
            return limiter.order(name)
        return limiter.used_weight(name)
    except ApiError as e:
        return ("error", e.http_status, e.body())


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["charge", "order", "used", "tick"]),
        st.sampled_from(["1.2.3.4", "5.6.7.8", "k1", "k2", "k3", "*"]),
        st.integers(min_value=0, max_value=40),
        st.floats(min_value=0, max_value=70_000, allow_nan=False),
    ),
    max_size=120,
)


@settings(max_examples=400, deadline=None)
@given(
    ops=_OPS,
    weight=st.integers(min_value=0, max_value=60),
    per_10s=st.integers(min_value=0, max_value=8),
    per_day=st.integers(min_value=0, max_value=20),
    tracked=st.integers(min_value=1, max_value=4),
    start_s=st.floats(min_value=0, max_value=2e9, allow_nan=False),
)
def test_compiled_limits_match_python(
    ops: list[tuple[str, str, int, float]],
    weight: int,
    per_10s: int,
    per_day: int,
    tracked: int,
    start_s: float,
) -> None:
    """Same results and refusals, step for step."""
    clock = _Clock()
    clock.now_s = start_s
    fast = RateLimiter(weight, per_10s, per_day, tracked, clock)
    slow = RateLimiterPy(weight, per_10s, per_day, tracked, clock)
    for kind, name, n, dt in ops:
        if kind == "tick":
            clock.now_s += dt
            continue
        assert _run(fast, (kind, name, n)) == _run(slow, (kind, name, n))


def test_refusals_are_binance_errors() -> None:
    """The texts and codes of the two refusals (the compiled path calls the
    subclass's error builders)."""
    clock = _Clock()
    lim = RateLimiter(2, 1, 5, 10, clock)
    assert lim.charge("ip", 2) == 2
    assert _run(lim, ("charge", "ip", 1)) == (
        "error",
        429,
        {
            "code": -1003,
            "msg": "Too much request weight used; current limit is 2 request weight per 1"
            " MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
        },
    )
    assert lim.order("k") == (1, 1)
    assert _run(lim, ("order", "k", 0)) == (
        "error",
        429,
        {"code": -1015, "msg": "Too many new orders; current limit is 1 orders per 10 SECOND."},
    )
    clock.now_s = 60.0
    assert lim.used_weight("ip") == 0
    assert lim.order("k") == (1, 3)
