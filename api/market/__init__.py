"""Market data of the Binance-compatible API: REST endpoints and WebSocket streams.

:class:`~api.market.state.MarketState` follows the `bursa marketdata` feed and keeps
per symbol an exact book, recent trades, candles and 24h tickers;
:func:`~api.market.routes.add_routes` mounts the REST endpoints and the WebSocket
streams on an aiohttp application.  Reference: docs/api-market.md.
"""

from api.market.routes import add_routes
from api.market.state import MarketState

__all__ = ["MarketState", "add_routes"]
