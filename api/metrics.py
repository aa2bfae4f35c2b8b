"""Prometheus metrics of `bursa api` (read at scrape time; docs/operations.md).

Requests are counted per route template (a finite set: never the raw path, so a
client cannot grow the label set) and HTTP status by :func:`count_requests`, an
aiohttp middleware; the rest is read from the running API's objects when scraped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client.core import CounterMetricFamily

from api.context import CTX, Context
from engine.metrics_http import Family, gauge

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNMATCHED = "unmatched"  # 404s and other requests no route took


def route_of(request: web.Request) -> str:
    """The route template that took ``request`` (``UNMATCHED`` if none)."""
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    canonical = getattr(resource, "canonical", None)
    return str(canonical) if canonical else UNMATCHED


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count each request by (route template, method, status) after it is answered."""
    resp = await handler(request)
    count_request(request.app[CTX], route_of(request), request.method, resp.status)
    return resp


def count_request(ctx: Context, route: str, method: str, status: int) -> None:
    """One answered request in ``bursa_api_requests_total`` (the middleware's count,
    and api.fasthttp's for the requests it answers without aiohttp)."""
    requests: dict[tuple[str, str, int], int] = ctx.extra.setdefault("requests", {})
    key = (route, method, status)
    requests[key] = requests.get(key, 0) + 1


def families(ctx: Context) -> list[Family]:
    """The API's metric families at this moment."""
    req = CounterMetricFamily(
        "bursa_api_requests",
        "HTTP requests by route, method and status",
        labels=["route", "method", "status"],
    )
    for (route, method, status), n in sorted(ctx.extra.get("requests", {}).items()):
        req.add_metric([route, method, str(status)], n)
    fast = CounterMetricFamily(
        "bursa_api_fast_requests", "requests answered by api.fasthttp (the others by aiohttp)"
    )
    fast.add_metric([], ctx.extra.get("fast_requests", 0))
    frames = CounterMetricFamily(
        "bursa_api_event_frames",
        "core event frames applied, by where they came from (live source or replay)",
        labels=["source"],
    )
    live, replayed = ctx.core.event_frames()
    frames.add_metric(["live"], live)
    frames.add_metric(["replayed"], replayed)
    market: Any = ctx.extra.get("market")
    conns = len(market.hub.conns) if market is not None else 0
    sinks = sum(len(s) for s in ctx.streams.sinks.values())
    return [
        req,
        fast,
        frames,
        gauge(
            "bursa_api_event_source_up",
            "1 while the live event source is connected and watched",
            int(ctx.core.event_source_up()),
        ),
        gauge("bursa_api_core_seq", "last core event seq applied", ctx.store.last_core_seq),
        gauge("bursa_api_market_ws_connections", "market-data WebSocket clients", conns),
        gauge("bursa_api_user_streams", "user-data stream connections", sinks),
    ]
