"""Binance-style symbols: names, decimal grids and exact decimal <-> integer conversions.

The core trades integers: prices in ticks, quantities in lots, amounts in minor
units.  Binance clients send and read decimal strings.  A :class:`SymbolSpec` is one
symbol's grid as the market-data feed publishes it (its STATUS message: tick and lot
steps, band, ``price_multiplier``, ``base_per_lot``, asset ids and decimals) plus the
asset names of the ``[api]`` config, and converts both ways exactly:

- one tick is worth ``price_multiplier * 10**base_decimals / (base_per_lot *
  10**quote_decimals)`` quote per base unit (a fill of q lots at p ticks moves
  ``p * q * price_multiplier`` quote minor units for ``q * base_per_lot`` base minor
  units);
- one lot is ``base_per_lot / 10**base_decimals`` base units.

Decimal strings are parsed into exact fractions (never a float) and a value that is
not on the grid or out of range is rejected with Binance's ``-1013 Filter failure``,
never rounded.  A symbol whose tick or lot is not a finite decimal (say
``base_per_lot = 3``) cannot be quoted exactly in Binance's decimal strings and is
not listed (:meth:`SymbolRegistry.update` returns ``None`` for it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any

from api.errors import (
    BAD_PRECISION,
    BAD_SYMBOL,
    ILLEGAL_CHARS,
    INVALID_MESSAGE,
    MANDATORY_PARAM_EMPTY_OR_MALFORMED,
    ApiError,
    bad_request,
)
from pyx.apihttp import fixed, js, to_units

# Binance's pattern for decimal parameters (its -1100 message quotes it), with room
# for 40 digits a side: an i64 count of ticks on an extreme grid needs more than 20.
DECIMAL_PATTERN = r"^([0-9]{1,40})(\.[0-9]{1,40})?$"
_DECIMAL_RE = re.compile(DECIMAL_PATTERN)
STATUS_TRADING, STATUS_HALTED = 1, 2  # bursa_wire.md_layout.SymbolStatus values
ORDER_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")


def _decimals_of(value: Fraction) -> int | None:
    """Digits after the point needed to write ``value`` exactly (None: never finite)."""
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    return max(twos, fives) if den == 1 else None


def format_fixed(value: Fraction, decimals: int) -> str:
    """``value`` as a decimal string with exactly ``decimals`` digits after the point.

    Raises
    ------
    ValueError
        ``value`` has more digits than ``decimals`` (a caller bug: grids are exact).
    """
    scaled = value * 10**decimals
    if scaled.denominator != 1:
        raise ValueError(f"{value} is not a multiple of 10**-{decimals}")
    return _fixed(scaled.numerator, decimals)


def parse_decimal(s: object, param: str) -> Fraction:
    """A non-negative decimal string as an exact fraction (Binance's syntax).

    Raises
    ------
    ApiError
        -1102 missing or empty, -1100 anything else than ``digits[.digits]``.
    """
    if s is None or s == "":
        raise bad_request(
            MANDATORY_PARAM_EMPTY_OR_MALFORMED,
            f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.",
        )
    # fullmatch: "$" alone would accept a trailing newline.
    m = _DECIMAL_RE.fullmatch(s) if isinstance(s, str) else None
    if m is None:
        raise bad_request(
            ILLEGAL_CHARS,
            f"Illegal characters found in parameter '{param}'; legal range is '{DECIMAL_PATTERN}'.",
        )
    frac = (m.group(2) or ".")[1:]
    return Fraction(int(m.group(1) + frac), 10 ** len(frac))


def _decimal_parts(s: object, param: str) -> tuple[int, int]:
    """``(n, d)`` with ``s == n / 10**d`` exactly (the checks of :func:`parse_decimal`,
    without building a fraction: the order path converts with integers only)."""
    if s is None or s == "" or not isinstance(s, str):
        parse_decimal(s, param)  # raises the error for it
    assert isinstance(s, str)
    m = _DECIMAL_RE.fullmatch(s)
    if m is None:
        parse_decimal(s, param)
        raise AssertionError("unreachable")  # pragma: no cover
    frac = (m.group(2) or ".")[1:]
    return int(m.group(1) + frac), len(frac)


def _fixed(n: int, decimals: int) -> str:
    """``n / 10**decimals`` written with exactly ``decimals`` digits after the point."""
    sign = "-" if n < 0 else ""
    digits = str(abs(n)).rjust(decimals + 1, "0")
    if decimals == 0:
        return sign + digits
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


def _filter_failure(name: str) -> ApiError:
    return bad_request(INVALID_MESSAGE, f"Filter failure: {name}")


def _ceil_to(x: int, step: int) -> int:
    return -(-x // step) * step


@dataclass(frozen=True)
class SymbolSpec:
    """One symbol's Binance name, assets and integer grid (see the module docstring).

    Attributes
    ----------
    symbol_id : int
        The core's symbol id.
    name : str
        Binance name, base + quote asset names, e.g. ``"BTCUSDT"``.
    base_asset, quote_asset : str
        Asset names (from the ``[api]`` config; ``A<id>`` when not configured).
    base_asset_id, quote_asset_id : int
        The core's asset ids.
    base_decimals, quote_decimals : int
        Decimals of one minor unit of each asset.
    base_per_lot : int
        Base minor units per lot.
    price_multiplier : int
        Quote minor units per (tick x lot).
    tick_step, lot_step : int
        Valid prices are multiples of ``tick_step`` ticks, quantities of ``lot_step`` lots.
    min_qty_lots, max_qty_lots : int
        Order quantity range (lots).
    min_price_ticks, max_price_ticks : int
        The price band (ticks).
    min_notional_minor : int
        Smallest order value in quote minor units (0: none known).
    status : int
        1 trading, 2 halted (the feed's SymbolStatus).
    """

    symbol_id: int
    name: str
    base_asset: str
    quote_asset: str
    base_asset_id: int
    quote_asset_id: int
    base_decimals: int
    quote_decimals: int
    base_per_lot: int
    price_multiplier: int
    tick_step: int
    lot_step: int
    min_qty_lots: int
    max_qty_lots: int
    min_price_ticks: int
    max_price_ticks: int
    min_notional_minor: int = 0
    status: int = STATUS_TRADING

    def __post_init__(self) -> None:
        if self.base_per_lot <= 0 or self.price_multiplier <= 0:
            raise ValueError("base_per_lot and price_multiplier must be > 0")
        if self.tick_step <= 0 or self.lot_step <= 0:
            raise ValueError("tick_step and lot_step must be > 0")
        if self.price_decimals is None or self.qty_decimals is None:
            raise ValueError(f"symbol {self.symbol_id}: tick or lot is not a finite decimal")

    # ------------------------------------------------------------ the grid

    @cached_property
    def tick_value(self) -> Fraction:
        """Quote units per base unit of one tick (exact)."""
        return Fraction(
            self.price_multiplier * 10**self.base_decimals,
            self.base_per_lot * 10**self.quote_decimals,
        )

    @cached_property
    def lot_value(self) -> Fraction:
        """Base units in one lot (exact)."""
        return Fraction(self.base_per_lot, 10**self.base_decimals)

    @cached_property
    def price_decimals(self) -> int | None:
        """Decimals of prices (enough for one tick; None if a tick is not finite)."""
        return _decimals_of(self.tick_value)

    @cached_property
    def qty_decimals(self) -> int | None:
        """Decimals of quantities (enough for one lot)."""
        return _decimals_of(self.lot_value)

    @cached_property
    def _price_dec(self) -> int:
        assert self.price_decimals is not None  # __post_init__ checked it
        return self.price_decimals

    @cached_property
    def _qty_dec(self) -> int:
        assert self.qty_decimals is not None
        return self.qty_decimals

    @cached_property
    def _tick_scaled(self) -> int:
        """One tick in units of ``10**-price_decimals`` quote (an integer)."""
        v = self.tick_value * 10**self._price_dec
        assert v.denominator == 1
        return int(v.numerator)

    @cached_property
    def _lot_scaled(self) -> int:
        """One lot in units of ``10**-qty_decimals`` base (an integer)."""
        v = self.lot_value * 10**self._qty_dec
        assert v.denominator == 1
        return int(v.numerator)

    @cached_property
    def min_price_on_grid(self) -> int:
        """The smallest valid price in ticks (the band's low end rounded up to the grid)."""
        return _ceil_to(max(self.min_price_ticks, 1), self.tick_step)

    @cached_property
    def max_price_on_grid(self) -> int:
        """The largest valid price in ticks."""
        return self.max_price_ticks // self.tick_step * self.tick_step

    @cached_property
    def min_qty_on_grid(self) -> int:
        """The smallest valid quantity in lots."""
        return _ceil_to(max(self.min_qty_lots, 1), self.lot_step)

    @cached_property
    def max_qty_on_grid(self) -> int:
        """The largest valid quantity in lots."""
        return self.max_qty_lots // self.lot_step * self.lot_step

    @property
    def trading(self) -> bool:
        """True unless the symbol is halted."""
        return self.status == STATUS_TRADING

    # ------------------------------------------------- decimal -> integer

    @cached_property
    def _price_grid(self) -> tuple[int, int, int, int, int]:
        """:func:`pyx.apihttp.to_units`'s grid of prices (ticks)."""
        tv = self.tick_value
        return (tv.denominator, tv.numerator, self.tick_step, self.min_price_on_grid,
                self.max_price_on_grid)  # fmt: skip

    @cached_property
    def _qty_grid(self) -> tuple[int, int, int, int, int]:
        """:func:`pyx.apihttp.to_units`'s grid of quantities (lots)."""
        lv = self.lot_value
        return (lv.denominator, lv.numerator, self.lot_step, self.min_qty_on_grid,
                self.max_qty_on_grid)  # fmt: skip

    @cached_property
    def order_grid(self) -> tuple[tuple[int, ...], tuple[int, ...], int, int]:
        """:func:`pyx.apihttp.new_order_values`'s view of this symbol: the price and
        quantity grids, the price multiplier and the minimum notional."""
        return (self._price_grid, self._qty_grid, self.price_multiplier,
                self.min_notional_minor)  # fmt: skip

    @cached_property
    def text_grid(self) -> tuple[str, str, int, int, int, int, int]:
        """:func:`pyx.apihttp.order_text`'s view of this symbol: name and quote asset
        as JSON strings, tick and lot in units of their decimals, the decimals."""
        return (js(self.name), js(self.quote_asset), self._tick_scaled, self._price_dec,
                self._lot_scaled, self._qty_dec, self.quote_decimals)  # fmt: skip

    def price_to_ticks(self, s: object, param: str = "price") -> int:
        """A decimal price string as ticks, exactly (compiled: :func:`pyx.apihttp.to_units`;
        a refusal, and its error, comes from :meth:`price_to_ticks_py`).

        Raises
        ------
        ApiError
            -1102/-1100 malformed; -1013 ``Filter failure: PRICE_FILTER`` when the
            price is not a whole number of ticks, not a multiple of the tick step or
            outside the band.
        """
        t = to_units(s, *self._price_grid)
        if t is None or t < 0:
            return self.price_to_ticks_py(s, param)
        return int(t)

    def price_to_ticks_py(self, s: object, param: str = "price") -> int:
        """:meth:`price_to_ticks` in Python (the oracle of the compiled one)."""
        n, d = _decimal_parts(s, param)
        # n / 10**d / tick_value in integers: exact, as with fractions.
        tv = self.tick_value
        ticks, rest = divmod(n * tv.denominator, 10**d * tv.numerator)
        if (
            rest
            or ticks % self.tick_step
            or not self.min_price_on_grid <= ticks <= self.max_price_on_grid
        ):
            raise _filter_failure("PRICE_FILTER")
        return int(ticks)

    def qty_to_lots(self, s: object, param: str = "quantity", market: bool = False) -> int:
        """A decimal base quantity string as lots, exactly (compiled, as
        :meth:`price_to_ticks`; refusals from :meth:`qty_to_lots_py`).

        Raises
        ------
        ApiError
            -1102/-1100 malformed; -1013 ``Filter failure: LOT_SIZE`` (``MARKET_LOT_SIZE``
            with ``market``) off the lot grid or outside the quantity range.
        """
        t = to_units(s, *self._qty_grid)
        if t is None or t < 0:
            return self.qty_to_lots_py(s, param, market)
        return int(t)

    def qty_to_lots_py(self, s: object, param: str = "quantity", market: bool = False) -> int:
        """:meth:`qty_to_lots` in Python (the oracle of the compiled one)."""
        n, d = _decimal_parts(s, param)
        lv = self.lot_value
        lots, rest = divmod(n * lv.denominator, 10**d * lv.numerator)
        if rest or lots % self.lot_step or not self.min_qty_on_grid <= lots <= self.max_qty_on_grid:
            raise _filter_failure("MARKET_LOT_SIZE" if market else "LOT_SIZE")
        return int(lots)

    def quote_to_minor(self, s: object, param: str = "quoteOrderQty") -> int:
        """A decimal quote amount (e.g. ``quoteOrderQty``) as quote minor units, exactly.

        Raises
        ------
        ApiError
            -1102/-1100 malformed; -1111 more decimals than the quote asset has;
            -1013 ``Filter failure: NOTIONAL`` for zero.
        """
        minor = parse_decimal(s, param) * Fraction(10**self.quote_decimals)
        if minor.denominator != 1:
            raise bad_request(BAD_PRECISION, f"Parameter '{param}' has too much precision.")
        if minor.numerator <= 0:
            raise _filter_failure("NOTIONAL")
        return minor.numerator

    def check_notional(self, price_ticks: int, qty_lots: int) -> None:
        """Reject (-1013 ``Filter failure: NOTIONAL``) an order worth less than the minimum."""
        if price_ticks * qty_lots * self.price_multiplier < self.min_notional_minor:
            raise _filter_failure("NOTIONAL")

    # ------------------------------------------------- integer -> decimal

    def ticks_to_price(self, ticks: int) -> str:
        """A price in ticks as a decimal string (``price_decimals`` digits)."""
        return fixed(ticks * self._tick_scaled, self._price_dec)

    def lots_to_qty(self, lots: int) -> str:
        """A quantity in lots as a decimal string of base units (``qty_decimals`` digits)."""
        return fixed(lots * self._lot_scaled, self._qty_dec)

    def quote_minor_to_str(self, minor: int) -> str:
        """Quote minor units as a decimal string of the quote asset."""
        return fixed(minor, self.quote_decimals)

    def base_minor_to_str(self, minor: int) -> str:
        """Base minor units as a decimal string of the base asset."""
        return _fixed(minor, self.base_decimals)

    def notional_to_str(self, ticks_x_lots: int) -> str:
        """A sum of price x qty (ticks x lots, e.g. a candle's quote volume) in quote units."""
        return self.quote_minor_to_str(ticks_x_lots * self.price_multiplier)

    # ------------------------------------------------------ exchangeInfo

    def filters(self) -> list[dict[str, Any]]:
        """Binance's ``filters`` list of this symbol for exchangeInfo."""
        tick = self.ticks_to_price(self.tick_step)
        lot = self.lots_to_qty(self.lot_step)
        lot_size = {
            "minQty": self.lots_to_qty(self.min_qty_on_grid),
            "maxQty": self.lots_to_qty(self.max_qty_on_grid),
            "stepSize": lot,
        }
        return [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": self.ticks_to_price(self.min_price_on_grid),
                "maxPrice": self.ticks_to_price(self.max_price_on_grid),
                "tickSize": tick,
            },
            {"filterType": "LOT_SIZE", **lot_size},
            {"filterType": "MARKET_LOT_SIZE", **lot_size},
            {
                "filterType": "NOTIONAL",
                "minNotional": self.quote_minor_to_str(self.min_notional_minor),
                "applyMinToMarket": True,
                "maxNotional": self.quote_minor_to_str(
                    self.max_price_on_grid * self.max_qty_on_grid * self.price_multiplier
                ),
                "applyMaxToMarket": False,
                "avgPriceMins": 0,
            },
        ]

    def exchange_info(self, order_types: Iterable[str] = ORDER_TYPES) -> dict[str, Any]:
        """This symbol's entry of exchangeInfo's ``symbols`` list."""
        assert self.price_decimals is not None and self.qty_decimals is not None
        return {
            "symbol": self.name,
            "status": "TRADING" if self.trading else "HALT",
            "baseAsset": self.base_asset,
            "baseAssetPrecision": self.base_decimals,
            "quoteAsset": self.quote_asset,
            "quotePrecision": self.quote_decimals,
            "quoteAssetPrecision": self.quote_decimals,
            "baseCommissionPrecision": self.base_decimals,
            "quoteCommissionPrecision": self.quote_decimals,
            "orderTypes": list(order_types),
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": self.filters(),
            "permissions": ["SPOT"],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": [
                "NONE",
                "EXPIRE_TAKER",
                "EXPIRE_MAKER",
                "EXPIRE_BOTH",
            ],
        }

    # --------------------------------------------------------- building

    @classmethod
    def from_status(
        cls,
        symbol_id: int,
        status: Mapping[str, int],
        asset_names: Mapping[int, str],
        min_notional_minor: int = 0,
    ) -> SymbolSpec:
        """The spec of a feed STATUS message body (``bursa_wire.md_layout.BODIES``).

        Raises
        ------
        ValueError
            The grid cannot be written as decimals (see the module docstring).
        """
        base_id, quote_id = int(status["base_asset_id"]), int(status["quote_asset_id"])
        base = asset_names.get(base_id, f"A{base_id}")
        quote = asset_names.get(quote_id, f"A{quote_id}")
        return cls(
            symbol_id=symbol_id,
            name=f"{base}{quote}".upper(),
            base_asset=base,
            quote_asset=quote,
            base_asset_id=base_id,
            quote_asset_id=quote_id,
            base_decimals=int(status["base_decimals"]),
            quote_decimals=int(status["quote_decimals"]),
            base_per_lot=int(status["base_per_lot"]),
            price_multiplier=int(status["price_multiplier"]),
            tick_step=int(status["tick_step"]),
            lot_step=int(status["lot_step"]),
            min_qty_lots=int(status["min_qty_lots"]),
            max_qty_lots=int(status["max_qty_lots"]),
            min_price_ticks=int(status["min_price_ticks"]),
            max_price_ticks=int(status["max_price_ticks"]),
            min_notional_minor=min_notional_minor,
            status=int(status["status"]),
        )


def asset_names(section: Mapping[str, Any]) -> dict[int, str]:
    """Asset names per id from the ``[api]`` config: ``assets = {1 = "BTC", 2 = "USDT"}``.

    Raises
    ------
    ValueError
        A key that is not an asset id or a name that is not upper-case letters/digits.
    """
    out: dict[int, str] = {}
    for key, name in dict(section.get("assets", {})).items():
        if not str(key).isdigit() or not isinstance(name, str):
            raise ValueError(f"[api] assets: bad entry {key!r} = {name!r}")
        if not re.fullmatch(r"[A-Z0-9]{1,20}", name):
            raise ValueError(f"[api] assets: name {name!r} must be 1-20 of A-Z 0-9")
        out[int(key)] = name
    return out


def min_notionals(section: Mapping[str, Any]) -> dict[int, int]:
    """Minimum order value per symbol id (quote minor units) from ``[api]``:
    ``min_notional_minor = {1 = 5000000}`` (the feed does not publish it)."""
    out: dict[int, int] = {}
    for key, value in dict(section.get("min_notional_minor", {})).items():
        if not str(key).isdigit() or not isinstance(value, int) or value < 0:
            raise ValueError(f"[api] min_notional_minor: bad entry {key!r} = {value!r}")
        out[int(key)] = value
    return out


class SymbolRegistry:
    """Every listed symbol, by Binance name and by core id (updated from the feed)."""

    def __init__(
        self,
        names: Mapping[int, str] | None = None,
        min_notional_minor: Mapping[int, int] | None = None,
    ) -> None:
        self.asset_names: dict[int, str] = dict(names or {})
        self.min_notional_minor: dict[int, int] = dict(min_notional_minor or {})
        self._by_id: dict[int, SymbolSpec] = {}
        self._by_name: dict[str, SymbolSpec] = {}

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> SymbolRegistry:
        """An empty registry with the asset names and minimum notionals of ``[api]``."""
        return cls(asset_names(section), min_notionals(section))

    def add(self, spec: SymbolSpec) -> None:
        """List ``spec`` (replacing the symbol's previous spec)."""
        old = self._by_id.pop(spec.symbol_id, None)
        if old is not None:
            self._by_name.pop(old.name, None)
        self._by_id[spec.symbol_id] = spec
        self._by_name[spec.name] = spec

    def update(self, symbol_id: int, status: Mapping[str, int]) -> SymbolSpec | None:
        """List or update a symbol from a feed STATUS body; None if it cannot be listed."""
        try:
            spec = SymbolSpec.from_status(
                symbol_id, status, self.asset_names, self.min_notional_minor.get(symbol_id, 0)
            )
        except ValueError:
            return None
        if spec.name in self._by_name and self._by_name[spec.name].symbol_id != symbol_id:
            return None  # two ids with one name: the first listed keeps it
        self.add(spec)
        return spec

    @property
    def names(self) -> dict[str, SymbolSpec]:
        """The listed symbols by name: the registry's own dict, for compiled readers
        (:meth:`pyx.apistore.OrderEntry.open_usual`); read it, never write it (:meth:`add`
        and :meth:`update` do)."""
        return self._by_name

    def by_name(self, name: object) -> SymbolSpec:
        """The symbol named ``name`` (upper case, as Binance).

        Raises
        ------
        ApiError
            -1102 missing, -1121 ``Invalid symbol.`` unknown.
        """
        if name is None or name == "":
            raise bad_request(
                MANDATORY_PARAM_EMPTY_OR_MALFORMED,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            )
        spec = self._by_name.get(name) if isinstance(name, str) else None
        if spec is None:
            raise bad_request(BAD_SYMBOL, "Invalid symbol.")
        return spec

    def by_id(self, symbol_id: int) -> SymbolSpec:
        """The symbol with core id ``symbol_id`` (KeyError if not listed)."""
        return self._by_id[symbol_id]

    def get_id(self, symbol_id: int) -> SymbolSpec | None:
        """The symbol with core id ``symbol_id``, or None."""
        return self._by_id.get(symbol_id)

    def all(self) -> list[SymbolSpec]:
        """Every listed symbol, by id."""
        return [self._by_id[k] for k in sorted(self._by_id)]

    def __len__(self) -> int:
        return len(self._by_id)
