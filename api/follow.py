"""Core events -> orders, fills, assets and symbols in the :class:`api.store.Store`.

Sans I/O: :meth:`Follower.apply` takes one event (a tuple of ``EV_DTYPE`` fields)
and updates the store; :meth:`Follower.apply_events` a frame's ``EV_DTYPE`` records
(compiled: :mod:`pyx.apifollow` applies ACCEPTED, TRADE and CANCELED from the
records' bytes and hands every other kind to :meth:`Follower.apply`, which with
:meth:`Follower.apply_events_py` stays its oracle); the caller commits with the
frame's last seq.  Binance's view of an order is derived here:

- ``ACCEPTED`` -> ``NEW`` (an order the store does not know is created with
  ``timeInForce`` GTC and :meth:`api.store.Store.lost_client_id`: an order entered
  elsewhere, e.g. the gateway, gets ``core.<orderId>`` (a "." no client id can hold),
  an API order whose intent image was lost its generated id);
- ``TRADE`` -> ``PARTIALLY_FILLED`` / ``FILLED`` plus one fill per side (commission =
  the fee the core charged, in the quote asset);
- ``CANCELED``: by the user or a mass cancel -> ``CANCELED``; an IOC/FOK/market
  remainder (``IOC_REMAINDER``, ``NO_LIQUIDITY``, ``BUDGET_EXHAUSTED``) ->
  ``EXPIRED``; self-trade prevention -> ``EXPIRED_IN_MATCH``;
- ``REJECTED`` of a NEW: a FOK that could not fill -> ``EXPIRED`` (Binance answers an
  order, not an error); anything else deletes the pending order (Binance keeps no
  rejected orders) and leaves the reason in ``Order.reject`` for the waiting request.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

import numpy as np

from api.store import API_ID_BASE, PENDING_NEW, Fill, Order, Store
from bursa_wire.layout import EV_DTYPE
from pyx.apifollow import Applier
from pyx.enums import EvFlag, EvKind, OrdType, Reason, Side

EV = {name: i for i, name in enumerate(EV_DTYPE.names or ())}
_SEQ, _TS, _KIND, _USER, _OID = EV["seq"], EV["ts_ns"], EV["kind"], EV["user_id"], EV["order_id"]
_SYM, _SIDE, _PRICE, _QTY = EV["symbol_id"], EV["side"], EV["price_ticks"], EV["qty_lots"]
_LEAVES, _REASON, _FLAGS, _OTYPE = EV["leaves_lots"], EV["reason"], EV["flags"], EV["ord_type"]
_MUSER, _MOID, _MATCH = EV["maker_user_id"], EV["maker_order_id"], EV["match_id"]
_TFEE, _MFEE = EV["taker_fee"], EV["maker_fee"]

SIDE_NAME = {int(Side.BUY): "BUY", int(Side.SELL): "SELL"}
TYPE_NAME = {
    int(OrdType.LIMIT): "LIMIT",
    int(OrdType.MARKET): "MARKET",
    int(OrdType.MARKET_QUOTE): "MARKET",
    int(OrdType.STOP_LIMIT): "STOP_LOSS_LIMIT",
    int(OrdType.STOP_MARKET): "STOP_LOSS",
}
EXPIRED_REASONS = frozenset(
    {int(Reason.IOC_REMAINDER), int(Reason.NO_LIQUIDITY), int(Reason.BUDGET_EXHAUSTED)}
)
FUNDING_KINDS = frozenset(
    int(k)
    for k in (EvKind.DEPOSITED, EvKind.WITHDRAW_HELD, EvKind.WITHDRAW_COMMITTED,
              EvKind.WITHDRAW_RELEASED, EvKind.TRANSFERRED)
)  # fmt: skip


@dataclass(slots=True)
class Update:
    """One change of a user's order, for the user data streams (executionReport)."""

    order: Order
    exec_type: str  # NEW, TRADE, CANCELED, EXPIRED, REJECTED, REPLACED
    fill: Fill | None
    ts_ms: int
    reason: int = 0
    # The order's state right after this change (the order object moves on).
    status: str = ""
    executed: int = 0
    cum_quote: int = 0
    qty: int = 0

    def __post_init__(self) -> None:
        o = self.order
        self.status, self.executed, self.cum_quote, self.qty = (
            o.status, o.executed, o.cum_quote, o.qty)  # fmt: skip


# The enum members as plain ints: an attribute of these (Cython) enums costs ~0.3 µs
# and an ``&`` with one ~0.5 µs, several per event on the order path.
_EVFLAG_MAKER_DONE = int(EvFlag.MAKER_DONE)
_EVFLAG_TAKER_DONE = int(EvFlag.TAKER_DONE)
_EVKIND_ACCEPTED = int(EvKind.ACCEPTED)
_EVKIND_ASSET_ADDED = int(EvKind.ASSET_ADDED)
_EVKIND_CANCELED = int(EvKind.CANCELED)
_EVKIND_MIN_NOTIONAL_SET = int(EvKind.MIN_NOTIONAL_SET)
_EVKIND_REDUCED = int(EvKind.REDUCED)
_EVKIND_REJECTED = int(EvKind.REJECTED)
_EVKIND_REPLACED = int(EvKind.REPLACED)
_EVKIND_SYMBOL_ADDED = int(EvKind.SYMBOL_ADDED)
_EVKIND_SYMBOL_HALTED = int(EvKind.SYMBOL_HALTED)
_EVKIND_SYMBOL_RESUMED = int(EvKind.SYMBOL_RESUMED)
_EVKIND_TRADE = int(EvKind.TRADE)
_ORDTYPE_MARKET_QUOTE = int(OrdType.MARKET_QUOTE)
_REASON_BUDGET_EXHAUSTED = int(Reason.BUDGET_EXHAUSTED)
_REASON_FOK_NOT_FILLABLE = int(Reason.FOK_NOT_FILLABLE)
_REASON_SELF_TRADE = int(Reason.SELF_TRADE)
_SIDE_BUY = int(Side.BUY)
_ORDER_KINDS = frozenset(
    (_EVKIND_ACCEPTED, _EVKIND_CANCELED, _EVKIND_REJECTED, _EVKIND_REDUCED, _EVKIND_REPLACED)
)


class Follower:
    """Applies core events to a store (module docstring)."""

    def __init__(self, store: Store, on_symbol: Callable[[int, dict[str, int]], None]) -> None:
        self.store = store
        self.on_symbol = on_symbol  # a symbol's config changed (the registry lists it)
        self.updates: list[Update] = []  # since the caller last took them
        self.balances: set[tuple[int, int]] = set()  # (user, asset) changed since then
        self.funding: list[tuple[Any, ...]] = []  # funding events since then (balanceUpdate)
        self.probing: set[tuple[int, int]] = set()  # recovery cancels sent (api.core)
        # Users whose updates, balances and funding events are wanted (the user data
        # streams' subscribers); None: every user's.  Others cost no objects per event.
        self.watched: Container[int] | None = None
        self._compiled = Applier(self, Order, Fill, Update, SIDE_NAME, TYPE_NAME, EXPIRED_REASONS)
        # Apply one frame's ``EV_DTYPE`` records in order: what :meth:`apply_events_py`
        # does, the common kinds compiled (:mod:`pyx.apifollow`).  The compiled method
        # itself, not a method calling it: no Python frame per event frame.
        self.apply_events: Callable[[np.ndarray[Any, Any]], None] = self._compiled.apply

    def apply_events_py(self, events: np.ndarray[Any, Any]) -> None:
        """:meth:`apply` on each record (the oracle of :meth:`apply_events`)."""
        for ev in events.tolist():
            self.apply(ev)

    def compiled_counts(self) -> tuple[int, int]:
        """Events :meth:`apply_events` applied in C, and those it handed to
        :meth:`apply` (tests, metrics)."""
        return self._compiled.compiled, self._compiled.fallback

    def _watched(self, user_id: int) -> bool:
        w = self.watched
        return w is None or user_id in w

    def _quote_per_fill(self, symbol_id: int) -> int:
        cfg = self.store.symbols.get(symbol_id)
        return cfg["price_multiplier"] if cfg else 1

    def _assets(self, symbol_id: int) -> tuple[int, int]:
        cfg = self.store.symbols.get(symbol_id)
        return (cfg["base_asset_id"], cfg["quote_asset_id"]) if cfg else (0, 0)

    def _touch(self, o: Order) -> None:
        base, quote = self._assets(o.symbol_id)
        self.balances.add((o.user_id, base))
        self.balances.add((o.user_id, quote))

    def apply(self, ev: tuple[Any, ...]) -> None:
        """Apply one event (see the module docstring)."""
        kind = ev[_KIND]
        if kind == _EVKIND_TRADE:
            self._trade(ev)
        elif kind in _ORDER_KINDS:
            self._order_event(kind, ev)
        elif kind in FUNDING_KINDS:
            if self._watched(ev[_USER]):
                self.balances.add((ev[_USER], ev[_SYM]))
                self.funding.append(ev)
        elif kind == _EVKIND_ASSET_ADDED:
            self.store.set_asset(ev[_SYM], ev[_QTY])
        elif kind == _EVKIND_SYMBOL_ADDED:
            steps = ev[_OID]
            base, quote = ev[_USER], ev[_MUSER]
            cfg = {
                "base_asset_id": base,
                "quote_asset_id": quote,
                "base_decimals": self.store.assets.get(base, 0),
                "quote_decimals": self.store.assets.get(quote, 0),
                "base_per_lot": ev[_MFEE],
                "price_multiplier": ev[_TFEE],
                "tick_step": steps & 0xFFFFFFFF,
                "lot_step": steps >> 32,
                "min_qty_lots": ev[_MOID],
                "max_qty_lots": ev[_QTY],
                "min_price_ticks": ev[_PRICE],
                "max_price_ticks": ev[_LEAVES],
                "min_notional_minor": 0,
                "status": 1,
            }
            self._symbol(ev[_SYM], cfg)
        elif kind in (_EVKIND_SYMBOL_HALTED, _EVKIND_SYMBOL_RESUMED, _EVKIND_MIN_NOTIONAL_SET):
            cfg = dict(self.store.symbols.get(ev[_SYM], {}))
            if cfg:
                if kind == _EVKIND_MIN_NOTIONAL_SET:
                    cfg["min_notional_minor"] = ev[_QTY]
                else:
                    cfg["status"] = 2 if kind == _EVKIND_SYMBOL_HALTED else 1
                self._symbol(ev[_SYM], cfg)

    def _symbol(self, symbol_id: int, cfg: dict[str, int]) -> None:
        self.store.set_symbol(symbol_id, cfg)
        self.on_symbol(symbol_id, cfg)

    def _order_event(self, kind: int, ev: tuple[Any, ...]) -> None:
        st = self.store
        uid, oid = ev[_USER], ev[_OID]
        o = st.open.get((uid, oid))
        ts_ms = ev[_TS] // 1_000_000
        if kind == _EVKIND_ACCEPTED:
            if o is None:
                o = Order(uid, oid, ev[_SYM], st.lost_client_id(uid, oid),
                          SIDE_NAME.get(ev[_SIDE], "BUY"), TYPE_NAME.get(ev[_OTYPE], "LIMIT"),
                          "GTC", ev[_PRICE], 0 if ev[_OTYPE] == _ORDTYPE_MARKET_QUOTE else ev[_QTY],
                          0, 0, time_ms=ts_ms, api=bool(oid & API_ID_BASE))  # fmt: skip
                st.add(o, durable=False)  # written by this batch's transaction (save)
            o.status = "NEW"
            # The core's sequencing time: the same after a rebuild from the event log.
            o.time_ms = o.update_ms = ts_ms
            st.save(o)
            if self._watched(uid):
                self._touch(o)
                self.updates.append(Update(o, "NEW", None, ts_ms))
            return
        if o is None:
            return
        watched = self._watched(uid)
        o.update_ms = ts_ms
        reason = ev[_REASON]
        if kind == _EVKIND_REJECTED:
            if ev[_SIDE] == 0 and o.status == PENDING_NEW and (uid, oid) in self.probing:
                # The recovery cancel of a NEW that never reached the core: it never was.
                self.probing.discard((uid, oid))
                o.status = "REJECTED"
                st.delete(o)
                return
            if ev[_SIDE] == 0 or o.status != PENDING_NEW:
                return  # a rejected cancel/replace: the order is unchanged
            o.reject = reason
            if reason == _REASON_FOK_NOT_FILLABLE:
                o.status = "EXPIRED"
                st.save(o)
                if watched:
                    self.updates.append(Update(o, "NEW", None, ts_ms))
                    self.updates.append(Update(o, "EXPIRED", None, ts_ms, reason))
            else:
                o.status = "REJECTED"
                st.delete(o)
            return
        if kind == _EVKIND_CANCELED:
            self.probing.discard((uid, oid))
            if reason == _REASON_BUDGET_EXHAUSTED and o.executed > 0:
                # A quoteOrderQty market order that spent its budget down to the last
                # whole lot: Binance reports it FILLED.
                o.status, exec_type = "FILLED", ""
            elif reason in EXPIRED_REASONS:
                o.status, exec_type = "EXPIRED", "EXPIRED"
            elif reason == _REASON_SELF_TRADE:
                o.status, exec_type = "EXPIRED_IN_MATCH", "TRADE_PREVENTION"
            else:
                o.status, exec_type = "CANCELED", "CANCELED"
            if watched:
                self._touch(o)
                if exec_type:
                    self.updates.append(Update(o, exec_type, None, ts_ms, reason))
        else:  # REDUCED / REPLACED (gateway amends): the open quantity changed
            if kind == _EVKIND_REPLACED:
                o.price = ev[_PRICE]
            if o.type != "MARKET" or o.qty:
                o.qty = o.executed + ev[_LEAVES]
            if watched:
                self._touch(o)
                self.updates.append(Update(o, "REPLACED", None, ts_ms, reason))
        st.save(o)

    def _trade(self, ev: tuple[Any, ...]) -> None:
        st = self.store
        ts_ms = ev[_TS] // 1_000_000
        sym, price, qty, match = ev[_SYM], ev[_PRICE], ev[_QTY], ev[_MATCH]
        quote = price * qty * self._quote_per_fill(sym)
        flags = ev[_FLAGS]
        taker_buys = ev[_SIDE] == _SIDE_BUY
        sides = (
            (ev[_USER], ev[_OID], ev[_TFEE], False, flags & _EVFLAG_TAKER_DONE, taker_buys),
            (ev[_MUSER], ev[_MOID], ev[_MFEE], True, flags & _EVFLAG_MAKER_DONE, not taker_buys),
        )
        for uid, oid, fee, is_maker, done, is_buyer in sides:
            o = st.open.get((uid, oid))
            f = Fill(match, price, qty, fee, is_maker, ts_ms)
            st.add_trade(uid, sym, oid, is_buyer, f)
            watched = self._watched(uid)
            if watched:
                base, qa = self._assets(sym)
                self.balances.add((uid, base))
                self.balances.add((uid, qa))
            if o is None:
                continue
            o.executed += qty
            o.cum_quote += quote
            o.update_ms = ts_ms
            o.status = "FILLED" if done else "PARTIALLY_FILLED"
            if not is_maker:
                o.fills.append(f)  # the taker's fills answer its request (FULL)
            st.save(o)
            if watched:
                self.updates.append(Update(o, "TRADE", f, ts_ms))
