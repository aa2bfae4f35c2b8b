"""Rolling 24-hour statistics from candles (integers: ticks, lots, ticks x lots).

The window is the 1,440 one-minute buckets ending with the current one (it moves
by whole minutes).  When the one-minute history does not reach back 24 hours
(the feed keeps 1,000 candles per interval), the older part of the window is
covered by five-minute candles that end before the oldest one-minute candle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bursa_wire.md_codec import Msg
from marketdata.book import CANDLE_HISTORY_MAX

NS_PER_S = 10**9
DAY_NS = 86_400 * NS_PER_S
MIN_NS = 60 * NS_PER_S
FIVE_MIN_NS = 5 * MIN_NS
HISTORY_FULL = CANDLE_HISTORY_MAX  # the feed keeps this many candles per interval


@dataclass(frozen=True)
class Rolling:
    """24h figures of one symbol (zeros when nothing traded in the window)."""

    open_ticks: int = 0
    high_ticks: int = 0
    low_ticks: int = 0
    close_ticks: int = 0
    prev_close_ticks: int = 0
    volume_lots: int = 0
    quote_volume: int = 0  # ticks x lots
    trades: int = 0
    open_ns: int = 0
    close_ns: int = 0


def window_candles(
    c1m: Iterable[Msg], c5m: Iterable[Msg], now_ns: int
) -> tuple[list[Msg], Msg | None]:
    """The candles inside the 24h window ending at ``now_ns`` (oldest first) and the
    last candle before the window (for the previous close), if known."""
    start = (now_ns // MIN_NS + 1) * MIN_NS - DAY_NS
    ones = list(c1m)
    # A full history may have lost older candles: it covers from its first one on;
    # a shorter one holds every candle since the feed began.
    covered_from = ones[0]["start_ns"] if len(ones) >= HISTORY_FULL else 0
    inside = [c for c in ones if c["start_ns"] >= start]
    fives = [
        c for c in c5m if start <= c["start_ns"] and c["start_ns"] + FIVE_MIN_NS <= covered_from
    ]
    before = [c for c in ones if c["start_ns"] < start]
    prev = before[-1] if before else None
    if prev is None:
        older5 = [c for c in c5m if c["start_ns"] + FIVE_MIN_NS <= start]
        prev = older5[-1] if older5 else None
    return fives + inside, prev


def rolling_24h(c1m: Iterable[Msg], c5m: Iterable[Msg], now_ns: int) -> Rolling:
    """The 24h figures at ``now_ns`` (see the module docstring)."""
    cs, prev = window_candles(c1m, c5m, now_ns)
    prev_close = prev["close_ticks"] if prev is not None else 0
    if not cs:
        return Rolling(prev_close_ticks=prev_close, open_ns=now_ns - DAY_NS, close_ns=now_ns)
    return Rolling(
        open_ticks=cs[0]["open_ticks"],
        high_ticks=max(c["high_ticks"] for c in cs),
        low_ticks=min(c["low_ticks"] for c in cs),
        close_ticks=cs[-1]["close_ticks"],
        prev_close_ticks=prev_close,
        volume_lots=sum(c["volume_lots"] for c in cs),
        quote_volume=sum(c["quote_volume"] for c in cs),
        trades=sum(c["trades"] for c in cs),
        open_ns=now_ns - DAY_NS,
        close_ns=now_ns,
    )
