"""bursa's Binance-compatible REST and WebSocket API (`bursa api`); see docs/api.md."""
