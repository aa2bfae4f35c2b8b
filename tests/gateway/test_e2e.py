"""End to end: real core process, real gateway process, real TCP clients."""

from __future__ import annotations

from pathlib import Path

from bindings.client import CoreClient
from bindings.gateway_client import GatewayClient
from pyx.enums import Side
from tests.e2e.coreproc import CoreProcess
from tests.gateway.gwproc import MAKER_PPM, QUOTE, SYMBOL, TAKER_PPM, GatewayProcess


def client(gw: GatewayProcess, key: Path, **kw: object) -> GatewayClient:
    c = GatewayClient("127.0.0.1", gw.port, key_file=str(key), **kw)  # type: ignore[arg-type]
    c.login()
    return c


def test_two_users_cross(gw: GatewayProcess, core: CoreProcess, key1: Path, key2: Path) -> None:
    a, b = client(gw, key1), client(gw, key2)
    a.enter_order(11, symbol_id=SYMBOL, side=Side.SELL, price_ticks=10_000, qty_lots=5)
    acc = a.recv()
    assert acc.name == "ACCEPTED" and acc.cl_ord_id == 11 and acc.leaves_lots == 5 and acc.seq == 1
    b.enter_order(11, symbol_id=SYMBOL, side=Side.BUY, price_ticks=10_000, qty_lots=3)
    got_b = b.wait_for(lambda m: m.name == "EXECUTED")
    assert [m.name for m in got_b] == ["ACCEPTED", "EXECUTED"]
    eb = got_b[-1]
    ea = a.recv()
    assert ea.name == "EXECUTED"
    assert ea.match_id == eb.match_id != 0
    assert (ea.liquidity, eb.liquidity) == (1, 2)
    assert ea.qty_lots == eb.qty_lots == 3 and ea.price_ticks == 10_000
    assert ea.fee_minor == 30_000 * MAKER_PPM // 10**6 == 30
    assert eb.fee_minor == 30_000 * TAKER_PPM // 10**6 == 60
    assert ea.fee_asset_id == eb.fee_asset_id == QUOTE
    assert ea.leaves_lots == 2 and eb.leaves_lots == 0
    # Balances settle in the core.
    with CoreClient(str(core.ready["admin"])) as adm:
        bal_a = adm.control("balance", user_id=1, asset_id=QUOTE)["balance"]
        bal_b = adm.control("balance", user_id=2, asset_id=QUOTE)["balance"]
    assert bal_a[0] == 10**12 + 30_000 - 30
    assert bal_b[0] == 10**12 - 30_000 - 60
    # The balance query through the gateway tells the same.
    b.balance(5, QUOTE)
    bal = b.recv()
    assert bal.name == "BALANCE" and bal.available_minor == bal_b[0] and bal.reason == 0


def test_async_client_relogin_replays(gw: GatewayProcess, key1: Path, key2: Path) -> None:
    import asyncio

    from bindings.gateway_client import AsyncGatewayClient

    async def run() -> None:
        a = AsyncGatewayClient("127.0.0.1", gw.port, key_file=str(key1))
        await a.login()
        a.enter_order(1, symbol_id=SYMBOL, side=Side.SELL, price_ticks=50, qty_lots=1)
        m = await a.recv()
        assert (m.name, m.seq) == ("ACCEPTED", 1)
        # Drop the connection; a fill happens while a is away.
        assert a.writer is not None
        a.writer.transport.abort()
        b = GatewayClient("127.0.0.1", gw.port, key_file=str(key2))
        b.login()
        b.enter_order(1, symbol_id=SYMBOL, side=Side.BUY, price_ticks=50, qty_lots=1)
        assert b.wait_for(lambda m: m.name == "EXECUTED")[-1].liquidity == 2
        m = await a.recv(timeout=15)  # after the automatic re-login: replayed
        assert (m.name, m.seq, m.cl_ord_id, m.liquidity) == ("EXECUTED", 2, 1, 1)
        assert a.logins == 2
        await a.close()

    asyncio.run(run())
