"""MarketState: the API's view of the market-data feed, and the producer of its streams.

It follows `bursa marketdata` with :class:`bindings.marketdata.MarketDataClient`
(snapshot + deltas, gaps filled from the replay service) on the L2, trade, BBO,
candle and status channels of every symbol the feed lists, so per symbol it holds
the exact L2 book, recent trades, candle histories and the symbol's grid
(:class:`api.symbols.SymbolRegistry`, updated by STATUS messages).

``lastUpdateId``: a symbol's book update id IS the feed's L2 channel sequence
number (gap-free per symbol, deterministic across restarts of the feed).  REST
``/depth`` answers the book at the last applied L2 seq; a ``depthUpdate`` event
covers the L2 messages ``U..u`` applied since the previous event of its speed, so
consecutive events always chain (``U`` = previous ``u`` + 1).  When the client had
to reload the L2 book from a snapshot (a gap older than the replay window), the
difference between the old and the new book is published as one diff covering
the skipped sequence numbers, so the chain still holds and stays exact.

Everything runs on the event loop of the aiohttp app: a pump task reads the feed
(non-blocking) whenever its socket's ZeroMQ FD signals input, a timer task flushes
the 100 ms and 1000 ms streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import zmq

from api.market import intervals, render
from api.market.decimals import Decimals
from api.market.hub import DEFAULT_SEND_BUFFER_BYTES, Hub
from api.market.streams import (
    FAST_MS,
    PARTIAL_LEVELS,
    SLOW_MS,
    depth_names,
    partial_names,
)
from api.market.ticker import Rolling, rolling_24h
from api.symbols import SymbolRegistry, SymbolSpec
from bindings.marketdata import BUY, SELL, LocalBook, MarketDataClient, MarketDataError
from bursa_wire.md_codec import Msg
from bursa_wire.md_layout import CANDLE_INTERVALS_S, Channel, MsgType
from marketdata.book import CANDLE_HISTORY_MAX
from marketdata.server import DEFAULT_PUB_ENDPOINT, DEFAULT_SERVICE_ENDPOINT

log = logging.getLogger("bursa.api.market")

CHANNELS = ("l2", "trades", "bbo", "candles", "status")
# With nothing to read, the pump sleeps until the feed's socket signals input (its
# ZeroMQ FD on the event loop), at most this long (the client's idle checks need polls).
IDLE_WAKE_S = 0.1
ERROR_RETRY_S = 0.01  # pause after a feed error before reading on
MAX_MSGS_PER_TURN = 1_000  # feed messages applied per event-loop turn at most (short turns)
DISCOVER_S = 5.0  # how often the feed is asked for new symbols
# A feed service request blocks the event loop at most this long (a feed that is down
# or restarting is retried at the next idle check, never waited for longer).
SERVICE_TIMEOUT_MS = 500
PROBE_TIMEOUT_MS = 2_000  # the symbol list request (in a thread: never blocks the loop)
HISTORY_MAX = 2 * CANDLE_HISTORY_MAX  # candles kept per (symbol, interval)
MAX_STREAMS_DEFAULT = 1024  # Binance's limit of streams per connection
MAX_CONNECTIONS_DEFAULT = 10_000  # market WebSocket connections (memory is bounded per one)
# Feed interval (s) -> the Binance kline intervals built from it.
KLINE_NAMES_BY_BASE: dict[int, tuple[str, ...]] = {
    iv: tuple(n for n in intervals.ALL if intervals.base_of(n) == iv) for iv in CANDLE_INTERVALS_S
}


class _Diff:
    """Levels changed since the last event of one speed: side -> price -> qty."""

    __slots__ = ("first", "levels")

    def __init__(self) -> None:
        self.first = 0  # first L2 seq not yet published (0: nothing pending)
        self.levels: dict[int, dict[int, int]] = {BUY: {}, SELL: {}}


class SymbolMarket:
    """Per-symbol derived state (the L2 book itself is the client's LocalBook)."""

    def __init__(self, book: LocalBook) -> None:
        self.book = book
        self.update_id = 0  # the last applied L2 channel seq (lastUpdateId)
        self.diffs = {FAST_MS: _Diff(), SLOW_MS: _Diff()}
        self.partial_dirty = {FAST_MS: True, SLOW_MS: True}
        self.candles: dict[int, deque[Msg]] = {
            iv: deque(maxlen=HISTORY_MAX) for iv in CANDLE_INTERVALS_S
        }
        self.kline_pending: dict[int, dict[int, Msg]] = {}
        self.agg_pending: list[Msg] = []
        self.ticker_dirty = True
        self._decimals: Decimals | None = None

    def decimals(self, spec: SymbolSpec) -> Decimals:
        """The cached decimal strings of ``spec`` (a new grid starts a new cache)."""
        d = self._decimals
        if d is None or d.spec is not spec:
            d = self._decimals = Decimals(spec)
        return d

    def note_level(self, seq: int, side: int, price: int, qty: int) -> None:
        """Record one L2 change (seq = its L2 channel seq) for both diff speeds."""
        for d in self.diffs.values():
            if not d.first:
                d.first = seq
            d.levels[side][price] = qty
        self.update_id = seq
        self.partial_dirty[FAST_MS] = self.partial_dirty[SLOW_MS] = True

    def add_candle(self, m: Msg) -> None:
        """Keep a CANDLE update (replaces the in-progress candle of its bucket)."""
        hist = self.candles[m["interval_s"]]
        start = m["start_ns"]
        if hist and hist[-1]["start_ns"] == start:
            hist[-1] = m
        elif not hist or hist[-1]["start_ns"] < start:
            hist.append(m)
        self.kline_pending.setdefault(m["interval_s"], {})[start] = m

    def rolling(self, now_ns: int) -> Rolling:
        """24h figures now."""
        return rolling_24h(self.candles[60], self.candles[300], now_ns)

    def last_trade(self) -> Msg | None:
        """The latest trade, if any is known."""
        return self.book.trades[-1] if self.book.trades else None


class _FeedClient(MarketDataClient):
    """MarketDataClient that reports snapshot reloads of L2 and candles to MarketState."""

    def __init__(self, state: MarketState, *args: Any, **kw: Any) -> None:
        self._state: MarketState | None = None  # no hooks while the first snapshots load
        super().__init__(*args, **kw)
        self._state = state

    def check(self, out: list[Msg] | None = None) -> list[Msg]:
        """As the base class, but stop at the first stream the service does not answer:
        a feed that is down must not block the event loop once per stream."""
        out = [] if out is None else out
        before = self.service_timeouts
        for st in self.streams.values():
            self._fill_or_wait(st, None, out)
            if self.service_timeouts != before:
                break  # tried again at the next idle check
        return out

    def _snapshot(self, st: Any) -> None:
        if self._state is None:
            super()._snapshot(st)
            return
        book = self.books[st.symbol_id]
        old_l2, old_seq = book.l2, st.last_seq
        super()._snapshot(st)
        if st.channel == Channel.L2:
            self._state.l2_reloaded(st.symbol_id, old_l2, old_seq, st.last_seq)
        elif st.channel == Channel.CANDLES:
            self._state.load_candles(self, st.symbol_id)


class MarketState:
    """Market data for the API (see the module docstring).

    Parameters
    ----------
    pub_endpoint, service_endpoint : str
        The feed's PUB and snapshot/replay endpoints (`bursa marketdata` ready line).
    registry : SymbolRegistry
        Asset names and minimum notionals (from ``[api]``); filled from the feed.
    send_buffer_bytes : int
        Unsent bytes a WebSocket client may hold before it is dropped as too slow.
    max_streams : int
        Streams per WebSocket connection at most.
    max_connections : int
        Market WebSocket connections at most (more are refused with HTTP 429).
    """

    def __init__(
        self,
        pub_endpoint: str = DEFAULT_PUB_ENDPOINT,
        service_endpoint: str = DEFAULT_SERVICE_ENDPOINT,
        registry: SymbolRegistry | None = None,
        *,
        send_buffer_bytes: int = DEFAULT_SEND_BUFFER_BYTES,
        max_streams: int = MAX_STREAMS_DEFAULT,
        max_connections: int = MAX_CONNECTIONS_DEFAULT,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if max_streams <= 0 or max_connections <= 0:
            raise ValueError("max_streams and max_connections must be > 0")
        self.pub_endpoint = pub_endpoint
        self.service_endpoint = service_endpoint
        self.registry = registry if registry is not None else SymbolRegistry()
        self.hub = Hub(send_buffer_bytes)
        self.max_streams = max_streams
        self.max_connections = max_connections
        self.clock_ns = clock_ns
        self.symbols: dict[int, SymbolMarket] = {}
        self._clients: list[_FeedClient] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Future[None] | None = None
        self._reader_fds: list[int] = []
        self._ready = asyncio.Event()
        self.turns = 0
        self.feed_errors = 0
        self.internal_errors = 0  # bugs caught and logged (tests assert 0)
        self.l2_resyncs = 0  # L2 books reloaded from a snapshot (published as one diff)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> MarketState:
        """A state from the ``[api]`` section: ``marketdata_pub_endpoint``,
        ``marketdata_service_endpoint``, ``max_streams``, ``max_connections``, asset
        names and minimum notionals (:meth:`SymbolRegistry.from_config`) and
        ``[api.market]`` ``send_buffer_bytes``."""
        extra = dict(section.get("market", {}))
        return cls(
            str(section.get("marketdata_pub_endpoint", DEFAULT_PUB_ENDPOINT)),
            str(section.get("marketdata_service_endpoint", DEFAULT_SERVICE_ENDPOINT)),
            SymbolRegistry.from_config(section),
            send_buffer_bytes=int(extra.get("send_buffer_bytes", DEFAULT_SEND_BUFFER_BYTES)),
            max_streams=int(section.get("max_streams", MAX_STREAMS_DEFAULT)),
            max_connections=int(section.get("max_connections", MAX_CONNECTIONS_DEFAULT)),
        )

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load every symbol's snapshots, then follow the feed (returns when loaded).

        A feed that does not answer yet is not an error: its symbols are picked up
        once it does (every ``DISCOVER_S``); until then they are unknown (-1121)."""
        try:
            await self._discover()
        except (TimeoutError, RuntimeError) as e:
            log.warning("marketdata not reachable yet (%s): retrying every %.0f s", e, DISCOVER_S)
        # The loaded books and histories are long-lived: out of the cyclic GC's sight,
        # so the collections triggered by per-message objects do not walk them (a full
        # collection would otherwise pause every stream).
        gc.collect()
        gc.freeze()
        self._tasks = [
            asyncio.create_task(self._pump(), name="market-pump"),
            asyncio.create_task(self._timers(), name="market-timers"),
        ]
        self._ready.set()

    async def stop(self) -> None:
        """Stop following the feed and close its sockets."""
        loop = asyncio.get_running_loop()
        for fd in self._reader_fds:
            loop.remove_reader(fd)
        self._reader_fds = []
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        for c in self._clients:
            c.close()
        self._clients = []

    async def wait_ready(self) -> None:
        """Return once :meth:`start` has loaded the first snapshots."""
        await self._ready.wait()

    async def _discover(self) -> None:
        """Follow the symbols the feed lists that are not followed yet."""
        new = await asyncio.to_thread(self._new_symbols)
        if not new:
            return
        client = await asyncio.to_thread(
            _FeedClient,
            self,
            self.pub_endpoint,
            self.service_endpoint,
            new,
            CHANNELS,
        )
        client.timeout_ms = SERVICE_TIMEOUT_MS  # the first snapshots may take longer
        for sid in new:
            self.symbols[sid] = SymbolMarket(client.books[sid])
            self.load_candles(client, sid)
            sm, book = self.symbols[sid], client.books[sid]
            sm.update_id = client.streams[(int(Channel.L2), sid)].last_seq
            if book.status is not None:
                self.registry.update(sid, book.status.body)
        client.on(None, self._on_msg)
        self._clients.append(client)

    def _new_symbols(self) -> list[int]:
        probe = MarketDataClient(
            self.pub_endpoint, self.service_endpoint, (), timeout_ms=PROBE_TIMEOUT_MS
        )
        try:
            head, _ = probe.request(op="info")
        finally:
            probe.close()
        if not head.get("ok"):
            raise RuntimeError(f"marketdata info: {head.get('error')}")
        return [int(s) for s in head["symbols"] if int(s) not in self.symbols]

    def load_candles(self, client: MarketDataClient, sid: int) -> None:
        """(Re)load a symbol's candle histories from the feed's service."""
        sm = self.symbols.get(sid)
        if sm is None:
            return
        for iv in CANDLE_INTERVALS_S:
            head, msgs = client.request(op="candles", symbol=sid, interval_s=iv)
            if head.get("ok"):
                sm.candles[iv].clear()
                for m in msgs:
                    sm.add_candle(m)
        sm.kline_pending.clear()

    def _on_readable(self) -> None:
        w = self._wake
        if w is not None and not w.done():
            w.set_result(None)

    async def _idle_wait(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give the loop a turn, then return when a feed socket has input (at once if
        it has already), at most ``IDLE_WAKE_S`` later.

        A ZeroMQ FD is edge-triggered: it signals that ``zmq.EVENTS`` changed, so the
        sockets are checked for input after arming the wake-up and before sleeping
        (so no poll finds nothing just after one that found messages)."""
        for c in self._clients[len(self._reader_fds) :]:
            fd = c.sub.getsockopt(zmq.FD)
            loop.add_reader(fd, self._on_readable)
            self._reader_fds.append(fd)
        self._wake = fut = loop.create_future()
        try:
            for c in self._clients:
                if c.sub.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    await asyncio.sleep(0)  # streams written, other clients served
                    return
            handle = loop.call_later(IDLE_WAKE_S, self._on_readable)
            try:
                await fut
            finally:
                handle.cancel()
        finally:
            self._wake = None

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        last_discover = time.monotonic()
        while True:
            failed = False
            for c in self._clients:
                try:
                    c.poll(0, MAX_MSGS_PER_TURN)
                except (MarketDataError, TimeoutError, zmq.ZMQError) as e:
                    failed = True
                    # The feed misbehaved or went away: keep serving what is known and
                    # try again (the client resumes from its last sequence numbers).
                    self.feed_errors += 1
                    log.warning("marketdata feed: %s", e)
                except Exception:  # a bug in a stream callback: log it, keep following
                    failed = True
                    self.internal_errors += 1
                    log.exception("market feed message handling failed")
            self._end_of_turn()
            self.turns += 1
            now = time.monotonic()
            if now - last_discover > DISCOVER_S:
                last_discover = now
                try:
                    await self._discover()
                except (TimeoutError, RuntimeError) as e:
                    log.warning("marketdata discovery failed: %s", e)
            if failed:
                await asyncio.sleep(ERROR_RETRY_S)  # never spin on a broken feed
            else:
                await self._idle_wait(loop)

    async def _timers(self) -> None:
        loop = asyncio.get_running_loop()
        tick = 0
        next_t = loop.time()
        while True:
            next_t += FAST_MS / 1000
            await asyncio.sleep(max(0.0, next_t - loop.time()))
            if loop.time() - next_t > 1.0:
                next_t = loop.time()  # the loop was blocked: do not burst to catch up
            tick += 1
            try:
                self.flush(FAST_MS)
                if tick % (SLOW_MS // FAST_MS) == 0:
                    self.flush(SLOW_MS)
            except Exception:  # a bug must not stop every stream for good: log, go on
                self.internal_errors += 1
                log.exception("market stream flush failed")

    # ----------------------------------------------------------- feed input

    def _on_msg(self, m: Msg) -> None:
        sm = self.symbols.get(m.symbol_id)
        if sm is None:
            return
        t = m.msg_type
        if t == MsgType.L2_LEVEL:
            b = m.body
            sm.note_level(m.channel_seq, b["side"], b["price_ticks"], b["qty_lots"])
            return
        if t == MsgType.STATUS:
            self.registry.update(m.symbol_id, m.body)
            return
        spec = self.registry.get_id(m.symbol_id)
        if spec is None:
            return
        lower = spec.name.lower()
        if t == MsgType.TRADE:
            sm.ticker_dirty = True
            name = lower + "@trade"
            if self.hub.has(name):
                self.hub.publish(name, render.trade_event(spec, m, self._now_ms()))
            if self.hub.has(lower + "@aggTrade"):
                sm.agg_pending.append(m)
        elif t == MsgType.BBO:
            sm.ticker_dirty = True
            name = lower + "@bookTicker"
            if self.hub.has(name):
                self.hub.publish(name, render.book_ticker_event(spec, sm.book.bbo, sm.update_id))
        elif t == MsgType.CANDLE:
            sm.add_candle(m)

    def l2_reloaded(
        self, sid: int, old: dict[int, dict[int, tuple[int, int]]], old_seq: int, new_seq: int
    ) -> None:
        """The client reloaded a symbol's L2 book from a snapshot: publish the change
        between the books as the diff of the skipped L2 sequence numbers."""
        sm = self.symbols.get(sid)
        if sm is None or new_seq <= old_seq:
            return
        self.l2_resyncs += 1
        new = sm.book.l2
        for side in (BUY, SELL):
            for price in old[side].keys() | new[side].keys():
                before, after = old[side].get(price), new[side].get(price)
                if before != after:
                    qty = after[0] if after is not None else 0
                    sm.note_level(old_seq + 1, side, price, qty)
        for d in sm.diffs.values():
            d.first = d.first or old_seq + 1
        sm.update_id = new_seq

    def _end_of_turn(self) -> None:
        """Publish the aggregate trades completed by this turn's messages."""
        for sid, sm in self.symbols.items():
            if not sm.agg_pending:
                continue
            spec = self.registry.get_id(sid)
            pending, sm.agg_pending = sm.agg_pending, []
            if spec is None:
                continue
            name = spec.name.lower() + "@aggTrade"
            now = self._now_ms()
            for group in render.agg_groups(pending):
                self.hub.publish(name, render.agg_trade_event(spec, group, now))

    # --------------------------------------------------------------- timers

    def flush(self, speed_ms: int) -> None:
        """Publish the streams due every ``speed_ms`` (100 or 1000)."""
        now = self._now_ms()
        for sid, sm in self.symbols.items():
            spec = self.registry.get_id(sid)
            if spec is None:  # not listed (yet): nothing to publish, nothing to keep
                sm.diffs[speed_ms] = _Diff()
                sm.kline_pending.clear()
                continue
            lower = spec.name.lower()
            self._flush_depth(spec, sm, lower, speed_ms, now)
            if sm.partial_dirty[speed_ms]:
                sm.partial_dirty[speed_ms] = False
                for n in PARTIAL_LEVELS:
                    for name in partial_names(lower, n, speed_ms):
                        if self.hub.has(name):
                            self.hub.publish(name, self.depth(spec, n))
            if speed_ms == SLOW_MS:
                self._flush_klines(spec, sm, lower, now)
                self._flush_tickers(spec, sm, lower, now)
        if speed_ms == SLOW_MS:
            self._flush_all_market(now)

    def _flush_depth(
        self, spec: SymbolSpec, sm: SymbolMarket, lower: str, speed_ms: int, now: int
    ) -> None:
        d = sm.diffs[speed_ms]
        if not d.first:
            return
        names = [n for n in depth_names(lower, speed_ms) if self.hub.has(n)]
        if names:
            dec = sm.decimals(spec)
            event = {
                "e": "depthUpdate",
                "E": now,
                "s": spec.name,
                "U": d.first,
                "u": sm.update_id,
                "b": dec.pairs(d.levels[BUY]),
                "a": dec.pairs(d.levels[SELL]),
            }
            for name in names:
                self.hub.publish(name, event)
        d.first = 0
        d.levels = {BUY: {}, SELL: {}}

    def _flush_klines(self, spec: SymbolSpec, sm: SymbolMarket, lower: str, now: int) -> None:
        pending, sm.kline_pending = sm.kline_pending, {}
        now_ns = now * 1_000_000
        for iv, by_start in pending.items():
            for name in KLINE_NAMES_BY_BASE[iv]:
                stream = f"{lower}@kline_{name}"
                if not self.hub.has(stream):
                    continue
                if name in intervals.NATIVE:
                    cs = [intervals.native(by_start[s].body) for s in sorted(by_start)]
                else:
                    cs = self._derived_buckets(sm, name, iv, sorted(by_start), now_ns)
                for c in cs:
                    self.hub.publish(stream, render.kline_event(spec, c, name, now))

    @staticmethod
    def _derived_buckets(
        sm: SymbolMarket, name: str, iv: int, starts: list[int], now_ns: int
    ) -> list[dict[str, Any]]:
        """The buckets of derived interval ``name`` holding the changed feed candles."""
        spans = sorted({intervals.bucket(name, s) for s in starts})
        out = []
        for lo, hi in spans:
            cs = [c.body for c in sm.candles[iv] if lo <= c["start_ns"] < hi]
            out += intervals.aggregate(name, cs, now_ns)
        return out

    def _flush_tickers(self, spec: SymbolSpec, sm: SymbolMarket, lower: str, now: int) -> None:
        if not sm.ticker_dirty:
            return
        full_name, mini_name = lower + "@ticker", lower + "@miniTicker"
        if self.hub.has(full_name):
            self.hub.publish(full_name, render.ticker_event(self.ticker(spec), now))
        if self.hub.has(mini_name):
            self.hub.publish(mini_name, render.mini_event(self.mini_ticker(spec), now))
        if not (self.hub.has("!ticker@arr") or self.hub.has("!miniTicker@arr")):
            sm.ticker_dirty = False  # else the all-market flush clears it

    def _flush_all_market(self, now: int) -> None:
        full = self.hub.has("!ticker@arr")
        mini = self.hub.has("!miniTicker@arr")
        if not (full or mini):
            return
        fulls, minis = [], []
        for sid, sm in self.symbols.items():
            spec = self.registry.get_id(sid)
            if spec is None or not sm.ticker_dirty:
                continue
            sm.ticker_dirty = False
            if full:
                fulls.append(render.ticker_event(self.ticker(spec), now))
            if mini:
                minis.append(render.mini_event(self.mini_ticker(spec), now))
        if fulls:
            self.hub.publish("!ticker@arr", fulls)
        if minis:
            self.hub.publish("!miniTicker@arr", minis)

    # ---------------------------------------------------------------- views

    def _now_ms(self) -> int:
        return self.clock_ns() // 1_000_000

    def market(self, spec: SymbolSpec) -> SymbolMarket:
        """The state of a listed symbol."""
        return self.symbols[spec.symbol_id]

    def depth(self, spec: SymbolSpec, limit: int) -> dict[str, Any]:
        """``{"lastUpdateId", "bids", "asks"}``: the top ``limit`` levels a side."""
        sm = self.market(spec)
        dec = sm.decimals(spec)
        return {
            "lastUpdateId": sm.update_id,
            "bids": dec.rows(sm.book.bids(limit)),
            "asks": dec.rows(sm.book.asks(limit)),
        }

    def klines(self, spec: SymbolSpec, name: str) -> list[dict[str, Any]]:
        """Candles of Binance interval ``name`` (oldest first; see api.market.intervals).
        A derived interval's oldest bucket is left out when the feed history may have
        lost its beginning."""
        base = intervals.base_of(name)
        assert base is not None
        hist = self.market(spec).candles[base]
        if name in intervals.NATIVE:
            return [intervals.native(c.body) for c in hist]
        rows = intervals.aggregate(name, (c.body for c in hist), self.clock_ns())
        return rows[1:] if len(hist) >= CANDLE_HISTORY_MAX else rows

    def ticker(self, spec: SymbolSpec) -> dict[str, Any]:
        """The FULL 24h ticker of a symbol."""
        sm = self.market(spec)
        return render.ticker_24h(spec, sm.rolling(self.clock_ns()), sm.book.bbo, sm.last_trade())

    def mini_ticker(self, spec: SymbolSpec) -> dict[str, Any]:
        """The MINI 24h ticker of a symbol."""
        sm = self.market(spec)
        return render.ticker_mini(spec, sm.rolling(self.clock_ns()), sm.last_trade())

    def listed(self) -> list[SymbolSpec]:
        """Every symbol both listed and followed."""
        return [s for s in self.registry.all() if s.symbol_id in self.symbols]
