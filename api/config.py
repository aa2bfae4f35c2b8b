"""Settings of `bursa api` (TOML section ``[api]``; command-line flags override).

The section also carries part B's market settings (asset names per id, minimum
notionals, market-data endpoints): they are kept in :attr:`ApiConfig.section` and
read by :mod:`api.symbols` and :mod:`api.market`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from engine.server import (
    DEFAULT_ADMIN_ENDPOINT,
    DEFAULT_PUB_ENDPOINT,
    DEFAULT_REPLAY_ENDPOINT,
    DEFAULT_TRADE_ENDPOINT,
)
from gateway.keys import DEFAULT_DB as DEFAULT_KEYS_DB


@dataclass
class ApiConfig:
    """The ``[api]`` section's scalar settings (see docs/api.md, "Running")."""

    host: str = "127.0.0.1"
    port: int = 8080
    db_path: str = "data/api/api.db"  # orders, trades, listen keys, last core seq
    keys_db: str = DEFAULT_KEYS_DB  # the gateway's database: API keys are shared
    core_trade_endpoint: str = DEFAULT_TRADE_ENDPOINT
    core_admin_endpoint: str = DEFAULT_ADMIN_ENDPOINT  # balance queries (control requests)
    core_pub_endpoint: str = DEFAULT_PUB_ENDPOINT
    core_replay_endpoint: str = DEFAULT_REPLAY_ENDPOINT
    marketdata: bool = True  # mount part B's market routes (needs the feed's endpoints)
    recv_window_max_ms: int = 60_000
    weight_per_min: int = 6_000  # REQUEST_WEIGHT per IP per minute (Binance's default)
    orders_per_10s: int = 100  # ORDERS per key per 10 s (Binance's default)
    orders_per_day: int = 200_000  # ORDERS per key per day
    core_timeout_ms: int = 5_000  # a command unanswered this long answers -1007
    # The follower's effects (order rows, fills, last core seq) are committed at most
    # this long after the first is buffered; answers never wait for it (api.core).
    commit_interval_ms: int = 50
    # Messages queued per user-data connection before it is dropped as too slow (a
    # burst of one event batch must fit: up to 256 core frames of events).
    ws_send_queue: int = 10_000
    listen_key_ttl_s: int = 3_600
    metrics: str = "127.0.0.1:0"  # Prometheus /metrics address ("" or "off": none)
    # "uvloop", "asyncio" or "auto" (= uvloop).
    event_loop: str = "auto"
    # POST /api/v3/order served by api.fasthttp (false: every request through aiohttp).
    fast_http: bool = True
    section: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_section(cls, section: dict[str, Any], **overrides: Any) -> ApiConfig:
        """Scalar keys of the section become fields (unknown scalars are an error,
        tables are kept for the market part); then ``overrides`` (not None) apply."""
        names = {f.name for f in fields(cls)} - {"section"}
        values: dict[str, Any] = {}
        for k, v in section.items():
            if isinstance(v, dict):
                continue
            if k in names:
                values[k] = v
            elif k not in MARKET_KEYS:
                raise TypeError(f"[api]: unknown setting {k!r}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        cfg = cls(**values, section=dict(section))
        if cfg.event_loop not in EVENT_LOOPS:
            raise ValueError(f"[api] event_loop must be one of {', '.join(EVENT_LOOPS)}")
        return cfg

    @property
    def use_uvloop(self) -> bool:
        """Whether the process runs on uvloop (``event_loop``)."""
        return self.event_loop != "asyncio"


EVENT_LOOPS = ("auto", "uvloop", "asyncio")


# Scalar keys of [api] that belong to the market part (api.market.MarketState.from_config).
MARKET_KEYS = frozenset({"marketdata_pub_endpoint", "marketdata_service_endpoint", "max_streams"})
