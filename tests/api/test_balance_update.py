"""Binance ``balanceUpdate`` in the user data stream (api/userdata.py): the core's
funding events (deposit, withdrawal, transfer between accounts) as the signed change of
the user's spot balance, each followed by the asset's ``outboundAccountPosition``;
received through python-binance's ``user_socket`` from real core and API processes."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from binance import AsyncClient, BinanceSocketManager

from api.follow import FUNDING_KINDS
from api.userdata import spot_delta
from bindings.client import CoreClient
from bursa_wire.layout import EV_DTYPE
from engine.wire import commands
from engine.wire.commands import ReplyStatus
from gateway import keys
from pyx.enums import EvKind
from tests.api.apiproc import USDT, ApiProcess
from tests.api.fixtures import api, core, key1  # noqa: F401  (fixtures)
from tests.api.test_binance_client import client_class
from tests.e2e.coreproc import CoreProcess

pytestmark = pytest.mark.timeout(300)

USDT_MINOR = 10**6
START = 10**6 * USDT_MINOR  # setup_market funds each user with 1,000,000 USDT


async def _until_position(stream: Any, seen: list[dict[str, Any]]) -> dict[str, Any]:
    """Read events into ``seen`` up to the next outboundAccountPosition; return it."""
    while True:
        ev: dict[str, Any] = await asyncio.wait_for(stream.recv(), 20)
        seen.append(ev)
        if ev.get("e") == "outboundAccountPosition":
            return ev


def _usdt(pos: dict[str, Any]) -> tuple[str, str]:
    (b,) = [b for b in pos["B"] if b["a"] == "USDT"]
    return b["f"], b["l"]


def test_funding_events_give_balance_updates(
    api: ApiProcess,  # noqa: F811
    core: CoreProcess,  # noqa: F811
    key1: keys.ApiKey,  # noqa: F811
) -> None:
    async def run() -> list[dict[str, Any]]:
        c = await client_class(AsyncClient, api).create(
            key1.api_key, api.secrets[key1.api_key].decode()
        )
        seen: list[dict[str, Any]] = []
        positions = []
        try:
            async with BinanceSocketManager(c).user_socket() as stream:
                await asyncio.sleep(0.5)  # subscribed before the first event
                with CoreClient(str(core.ready["fund"])) as fund:
                    steps = [
                        commands.deposit(1_001, 1, USDT, 5 * USDT_MINOR),  # spot +5
                        commands.deposit(1_002, 1, USDT, 7 * USDT_MINOR, account=1),  # 0
                        commands.transfer(1, USDT, 7 * USDT_MINOR, 1, 0, ref=1_003),  # +7
                        commands.withdraw_hold(1_004, 1, USDT, 3 * USDT_MINOR),  # locked
                        commands.withdraw_commit(1_004),  # spot -3: the money left
                        commands.transfer(1, USDT, 2 * USDT_MINOR, 0, 1, ref=1_005),  # -2
                    ]
                    for i, rec in enumerate(steps):
                        rep = await asyncio.to_thread(fund.one, rec)
                        assert rep["status"] == ReplyStatus.APPLIED, (i, rep)
                        positions.append(_usdt(await _until_position(stream, seen)))
        finally:
            await c.close_connection()
        assert positions == [
            ("1000005.000000", "0.000000"),
            ("1000005.000000", "0.000000"),  # the funding account changed, not spot
            ("1000012.000000", "0.000000"),
            ("1000009.000000", "3.000000"),
            ("1000009.000000", "0.000000"),
            ("1000007.000000", "0.000000"),
        ]
        return seen

    seen = asyncio.run(run())
    kinds = [ev["e"] for ev in seen]
    # each balanceUpdate comes right before its outboundAccountPosition, as Binance
    assert kinds == [
        "balanceUpdate", "outboundAccountPosition",  # deposit
        "outboundAccountPosition",  # deposit into the funding account: spot unchanged
        "balanceUpdate", "outboundAccountPosition",  # transfer funding -> spot
        "outboundAccountPosition",  # hold: free -> locked, no balance change
        "balanceUpdate", "outboundAccountPosition",  # commit
        "balanceUpdate", "outboundAccountPosition",  # transfer spot -> funding
    ]  # fmt: skip
    updates = [ev for ev in seen if ev["e"] == "balanceUpdate"]
    assert [(u["a"], u["d"]) for u in updates] == [
        ("USDT", "5.000000"),
        ("USDT", "7.000000"),
        ("USDT", "-3.000000"),
        ("USDT", "-2.000000"),
    ]
    for u in updates:
        assert set(u) == {"e", "E", "a", "d", "T"}
        assert isinstance(u["E"], int) and u["E"] == u["T"] > 1_700_000_000_000
    assert updates == sorted(updates, key=lambda u: u["T"])


def test_spot_delta_of_every_funding_kind() -> None:
    """The mapping from each funding event to the spot balance change."""

    def ev(kind: int, amount: int, account: int, to_account: int = 0) -> tuple[Any, ...]:
        e = np.zeros(1, EV_DTYPE)
        e["kind"], e["user_id"], e["symbol_id"], e["qty_lots"] = kind, 1, USDT, amount
        e["price_ticks"], e["maker_order_id"] = account, to_account
        return tuple(e.tolist()[0])

    every = {
        EvKind.DEPOSITED,
        EvKind.WITHDRAW_HELD,
        EvKind.WITHDRAW_COMMITTED,
        EvKind.WITHDRAW_RELEASED,
        EvKind.TRANSFERRED,
    }
    assert every == FUNDING_KINDS
    cases = [
        (ev(EvKind.DEPOSITED, 5, 0), 5),
        (ev(EvKind.DEPOSITED, 5, 1), 0),
        (ev(EvKind.WITHDRAW_HELD, 5, 0), 0),
        (ev(EvKind.WITHDRAW_RELEASED, 5, 0), 0),
        (ev(EvKind.WITHDRAW_COMMITTED, 5, 0), -5),
        (ev(EvKind.WITHDRAW_COMMITTED, 5, 1), 0),
        (ev(EvKind.TRANSFERRED, 5, 0, 1), -5),
        (ev(EvKind.TRANSFERRED, 5, 1, 0), 5),
        (ev(EvKind.TRANSFERRED, 5, 1, 1), 0),
    ]
    assert [spot_delta(e) for e, _ in cases] == [want for _, want in cases]
