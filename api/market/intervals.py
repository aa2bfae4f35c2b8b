"""Kline intervals: the feed's own and the Binance intervals built from them.

The feed makes candles of 1s, 1m, 5m, 15m, 1h, 4h and 1d.  Binance's other spot
intervals are aggregated here from a finer one whose buckets tile theirs exactly:
3m from 1m, 30m from 15m, 2h/6h/8h/12h from 1h, 3d and 1w and 1M from 1d.  Buckets
start at multiples of the interval since the Unix epoch, weeks on Monday 00:00 UTC
and months on the first day of the month (UTC), as Binance's do.  A bucket's figures
are exact integers: first open, highest high, lowest low, last close, summed volumes
and trade counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

NS = 10**9
DAY_S = 86_400
# Binance name -> seconds, for the feed's intervals.
NATIVE: dict[str, int] = {
    "1s": 1,
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "4h": 14400,
    "1d": 86400,
}
# Binance name -> (the feed interval it is built from, its length in s; 0: a month).
DERIVED: dict[str, tuple[int, int]] = {
    "3m": (60, 180),
    "30m": (900, 1800),
    "2h": (3600, 7200),
    "6h": (3600, 21600),
    "8h": (3600, 28800),
    "12h": (3600, 43200),
    "3d": (86400, 3 * DAY_S),
    "1w": (86400, 7 * DAY_S),
    "1M": (86400, 0),
}
ALL: tuple[str, ...] = (*NATIVE, *DERIVED)
_MONDAY_OFFSET_S = 4 * DAY_S  # 1970-01-01 was a Thursday; 1970-01-05 a Monday


def base_of(name: str) -> int | None:
    """The feed interval (s) an interval is read from, or None for an unknown name."""
    if name in NATIVE:
        return NATIVE[name]
    d = DERIVED.get(name)
    return d[0] if d is not None else None


def bucket(name: str, ts_ns: int) -> tuple[int, int]:
    """``(start_ns, end_ns)`` of the bucket of interval ``name`` holding ``ts_ns``."""
    if name in NATIVE:
        length = NATIVE[name] * NS
        start = ts_ns // length * length
        return start, start + length
    length_s = DERIVED[name][1]
    if length_s == 0:
        t = dt.datetime.fromtimestamp(ts_ns // NS, dt.UTC)
        first = dt.datetime(t.year, t.month, 1, tzinfo=dt.UTC)
        nxt = dt.datetime(t.year + t.month // 12, t.month % 12 + 1, 1, tzinfo=dt.UTC)
        return int(first.timestamp()) * NS, int(nxt.timestamp()) * NS
    offset = _MONDAY_OFFSET_S * NS if name == "1w" else 0
    length = length_s * NS
    start = (ts_ns - offset) // length * length + offset
    return start, start + length


def aggregate(name: str, candles: Iterable[Mapping[str, int]], now_ns: int) -> list[dict[str, Any]]:
    """The candles of interval ``name`` from feed candles of its base interval (oldest
    first).  Each has the feed's body fields plus ``end_ns``; ``closed`` is 1 when the
    bucket has ended at ``now_ns``."""
    out: list[dict[str, Any]] = []
    for c in candles:
        start, end = bucket(name, c["start_ns"])
        if out and out[-1]["start_ns"] == start:
            a = out[-1]
            a["high_ticks"] = max(a["high_ticks"], c["high_ticks"])
            a["low_ticks"] = min(a["low_ticks"], c["low_ticks"])
            a["close_ticks"] = c["close_ticks"]
            a["volume_lots"] += c["volume_lots"]
            a["quote_volume"] += c["quote_volume"]
            a["trades"] += c["trades"]
        else:
            out.append(
                {
                    "start_ns": start,
                    "end_ns": end,
                    "open_ticks": c["open_ticks"],
                    "high_ticks": c["high_ticks"],
                    "low_ticks": c["low_ticks"],
                    "close_ticks": c["close_ticks"],
                    "volume_lots": c["volume_lots"],
                    "quote_volume": c["quote_volume"],
                    "trades": c["trades"],
                }
            )
    for a in out:
        a["closed"] = int(a["end_ns"] <= now_ns)
    return out


def native(m: Mapping[str, int]) -> dict[str, Any]:
    """A feed candle body with ``end_ns`` (the shape :func:`aggregate` returns)."""
    return {**m, "end_ns": m["start_ns"] + m["interval_s"] * NS}
