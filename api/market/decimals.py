"""Decimal strings of one symbol's prices and quantities, computed once and reused.

:meth:`api.symbols.SymbolSpec.ticks_to_price` / ``lots_to_qty`` are exact (fractions)
but cost microseconds each; a depth event repeats the same few prices and
quantities every 100 ms, so the strings are kept per symbol.  A cache belongs to one
:class:`SymbolSpec` object (a STATUS message that changes the grid makes a new spec,
hence a new cache) and is cleared when it holds ``MAX_ENTRIES`` strings, so its
memory is bounded.
"""

from __future__ import annotations

from api.symbols import SymbolSpec

MAX_ENTRIES = 16_384  # per table (prices, quantities) of one symbol


class Decimals:
    """Cached ``spec.ticks_to_price`` / ``spec.lots_to_qty`` of one symbol grid."""

    __slots__ = ("_px", "_qty", "spec")

    def __init__(self, spec: SymbolSpec) -> None:
        self.spec = spec
        self._px: dict[int, str] = {}
        self._qty: dict[int, str] = {}

    def price(self, ticks: int) -> str:
        """``spec.ticks_to_price(ticks)``."""
        s = self._px.get(ticks)
        if s is None:
            if len(self._px) >= MAX_ENTRIES:
                self._px.clear()
            s = self._px[ticks] = self.spec.ticks_to_price(ticks)
        return s

    def qty(self, lots: int) -> str:
        """``spec.lots_to_qty(lots)``."""
        s = self._qty.get(lots)
        if s is None:
            if len(self._qty) >= MAX_ENTRIES:
                self._qty.clear()
            s = self._qty[lots] = self.spec.lots_to_qty(lots)
        return s

    def pairs(self, levels: dict[int, int]) -> list[list[str]]:
        """``{price_ticks: qty_lots}`` as Binance ``[["price", "qty"], ...]`` (dict order)."""
        p, q = self.price, self.qty
        return [[p(px), q(qty)] for px, qty in levels.items()]

    def rows(self, rows: list[tuple[int, int, int]]) -> list[list[str]]:
        """``(price, qty, n)`` book rows as Binance ``[["price", "qty"], ...]``."""
        p, q = self.price, self.qty
        return [[p(r[0]), q(r[1])] for r in rows]
