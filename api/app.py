"""`bursa api`: the Binance-compatible REST and WebSocket API (aiohttp).

:func:`build` assembles the process: the shared key store (gateway database), the
API's own store (orders, trades; :mod:`api.store`), the core link
(:mod:`api.core`), the symbol registry (filled from the core's events and shared
with the market part), rate limits, user data streams and, unless
``marketdata = false``, part B's market routes (:mod:`api.market`).  :func:`main`
runs it: ``{"ready": true, "api": "http://host:port", "port": ...}`` on stdout once
it has caught up with the core and listens; SIGTERM stops it cleanly; after kill -9
it resumes from the last core seq it committed.  Reference: docs/api.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import signal
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import asdict, fields
from typing import Any

import uvloop
from aiohttp import web

from api import account, fasthttp, orders, userdata
from api import errors as err
from api import metrics as api_metrics
from api.auth import Authenticator
from api.config import ApiConfig
from api.context import CTX, Context
from api.core import CoreLink, StateAheadError
from api.errors import ApiError
from api.follow import Follower
from api.metrics import count_requests
from api.ratelimit import RateLimiter
from api.store import Store
from api.symbols import ORDER_TYPES, SymbolRegistry
from engine import logs
from engine.metrics_http import Collector
from engine.metrics_http import serve as serve_metrics
from gateway import keys

log = logging.getLogger("bursa.api")

# Request weights (Binance's, for the endpoints bursa serves); default 1.
WEIGHTS: dict[tuple[str, str], int] = {
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/order"): 4,
    ("GET", "/api/v3/openOrders"): 6,
    ("GET", "/api/v3/allOrders"): 20,
    ("GET", "/api/v3/myTrades"): 20,
    ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/depth"): 5,
    ("GET", "/api/v3/ticker/24hr"): 2,
    ("GET", "/api/v3/klines"): 2,
    ("GET", "/api/v3/uiKlines"): 2,
    ("GET", "/api/v3/trades"): 25,
    ("GET", "/api/v3/historicalTrades"): 25,
    ("GET", "/api/v3/aggTrades"): 4,
    ("GET", "/api/v3/avgPrice"): 2,
    ("GET", "/api/v3/ticker/price"): 2,
    ("GET", "/api/v3/ticker/bookTicker"): 2,
    ("DELETE", "/api/v3/openOrders"): 1,
}
# TAKE_PROFIT(_LIMIT) is missing: the core's stops trigger only "at or through" in
# the stop-loss direction (docs/api.md, "Order types").
API_ORDER_TYPES = (*(t for t in ORDER_TYPES if not t.startswith("TAKE_PROFIT")), "STOP_LOSS")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def binance_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Weights, the ``X-MBX-USED-WEIGHT-1M`` header and Binance-shaped errors."""
    ctx = request.app[CTX]
    ip = request.remote or ""
    weight = WEIGHTS.get((request.method, request.path), 1)
    try:
        used = ctx.limits.charge(ip, weight)
        resp = await handler(request)
    except ApiError as e:
        resp = e.response()
        used = ctx.limits.used_weight(ip)
    except web.HTTPException as e:
        if e.status == 404:
            resp = ApiError(404, err.UNKNOWN, "Not found.").response()
        elif e.status == 405:
            resp = ApiError(405, err.UNSUPPORTED_OPERATION, "Method not allowed.").response()
        else:
            resp = ApiError(e.status, err.UNKNOWN, e.reason).response()
        used = ctx.limits.used_weight(ip)
    if not resp.prepared:
        resp.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
    return resp


async def ping(request: web.Request) -> web.Response:
    """GET /api/v3/ping."""
    return web.json_response({})


async def server_time(request: web.Request) -> web.Response:
    """GET /api/v3/time."""
    return web.json_response({"serverTime": time.time_ns() // 1_000_000})


async def exchange_info(request: web.Request) -> web.Response:
    """GET /api/v3/exchangeInfo (``symbol`` or ``symbols=["A","B"]`` filter)."""
    ctx = request.app[CTX]
    specs = ctx.symbols.all()
    q = request.rel_url.query
    if "symbol" in q:
        specs = [ctx.symbols.by_name(q["symbol"])]
    elif "symbols" in q:
        try:
            names = json.loads(q["symbols"])
            assert isinstance(names, list)
        except (ValueError, AssertionError):
            raise err.bad_request(err.ILLEGAL_CHARS, "Invalid 'symbols'.") from None
        specs = [ctx.symbols.by_name(n) for n in names]
    cfg = ctx.cfg
    return web.json_response({
        "timezone": "UTC",
        "serverTime": time.time_ns() // 1_000_000,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": cfg.weight_per_min},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": cfg.orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
             "limit": cfg.orders_per_day},
        ],
        "exchangeFilters": [],
        "symbols": [s.exchange_info(API_ORDER_TYPES) for s in specs],
    })  # fmt: skip


async def no_derivatives(request: web.Request) -> web.Response:
    """GET /fapi/v1/exchangeInfo, /dapi/v1/exchangeInfo: no futures markets (clients such
    as ccxt load them with the spot markets)."""
    return web.json_response({
        "timezone": "UTC", "serverTime": time.time_ns() // 1_000_000, "rateLimits": [],
        "exchangeFilters": [], "symbols": [],
    })  # fmt: skip


async def coins(request: web.Request) -> web.Response:
    """GET /sapi/v1/capital/config/getall (SIGNED): the assets, no deposit/withdraw
    networks (funding goes through bursa's wallet, not this API)."""
    from api.auth import read_request

    ctx = request.app[CTX]
    params, payload = await read_request(request)
    ctx.auth.signed(request, params, payload)
    names = ctx.symbols.asset_names
    out = []
    for a, dec in sorted(ctx.store.assets.items()):
        name = names.get(a, f"A{a}")
        out.append({
            "coin": name, "name": name, "depositAllEnable": False, "withdrawAllEnable": False,
            "free": "0", "locked": "0", "freeze": "0", "withdrawing": "0", "ipoing": "0",
            "ipoable": "0", "storage": "0", "isLegalMoney": False, "trading": True,
            "networkList": [], "decimals": dec,
        })  # fmt: skip
    return web.json_response(out)


async def no_margin(request: web.Request) -> web.Response:
    """GET /sapi/v1/margin/allPairs, /sapi/v1/margin/isolated/allPairs: no margin pairs."""
    return web.json_response([])


def build(cfg: ApiConfig) -> web.Application:
    """The aiohttp application of ``cfg`` (core link and market feed start with it)."""
    store = Store(cfg.db_path)
    registry = SymbolRegistry.from_config(cfg.section)

    def on_symbol(symbol_id: int, c: dict[str, int]) -> None:
        if c.get("min_notional_minor"):
            registry.min_notional_minor[symbol_id] = c["min_notional_minor"]
        registry.update(symbol_id, c)

    for sid, c in store.symbols.items():
        on_symbol(sid, c)
    follower = Follower(store, on_symbol)
    streams = userdata.UserStreams()
    core = CoreLink(
        store,
        follower,
        cfg.core_trade_endpoint,
        cfg.core_admin_endpoint,
        cfg.core_pub_endpoint,
        cfg.core_replay_endpoint,
        streams.on_applied,
        reply_timeout_s=cfg.core_timeout_ms / 1000,
        commit_interval_s=cfg.commit_interval_ms / 1000,
    )
    keystore = keys.KeyStore(keys.connect(cfg.keys_db))
    ctx = Context(
        cfg=cfg,
        store=store,
        follower=follower,
        core=core,
        symbols=registry,
        auth=Authenticator(keystore, cfg.recv_window_max_ms),
        limits=RateLimiter(cfg.weight_per_min, cfg.orders_per_10s, cfg.orders_per_day),
        streams=streams,
    )
    streams.bind(ctx)
    app = web.Application(
        middlewares=[count_requests, binance_errors], client_max_size=fasthttp.CLIENT_MAX_SIZE
    )
    app[CTX] = ctx
    r = app.router
    r.add_get("/api/v3/ping", ping)
    r.add_get("/api/v3/time", server_time)
    r.add_get("/api/v3/exchangeInfo", exchange_info)
    r.add_get("/fapi/v1/exchangeInfo", no_derivatives)
    r.add_get("/dapi/v1/exchangeInfo", no_derivatives)
    r.add_get("/sapi/v1/capital/config/getall", coins)
    r.add_get("/sapi/v1/margin/allPairs", no_margin)
    r.add_get("/sapi/v1/margin/isolated/allPairs", no_margin)
    orders.add_routes(app)
    account.add_routes(app)
    userdata.add_routes(app)  # before the market's /ws/{streams}: listen keys first
    if cfg.marketdata:
        from api.market import MarketState
        from api.market import add_routes as add_market_routes

        market = MarketState.from_config(cfg.section)
        market.registry = registry  # one registry: the core's config, the feed's status
        ctx.extra["market"] = market
        add_market_routes(app, market)

    async def lifecycle(app: web.Application) -> Any:
        await core.start()
        market = ctx.extra.get("market")
        if market is not None:
            await market.start()
        yield
        await streams.close_all()
        if market is not None:
            await market.stop()
        await core.stop()
        store.close()
        keystore.con.close()

    app.cleanup_ctx.append(lifecycle)
    return app


# ---------------------------------------------------------------- process


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bursa api", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="TOML file; settings in its [api] section")
    for f in fields(ApiConfig):
        if f.name == "section":
            continue
        if isinstance(f.default, bool):
            p.add_argument("--" + f.name.replace("_", "-"), default=None,
                           type=lambda s: s.lower() in ("1", "true", "yes"))  # fmt: skip
        else:
            p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=None)
    p.add_argument("--marketdata-pub-endpoint", default=None)
    p.add_argument("--marketdata-service-endpoint", default=None)
    logs.add_arguments(p)
    p.add_argument("--profile", help="write a cProfile of the whole run to this file at exit")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> ApiConfig:
    """``[api]`` of the TOML file, overridden by flags."""
    section: dict[str, Any] = {}
    if args.config:
        with open(args.config, "rb") as fh:
            section = dict(tomllib.load(fh).get("api", {}))
    for k in ("marketdata_pub_endpoint", "marketdata_service_endpoint"):
        if getattr(args, k) is not None:
            section[k] = getattr(args, k)
    overrides = {f.name: getattr(args, f.name) for f in fields(ApiConfig) if f.name != "section"}
    return ApiConfig.from_section(section, **overrides)


async def serve(
    cfg: ApiConfig, stop: asyncio.Event, on_ready: Callable[[dict[str, Any]], None]
) -> None:
    """Run the API until ``stop`` is set."""
    app = build(cfg)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    ctx = app[CTX]
    assert runner.server is not None
    fast: set[fasthttp.FastHttp] = set()
    factory: Callable[[], asyncio.Protocol] = runner.server
    if cfg.fast_http:
        factory = fasthttp.protocol_factory(ctx, runner.server, fast)
    server = await asyncio.get_running_loop().create_server(
        factory, cfg.host, cfg.port, reuse_address=True
    )
    port = cfg.port
    for sock in server.sockets or ():
        port = int(sock.getsockname()[1])
    url, _ = serve_metrics(cfg.metrics, Collector(lambda: api_metrics.families(ctx)))
    log.info("api ready on http://%s:%d (metrics %s)", cfg.host, port, url)
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]  # uvloop, asyncio
    # The ~56,000 objects alive now (modules, app, caches) live as long as the process:
    # out of the collector's sight, a full collection no longer walks them (~16 ms,
    # a stall of every request in flight, each time one runs).
    gc.collect()
    gc.freeze()
    on_ready({"ready": True, "api": f"http://{cfg.host}:{port}", "port": port, "metrics": url,
              "event_loop": loop_name})  # fmt: skip
    try:
        await stop.wait()
    finally:
        server.close()
        for conn in list(fast):
            conn.close()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Run `bursa api` until SIGTERM/SIGINT; prints one JSON ready line."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    logs.setup("api", args.log_format, args.log_level)
    try:
        cfg = config_from_args(args)
    except (OSError, TypeError, ValueError, tomllib.TOMLDecodeError) as e:
        print(f"bursa api: {e}", file=sys.stderr)
        return 1

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready(info: dict[str, Any]) -> None:
            cfg_out = {k: v for k, v in asdict(cfg).items() if k != "section"}
            print(json.dumps({**info, "config": cfg_out}), flush=True)

        await serve(cfg, stop, ready)

    def run_loop() -> None:
        # uvloop: about a sixth less CPU per order than asyncio's loop (docs/api.md,
        # "Performance").
        factory = uvloop.new_event_loop if cfg.use_uvloop else None
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(run())

    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        try:
            with contextlib.suppress(KeyboardInterrupt):
                prof.runcall(run_loop)
        finally:
            prof.dump_stats(args.profile)
        return 0
    try:
        with contextlib.suppress(KeyboardInterrupt):
            run_loop()
    except StateAheadError as e:
        print(f"bursa api: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
