"""``GET /api/v3/account``: free and locked per asset, from the core.

Balances are never computed from a client's bytes nor cached: each request asks the
core (control ``balance``, answered from its state) for the key's user, for every
asset the core has added, and lists those with a non-zero balance (all of them with
``omitZeroBalances=false``, Binance's default being to list all).
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from api import errors as err
from api.core import CoreUnavailableError, now_ms
from api.errors import ApiError
from api.orders import _signed
from api.userdata import _minor


async def account(request: web.Request) -> web.Response:
    """GET /api/v3/account."""
    ctx, params, uid = await _signed(request)
    omit = params.get("omitZeroBalances", "false") == "true"
    assets = sorted(ctx.store.assets)
    try:
        bals = await asyncio.wait_for(
            asyncio.gather(*(ctx.core.balance(uid, a) for a in assets)),
            ctx.cfg.core_timeout_ms / 1000,
        )
    except (TimeoutError, CoreUnavailableError):
        raise ApiError(503, err.UNKNOWN, "The core is not available.") from None
    names = ctx.symbols.asset_names
    balances = [
        {"asset": names.get(a, f"A{a}"), "free": _minor(ctx, a, av), "locked": _minor(ctx, a, h)}
        for a, (av, h) in zip(assets, bals, strict=True)
        if not omit or av or h
    ]
    key = request.headers.get("X-MBX-APIKEY", "")
    k = ctx.auth.lookup(key)[0]
    return web.json_response({
        "makerCommission": 0, "takerCommission": 0, "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": "0", "taker": "0", "buyer": "0", "seller": "0"},
        "canTrade": bool(k and k.can_trade), "canWithdraw": False, "canDeposit": False,
        "brokered": False, "requireSelfTradePrevention": False, "preventSor": False,
        "updateTime": now_ms(), "accountType": "SPOT", "balances": balances,
        "permissions": ["SPOT"], "uid": uid,
    })  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register ``/api/v3/account``."""
    app.router.add_get("/api/v3/account", account)
