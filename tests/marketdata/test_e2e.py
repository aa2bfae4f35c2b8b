"""End to end: a real core, a real `bursa marketdata`, the Python client.

A long random order flow; at checkpoints the client's L3, L2 and BBO equal the
core's books rebuilt from its journal; no message carries a user or order id;
kill -9 and restart of marketdata continue the same sequence numbers byte for
byte; a drop switch and a subscriber that stops reading are recovered from.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from bindings.client import RoutedClient
from bindings.marketdata import MarketDataClient
from bursa_wire.md_codec import decode, split
from engine.wire import commands as wc
from tests.e2e.coreproc import CoreProcess
from tests.marketdata.feedkit import assert_book_matches, assert_no_private_ids
from tests.marketdata.flow import OID0, SYMBOLS, Flow, setup
from tests.marketdata.mdproc import MarketDataProcess, core_from_journal

WAIT_S = 60.0


class Stack:
    """Core + marketdata (ipc endpoints that survive a restart) + a spy on every message."""

    def __init__(self, root: Path, *md_args: str) -> None:
        self.root = root
        (root / "core").mkdir()
        self.core = CoreProcess(root / "core", root, "async")
        ready = self.core.start()
        self.sender = RoutedClient.from_ready(ready)
        self.sender.request(setup())
        self.pub = f"ipc://{root}/md.pub"
        self.service = f"ipc://{root}/md.svc"
        self.md = MarketDataProcess(root, ready, *md_args)
        self.md.start(self.pub, self.service)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self.spy = self.ctx.socket(zmq.SUB)
        self.spy.setsockopt(zmq.RCVHWM, 0)  # unbounded: the spy must see everything it can
        self.spy.setsockopt(zmq.SUBSCRIBE, b"")
        self.spy.connect(self.pub)
        self.seen: list[tuple[bytes, bytes]] = []
        self.clients: list[MarketDataClient] = []

    def client(self, rcvhwm: int = 100_000) -> MarketDataClient:
        c = MarketDataClient(self.pub, self.service, SYMBOLS, rcvhwm=rcvhwm)
        self.clients.append(c)
        return c

    def drain_spy(self) -> None:
        while self.spy.poll(0):
            tp, part = self.spy.recv_multipart()
            self.seen += [(tp, raw) for raw in split(part)]

    def settle(self, client: MarketDataClient) -> None:
        """Wait until marketdata applied every core command, then until the client has
        every message it published (tail filled from the service)."""
        last = int(self.sender.control("ping")["last_seq"])
        deadline = time.monotonic() + WAIT_S
        while client.request(op="info")[0]["core_seq"] < last:
            client.poll(10)
            self.drain_spy()
            assert time.monotonic() < deadline, "marketdata did not catch up"
        client.poll(0)
        client.check()
        self.drain_spy()

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.spy.close()
        self.sender.close()
        self.md.cleanup()
        self.core.cleanup()


@pytest.fixture
def root() -> Iterator[Path]:
    # Short path: ipc:// socket paths are limited to ~100 bytes.
    d = Path(tempfile.mkdtemp(prefix="md", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def check_books(stack: Stack, client: MarketDataClient) -> None:
    stack.settle(client)
    core = core_from_journal(stack.root / "core")
    for s in SYMBOLS:
        assert_book_matches(core, client.books[s])


def test_long_flow_exact_books_and_kill9_restart_continues_sequences(root: Path) -> None:
    stack = Stack(root)
    try:
        client = stack.client()
        flow = Flow(21)
        for round_ in range(20):
            for _ in range(20):
                stack.sender.request(flow.batch(25))
                client.poll(0)
                stack.drain_spy()
            check_books(stack, client)
            if round_ in (3, 7, 13):
                # kill -9 mid-stream (commands keep flowing while it is down).
                stack.md.kill9()
                for _ in range(5):
                    stack.sender.request(flow.batch(25))
                stack.md.start(stack.pub, stack.service)
        assert client.snapshots == len(client.streams), "a restart forced a re-snapshot"
        assert client.replayed > 0, "the restart left no gap to fill"
        # Everything published before and after the restart is what the restarted
        # process serves under the same (channel, symbol, seq): never restarted, never forked.
        by_key = {}
        for _tp, raw in stack.seen:
            m = decode(raw)
            by_key[(m.channel, m.symbol_id, m.channel_seq)] = raw
        assert len(by_key) > 5000
        streams = {(ch, s) for ch, s, _ in by_key}
        for ch, s in streams:
            name = {1: "l3", 2: "l2", 3: "trades", 4: "bbo", 5: "candles", 6: "status"}[ch]
            nxt, served = 1, {}
            while True:
                head, msgs = client.request(op="replay", channel=name, symbol=s, from_seq=nxt)
                assert head["ok"], head
                for m in msgs:
                    served[m.channel_seq] = m
                if not msgs:
                    break
                nxt = head["next_seq"]
            for (c2, s2, seq), raw in by_key.items():
                if (c2, s2) == (ch, s):
                    assert decode(raw) == served[seq]
        for _tp, raw in stack.seen:
            assert_no_private_ids(raw, flow.user_ids(), flow.next_oid, OID0)
    finally:
        stack.close()


def test_dropped_messages_are_recovered(root: Path) -> None:
    stack = Stack(root, "--test-drop-every", "5")
    try:
        client = stack.client()
        flow = Flow(22)
        for _ in range(3):
            for _ in range(10):
                stack.sender.request(flow.batch(25))
                client.poll(0)
            check_books(stack, client)
        assert client.gaps > 10 and client.replayed > 10
        # A local book that lost its orders (as a bug would) is caught and resynced.
        client.books[1].load_l3([])
        for _ in range(10):
            stack.sender.request(flow.batch(25))
            client.poll(0)
        check_books(stack, client)
        assert client.resyncs >= 1
    finally:
        stack.close()


def test_a_subscriber_that_stops_reading_stalls_nobody(root: Path) -> None:
    stack = Stack(root, "--sndhwm", "20", "--replay-window", "100")
    try:
        active = stack.client()
        stalled = stack.client(rcvhwm=5)
        raw_stalled = stack.ctx.socket(zmq.SUB)  # never reads at all
        raw_stalled.setsockopt(zmq.RCVHWM, 10)
        raw_stalled.setsockopt(zmq.SUBSCRIBE, b"")
        raw_stalled.connect(stack.pub)
        flow = Flow(23)
        t0 = time.monotonic()
        for _ in range(4):
            for _ in range(15):
                stack.sender.request(flow.batch(25))  # the core acknowledges every command
                active.poll(0)
            check_books(stack, active)
        assert time.monotonic() - t0 < WAIT_S * 4
        assert stalled.received < 2000
        # The stalled client resumes: its drops are gaps, recovered by replay or snapshot.
        before = stalled.snapshots
        stalled.poll(0)
        check_books(stack, stalled)
        # It lost messages (bounded queues dropped them) and recovered them.
        assert stalled.received < active.received
        assert stalled.replayed > 0 and stalled.snapshots > before
        raw_stalled.close()
    finally:
        stack.close()


def test_config_file_callbacks_async_iterator_bad_requests_sigterm(root: Path) -> None:
    stack = Stack(root)
    try:
        # A second feed from a TOML config ([marketdata]), flags overriding it.
        cfg = root / "md.toml"
        cfg.write_text(
            "[marketdata]\n"
            f'core_pub_endpoint = "{stack.core.pub}"\n'
            f'core_replay_endpoint = "{stack.core.replay}"\n'
            f'pub_endpoint = "ipc://{root}/cfg.pub"\n'
            f'service_endpoint = "ipc://{root}/cfg.svc"\n'
            "replay_window = 777\n"
        )
        md2 = MarketDataProcess(root, stack.core.ready, "--config", str(cfg), "--sndhwm", "123")
        ready = md2.start(f"ipc://{root}/cfg2.pub", f"ipc://{root}/cfg2.svc")
        assert ready["pub"] == f"ipc://{root}/cfg2.pub"  # the flag wins
        assert ready["config"]["replay_window"] == 777 and ready["config"]["sndhwm"] == 123
        client = MarketDataClient(ready["pub"], ready["service"], [1])
        seen: list[int] = []
        every: list[int] = []
        client.on("trades", lambda m: seen.append(m["qty_lots"]))
        client.on(None, lambda m: every.append(m.channel))
        u1, u2 = 12_345_601, 12_345_602
        stack.sender.request(wc.new_limit(OID0, u1, 1, 2, 100, 5))
        stack.sender.request(wc.new_limit(OID0 + 1, u2, 1, 1, 100, 3))

        async def first_trade() -> int:
            async for m in client:
                if m.channel == 3:
                    return int(m["qty_lots"])
            raise AssertionError("unreachable")

        assert asyncio.run(asyncio.wait_for(first_trade(), 30)) == 3
        assert seen == [3] and 1 in every and 2 in every
        # Bad requests on the socket: refused, the process keeps serving.
        svc = stack.ctx.socket(zmq.DEALER)
        svc.connect(ready["service"])
        svc.send_multipart([b"a", b"b", b"c"])
        svc.send_multipart([b"\xff"])
        for _ in range(2):
            assert svc.poll(10_000)
            ans = svc.recv_multipart()
            assert b'"ok":false' in ans[0] and b"bad_request" in ans[0]
        svc.close()
        head, _ = client.request(op="l3", symbol=1)
        assert head["ok"] and head["orders"] == [[1, 2, 100, 2]]
        client.close()
        assert md2.stop() == 0
        # A config with an unknown key is refused with a clear message.
        cfg.write_text("[marketdata]\nbogus = 1\n")
        bad = MarketDataProcess(root, stack.core.ready, "--config", str(cfg))
        with pytest.raises(RuntimeError, match="unknown"):
            bad.start(f"ipc://{root}/b.pub", f"ipc://{root}/b.svc")
    finally:
        stack.close()


def test_client_rides_out_a_feed_outage(root: Path) -> None:
    stack = Stack(root)
    try:
        client = MarketDataClient(stack.pub, stack.service, SYMBOLS, timeout_ms=300)
        stack.clients.append(client)
        flow = Flow(25)
        stack.sender.request(flow.batch(50))
        stack.md.kill9()
        stack.sender.request(flow.batch(50))
        client.check()  # the service is gone: a timeout is counted, nothing raises
        assert client.service_timeouts > 0
        stack.md.start(stack.pub, stack.service)
        stack.sender.request(flow.batch(50))
        client.timeout_ms = 10_000
        check_books(stack, client)
    finally:
        stack.close()
