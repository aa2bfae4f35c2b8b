"""User data streams: ``executionReport``, ``balanceUpdate`` and ``outboundAccountPosition``.

Two ways in, as Binance:

- listenKey: ``POST /api/v3/userDataStream`` (``X-MBX-APIKEY`` only) returns a key
  valid for ``listen_key_ttl_s`` (``PUT`` extends it, ``DELETE`` ends it); the stream
  is the WebSocket ``/ws/<listenKey>``.  Keys are stored (SQLite), so they survive a
  restart of the API.
- WebSocket API ``/ws-api/v3``: ``userDataStream.subscribe.signature`` (params
  ``apiKey``, ``timestamp``, ``signature`` over the other params sorted by name and
  url-encoded, Binance's rule) subscribes the connection; events arrive as
  ``{"subscriptionId": n, "event": {...}}``.  ``session.logon`` +
  ``userDataStream.subscribe``, ``userDataStream.unsubscribe`` and ``ping`` too.

Every connection has a bounded send queue (``ws_send_queue`` messages): a client
that does not read is disconnected, never allowed to grow memory or stall others.
Events are rendered from :class:`api.follow.Update` after each applied event
batch (its SQLite commit is grouped later: after a kill -9 the API re-applies the
uncommitted events while catching up, before any client can subscribe again, so
nobody gets them twice); balances of the changed assets come from the core (control ``balance``).
``balanceUpdate`` (Binance: deposits, withdrawals, transfers between accounts) comes
from the core's funding events, as the signed change of the user's spot (trading,
account 0) balance, free + locked: ``DEPOSITED`` into it (+), ``WITHDRAW_COMMITTED``
from it (-: the money left), ``TRANSFERRED`` out of (-) or into (+) it.  A withdrawal
hold or release only moves money between free and locked: no ``balanceUpdate``, the
``outboundAccountPosition`` shows it.  Each ``balanceUpdate`` is followed by the
``outboundAccountPosition`` of its asset, as Binance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from api import errors as err
from api.auth import MAX_PARAMS
from api.context import CTX, Context
from api.core import CoreUnavailableError
from api.errors import ApiError, bad_request
from api.follow import EV, Update
from pyx.enums import EvKind

log = logging.getLogger("bursa.api")
SOCKET_SNDBUF = 262_144  # bytes of kernel send buffer per user-data connection
LISTEN_KEY_LEN = 60
LISTEN_KEY_PATTERN = "[A-Za-z0-9]{60}"
SPOT_ACCOUNT = 0  # the core's trading account: Binance's spot balances (api/account.py)
_TS, _KIND, _USER, _ASSET = EV["ts_ns"], EV["kind"], EV["user_id"], EV["symbol_id"]
_AMOUNT, _ACCOUNT, _TO_ACCOUNT = EV["qty_lots"], EV["price_ticks"], EV["maker_order_id"]


class Sink:
    """One subscriber's bounded queue and the task writing it to its WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, user_id: int, sub_id: int | None, size: int):
        # A bounded kernel buffer too: what a client that stops reading can hold back
        # is this plus the queue, never more.
        transport = ws._req.transport if ws._req is not None else None
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SNDBUF)
        self.ws = ws
        self.user_id = user_id
        self.sub_id = sub_id  # None: a listenKey stream (bare events)
        self.queue: asyncio.Queue[str] = asyncio.Queue(size)
        self.dropped = False
        self.task = asyncio.get_running_loop().create_task(self._writer())

    def push(self, event: dict[str, Any]) -> None:
        """Queue an event; a full queue disconnects the client (slow consumer)."""
        if self.dropped:
            return
        msg = event if self.sub_id is None else {"subscriptionId": self.sub_id, "event": event}
        try:
            self.queue.put_nowait(json.dumps(msg))
        except asyncio.QueueFull:
            self.dropped = True
            self.task.cancel()
            asyncio.get_running_loop().create_task(self.ws.close(code=1008, message=b"slow"))

    async def _writer(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                await self.ws.send_str(await self.queue.get())


class UserStreams:
    """Listen keys, subscribed connections per user, event fan-out."""

    def __init__(self, ctx_getter: Any = None) -> None:
        self.sinks: dict[int, set[Sink]] = {}
        self._ctx: Context | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def bind(self, ctx: Context) -> None:
        """Attach to the process context (after it is built); from now on the follower
        keeps updates only for users with a subscribed connection."""
        self._ctx = ctx
        ctx.follower.watched = self.sinks

    # --------------------------------------------------------- listen keys

    def create_key(self, user_id: int) -> str:
        """A new listen key for the user (or the user's live one, as Binance)."""
        ctx = self._ctx
        assert ctx is not None
        now = int(time.time() * 1000)
        row = ctx.store.con.execute(
            "SELECT listen_key FROM listen_keys WHERE user_id = ? AND expires_ms > ?",
            (user_id, now),
        ).fetchone()
        key = str(row[0]) if row else secrets.token_hex(LISTEN_KEY_LEN // 2)
        self._extend(key, user_id)
        return key

    def _extend(self, key: str, user_id: int) -> None:
        ctx = self._ctx
        assert ctx is not None
        exp = int(time.time() * 1000) + ctx.cfg.listen_key_ttl_s * 1000
        ctx.store.execute_later(
            "INSERT OR REPLACE INTO listen_keys VALUES (?, ?, ?)", (key, user_id, exp)
        )
        ctx.store.commit()

    def key_user(self, key: str) -> int | None:
        """The user of a live listen key, or None."""
        ctx = self._ctx
        assert ctx is not None
        row = ctx.store.con.execute(
            "SELECT user_id FROM listen_keys WHERE listen_key = ? AND expires_ms > ?",
            (key, int(time.time() * 1000)),
        ).fetchone()
        return None if row is None else int(row[0])

    def keepalive(self, key: str, user_id: int) -> bool:
        """Extend a listen key of this user; False if unknown or expired."""
        if self.key_user(key) != user_id:
            return False
        self._extend(key, user_id)
        return True

    def close_key(self, key: str, user_id: int) -> bool:
        """End a listen key (its streams close); False if not this user's."""
        ctx = self._ctx
        assert ctx is not None
        if self.key_user(key) != user_id:
            return False
        ctx.store.execute_later("DELETE FROM listen_keys WHERE listen_key = ?", (key,))
        ctx.store.commit()
        return True

    # ------------------------------------------------------------- fan-out

    def add(self, sink: Sink) -> None:
        """Start delivering a user's events to ``sink``."""
        self.sinks.setdefault(sink.user_id, set()).add(sink)

    def remove(self, sink: Sink) -> None:
        """Stop delivering to ``sink``."""
        s = self.sinks.get(sink.user_id)
        if s is not None:
            s.discard(sink)
            if not s:
                del self.sinks[sink.user_id]
        sink.task.cancel()

    def on_applied(self) -> None:
        """After an event batch: executionReports, then balances of changed assets."""
        ctx = self._ctx
        if ctx is None:
            return
        f = ctx.follower
        if not (f.updates or f.balances or f.funding):
            return  # the usual case: no subscriber of these events' users
        updates, f.updates = f.updates, []
        changed, f.balances = f.balances, set()
        funding, f.funding = f.funding, []
        if not self.sinks:
            return
        for u in updates:
            sinks = self.sinks.get(u.order.user_id)
            if sinks:
                spec = ctx.symbols.get_id(u.order.symbol_id)
                if spec is not None:
                    ev = execution_report(spec, u)
                    for s in list(sinks):
                        s.push(ev)
        for fev in funding:  # before the positions below, which are sent later
            sinks = self.sinks.get(fev[_USER])
            bu = balance_update(ctx, fev) if sinks else None
            if sinks and bu is not None:
                for s in list(sinks):
                    s.push(bu)
        per_user: dict[int, set[int]] = {}
        for uid, asset in changed:
            if uid in self.sinks and asset:
                per_user.setdefault(uid, set()).add(asset)
        for uid, assets in per_user.items():
            t = asyncio.get_running_loop().create_task(self._positions(ctx, uid, assets))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _positions(self, ctx: Context, uid: int, assets: set[int]) -> None:
        names = ctx.symbols.asset_names
        try:
            bals = [(a, await ctx.core.balance(uid, a)) for a in sorted(assets)]
        except CoreUnavailableError:
            return
        now = int(time.time() * 1000)
        ev = {
            "e": "outboundAccountPosition",
            "E": now,
            "u": now,
            "B": [
                {"a": names.get(a, f"A{a}"), "f": _minor(ctx, a, av), "l": _minor(ctx, a, held)}
                for a, (av, held) in bals
            ],
        }
        for s in list(self.sinks.get(uid, ())):
            s.push(ev)

    async def close_all(self) -> None:
        """Close every subscribed connection (shutdown)."""
        for sinks in list(self.sinks.values()):
            for s in list(sinks):
                s.task.cancel()
                with contextlib.suppress(Exception):
                    await s.ws.close(code=1001, message=b"shutdown")
        self.sinks.clear()


def _minor(ctx: Context, asset_id: int, amount: int) -> str:
    dec = ctx.store.assets.get(asset_id, 0)
    if dec == 0:
        return str(amount)
    sign = "-" if amount < 0 else ""
    digits = str(abs(amount)).rjust(dec + 1, "0")
    return f"{sign}{digits[:-dec]}.{digits[-dec:]}"


def spot_delta(ev: tuple[Any, ...]) -> int:
    """The change of the user's spot (trading account) balance, free + locked, by one
    funding event (a tuple of ``EV_DTYPE`` fields); 0 if it only moves money between
    free and locked, or between other accounts."""
    kind, amount = ev[_KIND], int(ev[_AMOUNT])
    if kind == EvKind.DEPOSITED and ev[_ACCOUNT] == SPOT_ACCOUNT:
        return amount
    if kind == EvKind.WITHDRAW_COMMITTED and ev[_ACCOUNT] == SPOT_ACCOUNT:
        return -amount
    if kind == EvKind.TRANSFERRED and ev[_ACCOUNT] != ev[_TO_ACCOUNT]:
        if ev[_ACCOUNT] == SPOT_ACCOUNT:
            return -amount
        if ev[_TO_ACCOUNT] == SPOT_ACCOUNT:
            return amount
    return 0


def balance_update(ctx: Context, ev: tuple[Any, ...]) -> dict[str, Any] | None:
    """Binance's ``balanceUpdate`` of one funding event, or None if the spot balance
    did not change (``d``: the signed delta as a decimal string of the asset)."""
    delta = spot_delta(ev)
    if delta == 0:
        return None
    asset = int(ev[_ASSET])
    ts_ms = int(ev[_TS]) // 1_000_000
    name = ctx.symbols.asset_names.get(asset, f"A{asset}")
    return {"e": "balanceUpdate", "E": ts_ms, "a": name, "d": _minor(ctx, asset, delta), "T": ts_ms}


def execution_report(spec: Any, u: Update) -> dict[str, Any]:
    """Binance's ``executionReport`` of one order change."""
    o, f = u.order, u.fill
    return {
        "e": "executionReport", "E": u.ts_ms, "s": spec.name, "c": o.client_order_id,
        "S": o.side, "o": o.type, "f": o.tif, "q": spec.lots_to_qty(u.qty),
        "p": spec.ticks_to_price(o.price), "P": spec.ticks_to_price(o.stop),
        "F": spec.lots_to_qty(0), "g": -1, "C": "", "x": u.exec_type,
        "X": "NEW" if u.status == "PENDING_NEW" else u.status,
        "r": "NONE", "i": o.order_id,
        "l": spec.lots_to_qty(f.qty if f else 0), "z": spec.lots_to_qty(u.executed),
        "L": spec.ticks_to_price(f.price if f else 0),
        "n": spec.quote_minor_to_str(f.commission if f else 0),
        "N": spec.quote_asset if f else None, "T": u.ts_ms, "t": f.trade_id if f else -1,
        "I": 0, "w": u.status in ("NEW", "PARTIALLY_FILLED"), "m": bool(f and f.is_maker),
        "M": False, "O": o.time_ms, "Z": spec.quote_minor_to_str(u.cum_quote),
        "Y": spec.quote_minor_to_str(f.price * f.qty * spec.price_multiplier if f else 0),
        "Q": spec.quote_minor_to_str(o.quote_qty), "W": o.time_ms, "V": "NONE",
    }  # fmt: skip


# ------------------------------------------------------------------ REST


async def _listen_key_param(request: web.Request) -> str:
    from api.auth import read_request

    params, _ = await read_request(request)
    key = params.get("listenKey", "")
    if not key:
        raise bad_request(
            err.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
            "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed.",
        )
    return key


async def post_key(request: web.Request) -> web.Response:
    """POST /api/v3/userDataStream."""
    ctx = request.app[CTX]
    caller = ctx.auth.caller(request)
    return web.json_response({"listenKey": ctx.streams.create_key(caller.user_id)})


async def put_key(request: web.Request) -> web.Response:
    """PUT /api/v3/userDataStream."""
    ctx = request.app[CTX]
    caller = ctx.auth.caller(request)
    key = await _listen_key_param(request)
    if not ctx.streams.keepalive(key, caller.user_id):
        raise bad_request(err.INVALID_LISTEN_KEY, "This listenKey does not exist.")
    return web.json_response({})


async def delete_key(request: web.Request) -> web.Response:
    """DELETE /api/v3/userDataStream."""
    ctx = request.app[CTX]
    caller = ctx.auth.caller(request)
    key = await _listen_key_param(request)
    if not ctx.streams.close_key(key, caller.user_id):
        raise bad_request(err.INVALID_LISTEN_KEY, "This listenKey does not exist.")
    return web.json_response({})


async def listen_key_ws(request: web.Request) -> web.StreamResponse:
    """The WebSocket ``/ws/<listenKey>``."""
    ctx = request.app[CTX]
    uid = ctx.streams.key_user(request.match_info["key"])
    if uid is None:
        raise bad_request(err.INVALID_LISTEN_KEY, "This listenKey does not exist.")
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
    await ws.prepare(request)
    sink = Sink(ws, uid, None, ctx.cfg.ws_send_queue)
    ctx.streams.add(sink)
    try:
        async for _msg in ws:
            pass  # a listenKey stream takes no input
    finally:
        ctx.streams.remove(sink)
    return ws


# --------------------------------------------------------- WebSocket API


def _ws_error(req_id: Any, e: ApiError) -> dict[str, Any]:
    return {"id": req_id, "status": e.http_status, "error": e.body()}


def _ws_signed(ctx: Context, request: web.Request, params: dict[str, Any]) -> int:
    """Check a WebSocket API signature (module docstring); the key's user."""
    if not isinstance(params, dict) or len(params) > MAX_PARAMS:
        raise bad_request(err.INVALID_PARAMETER, "Invalid params.")
    p = {str(k): str(v) for k, v in params.items()}
    api_key = p.get("apiKey", "")
    sig = p.pop("signature", "")
    if not api_key or not api_key.isalnum() or len(api_key) > 128:
        raise ApiError(401, err.BAD_API_KEY_FMT, "API-key format invalid.")
    key, _ = ctx.auth.lookup(api_key)
    if (
        key is None
        or key.revoked
        or (key.allow_ips and (request.remote or "") not in key.allow_ips)
    ):
        raise ApiError(401, err.REJECTED_MBX_KEY, "Invalid API-key, IP, or permissions for action.")
    ctx.auth.check_timestamp(p)
    if not sig:
        raise bad_request(
            err.MANDATORY_PARAM_EMPTY_OR_MALFORMED,
            "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
        )
    ctx.auth.verify(key, urlencode(sorted(p.items())), sig)
    return key.user_id


async def ws_api(request: web.Request) -> web.StreamResponse:
    """The WebSocket API ``/ws-api/v3`` (user data subset; module docstring)."""
    ctx = request.app[CTX]
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=65536)
    await ws.prepare(request)
    logged_in: int | None = None
    sinks: dict[int, Sink] = {}
    next_sub = 0
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            req_id: Any = None
            try:
                req = json.loads(msg.data)
                if not isinstance(req, dict):
                    raise ValueError
                req_id = req.get("id")
                method = req.get("method")
                params = req.get("params") or {}
                result: Any
                if method == "ping":
                    result = {}
                elif method == "session.logon":
                    logged_in = _ws_signed(ctx, request, params)
                    now = int(time.time() * 1000)
                    result = {"apiKey": params.get("apiKey"), "authorizedSince": now,
                              "connectedSince": now, "returnRateLimits": False,
                              "serverTime": now}  # fmt: skip
                elif method in ("userDataStream.subscribe.signature", "userDataStream.subscribe"):
                    if method == "userDataStream.subscribe":
                        if logged_in is None:
                            raise ApiError(401, err.UNAUTHORIZED, "Please log in first.")
                        uid = logged_in
                    else:
                        uid = _ws_signed(ctx, request, params)
                    if len(sinks) >= 16:
                        raise bad_request(err.TOO_MANY_PARAMETERS, "Too many subscriptions.")
                    sink = Sink(ws, uid, next_sub, ctx.cfg.ws_send_queue)
                    sinks[next_sub] = sink
                    ctx.streams.add(sink)
                    result = {"subscriptionId": next_sub}
                    next_sub += 1
                elif method == "userDataStream.unsubscribe":
                    sid = params.get("subscriptionId") if isinstance(params, dict) else None
                    targets = list(sinks) if sid is None else [sid] if sid in sinks else []
                    for k in targets:
                        ctx.streams.remove(sinks.pop(k))
                    result = {}
                else:
                    raise bad_request(err.UNSUPPORTED_OPERATION, "Unsupported method.")
                await ws.send_str(json.dumps({"id": req_id, "status": 200, "result": result}))
            except ApiError as e:
                await ws.send_str(json.dumps(_ws_error(req_id, e)))
            except (ValueError, TypeError, AttributeError):
                bad = bad_request(err.ILLEGAL_CHARS, "Malformed request.")
                await ws.send_str(json.dumps(_ws_error(req_id, bad)))
    finally:
        for s in sinks.values():
            ctx.streams.remove(s)
    return ws


def add_routes(app: web.Application) -> None:
    """Register the user data endpoints (before the market streams' ``/ws/{stream}``)."""
    r = app.router
    r.add_post("/api/v3/userDataStream", post_key)
    r.add_put("/api/v3/userDataStream", put_key)
    r.add_delete("/api/v3/userDataStream", delete_key)
    r.add_get("/ws/{key:" + LISTEN_KEY_PATTERN + "}", listen_key_ws)
    r.add_get("/ws-api/v3", ws_api)
