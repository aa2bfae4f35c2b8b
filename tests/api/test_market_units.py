"""Pieces of api.market without processes: stream names, frames, 24h window, render."""

from __future__ import annotations

import asyncio
import dataclasses
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.market import decimals, intervals
from api.market.decimals import Decimals
from api.market.frames import text_frame
from api.market.hub import Conn, Hub
from api.market.render import agg_groups, rounded, ticker_24h
from api.market.state import SymbolMarket
from api.market.streams import parse
from api.market.ticker import DAY_NS, MIN_NS, rolling_24h
from api.symbols import SymbolSpec
from bindings.marketdata import LocalBook
from bursa_wire.md_codec import Msg
from bursa_wire.md_layout import MsgType


def test_stream_names() -> None:
    slow, slow2 = parse("btcusdt@depth"), parse("btcusdt@depth@1000ms")
    assert slow is not None and slow2 is not None and slow.speed_ms == slow2.speed_ms == 1000
    d = parse("BTCUSDT@depth@100ms")
    assert d is not None and (d.name, d.symbol, d.kind, d.speed_ms) == (
        "btcusdt@depth@100ms",
        "BTCUSDT",
        "depth",
        100,
    )
    p = parse("ethusdt@depth20")
    assert p is not None and (p.kind, p.param, p.speed_ms) == ("partial", 20, 1000)
    k = parse("ethusdt@kline_15m")
    assert k is not None and (k.kind, k.param) == ("kline", 900)
    k = parse("ethusdt@kline_1M")
    assert k is not None and (k.kind, k.param) == ("kline", 86400)
    for kind in ("trade", "aggTrade", "miniTicker", "ticker", "bookTicker"):
        s = parse(f"x@{kind}")
        assert s is not None and s.kind == kind
    assert parse("!ticker@arr") is not None and parse("!miniTicker@arr") is not None
    for bad in (
        "btcusdt",
        "btcusdt@depth7",
        "btcusdt@depth@10ms",
        "btcusdt@kline_7m",
        "btcusdt@kline_1y",
        "btcusdt@kline_1",
        "btcusdt@trades",
        "btc usdt@trade",
        "@trade",
        "x" * 100,
        5,
        None,
        "btcusdt@trade\n",
    ):
        assert parse(bad) is None, bad


@given(st.binary(max_size=70_000))
def test_text_frame_header(payload: bytes) -> None:
    """The frame is FIN+text, unmasked, with the shortest length encoding (RFC 6455)."""
    f = text_frame(payload)
    assert f[0] == 0x81 and not f[1] & 0x80
    n = f[1] & 0x7F
    if n < 126:
        hdr, ln = 2, n
    elif n == 126:
        hdr, ln = 4, int.from_bytes(f[2:4], "big")
        assert ln >= 126
    else:
        hdr, ln = 10, int.from_bytes(f[2:10], "big")
        assert ln >= 1 << 16
    assert ln == len(payload) and f[hdr:] == payload


def _candle(iv: int, start_ns: int, o: int, h: int, lo: int, c: int, v: int, n: int) -> Msg:
    body = {
        "start_ns": start_ns,
        "open_ticks": o,
        "high_ticks": h,
        "low_ticks": lo,
        "close_ticks": c,
        "volume_lots": v,
        "quote_volume": v * c,
        "trades": n,
        "interval_s": iv,
        "closed": 1,
    }
    return Msg(MsgType.CANDLE, 5, 1, 1, 1, start_ns, body)


def test_rolling_24h_window() -> None:
    now = 1_000 * DAY_NS + 30 * 10**9  # 30 s into a minute
    start = (now // MIN_NS + 1) * MIN_NS - DAY_NS
    ones = [
        _candle(60, start - MIN_NS, 50, 50, 50, 50, 1, 1),  # just outside: previous close
        _candle(60, start, 100, 120, 90, 110, 2, 2),
        _candle(60, now // MIN_NS * MIN_NS, 110, 130, 80, 105, 3, 4),
    ]
    r = rolling_24h(ones, [], now)
    assert (r.open_ticks, r.high_ticks, r.low_ticks, r.close_ticks) == (100, 130, 80, 105)
    assert (r.volume_lots, r.trades, r.prev_close_ticks) == (5, 6, 50)
    assert rolling_24h([], [], now).trades == 0


def test_rolling_24h_uses_5m_before_a_full_1m_history() -> None:
    """With a full 1m history that starts inside the window, older 5m candles fill in."""
    now = 1_000 * DAY_NS
    start = now + MIN_NS - DAY_NS
    first_1m = now - 1000 * MIN_NS
    ones = [_candle(60, first_1m + i * MIN_NS, 10, 10, 10, 10, 1, 1) for i in range(1000)]
    fives = [
        _candle(300, start + 300 * 10**9 * k, 20, 25, 5, 20, 7, 3) for k in range(3)
    ]  # all before first_1m
    r = rolling_24h(ones, fives, now)
    assert r.trades == 1000 + 9 and r.volume_lots == 1000 + 21
    assert r.open_ticks == 20 and r.high_ticks == 25 and r.low_ticks == 5


def _spec() -> SymbolSpec:
    return SymbolSpec(1, "BTCUSDT", "BTC", "USDT", 1, 2, 8, 6, 10_000, 1, 10, 1, 1, 10**6, 1, 10**9)


def test_ticker_figures() -> None:
    spec = _spec()
    now = 1_000 * DAY_NS
    c = _candle(
        60, now - MIN_NS // 2 - MIN_NS // 2, 6_000_000, 6_300_000, 5_900_000, 6_150_000, 4, 2
    )
    r = rolling_24h([c], [], now)
    t = ticker_24h(spec, r, (6_100_000, 3, 1, 6_200_000, 5, 2), None)
    assert t["priceChange"] == "1500.00" and t["priceChangePercent"] == "2.500"
    assert t["bidPrice"] == "61000.00" and t["askQty"] == "0.0005"
    down = rolling_24h([_candle(60, now - MIN_NS, 100, 100, 50, 50, 1, 1)], [], now)
    assert ticker_24h(spec, down, (0,) * 6, None)["priceChange"] == "-0.50"
    assert rounded(Fraction(2, 3), 3) == "0.667" and rounded(Fraction(5, 1000), 2) == "0.00"


def test_agg_groups_by_taker_and_price() -> None:
    def tr(seq: int, core_seq: int, px: int, side: int) -> Msg:
        b = {"match_id": seq, "price_ticks": px, "qty_lots": 1, "aggressor_side": side}
        return Msg(MsgType.TRADE, 3, 1, seq, core_seq, 0, b)

    ts = [tr(1, 7, 10, 1), tr(2, 7, 10, 1), tr(3, 7, 11, 1), tr(4, 8, 11, 1), tr(5, 8, 11, 2)]
    assert [[m["match_id"] for m in g] for g in agg_groups(ts)] == [[1, 2], [3], [4], [5]]


class _FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data: list[bytes] = []
        self.buffered = 0
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.data.append(bytes(data))
        self.buffered += len(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def test_hub_fanout_and_slow_drop() -> None:
    async def go() -> None:
        hub = Hub(send_buffer_bytes=1000)
        fast_t, slow_t, comb_t = _FakeTransport(), _FakeTransport(), _FakeTransport()
        fast, slow, comb = Conn(fast_t, False), Conn(slow_t, False), Conn(comb_t, True)
        for c in (fast, slow, comb):
            hub.attach(c)
            hub.subscribe(c, "s@trade")
        hub.publish("s@trade", {"a": 1})
        hub.publish("nobody@trade", {"a": 2})
        await asyncio.sleep(0)
        assert fast_t.data == [text_frame(b'{"a":1}')]
        assert comb_t.data == [text_frame(b'{"stream":"s@trade","data":{"a":1}}')]
        fast_t.buffered = 0  # the fast client's socket drained; the slow one's never does
        for i in range(200):
            hub.publish("s@trade", {"a": i})
            await asyncio.sleep(0)
            fast_t.buffered = comb_t.buffered = 0
        assert slow_t.aborted and not fast_t.aborted and hub.slow_dropped == 1
        assert slow not in hub.subs["s@trade"] and len(fast_t.data) == 201
        hub.unsubscribe(fast, "s@trade")
        hub.detach(comb)
        assert "s@trade" not in hub.subs

    asyncio.run(go())


def test_hub_rejects_bad_bound() -> None:
    with pytest.raises(ValueError):
        Hub(send_buffer_bytes=0)


def test_interval_buckets() -> None:
    """Weeks start on Monday 00:00 UTC, months on the 1st, others at epoch multiples."""
    ns = 10**9
    thu = 0  # 1970-01-01, a Thursday
    assert intervals.bucket("1w", thu) == (-3 * 86400 * ns, 4 * 86400 * ns)
    mon = 1_733_097_600 * ns  # 2024-12-02 00:00 UTC, a Monday
    assert intervals.bucket("1w", mon + 5 * ns) == (mon, mon + 7 * 86400 * ns)
    dec15 = 1_734_220_800 * ns  # 2024-12-15 00:00 UTC
    assert intervals.bucket("1M", dec15) == (1_733_011_200 * ns, 1_735_689_600 * ns)
    feb = 1_709_251_199 * ns  # 2024-02-29 23:59:59 UTC (leap year)
    assert intervals.bucket("1M", feb) == (1_706_745_600 * ns, 1_709_251_200 * ns)
    assert intervals.bucket("3m", 200 * ns) == (180 * ns, 360 * ns)
    assert intervals.bucket("15m", 901 * ns) == (900 * ns, 1800 * ns)
    for name in intervals.DERIVED:  # every derived bucket tiles whole base buckets
        base = intervals.base_of(name)
        assert base is not None
        lo, hi = intervals.bucket(name, mon + 12_345 * ns)
        assert lo % (base * ns) == 0 and hi % (base * ns) == 0 and lo <= mon + 12_345 * ns < hi


@given(
    st.lists(
        st.tuples(st.integers(0, 200), st.integers(1, 100), st.integers(1, 100), st.integers(1, 9)),
        min_size=1,
        max_size=50,
        unique_by=lambda t: t[0],
    )
)
def test_aggregate_equals_direct_sum(rows: list[tuple[int, int, int, int]]) -> None:
    """3m candles from 1m candles: first open, max high, min low, last close, sums."""
    rows.sort()
    ms = [
        {
            "start_ns": i * MIN_NS,
            "open_ticks": a,
            "high_ticks": max(a, b) + 1,
            "low_ticks": min(a, b),
            "close_ticks": b,
            "volume_lots": v,
            "quote_volume": v * b,
            "trades": v,
            "interval_s": 60,
            "closed": 1,
        }
        for i, a, b, v in rows
    ]
    out = intervals.aggregate("3m", ms, 10**20)
    for agg in out:
        inside = [m for m in ms if agg["start_ns"] <= m["start_ns"] < agg["end_ns"]]
        assert agg["open_ticks"] == inside[0]["open_ticks"]
        assert agg["close_ticks"] == inside[-1]["close_ticks"]
        assert agg["high_ticks"] == max(m["high_ticks"] for m in inside)
        assert agg["low_ticks"] == min(m["low_ticks"] for m in inside)
        assert agg["volume_lots"] == sum(m["volume_lots"] for m in inside)
        assert agg["end_ns"] - agg["start_ns"] == 3 * MIN_NS and agg["closed"] == 1
    assert sum(a["trades"] for a in out) == sum(m["trades"] for m in ms)


@given(st.lists(st.tuples(st.integers(0, 10**12), st.integers(0, 10**12)), max_size=50))
def test_decimals_cache_equals_exact_formatting(pairs: list[tuple[int, int]]) -> None:
    """Cached strings are the spec's exact ones, in the dict's order, also past the bound."""
    spec = _spec()
    dec = Decimals(spec)
    levels = dict(pairs)
    want = [[spec.ticks_to_price(p), spec.lots_to_qty(q)] for p, q in levels.items()]
    assert dec.pairs(levels) == want
    assert dec.pairs(levels) == want  # second time from the cache
    assert dec.rows([(p, q, 1) for p, q in levels.items()]) == want


def test_decimals_cache_bounded_and_per_grid() -> None:
    spec = _spec()
    dec = Decimals(spec)
    for t in range(decimals.MAX_ENTRIES + 10):
        assert dec.price(t) == spec.ticks_to_price(t)
    assert len(dec._px) <= decimals.MAX_ENTRIES
    # A STATUS that changes the grid makes a new spec, and the market a new cache.
    sm = SymbolMarket(LocalBook(1))
    d1 = sm.decimals(spec)
    assert sm.decimals(spec) is d1
    other = dataclasses.replace(spec, price_multiplier=spec.price_multiplier * 10)
    d2 = sm.decimals(other)
    assert d2 is not d1 and d2.price(123) == other.ticks_to_price(123) != spec.ticks_to_price(123)
