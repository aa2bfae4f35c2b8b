"""bursa: a self-hostable crypto exchange core.  This package is the public API's front door.

Every public name is reachable from here (``from bursa import Book, Side, CoreClient``)
and lives in the module listed in :data:`EXPORTS`.  Names are imported on first use
(PEP 562 ``__getattr__``), so ``import bursa`` loads only this file: it stays cheap
and can never close an import cycle between the layers below it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> (module, attribute; None = the module itself)
EXPORTS: dict[str, tuple[str, str | None]] = {
    # the matching engine (in-process)
    "Book": ("bindings.book", "Book"),
    "EventBuf": ("bindings.book", "EventBuf"),
    # wire enums
    **{
        n: ("bindings.enums", n)
        for n in (
            "CmdFlag",
            "CmdKind",
            "EvFlag",
            "EvKind",
            "OrdType",
            "Reason",
            "Side",
            "Stp",
            "Tif",
        )
    },
    # records: layouts, named views, builders, decoder
    "CMD_DTYPE": ("bursa_wire.layout", "CMD_DTYPE"),
    "EV_DTYPE": ("bursa_wire.layout", "EV_DTYPE"),
    "REPLY_DTYPE": ("bursa_wire.layout", "REPLY_DTYPE"),
    "commands": ("engine.wire.commands", None),
    "events": ("engine.wire.events", None),
    "views": ("engine.wire.views", None),
    "CMD_VIEWS": ("engine.wire.views", "CMD_VIEWS"),
    "EV_VIEWS": ("engine.wire.views", "EV_VIEWS"),
    # clients of a running core, gateway and market-data feed
    "CoreClient": ("bindings.client", "CoreClient"),
    "RoutedClient": ("bindings.client", "RoutedClient"),
    "EventSubscriber": ("bindings.client", "EventSubscriber"),
    "CoreError": ("bindings.client", "CoreError"),
    "GatewayClient": ("bindings.gateway_client", "GatewayClient"),
    "AsyncGatewayClient": ("bindings.gateway_client", "AsyncGatewayClient"),
    "MarketDataClient": ("bindings.marketdata", "MarketDataClient"),
    "LocalBook": ("bindings.marketdata", "LocalBook"),
}

# The same names, spelled out for type checkers and linters (a test checks they agree).
__all__ = [
    "CMD_DTYPE",
    "CMD_VIEWS",
    "EV_DTYPE",
    "EV_VIEWS",
    "REPLY_DTYPE",
    "AsyncGatewayClient",
    "Book",
    "CmdFlag",
    "CmdKind",
    "CoreClient",
    "CoreError",
    "EvFlag",
    "EvKind",
    "EventBuf",
    "EventSubscriber",
    "GatewayClient",
    "LocalBook",
    "MarketDataClient",
    "OrdType",
    "Reason",
    "RoutedClient",
    "Side",
    "Stp",
    "Tif",
    "commands",
    "events",
    "views",
]

if TYPE_CHECKING:
    from bindings.book import Book, EventBuf
    from bindings.client import CoreClient, CoreError, EventSubscriber, RoutedClient
    from bindings.enums import CmdFlag, CmdKind, EvFlag, EvKind, OrdType, Reason, Side, Stp, Tif
    from bindings.gateway_client import AsyncGatewayClient, GatewayClient
    from bindings.marketdata import LocalBook, MarketDataClient
    from bursa_wire.layout import CMD_DTYPE, EV_DTYPE, REPLY_DTYPE
    from engine.wire import commands, events, views
    from engine.wire.views import CMD_VIEWS, EV_VIEWS


def __getattr__(name: str) -> Any:
    """Import a public name on first use and cache it in this module."""
    try:
        module, attr = EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'bursa' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Module attributes plus the lazily imported public names."""
    return sorted(set(globals()) | set(EXPORTS))
