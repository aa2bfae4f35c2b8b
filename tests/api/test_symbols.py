"""api.symbols: exact decimal <-> integer conversions (hypothesis), filters, registry."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from api.errors import ApiError
from api.symbols import SymbolRegistry, SymbolSpec, asset_names, format_fixed, min_notionals

DEMO_STATUS = {
    "tick_step": 10,
    "lot_step": 1,
    "min_qty_lots": 1,
    "max_qty_lots": 1_000_000,
    "min_price_ticks": 3_000_000,
    "max_price_ticks": 12_000_000,
    "price_multiplier": 1,
    "base_per_lot": 10_000,
    "base_asset_id": 1,
    "quote_asset_id": 2,
    "base_decimals": 8,
    "quote_decimals": 6,
    "status": 1,
}
NAMES = {1: "BTC", 2: "USDT"}


def demo() -> SymbolSpec:
    """The demo market's BTCUSDT (bursa/run.py units)."""
    return SymbolSpec.from_status(1, DEMO_STATUS, NAMES, 5_000_000)


# A grid: any base_per_lot / price_multiplier made of 2s and 5s (finite decimals).
pow25 = st.builds(lambda a, b: 2**a * 5**b, st.integers(0, 6), st.integers(0, 6))


@st.composite
def specs(draw: st.DrawFn) -> SymbolSpec:
    """A random listable symbol."""
    tick_step = draw(st.integers(1, 1000))
    lot_step = draw(st.integers(1, 1000))
    min_price = draw(st.integers(1, 10**6))
    min_qty = draw(st.integers(1, 10**6))
    return SymbolSpec(
        symbol_id=draw(st.integers(1, 65535)),
        name="XY",
        base_asset="X",
        quote_asset="Y",
        base_asset_id=1,
        quote_asset_id=2,
        base_decimals=draw(st.integers(0, 18)),
        quote_decimals=draw(st.integers(0, 18)),
        base_per_lot=draw(pow25),
        price_multiplier=draw(pow25),
        tick_step=tick_step,
        lot_step=lot_step,
        min_qty_lots=min_qty,
        max_qty_lots=min_qty + draw(st.integers(0, 10**9)),
        min_price_ticks=min_price,
        max_price_ticks=min_price + draw(st.integers(0, 10**9)),
    )


@given(specs(), st.integers(0, 10**12), st.integers(0, 10**12))
def test_round_trip_exact(spec: SymbolSpec, p: int, q: int) -> None:
    """Every valid price and quantity survives int -> str -> int unchanged."""
    lo, hi = spec.min_price_on_grid, spec.max_price_on_grid
    assume(lo <= hi)
    ticks = lo + (p % ((hi - lo) // spec.tick_step + 1)) * spec.tick_step
    assert spec.price_to_ticks(spec.ticks_to_price(ticks)) == ticks
    lo, hi = spec.min_qty_on_grid, spec.max_qty_on_grid
    assume(lo <= hi)
    lots = lo + (q % ((hi - lo) // spec.lot_step + 1)) * spec.lot_step
    assert spec.qty_to_lots(spec.lots_to_qty(lots)) == lots
    # Decimal (an independent path) reads the same value back.
    assert Decimal(spec.ticks_to_price(ticks)) == Decimal(ticks) * Decimal(
        spec.tick_value.numerator
    ) / Decimal(spec.tick_value.denominator)


@given(specs(), st.integers(0, 10**15), st.integers(0, 12))
def test_off_grid_always_rejected(spec: SymbolSpec, n: int, decimals: int) -> None:
    """A decimal accepted is exactly on the grid and in range; everything else is -1013."""
    s = format_fixed(Fraction(n, 10**decimals), decimals)
    value = Fraction(n, 10**decimals)
    ticks = value / spec.tick_value
    ok = (
        ticks.denominator == 1
        and ticks.numerator % spec.tick_step == 0
        and spec.min_price_ticks <= ticks.numerator <= spec.max_price_ticks
    )
    if ok:
        assert spec.price_to_ticks(s) == ticks
    else:
        with pytest.raises(ApiError) as e:
            spec.price_to_ticks(s)
        assert (e.value.code, e.value.msg) == (-1013, "Filter failure: PRICE_FILTER")
    lots = value / spec.lot_value
    ok = (
        lots.denominator == 1
        and lots.numerator % spec.lot_step == 0
        and spec.min_qty_lots <= lots.numerator <= spec.max_qty_lots
    )
    if ok:
        assert spec.qty_to_lots(s) == lots
    else:
        with pytest.raises(ApiError) as e:
            spec.qty_to_lots(s)
        assert (e.value.code, e.value.msg) == (-1013, "Filter failure: LOT_SIZE")


@given(st.text(max_size=30))
def test_malformed_never_crashes(s: str) -> None:
    """Any text is either a valid decimal or an ApiError -1100/-1102/-1013."""
    spec = demo()
    for fn in (spec.price_to_ticks, spec.qty_to_lots, spec.quote_to_minor):
        try:
            v = fn(s)
        except ApiError as e:
            assert e.code in (-1100, -1102, -1013, -1111)
            assert e.http_status == 400
        else:
            assert isinstance(v, int) and v > 0


def test_demo_units() -> None:
    """bursa/run.py's market: 0.01 USDT ticks on a grid of 10, lots of 0.0001 BTC."""
    s = demo()
    assert s.name == "BTCUSDT" and s.tick_value == Fraction(1, 100)
    assert s.ticks_to_price(6_000_000) == "60000.00"
    assert s.lots_to_qty(12_345) == "1.2345"
    assert s.price_to_ticks("60000.1") == 6_000_010
    assert s.price_to_ticks("060000.100000") == 6_000_010
    assert s.qty_to_lots("1.2345") == 12_345
    assert s.quote_to_minor("5.5") == 5_500_000
    assert s.quote_minor_to_str(1) == "0.000001"
    assert s.base_minor_to_str(123) == "0.00000123"
    assert s.notional_to_str(6_000_000 * 3) == "18.000000"
    for bad, code in (
        ("60000.01", -1013),  # one tick but off the grid of 10
        ("60000.001", -1013),  # not a whole tick
        ("29999.90", -1013),  # below the band
        ("120000.10", -1013),  # above the band
        ("-1", -1100),
        ("1e3", -1100),
        ("1,5", -1100),
        ("٣", -1100),  # a non-ASCII digit
        ("1.5\n", -1100),
        ("", -1102),
        (None, -1102),
        (5, -1100),
    ):
        with pytest.raises(ApiError) as e:
            s.price_to_ticks(bad)
        assert e.value.code == code, bad
    with pytest.raises(ApiError, match="LOT_SIZE"):
        s.qty_to_lots("0.00005")
    with pytest.raises(ApiError, match="MARKET_LOT_SIZE"):
        s.qty_to_lots("100.0001", market=True)
    with pytest.raises(ApiError) as e:
        s.quote_to_minor("1.0000001")
    assert e.value.code == -1111
    with pytest.raises(ApiError, match="NOTIONAL"):
        s.check_notional(3_000_000, 1)  # 30000 x 0.0001 = 3 USDT < 5
    s.check_notional(5_000_000, 1)


def test_filters_and_exchange_info() -> None:
    """The filters Binance clients read, in Binance's shape."""
    info = demo().exchange_info()
    f = {x["filterType"]: x for x in info["filters"]}
    assert f["PRICE_FILTER"] == {
        "filterType": "PRICE_FILTER",
        "minPrice": "30000.00",
        "maxPrice": "120000.00",
        "tickSize": "0.10",
    }
    assert f["LOT_SIZE"]["minQty"] == "0.0001" and f["LOT_SIZE"]["maxQty"] == "100.0000"
    assert f["LOT_SIZE"]["stepSize"] == "0.0001"
    assert f["MARKET_LOT_SIZE"]["stepSize"] == "0.0001"
    assert f["NOTIONAL"]["minNotional"] == "5.000000"
    assert info["baseAsset"] == "BTC" and info["quoteAsset"] == "USDT"
    assert info["status"] == "TRADING"
    # A band edge off the grid is published rounded inwards.
    odd = SymbolSpec.from_status(1, {**DEMO_STATUS, "min_price_ticks": 3_000_001}, NAMES)
    assert odd.filters()[0]["minPrice"] == "30000.10"


def test_registry() -> None:
    """by_name / by_id / all, -1121 for an unknown name, unlistable grids skipped."""
    r = SymbolRegistry.from_config(
        {"assets": {"1": "BTC", "2": "USDT", "3": "ETH"}, "min_notional_minor": {"1": 7}}
    )
    assert r.update(1, DEMO_STATUS) is not None
    assert r.update(2, {**DEMO_STATUS, "base_asset_id": 3}) is not None
    assert r.update(3, {**DEMO_STATUS, "base_per_lot": 3}) is None  # 1/3 tick: not decimal
    assert r.update(4, DEMO_STATUS) is None  # BTCUSDT is taken by symbol 1
    assert [s.name for s in r.all()] == ["BTCUSDT", "ETHUSDT"]
    assert r.by_name("ETHUSDT").symbol_id == 2 and r.by_id(1).min_notional_minor == 7
    halted = r.update(1, {**DEMO_STATUS, "status": 2})
    assert halted is not None and r.by_name("BTCUSDT").exchange_info()["status"] == "HALT"
    for bad, code in (("btcusdt", -1121), ("XXX", -1121), ("", -1102), (None, -1102)):
        with pytest.raises(ApiError) as e:
            r.by_name(bad)
        assert e.value.code == code
    unnamed = SymbolRegistry()
    assert unnamed.update(9, DEMO_STATUS) is not None and unnamed.by_id(9).name == "A1A2"


def test_config_errors() -> None:
    """Bad [api] asset names and minimum notionals are refused at start."""
    assert asset_names({}) == {} and min_notionals({}) == {}
    for bad in ({"assets": {"x": "BTC"}}, {"assets": {"1": "btc"}}, {"assets": {"1": 5}}):
        with pytest.raises(ValueError):
            asset_names(bad)
    with pytest.raises(ValueError):
        min_notionals({"min_notional_minor": {"1": -1}})
