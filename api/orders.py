"""Trading endpoints: ``/api/v3/order`` (POST, GET, DELETE), ``/order/test``,
``/openOrders`` (GET, DELETE), ``/allOrders``, ``/myTrades``.

Every request is SIGNED (:mod:`api.auth`); the user is the key's.  Decimal strings
become ticks and lots exactly (:mod:`api.symbols`, -1013 off the grid, never
rounded).  A NEW is answered once the core's reply and the events of its sequence
number are applied (:mod:`api.core`), so RESULT/FULL carry the final state of the
order after its matching, fills included.  ``newClientOrderId`` makes a request
idempotent: a retry with the same id and the same order answers the first order
(waiting for it if still in flight); with different fields -2010 "Duplicate order
sent.".  Binance's shapes and codes are in docs/api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web

from api import errors as err
from api.context import CTX, Context
from api.core import (
    NEW_ORDER_FIELDS,
    CoreTimeoutError,
    CoreUnavailableError,
    OrderReply,
    cancel_record,
    now_ms,
    pack_new,
)
from api.errors import ApiError, bad_request
from api.store import Fill, Order
from api.symbols import SymbolSpec
from bursa_wire.layout import CMD_DTYPE, CMD_SIZE
from engine.wire import commands
from pyx import apistore
from pyx.apihttp import new_order_values, order_text, quote_words
from pyx.enums import CmdFlag, CmdKind, OrdType, Reason, Side, Stp, Tif

CLIENT_ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,36}")
TIFS = {"GTC": int(Tif.GTC), "IOC": int(Tif.IOC), "FOK": int(Tif.FOK)}
STP_MODES = {
    "NONE": int(Stp.STP_NONE),
    "EXPIRE_TAKER": int(Stp.CANCEL_NEWEST),
    "EXPIRE_MAKER": int(Stp.CANCEL_OLDEST),
    "EXPIRE_BOTH": int(Stp.CANCEL_BOTH),
}
STP_NAME = {v: k for k, v in STP_MODES.items()}
SUPPORTED_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT")
MAX_LIMIT = 1000

# Core reject reasons of a NEW -> Binance's (HTTP 400) code and message.
_FILTER = {
    int(Reason.PRICE_OFF_TICK): "PRICE_FILTER",
    int(Reason.PRICE_OUT_OF_BAND): "PRICE_FILTER",
    int(Reason.INVALID_QTY): "LOT_SIZE",
    int(Reason.QTY_OFF_LOT): "LOT_SIZE",
    int(Reason.QTY_OUT_OF_RANGE): "LOT_SIZE",
    int(Reason.BELOW_MIN_NOTIONAL): "NOTIONAL",
    int(Reason.NOTIONAL_OVERFLOW): "NOTIONAL",
    int(Reason.TOO_MANY_ORDERS): "MAX_NUM_ORDERS",
    int(Reason.USER_ORDER_LIMIT): "MAX_NUM_ORDERS",
    int(Reason.BOOK_FULL): "MAX_NUM_ORDERS",
}
_REJECT_MSG = {
    int(Reason.POST_ONLY_WOULD_TAKE): "Order would immediately match and take.",
    int(Reason.INSUFFICIENT_FUNDS): "Account has insufficient balance for requested action.",
    int(Reason.SYMBOL_NOT_TRADING): "Market is closed.",
    int(Reason.STOP_WOULD_TRIGGER): "Order would trigger immediately.",
    int(Reason.UNKNOWN_USER): "This action is disabled on this account.",
    int(Reason.USER_NOT_ACTIVE): "This action is disabled on this account.",
    int(Reason.LEVEL_OVERFLOW): "Order rejected: too much quantity at this price.",
}


def reject_error(reason: int) -> ApiError:
    """Binance's error for a NEW the core rejected with ``reason``."""
    if reason in _FILTER:
        return bad_request(err.INVALID_MESSAGE, f"Filter failure: {_FILTER[reason]}")
    if reason == Reason.UNKNOWN_SYMBOL:
        return bad_request(err.BAD_SYMBOL, "Invalid symbol.")
    if reason == Reason.RATE_LIMITED:
        return ApiError(429, err.TOO_MANY_ORDERS, "Too many new orders.")
    msg = _REJECT_MSG.get(reason)
    if msg is None:
        try:
            msg = f"Order rejected by the core: {Reason(reason).name}."
        except ValueError:
            msg = f"Order rejected by the core: reason {reason}."
    return bad_request(err.NEW_ORDER_REJECTED, msg)


def _missing(name: str) -> ApiError:
    return bad_request(
        err.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
        f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
    )


def _int_param(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    v = params.get(name)
    if v is None or v == "":
        return default
    if not v.isdecimal() or len(v) > 19:
        raise bad_request(err.ILLEGAL_CHARS, f"Illegal characters found in parameter '{name}'.")
    return int(v)


def _limit(params: dict[str, str], default: int = 500) -> int:
    n = _int_param(params, "limit", default)
    assert n is not None
    if not 1 <= n <= MAX_LIMIT:
        raise bad_request(err.INVALID_PARAMETER, "Invalid 'limit'; must be 1..1000.")
    return n


# ----------------------------------------------------------------- parsing


# pack_new's arguments after order_id, in its order.
NEW_VALUES = ("price_ticks", "qty_lots", "stop_price_ticks", "user_id", "symbol_id", "side",
              "ord_type", "tif", "stp", "flags")  # fmt: skip
NewValues = tuple[int, int, int, int, int, int, int, int, int, int]
_ORDER_CONSTS = (int(Side.BUY), int(Side.SELL), int(OrdType.LIMIT), int(OrdType.MARKET),
                 int(CmdFlag.POST_ONLY), int(Tif.IOC), TIFS, STP_MODES)  # fmt: skip
# What OrderEntry.open_usual builds: Order, and the NEW record as pack_new packs it
# (each field's offset and size from the layout table itself).
apistore.configure(Order, CMD_SIZE,
                   tuple((CMD_DTYPE.fields[f][1], CMD_DTYPE.fields[f][0].itemsize)  # type: ignore[index]
                         for f in NEW_ORDER_FIELDS),
                   int(CmdKind.NEW), _ORDER_CONSTS)  # fmt: skip


def new_values(fields: dict[str, int]) -> NewValues:
    """:func:`parse_new_order_py`'s NEW fields as :func:`api.core.pack_new`'s
    arguments after ``order_id`` (absent ones 0)."""
    g = fields.get
    return (g("price_ticks", 0), g("qty_lots", 0), g("stop_price_ticks", 0), g("user_id", 0),
            g("symbol_id", 0), g("side", 0), g("ord_type", 0), g("tif", 0), g("stp", 0),
            g("flags", 0))  # fmt: skip


def parse_new_order(
    ctx: Context, params: dict[str, str], user_id: int
) -> tuple[SymbolSpec, Order, NewValues]:
    """Validate a new order's parameters; (symbol, order without id, NEW fields as
    :func:`api.core.pack_new`'s arguments after ``order_id``).  The usual orders are
    validated by :func:`pyx.apihttp.new_order_values`; anything else, refusals
    included, by :func:`parse_new_order_py` (its oracle).

    Raises
    ------
    ApiError
        Binance's code for the first problem found; nothing changes.
    """
    spec = ctx.symbols.by_name(params.get("symbol"))
    r = new_order_values(params, spec.order_grid, _ORDER_CONSTS)
    if r is None:
        spec, o, f = parse_new_order_py(ctx, params, user_id)
        return spec, o, new_values(f)
    side_s, typ, tif_s, cl, price, qty, side, ord_type, tif, stp, flags = r
    sid = spec.symbol_id
    o = Order(user_id, 0, sid, cl, side_s, typ, tif_s, price, qty, 0, 0)
    return spec, o, (price, qty, 0, user_id, sid, side, ord_type, tif, stp, flags)


def parse_new_order_py(
    ctx: Context, params: dict[str, str], user_id: int
) -> tuple[SymbolSpec, Order, dict[str, int]]:
    """:func:`parse_new_order` in Python (the oracle of the compiled path): (symbol,
    order without id, NEW fields as :func:`api.core.new_record` takes them).

    Raises
    ------
    ApiError
        Binance's code for the first problem found; nothing changes.
    """
    spec = ctx.symbols.by_name(params.get("symbol"))
    side_s = params.get("side")
    if not side_s:
        raise _missing("side")
    if side_s not in ("BUY", "SELL"):
        raise bad_request(err.INVALID_SIDE, "Invalid side.")
    side = int(Side.BUY) if side_s == "BUY" else int(Side.SELL)
    typ = params.get("type")
    if not typ:
        raise _missing("type")
    if typ not in SUPPORTED_TYPES:
        raise bad_request(err.INVALID_ORDER_TYPE, "Invalid orderType.")
    cl = params.get("newClientOrderId") or ""
    if cl and not CLIENT_ID_RE.fullmatch(cl):
        raise bad_request(
            err.ILLEGAL_CHARS,
            "Illegal characters found in parameter 'newClientOrderId'; legal range is "
            "'^[a-zA-Z0-9-_]{1,36}$'.",
        )
    stp_s = params.get("selfTradePreventionMode", "NONE")
    if stp_s not in STP_MODES:
        raise bad_request(err.INVALID_PARAMETER, "Invalid selfTradePreventionMode.")
    f: dict[str, int] = {"user_id": user_id, "symbol_id": spec.symbol_id, "side": side}
    f["stp"] = STP_MODES[stp_s]
    price = qty = quote = stop = 0
    tif_s = "GTC"
    if typ in ("LIMIT", "STOP_LOSS_LIMIT", "LIMIT_MAKER"):
        if typ != "LIMIT_MAKER":
            tif_s = params.get("timeInForce") or ""
            if not tif_s:
                raise _missing("timeInForce")
            if tif_s not in TIFS:
                raise bad_request(err.INVALID_TIF, "Invalid timeInForce.")
        price = spec.price_to_ticks(params.get("price"))
        qty = spec.qty_to_lots(params.get("quantity"))
        spec.check_notional(price, qty)
        f.update(price_ticks=price, qty_lots=qty, tif=TIFS[tif_s])
        if typ == "LIMIT_MAKER":
            f.update(ord_type=int(OrdType.LIMIT), flags=int(CmdFlag.POST_ONLY))
        elif typ == "LIMIT":
            f["ord_type"] = int(OrdType.LIMIT)
        else:
            stop = spec.price_to_ticks(params.get("stopPrice"), "stopPrice")
            f.update(ord_type=int(OrdType.STOP_LIMIT), stop_price_ticks=stop)
    else:  # MARKET, STOP_LOSS
        tif_s = "GTC"
        f["tif"] = int(Tif.IOC)
        has_qty = bool(params.get("quantity"))
        has_quote = bool(params.get("quoteOrderQty"))
        if typ == "MARKET" and has_quote and not has_qty:
            if side != Side.BUY:
                raise bad_request(
                    err.NEW_ORDER_REJECTED, "quoteOrderQty is supported for BUY only."
                )
            quote = spec.quote_to_minor(params.get("quoteOrderQty"))
            if quote < spec.min_notional_minor:
                raise bad_request(err.INVALID_MESSAGE, "Filter failure: NOTIONAL")
            f.update(ord_type=int(OrdType.MARKET_QUOTE), qty_lots=quote)
        elif has_qty and has_quote:
            raise bad_request(
                err.INVALID_PARAMETER, "Send either 'quantity' or 'quoteOrderQty', not both."
            )
        else:
            qty = spec.qty_to_lots(params.get("quantity"), market=True)
            f["qty_lots"] = qty
            if typ == "MARKET":
                f["ord_type"] = int(OrdType.MARKET)
            else:
                stop = spec.price_to_ticks(params.get("stopPrice"), "stopPrice")
                f.update(ord_type=int(OrdType.STOP_MARKET), stop_price_ticks=stop)
    o = Order(user_id, 0, spec.symbol_id, cl, side_s, typ, tif_s, price, qty, quote, stop)
    return spec, o, f


def _same_order(a: Order, b: Order) -> bool:
    return (a.symbol_id, a.side, a.type, a.price, a.qty, a.quote_qty, a.stop) == (
        b.symbol_id, b.side, b.type, b.price, b.qty, b.quote_qty, b.stop)  # fmt: skip


# ---------------------------------------------------------------- answers


def order_json(spec: SymbolSpec, o: Order) -> dict[str, Any]:
    """An order as GET /api/v3/order answers it."""
    return {
        "symbol": spec.name,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "price": spec.ticks_to_price(o.price),
        "origQty": spec.lots_to_qty(o.qty),
        "executedQty": spec.lots_to_qty(o.executed),
        "cummulativeQuoteQty": spec.quote_minor_to_str(o.cum_quote),
        "status": o.status if o.status != "PENDING_NEW" else "NEW",
        "timeInForce": o.tif,
        "type": o.type,
        "side": o.side,
        "stopPrice": spec.ticks_to_price(o.stop),
        "icebergQty": spec.lots_to_qty(0),
        "time": o.time_ms,
        "updateTime": o.update_ms,
        "isWorking": o.type not in ("STOP_LOSS", "STOP_LOSS_LIMIT"),
        "workingTime": o.time_ms,
        "origQuoteOrderQty": spec.quote_minor_to_str(o.quote_qty),
        "selfTradePreventionMode": "NONE",
    }


def fill_json(spec: SymbolSpec, f: Fill) -> dict[str, Any]:
    """One entry of a FULL response's ``fills``."""
    return {
        "price": spec.ticks_to_price(f.price),
        "qty": spec.lots_to_qty(f.qty),
        "commission": spec.quote_minor_to_str(f.commission),
        "commissionAsset": spec.quote_asset,
        "tradeId": f.trade_id,
    }


def new_order_json(spec: SymbolSpec, o: Order, resp_type: str, fills: list[Fill]) -> dict[str, Any]:
    """The POST /api/v3/order answer for ``newOrderRespType``."""
    ack = {
        "symbol": spec.name,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "transactTime": o.time_ms,
    }
    if resp_type == "ACK":
        return ack
    full = order_json(spec, o)
    out = {
        **ack,
        **{k: full[k] for k in ("price", "origQty", "executedQty", "cummulativeQuoteQty",
                                "status", "timeInForce", "type", "side")},
        "workingTime": o.time_ms,
        "selfTradePreventionMode": "NONE",
    }  # fmt: skip
    if o.type in ("STOP_LOSS", "STOP_LOSS_LIMIT"):
        out["stopPrice"] = full["stopPrice"]
    if o.quote_qty:
        out["origQuoteOrderQty"] = full["origQuoteOrderQty"]
    if resp_type == "FULL":
        out["fills"] = [fill_json(spec, f) for f in fills]
    return out


def _js(s: str) -> str:
    """``s`` as a JSON string, as ``json.dumps`` writes it (quoted as is when nothing
    needs escaping: ids and names almost always)."""
    q = _QUOTED.get(s)
    if q is not None:
        return q
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    return json.dumps(s)


# The answers' fixed words, quoted once.
_QUOTED = {
    w: f'"{w}"'
    for w in ("BUY", "SELL", "GTC", "IOC", "FOK", "NEW", "PARTIALLY_FILLED", "FILLED",
              "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED", *SUPPORTED_TYPES)
}  # fmt: skip


quote_words(_QUOTED)


def new_order_text(spec: SymbolSpec, o: Order, resp_type: str, fills: list[Fill]) -> str:
    """``json.dumps(new_order_json(...))`` byte for byte (the order path's answer):
    the compiled :func:`pyx.apihttp.order_text`."""
    return str(order_text(spec.text_grid, o, resp_type, fills))


def new_order_text_py(spec: SymbolSpec, o: Order, resp_type: str, fills: list[Fill]) -> str:
    """:func:`new_order_text` in Python, with format calls instead of dicts and the
    encoder (the oracle of the compiled one)."""
    head = (
        f'{{"symbol": {_js(spec.name)}, "orderId": {o.order_id}, "orderListId": -1,'
        f' "clientOrderId": {_js(o.client_order_id)}, "transactTime": {o.time_ms}'
    )
    if resp_type == "ACK":
        return head + "}"
    status = o.status if o.status != "PENDING_NEW" else "NEW"
    text = (
        f'{head}, "price": "{spec.ticks_to_price(o.price)}",'
        f' "origQty": "{spec.lots_to_qty(o.qty)}", "executedQty": "{spec.lots_to_qty(o.executed)}",'
        f' "cummulativeQuoteQty": "{spec.quote_minor_to_str(o.cum_quote)}",'
        f' "status": {_js(status)}, "timeInForce": {_js(o.tif)}, "type": {_js(o.type)},'
        f' "side": {_js(o.side)}, "workingTime": {o.time_ms}, "selfTradePreventionMode": "NONE"'
    )
    if o.type in ("STOP_LOSS", "STOP_LOSS_LIMIT"):
        text += f', "stopPrice": "{spec.ticks_to_price(o.stop)}"'
    if o.quote_qty:
        text += f', "origQuoteOrderQty": "{spec.quote_minor_to_str(o.quote_qty)}"'
    if resp_type == "FULL":
        asset = _js(spec.quote_asset)
        text += (
            ', "fills": ['
            + ", ".join(
                f'{{"price": "{spec.ticks_to_price(f.price)}", "qty": "{spec.lots_to_qty(f.qty)}",'
                f' "commission": "{spec.quote_minor_to_str(f.commission)}",'
                f' "commissionAsset": {asset}, "tradeId": {f.trade_id}}}'
                for f in fills
            )
            + "]"
        )
    return text + "}"


# --------------------------------------------------------------- handlers


async def _signed(request: web.Request, trade: bool = False) -> tuple[Context, dict[str, str], int]:
    from api.auth import read_request

    ctx = request.app[CTX]
    params, payload = await read_request(request)
    caller = ctx.auth.signed(request, params, payload, trade=trade)
    return ctx, params, caller.user_id


def _wake(waiter: asyncio.Future[None], _: object = None) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _await_core(ctx: Context, fut: asyncio.Future[Any]) -> Any:
    """``fut``'s result within the core timeout, else -1007 (the outcome is then
    unknown).  ``fut`` itself is never cancelled (other requests may wait for it too):
    a waiter of this request wakes on its result or on the timer, whichever is
    first (cheaper than ``wait_for(shield(fut))``, which costs two futures and a task
    step more on every order)."""
    if not fut.done():
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        cb = partial(_wake, waiter)
        fut.add_done_callback(cb)
        timer = loop.call_later(ctx.cfg.core_timeout_ms / 1000, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            fut.remove_done_callback(cb)
        if not fut.done():
            ctx.core.forget(fut)
            raise bad_request(
                err.TIMEOUT,
                "Timeout waiting for response from backend server. Send status unknown;"
                " execution status unknown.",
            )
    try:
        return fut.result()
    except CoreUnavailableError:
        raise ApiError(503, err.UNKNOWN, "The core is not available; nothing was done.") from None


async def post_order(request: web.Request) -> web.Response:
    """POST /api/v3/order."""
    ctx, params, uid = await _signed(request, trade=True)
    entered = await enter_order(ctx, params, uid, request.headers.get("X-MBX-APIKEY", ""))
    return web.json_response(text=new_order_text(*entered))


Entered = tuple[SymbolSpec, Order, str, list[Fill]]


@dataclass(slots=True)
class NewOrder:
    """A new order between :func:`open_order` and :func:`close_order`: its NEW queued
    (``reply``), or ``retry_of`` the order a known clientOrderId already names."""

    spec: SymbolSpec
    order: Order
    resp_type: str
    reply: asyncio.Future[Any] | None = None  # the core's reply, once its events are applied
    done: asyncio.Future[None] | None = None  # what retries of its client id wait for
    retry_of: Order | None = None


def open_order(ctx: Context, params: dict[str, str], uid: int, key: str) -> NewOrder:
    """Validate one new order and queue its NEW (no await: the order path of
    :mod:`api.fasthttp` finishes it from the reply's callback, :func:`enter_order`
    awaits it).  The usual order is validated and entered in the store by one compiled
    call (:meth:`pyx.apistore.OrderEntry.open_usual`); anything else, refusals and
    retries included, by :func:`open_order_py` (its oracle).

    Raises
    ------
    ApiError
        Binance's code for the first problem found; nothing changes.
    """
    try:
        # The registry's own dict (read only): a name it lacks goes the Python way.
        got = ctx.store.entry.open_usual(params, ctx.symbols.names, uid, key, ctx.limits)
    except OverflowError:
        raise reject_error(int(Reason.INVALID_ORDER_ID)) from None
    if got is None:
        py = open_order_py(ctx, params, uid, key)
        if isinstance(py, NewOrder):
            return py  # a known clientOrderId: answered as a retry
        got = py
    spec, o, rec, resp_type, retryable = got
    try:
        # The reply comes once the events of its seq are applied (in memory; their
        # commit is grouped, api.core), or fails after the core timeout.
        fut = ctx.core.send_new(rec)
    except CoreUnavailableError:
        ctx.store.delete(o)
        raise ApiError(503, err.UNKNOWN, "The core is not available; nothing was done.") from None
    n = NewOrder(spec, o, resp_type, fut)
    if retryable:
        n.done = asyncio.get_running_loop().create_future()
        ctx.extra.setdefault("inflight", {})[(uid, o.client_order_id)] = n.done
    return n


Opened = tuple[SymbolSpec, Order, bytes, str, bool]


def open_order_py(ctx: Context, params: dict[str, str], uid: int, key: str) -> NewOrder | Opened:
    """:func:`open_order`'s validation and store side in Python: the oracle of
    :meth:`pyx.apistore.OrderEntry.open_usual` and what runs for anything it does not
    take.  The retry of a known clientOrderId (a :class:`NewOrder` with ``retry_of``),
    else (symbol, order entered in the store, its NEW record, newOrderRespType,
    whether the client named it).

    Raises
    ------
    ApiError
        Binance's code for the first problem found; nothing changes.
    """
    spec, o, values = parse_new_order(ctx, params, uid)
    resp_type = params.get("newOrderRespType") or (
        "FULL" if o.type in ("LIMIT", "MARKET") else "ACK"
    )
    if resp_type not in ("ACK", "RESULT", "FULL"):
        raise bad_request(err.INVALID_PARAMETER, "Invalid newOrderRespType.")
    # Every order is durable before its NEW leaves (its image in the intent file or
    # a transaction, api.store): a kill -9 before the grouped commit of its events
    # restores it whole (type, timeInForce, stop price: the core's events do not
    # carry them).  A client's own id can also be retried: concurrent retries wait
    # for its outcome.  A generated one cannot (the client learns it from the answer).
    retryable = bool(o.client_order_id)
    if retryable:
        prev = ctx.store.by_client_id(uid, o.client_order_id)
        if prev is not None:
            return NewOrder(spec, o, resp_type, retry_of=prev)
    ctx.limits.order(key)
    try:
        o.order_id = ctx.store.new_order_id()
    except OverflowError:
        raise reject_error(int(Reason.INVALID_ORDER_ID)) from None
    if not retryable:
        o.client_order_id = ctx.store.client_ids.of(uid, o.order_id)
    o.time_ms = o.update_ms = now_ms()
    ctx.store.add(o)
    return spec, o, pack_new(o.order_id, *values), resp_type, retryable


def close_order(ctx: Context, n: NewOrder) -> Entered:
    """The outcome of an opened order whose reply is done (or was given up: a
    cancelled request); (symbol, order, newOrderRespType, fills of this request)
    for :func:`new_order_text`.

    Raises
    ------
    ApiError
        -1007 the core did not answer in time, 503 the NEW never left, the core's
        reject as Binance's code.
    """
    o, fut = n.order, n.reply
    assert isinstance(fut, OrderReply)
    try:
        exc = fut.exception()  # CancelledError if the request was given up
        if exc is not None:
            if isinstance(exc, CoreTimeoutError):
                ctx.core.forget(fut)
                raise bad_request(
                    err.TIMEOUT,
                    "Timeout waiting for response from backend server. Send status unknown;"
                    " execution status unknown.",
                )
            if isinstance(exc, CoreUnavailableError):
                # The link refused the frame: the NEW never left, the order never
                # existed (an open order that would show as open forever).
                ctx.store.delete(o)
                raise ApiError(503, err.UNKNOWN, "The core is not available; nothing was done.")
            raise exc
        if fut.seq == 0:
            # Refused before sequencing (no event will come): it never existed.
            o.status = "REJECTED"
            ctx.store.delete(o)
            raise reject_error(fut.reason)
    finally:
        if n.done is not None:
            ctx.extra["inflight"].pop((o.user_id, o.client_order_id), None)
            n.done.set_result(None)
            n.done = None
    if o.status == "REJECTED":
        raise reject_error(o.reject)
    fills, o.fills = o.fills, []
    return n.spec, o, n.resp_type, fills


async def enter_order(ctx: Context, params: dict[str, str], uid: int, key: str) -> Entered:
    """Validate and enter one new order (:func:`open_order`, then :func:`close_order`
    once its reply is in); (symbol, order, newOrderRespType, fills of this request)
    for :func:`new_order_json` / :func:`new_order_text`."""
    n = open_order(ctx, params, uid, key)
    if n.retry_of is not None:
        return await answer_retry(ctx, n)
    assert n.reply is not None
    try:
        await n.reply
    except asyncio.CancelledError:
        close_order_quietly(ctx, n)
        raise
    except Exception:  # close_order turns the reply's failure into the answer
        pass
    return close_order(ctx, n)


def close_order_quietly(ctx: Context, n: NewOrder) -> None:
    """:func:`close_order` of a request given up (its client went away): retries stop
    waiting for it; the order itself goes on as the core's events say."""
    with contextlib.suppress(ApiError, asyncio.CancelledError, asyncio.InvalidStateError):
        close_order(ctx, n)


async def answer_retry(ctx: Context, n: NewOrder) -> Entered:
    """The answer of an opened order whose clientOrderId was known (``n.retry_of``)."""
    assert n.retry_of is not None
    return await _answer_retry(ctx, n.spec, n.retry_of, n.order, n.resp_type)


async def _answer_retry(
    ctx: Context, spec: SymbolSpec, prev: Order, new: Order, resp_type: str
) -> Entered:
    """A NEW whose clientOrderId is known: the first order's answer (module docstring)."""
    if not _same_order(prev, new):
        raise bad_request(err.NEW_ORDER_REJECTED, "Duplicate order sent.")
    pending = ctx.extra.get("inflight", {}).get((prev.user_id, prev.client_order_id))
    if pending is not None:
        await _await_core(ctx, pending)
    if prev.status == "REJECTED":
        raise reject_error(prev.reject)
    fills = [
        Fill(r[0], r[4], r[5], r[6], bool(r[1]), r[7])
        for r in ctx.store.trades(prev.user_id, prev.symbol_id, prev.order_id, 0, 0, 2**62, 1000)
        if not r[1]
    ]
    return spec, prev, resp_type, fills


async def test_order(request: web.Request) -> web.Response:
    """POST /api/v3/order/test: validated like a new order, never sent."""
    ctx, params, uid = await _signed(request, trade=True)
    parse_new_order(ctx, params, uid)
    return web.json_response({})


def _find_order(ctx: Context, params: dict[str, str], uid: int) -> tuple[SymbolSpec, Order]:
    spec = ctx.symbols.by_name(params.get("symbol"))
    oid = _int_param(params, "orderId")
    cl = params.get("origClientOrderId")
    if oid is None and not cl:
        raise bad_request(
            err.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
            "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
        )
    o = ctx.store.get(uid, oid) if oid is not None else ctx.store.by_client_id(uid, cl or "")
    if o is None or o.symbol_id != spec.symbol_id or (cl and o.client_order_id != cl):
        raise bad_request(err.NO_SUCH_ORDER, "Order does not exist.")
    return spec, o


async def get_order(request: web.Request) -> web.Response:
    """GET /api/v3/order."""
    ctx, params, uid = await _signed(request)
    spec, o = _find_order(ctx, params, uid)
    return web.json_response(order_json(spec, o))


async def cancel_order(request: web.Request) -> web.Response:
    """DELETE /api/v3/order."""
    ctx, params, uid = await _signed(request, trade=True)
    try:
        spec, o = _find_order(ctx, params, uid)
    except ApiError as e:
        if e.code == err.NO_SUCH_ORDER:
            raise bad_request(err.CANCEL_REJECTED, "Unknown order sent.") from None
        raise
    if not o.is_open:
        raise bad_request(err.CANCEL_REJECTED, "Unknown order sent.")
    reply = await _await_core(ctx, ctx.core.send(cancel_record(o.order_id, uid), applied=True))
    if int(reply["status"]) != commands.ReplyStatus.APPLIED:
        raise bad_request(err.CANCEL_REJECTED, "Unknown order sent.")
    o = ctx.store.get(uid, o.order_id) or o
    return web.json_response(_cancel_json(spec, o, params.get("origClientOrderId")))


def _cancel_json(spec: SymbolSpec, o: Order, orig_cl: str | None) -> dict[str, Any]:
    j = order_json(spec, o)
    out = {"symbol": spec.name, "origClientOrderId": o.client_order_id, "orderId": o.order_id,
           "orderListId": -1, "clientOrderId": orig_cl or o.client_order_id,
           "transactTime": o.update_ms}  # fmt: skip
    for k in ("price", "origQty", "executedQty", "cummulativeQuoteQty", "status", "timeInForce",
              "type", "side", "selfTradePreventionMode"):  # fmt: skip
        out[k] = j[k]
    return out


async def cancel_open_orders(request: web.Request) -> web.Response:
    """DELETE /api/v3/openOrders: MASS_CANCEL of the user's orders of one symbol."""
    ctx, params, uid = await _signed(request, trade=True)
    spec = ctx.symbols.by_name(params.get("symbol"))
    before = ctx.store.open_orders(uid, spec.symbol_id)
    if not before:
        raise bad_request(err.CANCEL_REJECTED, "Unknown order sent.")
    await _await_core(
        ctx, ctx.core.send(commands.mass_cancel(uid, symbol_id=spec.symbol_id), applied=True)
    )
    out = []
    for o in before:
        now = ctx.store.get(uid, o.order_id) or o
        if now.status == "CANCELED":
            out.append(_cancel_json(spec, now, None))
    return web.json_response(out)


async def open_orders(request: web.Request) -> web.Response:
    """GET /api/v3/openOrders (one symbol or all)."""
    ctx, params, uid = await _signed(request)
    sym = params.get("symbol")
    spec_id = ctx.symbols.by_name(sym).symbol_id if sym else None
    out = []
    for o in ctx.store.open_orders(uid, spec_id):
        spec = ctx.symbols.get_id(o.symbol_id)
        if spec is not None:
            out.append(order_json(spec, o))
    return web.json_response(out)


def _time_range(params: dict[str, str]) -> tuple[int, int]:
    start = _int_param(params, "startTime", 0)
    end = _int_param(params, "endTime", 2**62)
    assert start is not None and end is not None
    return start, end


async def all_orders(request: web.Request) -> web.Response:
    """GET /api/v3/allOrders."""
    ctx, params, uid = await _signed(request)
    spec = ctx.symbols.by_name(params.get("symbol"))
    start, end = _time_range(params)
    from_id = _int_param(params, "orderId", 0) or 0
    rows = ctx.store.all_orders(uid, spec.symbol_id, from_id, start, end, _limit(params))
    # Open orders' rows may be behind memory until the next commit: answer from memory.
    return web.json_response([order_json(spec, ctx.store.open.get((uid, o.order_id), o))
                              for o in rows])  # fmt: skip


async def my_trades(request: web.Request) -> web.Response:
    """GET /api/v3/myTrades."""
    ctx, params, uid = await _signed(request)
    spec = ctx.symbols.by_name(params.get("symbol"))
    start, end = _time_range(params)
    from_id = _int_param(params, "fromId", 0) or 0
    oid_filter = _int_param(params, "orderId")
    limit = _limit(params)
    rows = ctx.store.trades(uid, spec.symbol_id, oid_filter, from_id, start, end, limit)
    out = []
    for trade_id, is_maker, oid, is_buyer, price, qty, fee, t in rows:
        out.append({
            "symbol": spec.name, "id": trade_id, "orderId": oid, "orderListId": -1,
            "price": spec.ticks_to_price(price), "qty": spec.lots_to_qty(qty),
            "quoteQty": spec.quote_minor_to_str(price * qty * spec.price_multiplier),
            "commission": spec.quote_minor_to_str(fee), "commissionAsset": spec.quote_asset,
            "time": t, "isBuyer": bool(is_buyer), "isMaker": bool(is_maker),
            "isBestMatch": True,
        })  # fmt: skip
    return web.json_response(out)


def add_routes(app: web.Application) -> None:
    """Register the trading endpoints."""
    r = app.router
    r.add_post("/api/v3/order", post_order)
    r.add_get("/api/v3/order", get_order)
    r.add_delete("/api/v3/order", cancel_order)
    r.add_post("/api/v3/order/test", test_order)
    r.add_get("/api/v3/openOrders", open_orders)
    r.add_delete("/api/v3/openOrders", cancel_open_orders)
    r.add_get("/api/v3/allOrders", all_orders)
    r.add_get("/api/v3/myTrades", my_trades)
