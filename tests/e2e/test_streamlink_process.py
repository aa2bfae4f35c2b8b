"""The stream trade link against the real core process: kill -9 mid-flow, restart on
the same path, the client reconnects, and resent orders are answered with their
first outcome (exactly once across the crash)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bindings.streamlink import LinkLostError, StreamTradeClient
from engine.wire import commands
from engine.wire.frames import STATUS_APPLIED, STATUS_DUPLICATE
from tests.e2e.coreproc import running_core
from tests.gateway.gwproc import setup_market

ORDERS = 30  # within the 32 NEWs a user's retries are recognised by (docs/commands.md)


def request_retrying(cli: StreamTradeClient, frame: np.ndarray) -> np.ndarray:
    """One request; a link lost by the restart is retried (the client reconnects)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return cli.request(frame, timeout_ms=10_000)
        except (LinkLostError, TimeoutError):
            if time.monotonic() > deadline:
                raise


def test_kill9_mid_flow_then_resend_is_exactly_once(tmp_path: Path) -> None:
    with running_core(tmp_path, "fsync") as core:
        setup_market(core, users=(1,))
        assert core.trade_link.startswith("unix:")
        cli = StreamTradeClient(core.trade_link)
        frames = [
            commands.new_limit(k + 1, 1, 1, 2, 5_000 + k, 1) for k in range(ORDERS)
        ]  # asks at distinct prices, nobody bids: nothing trades
        for f in frames:
            cli.send(f)
        first = cli.recv_replies()  # at least one answered, the rest in flight
        core.kill9()
        applied_before = {int(r["order_id"]) for r in first if r["status"] == STATUS_APPLIED}
        try:
            while True:
                for r in cli.recv_replies(timeout_ms=2000):
                    if r["status"] == STATUS_APPLIED:
                        applied_before.add(int(r["order_id"]))
        except TimeoutError:  # LinkLostError included: the core is dead
            pass
        assert applied_before, "no order was acknowledged before the kill"
        core.start()
        again = {int(f["order_id"][0]): request_retrying(cli, f)[0] for f in frames}
        for oid, rep in again.items():
            if oid in applied_before:
                assert rep["status"] == STATUS_DUPLICATE, (oid, rep)
            else:  # never journaled (or journaled, its reply lost with the core)
                assert rep["status"] in (STATUS_APPLIED, STATUS_DUPLICATE), (oid, rep)
        # A second resend: every one was applied exactly once.
        for f in frames:
            assert request_retrying(cli, f)[0]["status"] == STATUS_DUPLICATE
        with core.client() as adm:
            _avail, held = adm.control("balance", user_id=1, asset_id=1)["balance"]
        assert held == ORDERS  # one lot of base held per live ask, each ask once
        assert cli.connects == 2
        cli.close()
