"""Binance stream names: ``<symbol>@<kind>[@<speed>]`` parsed and validated.

Supported: ``@depth`` / ``@depth@1000ms`` / ``@depth@100ms`` (diffs), ``@depth5|10|20``
(+ ``@100ms`` / ``@1000ms``, partial books), ``@trade``, ``@aggTrade``,
``@kline_<interval>``, ``@miniTicker``, ``@ticker``, ``@bookTicker``, and the
all-market ``!miniTicker@arr`` and ``!ticker@arr``.  The symbol part is the Binance
symbol name in lower case (upper case is accepted and lowered).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from api.market.intervals import base_of

PARTIAL_LEVELS = (5, 10, 20)
SLOW_MS, FAST_MS = 1000, 100
ALL_STREAMS = ("!miniTicker@arr", "!ticker@arr")

_RE = re.compile(
    r"(?P<sym>[A-Za-z0-9]{1,40})@(?:"
    r"(?P<depth>depth)(?P<levels>5|10|20)?(?:@(?P<speed>100ms|1000ms))?"
    r"|(?P<kind>trade|aggTrade|miniTicker|ticker|bookTicker)"
    r"|kline_(?P<iv>[0-9]{1,2}[smhdwM]))"
)


@dataclass(frozen=True)
class StreamSpec:
    """A parsed stream: ``name`` (canonical), ``symbol`` (upper case, "" for all-market),
    ``kind`` (depth, partial, trade, aggTrade, kline, miniTicker, ticker, bookTicker,
    allMiniTicker, allTicker) and ``param`` (ms for depth, levels for partial,
    the feed interval in seconds a kline is built from)."""

    name: str
    symbol: str
    kind: str
    param: int = 0
    speed_ms: int = 0


def parse(name: object) -> StreamSpec | None:
    """The stream named ``name``, or None if it is not a supported stream name."""
    if not isinstance(name, str) or len(name) > 80:
        return None
    if name == "!miniTicker@arr":
        return StreamSpec(name, "", "allMiniTicker", speed_ms=SLOW_MS)
    if name == "!ticker@arr":
        return StreamSpec(name, "", "allTicker", speed_ms=SLOW_MS)
    m = _RE.fullmatch(name)
    if m is None:
        return None
    sym = m["sym"].upper()
    canon = m["sym"].lower() + name[len(m["sym"]) :]
    if m["depth"]:
        speed = FAST_MS if m["speed"] == "100ms" else SLOW_MS
        if m["levels"]:
            return StreamSpec(canon, sym, "partial", int(m["levels"]), speed)
        return StreamSpec(canon, sym, "depth", speed, speed)
    if m["iv"]:
        base = base_of(m["iv"])
        if base is None:
            return None
        return StreamSpec(canon, sym, "kline", base, SLOW_MS)
    return StreamSpec(canon, sym, m["kind"])


def depth_names(lower: str, speed_ms: int) -> tuple[str, ...]:
    """Names of the diff-depth streams of one symbol flushed every ``speed_ms``."""
    if speed_ms == FAST_MS:
        return (f"{lower}@depth@100ms",)
    return (f"{lower}@depth", f"{lower}@depth@1000ms")


def partial_names(lower: str, levels: int, speed_ms: int) -> tuple[str, ...]:
    """Names of the partial-depth streams of one symbol and level count."""
    if speed_ms == FAST_MS:
        return (f"{lower}@depth{levels}@100ms",)
    return (f"{lower}@depth{levels}", f"{lower}@depth{levels}@1000ms")
