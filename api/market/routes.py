"""Market REST endpoints and WebSocket stream endpoints on an aiohttp application.

REST (``/api/v3/...``): ``depth``, ``trades``, ``historicalTrades``, ``aggTrades``,
``klines``, ``uiKlines``, ``avgPrice``, ``ticker/24hr``, ``ticker/price``,
``ticker/bookTicker``.  WebSocket: ``/ws/<stream>[/<stream>...]`` (raw events),
``/ws`` (``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` /
``SET_PROPERTY combined``), ``/stream?streams=a/b`` (combined ``{"stream", "data"}``).
Every reject is an :class:`~api.errors.ApiError` in Binance's shape.
Reference: docs/api-market.md.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from api.errors import (
    BAD_INTERVAL,
    ILLEGAL_CHARS,
    INVALID_PARAMETER,
    MANDATORY_PARAM_EMPTY_OR_MALFORMED,
    TOO_MANY_REQUESTS,
    ApiError,
    bad_request,
)
from api.market import intervals, render
from api.market.hub import Conn
from api.market.state import MarketState
from api.market.streams import parse
from api.symbols import SymbolSpec

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATE_KEY: web.AppKey[MarketState] = web.AppKey("market_state", MarketState)
DEPTH_LIMIT_DEFAULT, DEPTH_LIMIT_MAX = 100, 5000
TRADES_LIMIT_DEFAULT, TRADES_LIMIT_MAX = 500, 1000
KLINES_LIMIT_DEFAULT, KLINES_LIMIT_MAX = 500, 1000
AVG_PRICE_MINS = 5
WS_MAX_MSG_BYTES = 64 * 1024  # a client's control message (SUBSCRIBE ...) at most
WS_HEARTBEAT_S = 30.0
# Binance's WebSocket error codes (answers to bad control messages).
WS_UNKNOWN_PROPERTY, WS_BAD_VALUE, WS_INVALID_REQUEST, WS_INVALID_JSON = 0, 1, 2, 3


def add_routes(app: web.Application, state: MarketState) -> None:
    """Register every market REST endpoint and WebSocket stream endpoint on ``app``."""
    app[STATE_KEY] = state
    rest: dict[str, Callable[[MarketState, web.Request], Any]] = {
        "depth": _depth,
        "trades": _trades,
        "historicalTrades": _historical_trades,
        "aggTrades": _agg_trades,
        "klines": _klines,
        "uiKlines": _klines,
        "avgPrice": _avg_price,
        "ticker/24hr": _ticker_24h,
        "ticker/price": _ticker_price,
        "ticker/bookTicker": _book_ticker,
    }
    for path, fn in rest.items():
        app.router.add_get(f"/api/v3/{path}", _json_handler(state, fn))
    app.router.add_get("/ws", _ws_handler(state, "ws"))
    app.router.add_get("/ws/{streams:.+}", _ws_handler(state, "ws"))
    app.router.add_get("/stream", _ws_handler(state, "stream"))


def _json_handler(state: MarketState, fn: Callable[[MarketState, web.Request], Any]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            body = fn(state, request)
        except ApiError as e:
            return e.response()
        return web.Response(
            body=json.dumps(body, separators=(",", ":")).encode(),
            content_type="application/json",
        )

    return handle


# ---------------------------------------------------------------- parameters


def _symbol(state: MarketState, request: web.Request) -> SymbolSpec:
    spec = state.registry.by_name(request.query.get("symbol"))
    if spec.symbol_id not in state.symbols:
        raise bad_request(-1121, "Invalid symbol.")
    return spec


def _int(request: web.Request, name: str, default: int | None, lo: int = 0) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise bad_request(
            ILLEGAL_CHARS,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,19}}$'.",
        )
    v = int(raw)
    if v < lo:
        raise bad_request(INVALID_PARAMETER, f"Invalid value for parameter '{name}'.")
    return v


def _limit(request: web.Request, default: int, top: int) -> int:
    v = _int(request, "limit", default, lo=1)
    assert v is not None
    return min(v, top)


def _symbols(state: MarketState, request: web.Request) -> list[SymbolSpec] | None:
    """``symbol=`` or ``symbols=["A","B"]`` (None: neither, i.e. every symbol)."""
    if "symbol" in request.query:
        if "symbols" in request.query:
            raise bad_request(-1101, "Parameter 'symbol' and 'symbols' cannot be sent together.")
        return [_symbol(state, request)]
    raw = request.query.get("symbols")
    if raw is None:
        return None
    try:
        names = json.loads(raw)
    except ValueError:
        names = None
    if not isinstance(names, list) or not names or len(names) > 100:
        raise bad_request(
            MANDATORY_PARAM_EMPTY_OR_MALFORMED,
            "Mandatory parameter 'symbols' was not sent, was empty/null, or malformed.",
        )
    out = []
    for n in names:
        spec = state.registry.by_name(n)
        if spec.symbol_id not in state.symbols:
            raise bad_request(-1121, "Invalid symbol.")
        out.append(spec)
    return out


def _one_or_list(
    state: MarketState, request: web.Request, fn: Callable[[SymbolSpec], dict[str, Any]]
) -> Any:
    specs = _symbols(state, request)
    if specs is not None and "symbol" in request.query:
        return fn(specs[0])
    return [fn(s) for s in (specs if specs is not None else state.listed())]


# ------------------------------------------------------------------ REST


def _depth(state: MarketState, request: web.Request) -> dict[str, Any]:
    spec = _symbol(state, request)
    return state.depth(spec, _limit(request, DEPTH_LIMIT_DEFAULT, DEPTH_LIMIT_MAX))


def _trades(state: MarketState, request: web.Request) -> list[dict[str, Any]]:
    spec = _symbol(state, request)
    limit = _limit(request, TRADES_LIMIT_DEFAULT, TRADES_LIMIT_MAX)
    trades = list(state.market(spec).book.trades)[-limit:]
    return [render.trade_rest(spec, m) for m in trades]


def _historical_trades(state: MarketState, request: web.Request) -> list[dict[str, Any]]:
    spec = _symbol(state, request)
    limit = _limit(request, TRADES_LIMIT_DEFAULT, TRADES_LIMIT_MAX)
    from_id = _int(request, "fromId", None)
    trades = list(state.market(spec).book.trades)
    if from_id is None:
        trades = trades[-limit:]
    else:
        trades = [m for m in trades if m["match_id"] >= from_id][:limit]
    return [render.trade_rest(spec, m) for m in trades]


def _agg_trades(state: MarketState, request: web.Request) -> list[dict[str, Any]]:
    spec = _symbol(state, request)
    limit = _limit(request, TRADES_LIMIT_DEFAULT, TRADES_LIMIT_MAX)
    from_id = _int(request, "fromId", None)
    start = _int(request, "startTime", None)
    end = _int(request, "endTime", None)
    rows = [
        render.agg_trade(spec, g) for g in render.agg_groups(list(state.market(spec).book.trades))
    ]
    if from_id is not None:
        return [r for r in rows if r["a"] >= from_id][:limit]
    if start is not None or end is not None:
        lo, hi = start or 0, end if end is not None else 1 << 62
        return [r for r in rows if lo <= r["T"] <= hi][:limit]
    return rows[-limit:]


def _interval(request: web.Request) -> str:
    name = request.query.get("interval")
    if not name:
        raise bad_request(
            MANDATORY_PARAM_EMPTY_OR_MALFORMED,
            "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.",
        )
    if intervals.base_of(name) is None:
        raise bad_request(BAD_INTERVAL, "Invalid interval.")
    return name


def _klines(state: MarketState, request: web.Request) -> list[list[Any]]:
    spec = _symbol(state, request)
    name = _interval(request)
    limit = _limit(request, KLINES_LIMIT_DEFAULT, KLINES_LIMIT_MAX)
    start = _int(request, "startTime", None)
    end = _int(request, "endTime", None)
    rows = state.klines(spec, name)
    if start is not None:
        rows = [c for c in rows if c["start_ns"] // 1_000_000 >= start]
    if end is not None:
        rows = [c for c in rows if c["start_ns"] // 1_000_000 <= end]
    rows = rows[:limit] if start is not None else rows[-limit:]
    return [render.kline_row(spec, c) for c in rows]


def _avg_price(state: MarketState, request: web.Request) -> dict[str, Any]:
    spec = _symbol(state, request)
    now = state.clock_ns()
    lo = (now // 60_000_000_000 + 1 - AVG_PRICE_MINS) * 60_000_000_000
    cs = [c for c in state.market(spec).candles[60] if c["start_ns"] >= lo]
    vol = sum(c["volume_lots"] for c in cs)
    quote = sum(c["quote_volume"] for c in cs)
    last = state.market(spec).last_trade()
    return {
        "mins": AVG_PRICE_MINS,
        "price": render.avg_price(spec, quote, vol)
        if vol
        else spec.ticks_to_price(last["price_ticks"] if last is not None else 0),
        "closeTime": render.ms(cs[-1]["start_ns"]) + 59_999 if cs else render.ms(now),
    }


def _ticker_24h(state: MarketState, request: web.Request) -> Any:
    kind = request.query.get("type", "FULL")
    if kind not in ("FULL", "MINI"):
        raise bad_request(INVALID_PARAMETER, "Invalid value for parameter 'type'.")
    return _one_or_list(state, request, state.ticker if kind == "FULL" else state.mini_ticker)


def _ticker_price(state: MarketState, request: web.Request) -> Any:
    def price(spec: SymbolSpec) -> dict[str, Any]:
        last = state.market(spec).last_trade()
        px = last["price_ticks"] if last is not None else 0
        return {"symbol": spec.name, "price": spec.ticks_to_price(px)}

    return _one_or_list(state, request, price)


def _book_ticker(state: MarketState, request: web.Request) -> Any:
    def bt(spec: SymbolSpec) -> dict[str, Any]:
        return render.book_ticker(spec, state.market(spec).book.bbo)

    return _one_or_list(state, request, bt)


# ------------------------------------------------------------- WebSocket


def _ws_handler(state: MarketState, kind: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            if len(state.hub.conns) >= state.max_connections:
                raise ApiError(429, TOO_MANY_REQUESTS, "Too many WebSocket connections.")
            names = _initial_streams(state, request, kind)
        except ApiError as e:
            return e.response()
        ws = web.WebSocketResponse(
            compress=False, heartbeat=WS_HEARTBEAT_S, max_msg_size=WS_MAX_MSG_BYTES
        )
        await ws.prepare(request)
        transport = request.transport
        if transport is None:
            return ws
        conn = Conn(transport, combined=kind == "stream")
        hub = state.hub
        hub.attach(conn)
        try:
            for n in names:
                hub.subscribe(conn, n)
            async for msg in ws:
                if conn.closed:
                    break
                if msg.type == WSMsgType.TEXT:
                    _control(state, conn, msg.data)
                elif msg.type in (WSMsgType.BINARY,):
                    hub.send(conn, _ws_error(WS_INVALID_JSON, "Invalid JSON", None))
        finally:
            hub.detach(conn)
        return ws

    return handle


def _initial_streams(state: MarketState, request: web.Request, kind: str) -> list[str]:
    if kind == "stream":
        raw = request.query.get("streams", "")
        parts = [p for p in raw.split("/") if p]
        if not parts:
            raise bad_request(
                MANDATORY_PARAM_EMPTY_OR_MALFORMED,
                "Mandatory parameter 'streams' was not sent, was empty/null, or malformed.",
            )
    else:
        parts = [p for p in request.match_info.get("streams", "").split("/") if p]
    if len(parts) > state.max_streams:
        raise bad_request(INVALID_PARAMETER, f"At most {state.max_streams} streams.")
    # Like Binance, a name that is no stream is ignored (ccxt.pro connects to /ws/0
    # and subscribes with SUBSCRIBE messages).
    return [n for n in (_stream_name(state, p) for p in parts) if n is not None]


def _stream_name(state: MarketState, raw: object) -> str | None:
    """The canonical name of a stream of a listed symbol, or None."""
    spec = parse(raw)
    if spec is None:
        return None
    if spec.symbol:
        try:
            sym = state.registry.by_name(spec.symbol)
        except ApiError:
            return None
        if sym.symbol_id not in state.symbols:
            return None
    return spec.name


def _ws_error(code: int, msg: str, req_id: Any) -> dict[str, Any]:
    return {"error": {"code": code, "msg": msg}, "id": req_id}


def _control(state: MarketState, conn: Conn, data: str) -> None:
    """Answer one SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / property message."""
    hub = state.hub
    try:
        req = json.loads(data)
    except ValueError:
        hub.send(conn, _ws_error(WS_INVALID_JSON, "Invalid JSON", None))
        return
    if not isinstance(req, dict):
        hub.send(conn, _ws_error(WS_INVALID_REQUEST, "Invalid request", None))
        return
    req_id = req.get("id")
    if req_id is not None and (isinstance(req_id, bool) or not isinstance(req_id, (int, str))):
        hub.send(
            conn, _ws_error(WS_BAD_VALUE, "Invalid value type: expected an int or string id", None)
        )
        return
    method, params = req.get("method"), req.get("params", [])
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list) or not params:
            hub.send(conn, _ws_error(WS_INVALID_REQUEST, "Invalid request: params", req_id))
            return
        names = [_stream_name(state, p) for p in params]
        bad = [p for p, n in zip(params, names, strict=True) if n is None]
        if bad:
            hub.send(
                conn,
                _ws_error(
                    WS_INVALID_REQUEST,
                    f"Invalid request: unknown stream {str(bad[0])[:80]}",
                    req_id,
                ),
            )
            return
        if method == "SUBSCRIBE":
            if len(conn.streams | {n for n in names if n}) > state.max_streams:
                hub.send(
                    conn,
                    _ws_error(WS_INVALID_REQUEST, f"At most {state.max_streams} streams", req_id),
                )
                return
            for n in names:
                assert n is not None
                hub.subscribe(conn, n)
        else:
            for n in names:
                assert n is not None
                hub.unsubscribe(conn, n)
        hub.send(conn, {"result": None, "id": req_id})
    elif method == "LIST_SUBSCRIPTIONS":
        hub.send(conn, {"result": sorted(conn.streams), "id": req_id})
    elif method == "SET_PROPERTY":
        if (
            isinstance(params, list)
            and len(params) == 2
            and params[0] == "combined"
            and isinstance(params[1], bool)
        ):
            hub.set_combined(conn, params[1])
            hub.send(conn, {"result": None, "id": req_id})
        else:
            hub.send(conn, _ws_error(WS_UNKNOWN_PROPERTY, "Unknown property", req_id))
    elif method == "GET_PROPERTY":
        if params == ["combined"]:
            hub.send(conn, {"result": conn.combined, "id": req_id})
        else:
            hub.send(conn, _ws_error(WS_UNKNOWN_PROPERTY, "Unknown property", req_id))
    else:
        hub.send(conn, _ws_error(WS_INVALID_REQUEST, "Invalid request: unknown method", req_id))
