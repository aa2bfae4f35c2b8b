"""Snapshot and replay service: requests answered from the :class:`~marketdata.feed.Feed`.

Sans-IO: :func:`handle` takes the request bytes and returns the answer parts; the
process (:mod:`marketdata.server`) calls it in the same loop that publishes, so
every answer is consistent with what was published before it.  Protocol:
docs/marketdata.md, "Snapshot and replay service".  A bad request gets
``{"ok": false, "code": ..., "error": ...}`` and changes nothing.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from bursa_wire.md_layout import CANDLE_INTERVALS_S, CHANNEL_NAMES, Channel
from marketdata.book import RECENT_TRADES_MAX, SymbolBook
from marketdata.feed import Feed

# Messages per replay answer at most (the client asks again from next_seq).
REPLAY_MAX_MSGS = 10_000
_BY_NAME = {name: ch for ch, name in CHANNEL_NAMES.items()}


class RequestError(ValueError):
    """A request the service refuses; ``code`` is the documented error code."""

    def __init__(self, code: str, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.code = code
        self.extra = extra


def _json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _int(req: dict[str, Any], name: str, default: int | None = None, lo: int = 0) -> int:
    v = req.get(name, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise RequestError("bad_request", f"{name} must be an integer >= {lo}")
    return v


def _symbol(feed: Feed, req: dict[str, Any]) -> SymbolBook:
    sid = _int(req, "symbol")
    sb = feed.symbols.get(sid)
    if sb is None:
        raise RequestError("unknown_symbol", f"no symbol {sid}")
    return sb


def handle(feed: Feed, request: bytes) -> list[bytes]:
    """Answer one request: ``[json, message, ...]`` (a request's ``id`` is echoed)."""
    echo: dict[str, Any] = {}
    try:
        try:
            req = json.loads(request)
        except (ValueError, UnicodeDecodeError) as e:
            raise RequestError("bad_request", f"not JSON: {e}") from e
        if not isinstance(req, dict):
            raise RequestError("bad_request", "the request must be a JSON object")
        if "id" in req:
            echo["id"] = req["id"]
        head, parts = _dispatch(feed, req)
        return [_json({"ok": True, **echo, **head}), *parts]
    except RequestError as e:
        return [_json({"ok": False, **echo, "code": e.code, "error": str(e), **e.extra})]


def _dispatch(feed: Feed, req: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    op = req.get("op")
    if op == "info":
        syms = sorted(feed.symbols)
        return {"core_seq": feed.core_seq, "symbols": syms}, [
            feed.symbols[s].status_raw for s in syms
        ]
    if op == "replay":
        return _replay(feed, req)
    sb = _symbol(feed, req)
    seqs = sb.seqs
    if op == "l2":
        bids, asks = sb.l2(_int(req, "depth", 0))
        head = {"seq": seqs[Channel.L2], "core_seq": feed.core_seq, "bids": bids, "asks": asks}
        return head, []
    if op == "l3":
        return {"seq": seqs[Channel.L3], "core_seq": feed.core_seq, "orders": sb.l3()}, []
    if op == "bbo":
        return {"seq": seqs[Channel.BBO], "core_seq": feed.core_seq, "bbo": list(sb.bbo)}, []
    if op == "status":
        return {"seq": seqs[Channel.STATUS]}, [sb.status_raw]
    if op == "trades":
        n = min(_int(req, "n", 100), RECENT_TRADES_MAX)
        trades = list(sb.trades)[-n:] if n else []
        return {"seq": seqs[Channel.TRADES]}, trades
    if op == "candles":
        iv = _int(req, "interval_s")
        if iv not in CANDLE_INTERVALS_S:
            raise RequestError("bad_request", f"interval_s must be one of {CANDLE_INTERVALS_S}")
        lo, hi = _int(req, "from_ns", 0), _int(req, "to_ns", 1 << 64)
        out = []
        for raw in [*sb.candle_history[iv], sb.candle_last_raw.get(iv, b"")]:
            if raw and lo <= int.from_bytes(raw[32:40], "little") < hi:
                out.append(raw)
        return {"seq": seqs[Channel.CANDLES]}, out
    raise RequestError("bad_request", f"unknown op {op!r}")


def _replay(feed: Feed, req: dict[str, Any]) -> tuple[dict[str, Any], list[bytes]]:
    ch = _BY_NAME.get(req.get("channel", ""))
    if ch is None:
        raise RequestError("bad_request", f"channel must be one of {sorted(_BY_NAME)}")
    sb = _symbol(feed, req)
    from_seq = _int(req, "from_seq", lo=1)
    n_max = min(_int(req, "max", REPLAY_MAX_MSGS, lo=1), REPLAY_MAX_MSGS)
    last = sb.seqs[ch]
    window = sb.windows[ch]
    held = len(window)
    oldest = last - held + 1
    if from_seq < oldest:
        raise RequestError(
            "take_snapshot", f"messages before {oldest} are not kept", oldest_seq=oldest
        )
    if from_seq > last + 1:
        raise RequestError("bad_request", f"from_seq {from_seq} is past the last seq {last} + 1")
    start = from_seq - oldest
    stop = min(held, start + n_max)
    parts = list(itertools.islice(window, start, stop))
    return {"next_seq": oldest + stop, "last_seq": last}, parts
