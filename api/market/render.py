"""Feed messages and market figures rendered in Binance's JSON shapes (REST and streams).

Prices and quantities leave as exact decimal strings of the symbol's grid
(:class:`~api.symbols.SymbolSpec`).  The only computed non-grid figures are the
averages and percentages Binance also computes (``weightedAvgPrice``,
``priceChangePercent``, ``/avgPrice``): rounded half-even to a stated number of digits.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

from api.market.ticker import Rolling
from api.symbols import SymbolSpec
from bursa_wire.md_codec import Msg

SELL = 2
AVG_EXTRA_DIGITS = 4  # an average price has the price's digits plus these
PERCENT_DIGITS = 3


def ms(ns: int) -> int:
    """Nanoseconds to Binance's milliseconds."""
    return ns // 1_000_000


def rounded(value: Fraction, digits: int) -> str:
    """``value`` rounded half-even to ``digits`` decimals (averages only)."""
    d = Decimal(value.numerator) / Decimal(value.denominator)
    return f"{d.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN):f}"


def avg_price(spec: SymbolSpec, quote_volume: int, volume_lots: int) -> str:
    """Volume-weighted average price (ticks x lots / lots) as a decimal string."""
    assert spec.price_decimals is not None
    if volume_lots <= 0:
        return spec.ticks_to_price(0)
    return rounded(
        Fraction(quote_volume, volume_lots) * spec.tick_value,
        spec.price_decimals + AVG_EXTRA_DIGITS,
    )


def trade_rest(spec: SymbolSpec, m: Msg) -> dict[str, Any]:
    """A TRADE message as a ``/trades`` row."""
    b = m.body
    return {
        "id": b["match_id"],
        "price": spec.ticks_to_price(b["price_ticks"]),
        "qty": spec.lots_to_qty(b["qty_lots"]),
        "quoteQty": spec.notional_to_str(b["price_ticks"] * b["qty_lots"]),
        "time": ms(m.ts_ns),
        "isBuyerMaker": b["aggressor_side"] == SELL,
        "isBestMatch": True,
    }


def trade_event(spec: SymbolSpec, m: Msg, now_ms: int) -> dict[str, Any]:
    """A TRADE message as a ``<symbol>@trade`` event."""
    b = m.body
    return {
        "e": "trade",
        "E": now_ms,
        "s": spec.name,
        "t": b["match_id"],
        "p": spec.ticks_to_price(b["price_ticks"]),
        "q": spec.lots_to_qty(b["qty_lots"]),
        "T": ms(m.ts_ns),
        "m": b["aggressor_side"] == SELL,
        "M": True,
    }


def agg_groups(trades: list[Msg]) -> list[list[Msg]]:
    """Consecutive trades of one taker (same core command) at one price, grouped."""
    out: list[list[Msg]] = []
    for m in trades:
        last = out[-1][-1] if out else None
        if (
            last is not None
            and last.core_seq == m.core_seq
            and last["price_ticks"] == m["price_ticks"]
            and last["aggressor_side"] == m["aggressor_side"]
        ):
            out[-1].append(m)
        else:
            out.append([m])
    return out


def agg_trade(spec: SymbolSpec, group: list[Msg]) -> dict[str, Any]:
    """One aggregate trade (``/aggTrades`` row); its id ``a`` is its first trade's id."""
    first, last = group[0], group[-1]
    return {
        "a": first["match_id"],
        "p": spec.ticks_to_price(first["price_ticks"]),
        "q": spec.lots_to_qty(sum(m["qty_lots"] for m in group)),
        "f": first["match_id"],
        "l": last["match_id"],
        "T": ms(first.ts_ns),
        "m": first["aggressor_side"] == SELL,
        "M": True,
    }


def agg_trade_event(spec: SymbolSpec, group: list[Msg], now_ms: int) -> dict[str, Any]:
    """An aggregate trade as a ``<symbol>@aggTrade`` event."""
    return {"e": "aggTrade", "E": now_ms, "s": spec.name, **agg_trade(spec, group)}


def kline_row(spec: SymbolSpec, c: Mapping[str, int]) -> list[Any]:
    """A candle (:mod:`api.market.intervals` shape) as a ``/klines`` row (taker-buy
    volumes are not tracked: "0")."""
    t = ms(c["start_ns"])
    return [
        t,
        spec.ticks_to_price(c["open_ticks"]),
        spec.ticks_to_price(c["high_ticks"]),
        spec.ticks_to_price(c["low_ticks"]),
        spec.ticks_to_price(c["close_ticks"]),
        spec.lots_to_qty(c["volume_lots"]),
        ms(c["end_ns"]) - 1,
        spec.notional_to_str(c["quote_volume"]),
        c["trades"],
        "0",
        "0",
        "0",
    ]


def kline_event(
    spec: SymbolSpec, c: Mapping[str, int], interval: str, now_ms: int
) -> dict[str, Any]:
    """A candle as a ``<symbol>@kline_<interval>`` event."""
    r = kline_row(spec, c)
    return {
        "e": "kline",
        "E": now_ms,
        "s": spec.name,
        "k": {
            "t": r[0],
            "T": r[6],
            "s": spec.name,
            "i": interval,
            "f": -1,
            "L": -1,
            "o": r[1],
            "c": r[4],
            "h": r[2],
            "l": r[3],
            "v": r[5],
            "n": r[8],
            "x": bool(c["closed"]),
            "q": r[7],
            "V": "0",
            "Q": "0",
            "B": "0",
        },
    }


def ticker_24h(
    spec: SymbolSpec,
    r: Rolling,
    bbo: tuple[int, int, int, int, int, int],
    last_trade: Msg | None,
) -> dict[str, Any]:
    """The ``/ticker/24hr`` object (FULL)."""
    p = spec.ticks_to_price
    change = r.close_ticks - r.open_ticks if r.trades else 0
    pct = Fraction(100 * change, r.open_ticks) if r.open_ticks and r.trades else Fraction(0)
    last_id = last_trade["match_id"] if last_trade is not None else -1
    return {
        "symbol": spec.name,
        "priceChange": p(change) if change >= 0 else "-" + p(-change),
        "priceChangePercent": rounded(pct, PERCENT_DIGITS),
        "weightedAvgPrice": avg_price(spec, r.quote_volume, r.volume_lots),
        "prevClosePrice": p(r.prev_close_ticks),
        "lastPrice": p(r.close_ticks if r.trades else _last_px(last_trade)),
        "lastQty": spec.lots_to_qty(last_trade["qty_lots"] if last_trade is not None else 0),
        "bidPrice": p(bbo[0]),
        "bidQty": spec.lots_to_qty(bbo[1]),
        "askPrice": p(bbo[3]),
        "askQty": spec.lots_to_qty(bbo[4]),
        "openPrice": p(r.open_ticks),
        "highPrice": p(r.high_ticks),
        "lowPrice": p(r.low_ticks),
        "volume": spec.lots_to_qty(r.volume_lots),
        "quoteVolume": spec.notional_to_str(r.quote_volume),
        "openTime": ms(r.open_ns),
        "closeTime": ms(r.close_ns),
        "firstId": -1 if not r.trades or last_id < 0 else max(0, last_id - r.trades + 1),
        "lastId": last_id if r.trades else -1,
        "count": r.trades,
    }


def _last_px(last_trade: Msg | None) -> int:
    return last_trade["price_ticks"] if last_trade is not None else 0


def ticker_mini(spec: SymbolSpec, r: Rolling, last_trade: Msg | None) -> dict[str, Any]:
    """The ``/ticker/24hr?type=MINI`` object."""
    p = spec.ticks_to_price
    return {
        "symbol": spec.name,
        "openPrice": p(r.open_ticks),
        "highPrice": p(r.high_ticks),
        "lowPrice": p(r.low_ticks),
        "lastPrice": p(r.close_ticks if r.trades else _last_px(last_trade)),
        "volume": spec.lots_to_qty(r.volume_lots),
        "quoteVolume": spec.notional_to_str(r.quote_volume),
        "openTime": ms(r.open_ns),
        "closeTime": ms(r.close_ns),
        "firstId": -1,
        "lastId": last_trade["match_id"] if last_trade is not None and r.trades else -1,
        "count": r.trades,
    }


def ticker_event(full: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """A ``/ticker/24hr`` object as a ``<symbol>@ticker`` event."""
    return {
        "e": "24hrTicker",
        "E": now_ms,
        "s": full["symbol"],
        "p": full["priceChange"],
        "P": full["priceChangePercent"],
        "w": full["weightedAvgPrice"],
        "x": full["prevClosePrice"],
        "c": full["lastPrice"],
        "Q": full["lastQty"],
        "b": full["bidPrice"],
        "B": full["bidQty"],
        "a": full["askPrice"],
        "A": full["askQty"],
        "o": full["openPrice"],
        "h": full["highPrice"],
        "l": full["lowPrice"],
        "v": full["volume"],
        "q": full["quoteVolume"],
        "O": full["openTime"],
        "C": full["closeTime"],
        "F": full["firstId"],
        "L": full["lastId"],
        "n": full["count"],
    }


def mini_event(mini: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """A MINI ticker as a ``<symbol>@miniTicker`` event."""
    return {
        "e": "24hrMiniTicker",
        "E": now_ms,
        "s": mini["symbol"],
        "c": mini["lastPrice"],
        "o": mini["openPrice"],
        "h": mini["highPrice"],
        "l": mini["lowPrice"],
        "v": mini["volume"],
        "q": mini["quoteVolume"],
    }


def book_ticker(spec: SymbolSpec, bbo: tuple[int, int, int, int, int, int]) -> dict[str, Any]:
    """The ``/ticker/bookTicker`` object."""
    return {
        "symbol": spec.name,
        "bidPrice": spec.ticks_to_price(bbo[0]),
        "bidQty": spec.lots_to_qty(bbo[1]),
        "askPrice": spec.ticks_to_price(bbo[3]),
        "askQty": spec.lots_to_qty(bbo[4]),
    }


def book_ticker_event(
    spec: SymbolSpec, bbo: tuple[int, int, int, int, int, int], update_id: int
) -> dict[str, Any]:
    """The ``<symbol>@bookTicker`` event."""
    bt = book_ticker(spec, bbo)
    return {
        "u": update_id,
        "s": spec.name,
        "b": bt["bidPrice"],
        "B": bt["bidQty"],
        "a": bt["askPrice"],
        "A": bt["askQty"],
    }
