"""The state one `bursa api` process shares between its handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from api.auth import Authenticator
from api.config import ApiConfig
from api.core import CoreLink
from api.follow import Follower
from api.ratelimit import RateLimiter
from api.store import Store
from api.symbols import SymbolRegistry

if TYPE_CHECKING:
    from api.userdata import UserStreams


@dataclass
class Context:
    """Config, store, core link, symbols, keys, limits and user data streams."""

    cfg: ApiConfig
    store: Store
    follower: Follower
    core: CoreLink
    symbols: SymbolRegistry
    auth: Authenticator
    limits: RateLimiter
    streams: UserStreams
    extra: dict[str, Any] = field(default_factory=dict)


CTX = web.AppKey("ctx", Context)
