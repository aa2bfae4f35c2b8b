"""Python client of the market-data feed (`bursa marketdata`): an exact local book.

:class:`MarketDataClient` subscribes to channels of some symbols, syncs each
(channel, symbol) stream from a snapshot stamped with its sequence number N plus
the messages after N, detects gaps by sequence number and fills them from the
replay service (or takes a new snapshot when the gap is older than the server's
window), and keeps per symbol a :class:`LocalBook`: L3 orders by public ref in
priority order, L2 levels, BBO, status, recent trades and the latest candles.
Protocol: docs/marketdata.md.

Example::

    client = MarketDataClient("tcp://127.0.0.1:7101", "tcp://127.0.0.1:7102", symbols=[1])
    client.on("trades", lambda m: print(m["price_ticks"], m["qty_lots"]))
    while True:
        client.poll(100)
        print(client.books[1].bbo)

or ``async for msg in client: ...``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import zmq

from bursa_wire.md_codec import Msg, MsgError, decode, split
from bursa_wire.md_layout import (
    CANDLE_INTERVALS_S,
    CHANNEL_NAMES,
    Channel,
    MsgType,
    topic,
)

BUY, SELL = 1, 2
DEFAULT_TIMEOUT_MS = 10_000
# After this long without a message, ask the service for anything after each
# stream's last seq (a lost LAST message is otherwise only noticed at the next one).
IDLE_CHECK_MS = 500
TRADES_KEPT = 1000
_BY_NAME = {name: ch for ch, name in CHANNEL_NAMES.items()}

Callback = Callable[[Msg], None]


class MarketDataError(RuntimeError):
    """The service answered with an error or broke the protocol."""


class LocalBook:
    """One symbol's state built from the feed (prices in ticks, quantities in lots).

    Attributes
    ----------
    orders : dict
        L3: public ref -> ``[side, price_ticks, qty_lots]``.
    l2 : dict
        L2 from the L2 channel: side -> {price_ticks: (qty_lots, n_orders)}.
    bbo : tuple
        ``(bid_price, bid_qty, bid_orders, ask_price, ask_qty, ask_orders)`` from the BBO
        channel (0s for an empty side).
    status : Msg or None
        The latest STATUS message (tick/lot steps, band, halted or trading).
    trades : deque of Msg
        Recent TRADE messages.
    candles : dict
        interval_s -> the latest CANDLE message of that interval.
    """

    def __init__(self, symbol_id: int) -> None:
        self.symbol_id = symbol_id
        self.orders: dict[int, list[int]] = {}
        self._queues: dict[int, dict[int, dict[int, None]]] = {BUY: {}, SELL: {}}
        self.l2: dict[int, dict[int, tuple[int, int]]] = {BUY: {}, SELL: {}}
        self.bbo: tuple[int, int, int, int, int, int] = (0, 0, 0, 0, 0, 0)
        self.status: Msg | None = None
        self.trades: deque[Msg] = deque(maxlen=TRADES_KEPT)
        self.candles: dict[int, Msg] = {}

    # ----------------------------------------------------------- snapshots

    def load_l3(self, orders: Iterable[list[int]]) -> None:
        """Replace the L3 book by a snapshot's ``[ref, side, price, qty]`` rows (priority order)."""
        self.orders.clear()
        self._queues = {BUY: {}, SELL: {}}
        for ref, side, price, qty in orders:
            self._add(ref, side, price, qty)

    def load_l2(self, bids: Iterable[list[int]], asks: Iterable[list[int]]) -> None:
        """Replace L2 by a snapshot's ``[price, qty, n_orders]`` rows."""
        self.l2 = {
            BUY: {p: (q, n) for p, q, n in bids},
            SELL: {p: (q, n) for p, q, n in asks},
        }

    # ------------------------------------------------------------- updates

    def _add(self, ref: int, side: int, price: int, qty: int) -> None:
        self.orders[ref] = [side, price, qty]
        self._queues[side].setdefault(price, {})[ref] = None

    def _remove(self, ref: int) -> None:
        side, price, _qty = self.orders.pop(ref)
        q = self._queues[side][price]
        del q[ref]
        if not q:
            del self._queues[side][price]

    def apply(self, m: Msg) -> None:
        """Apply one message of any channel (in channel sequence order)."""
        t, b = m.msg_type, m.body
        if t == MsgType.L3_ADD:
            self._add(b["order_ref"], b["side"], b["price_ticks"], b["qty_lots"])
        elif t == MsgType.L3_EXECUTE:
            if b["leaves_lots"] == 0:
                self._remove(b["order_ref"])
            else:
                self.orders[b["order_ref"]][2] = b["leaves_lots"]
        elif t == MsgType.L3_CANCEL:
            self.orders[b["order_ref"]][2] = b["leaves_lots"]
        elif t == MsgType.L3_DELETE:
            self._remove(b["order_ref"])
        elif t == MsgType.L3_REPLACE:
            self._remove(b["old_order_ref"])
            self._add(b["order_ref"], b["side"], b["price_ticks"], b["qty_lots"])
        elif t == MsgType.L2_LEVEL:
            levels = self.l2[b["side"]]
            if b["qty_lots"] == 0:
                levels.pop(b["price_ticks"], None)
            else:
                levels[b["price_ticks"]] = (b["qty_lots"], b["n_orders"])
        elif t == MsgType.BBO:
            self.bbo = (
                b["bid_price_ticks"],
                b["bid_qty_lots"],
                b["bid_orders"],
                b["ask_price_ticks"],
                b["ask_qty_lots"],
                b["ask_orders"],
            )
        elif t == MsgType.TRADE:
            self.trades.append(m)
        elif t == MsgType.CANDLE:
            self.candles[b["interval_s"]] = m
        elif t == MsgType.STATUS:
            self.status = m

    # --------------------------------------------------------------- views

    def l3(self) -> list[tuple[int, int, int, int]]:
        """Every order ``(ref, side, price, qty)``: bids best first (FIFO within a level),
        then asks."""
        out = []
        for side, rev in ((BUY, True), (SELL, False)):
            qs = self._queues[side]
            for p in sorted(qs, reverse=rev):
                out += [(r, side, p, self.orders[r][2]) for r in qs[p]]
        return out

    def bids(self, depth: int = 0) -> list[tuple[int, int, int]]:
        """L2 bids ``(price, qty, n_orders)`` best first (depth 0 = all)."""
        rows = [(p, q, n) for p, (q, n) in sorted(self.l2[BUY].items(), reverse=True)]
        return rows[:depth] if depth else rows

    def asks(self, depth: int = 0) -> list[tuple[int, int, int]]:
        """L2 asks ``(price, qty, n_orders)`` best first (depth 0 = all)."""
        rows = [(p, q, n) for p, (q, n) in sorted(self.l2[SELL].items())]
        return rows[:depth] if depth else rows

    def l2_from_l3(self) -> dict[int, dict[int, tuple[int, int]]]:
        """L2 computed from the L3 orders (equals :attr:`l2` when both are in sync)."""
        out: dict[int, dict[int, tuple[int, int]]] = {BUY: {}, SELL: {}}
        for side, price, qty in self.orders.values():
            q, n = out[side].get(price, (0, 0))
            out[side][price] = (q + qty, n + 1)
        return out

    def top_of_l2(self) -> tuple[int, int, int, int, int, int]:
        """The BBO computed from :attr:`l2`."""
        b = self.bids(1)
        a = self.asks(1)
        bid = b[0] if b else (0, 0, 0)
        ask = a[0] if a else (0, 0, 0)
        return (*bid, *ask)


@dataclass
class _Stream:
    channel: Channel
    symbol_id: int
    last_seq: int = 0


class MarketDataClient:
    """SUB + service client keeping exact local books (see the module docstring).

    Parameters
    ----------
    pub_endpoint, service_endpoint : str
        The feed's PUB and service endpoints (``pub`` / ``service`` of its ready line).
    symbols : iterable of int
        Symbols to follow.
    channels : iterable of str
        Channel names (``l3``, ``l2``, ``trades``, ``bbo``, ``candles``, ``status``).
    rcvhwm : int
        Messages queued locally before ZeroMQ drops (drops become gaps, then recovered).
    """

    def __init__(
        self,
        pub_endpoint: str,
        service_endpoint: str,
        symbols: Iterable[int],
        channels: Iterable[str] = tuple(CHANNEL_NAMES.values()),
        ctx: zmq.Context[Any] | None = None,
        rcvhwm: int = 100_000,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> None:
        self.ctx = ctx or zmq.Context.instance()
        self.timeout_ms = timeout_ms
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, rcvhwm)
        self.service = self.ctx.socket(zmq.DEALER)
        self.service.setsockopt(zmq.LINGER, 0)
        self.service_endpoint = service_endpoint
        self.books: dict[int, LocalBook] = {}
        self.streams: dict[tuple[int, int], _Stream] = {}
        chans = [_BY_NAME[c] for c in channels]
        for s in symbols:
            self.books[s] = LocalBook(s)
            for ch in chans:
                self.streams[(int(ch), s)] = _Stream(ch, s)
                self.sub.setsockopt(zmq.SUBSCRIBE, topic(ch, s))
        self.sub.connect(pub_endpoint)
        self.service.connect(service_endpoint)
        self._callbacks: dict[int | None, list[Callback]] = {}
        self.gaps = 0
        self.replayed = 0
        self.snapshots = 0
        self.received = 0
        self.resyncs = 0
        self.service_timeouts = 0
        self._req_id = 0
        self._last_msg = time.monotonic()
        for st in self.streams.values():
            self._snapshot(st)

    def close(self) -> None:
        """Close both sockets."""
        self.sub.close()
        self.service.close()

    def on(self, channel: str | None, fn: Callback) -> None:
        """Call ``fn(msg)`` for every message applied on ``channel`` (None: every channel)."""
        key = None if channel is None else int(_BY_NAME[channel])
        self._callbacks.setdefault(key, []).append(fn)

    # -------------------------------------------------------------- service

    def request(self, **req: Any) -> tuple[dict[str, Any], list[Msg]]:
        """One service request: ``(json answer, messages)``.

        Raises
        ------
        TimeoutError
            No answer within ``timeout_ms``.
        MarketDataError
            A malformed answer.
        """
        self._req_id += 1
        rid = self._req_id
        self.service.send_multipart([b"", json.dumps({**req, "id": rid}).encode()])
        deadline = time.monotonic() + self.timeout_ms / 1000
        while True:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0 or not self.service.poll(left):
                raise TimeoutError(f"no answer from {self.service_endpoint}")
            parts = self.service.recv_multipart()
            if len(parts) < 2 or parts[0] != b"":
                continue
            try:
                head = json.loads(parts[1])
                if not isinstance(head, dict):
                    raise MarketDataError("service answer is not a JSON object")
                if head.get("id") != rid:
                    continue  # a late answer to a request that timed out
                return head, [decode(p) for p in parts[2:]]
            except (ValueError, MsgError) as e:
                raise MarketDataError(f"malformed service answer: {e}") from e

    def _snapshot(self, st: _Stream) -> None:
        """Reload a stream's state from a snapshot (or restart it, for trades/candles)."""
        self.snapshots += 1
        book = self.books[st.symbol_id]
        ch, sym = st.channel, st.symbol_id
        if ch == Channel.L3:
            head, _ = self._ok(op="l3", symbol=sym)
            book.load_l3(head["orders"])
        elif ch == Channel.L2:
            head, _ = self._ok(op="l2", symbol=sym)
            book.load_l2(head["bids"], head["asks"])
        elif ch == Channel.BBO:
            head, _ = self._ok(op="bbo", symbol=sym)
            bid_p, bid_q, bid_n, ask_p, ask_q, ask_n = head["bbo"]
            book.bbo = (bid_p, bid_q, bid_n, ask_p, ask_q, ask_n)
        elif ch == Channel.STATUS:
            head, msgs = self._ok(op="status", symbol=sym)
            book.status = msgs[0] if msgs else None
        elif ch == Channel.TRADES:
            head, msgs = self._ok(op="trades", symbol=sym, n=TRADES_KEPT)
            book.trades.clear()
            book.trades.extend(msgs)
        else:
            head = {"seq": None}
            for iv in CANDLE_INTERVALS_S:
                h, msgs = self._ok(op="candles", symbol=sym, interval_s=iv)
                if head["seq"] is None:
                    head = h  # the oldest stamp: later messages re-apply in order
                if msgs:
                    book.candles[iv] = msgs[-1]
        st.last_seq = int(head["seq"])

    def _ok(self, **req: Any) -> tuple[dict[str, Any], list[Msg]]:
        head, msgs = self.request(**req)
        if not head.get("ok"):
            raise MarketDataError(f"{req['op']}: {head.get('error')}")
        return head, msgs

    def _fill(self, st: _Stream, upto: int | None, out: list[Msg]) -> None:
        """Replay a stream from last_seq + 1 until past ``upto`` (None: its end)."""
        name = CHANNEL_NAMES[st.channel]
        while upto is None or st.last_seq < upto:
            head, msgs = self.request(
                op="replay", channel=name, symbol=st.symbol_id, from_seq=st.last_seq + 1
            )
            if not head.get("ok"):
                if head.get("code") == "take_snapshot":
                    self._snapshot(st)
                    return
                raise MarketDataError(f"replay: {head.get('error')}")
            for m in msgs:
                self._apply(st, m, out)
                self.replayed += 1
            if not msgs:
                return

    def _apply(self, st: _Stream, m: Msg, out: list[Msg]) -> None:
        if m.channel_seq != st.last_seq + 1:
            return
        try:
            self.books[st.symbol_id].apply(m)
        except KeyError:
            # An update for an order the local book does not have: the local state is
            # not what the server's was; start the stream over from a snapshot.
            self.resyncs += 1
            self._snapshot(st)
            return
        st.last_seq = m.channel_seq
        out.append(m)
        for key in (m.channel, None):
            for fn in self._callbacks.get(key, ()):
                fn(m)

    # ---------------------------------------------------------------- input

    def poll(self, timeout_ms: int = 0, max_msgs: int = 10_000) -> list[Msg]:
        """Receive and apply messages (gaps filled); returns them in the order applied."""
        out: list[Msg] = []
        for i in range(max_msgs):
            if not self.sub.poll(timeout_ms if i == 0 else 0):
                break
            parts = self.sub.recv_multipart()
            try:
                msgs = [decode(raw) for raw in split(parts[-1])]
            except MsgError:
                continue  # a damaged part is a lost one: the gap logic recovers it
            for m in msgs:
                self.received += 1
                st = self.streams.get((m.channel, m.symbol_id))
                if st is None or m.channel_seq <= st.last_seq:
                    continue
                if m.channel_seq > st.last_seq + 1:
                    self.gaps += 1
                    self._fill_or_wait(st, m.channel_seq - 1, out)
                self._apply(st, m, out)
        now = time.monotonic()
        if out:
            self._last_msg = now
        elif now - self._last_msg >= IDLE_CHECK_MS / 1000:
            self._last_msg = now
            self.check(out)
        return out

    def check(self, out: list[Msg] | None = None) -> list[Msg]:
        """Ask the service for anything after each stream's last seq (catches a lost
        last message); returns what was applied."""
        out = [] if out is None else out
        for st in self.streams.values():
            self._fill_or_wait(st, None, out)
        return out

    def _fill_or_wait(self, st: _Stream, upto: int | None, out: list[Msg]) -> None:
        """:meth:`_fill`, but a service that does not answer (restarting) leaves the gap
        open: later messages of the stream wait, the next idle check tries again."""
        try:
            self._fill(st, upto, out)
        except TimeoutError:
            self.service_timeouts += 1

    async def messages(self, idle_sleep_s: float = 0.002) -> AsyncIterator[Msg]:
        """Every applied message, forever (``async for m in client``)."""
        while True:
            msgs = self.poll(0)
            for m in msgs:
                yield m
            if not msgs:
                await asyncio.sleep(idle_sleep_s)

    def __aiter__(self) -> AsyncIterator[Msg]:
        return self.messages()
