"""Crash safety: cancel-on-disconnect, kill -9 of the gateway and of the core mid-flow.

After every restart the replayed session stream accounts for every acknowledged order:
it starts with exactly the messages received before the crash (same seq, same
content), contains what happened while the gateway was down, and each order's
stream-derived open quantity matches what the gateway reports for it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bindings.client import CoreClient
from bindings.gateway_client import GatewayClient
from bursa_wire.gw_layout import (
    STATE_CANCELED,
    STATE_OPEN,
    STATE_PENDING,
    STATE_REJECTED,
    STATE_UNKNOWN,
)
from engine.wire import commands
from gateway.wire import codec
from pyx.enums import Reason, Side
from tests.e2e.coreproc import CoreProcess
from tests.gateway.gwproc import GatewayProcess, make_key, setup_market


def login(gw: GatewayProcess, key: Path, cod: bool = False, next_seq: int = 1) -> GatewayClient:
    c = GatewayClient("127.0.0.1", gw.port, key_file=str(key), cancel_on_disconnect=cod)
    deadline = time.monotonic() + 10
    while True:
        try:
            c.login(next_seq=next_seq)
            return c
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def drain(c: GatewayClient, quiet: float = 1.0) -> list[codec.Msg]:
    return list(c.messages(timeout=quiet))


def leaves_by_order(stream: list[codec.Msg]) -> dict[int, int]:
    """Open quantity of every order as the stream tells it."""
    out: dict[int, int] = {}
    for m in stream:
        if m.name in ("ACCEPTED", "EXECUTED", "REDUCED", "REPLACED"):
            out[m.cl_ord_id] = m.leaves_lots
        elif m.name in ("CANCELED", "REJECTED"):
            out[m.cl_ord_id] = 0
    return out


def check_accounted(c: GatewayClient, before: list[codec.Msg], after: list[codec.Msg]) -> None:
    """``after`` (replayed from seq 1) extends ``before`` and agrees with order status."""
    assert [m.seq for m in after] == list(range(1, len(after) + 1)), "gap or duplicate"
    assert [(m.seq, m.name, m.values) for m in after[: len(before)]] == [
        (m.seq, m.name, m.values) for m in before
    ]
    acked = {m.cl_ord_id for m in before if m.name == "ACCEPTED"}
    leaves = leaves_by_order(after)
    assert acked <= set(leaves)
    for cl in sorted(leaves):
        c.order_status(cl)
    status = {m.cl_ord_id: m for m in c.messages(timeout=1.0) if m.name == "ORDER_STATUS_REPLY"}
    for cl, lv in leaves.items():
        assert status[cl].leaves_lots == lv, (cl, status[cl].values, lv)


def test_cancel_on_disconnect(gw: GatewayProcess, key1: Path, key2: Path) -> None:
    a = login(gw, key1, cod=True)
    b = login(gw, key2, cod=False)
    a.enter_order(1, symbol_id=1, side=Side.SELL, price_ticks=500, qty_lots=2)
    b.enter_order(1, symbol_id=1, side=Side.BUY, price_ticks=400, qty_lots=2)
    assert a.recv().name == b.recv().name == "ACCEPTED"
    a.close()
    b.close()
    time.sleep(0.5)
    a = login(gw, key1, next_seq=2)
    m = a.recv()
    assert (m.name, m.cl_ord_id, m.qty_lots, m.reason) == ("CANCELED", 1, 2, Reason.USER_CANCELED)
    b = login(gw, key2, next_seq=2)
    b.order_status(1)
    m = b.recv()
    assert (m.name, m.state, m.leaves_lots) == ("ORDER_STATUS_REPLY", STATE_OPEN, 2)
    a.order_status(1)
    assert a.recv().state == STATE_CANCELED


def test_heartbeat_timeout_cancels_on_disconnect(gw: GatewayProcess, key1: Path) -> None:
    a = login(gw, key1, cod=True)
    a.enter_order(7, symbol_id=1, side=Side.SELL, price_ticks=900, qty_lots=1)
    assert a.recv().name == "ACCEPTED"
    time.sleep(2.5)  # silent: no heartbeats for > 3 x 500 ms
    a.auto_relogin = True
    m = a.recv(timeout=10)  # relogin from the next seq: the COD cancel is replayed
    assert (m.name, m.cl_ord_id) == ("CANCELED", 7) and a.logins == 2


def test_kill9_gateway_mid_flow(
    gw: GatewayProcess, core: CoreProcess, key1: Path, key2: Path
) -> None:
    a = login(gw, key1)
    b = login(gw, key2)
    for i in range(1, 21):
        a.enter_order(i, symbol_id=1, side=Side.SELL, price_ticks=1000 + i, qty_lots=3)
    for i in range(1, 11):
        b.enter_order(i, symbol_id=1, side=Side.BUY, price_ticks=1000 + i, qty_lots=2)
    # Killed as soon as the first report reaches a (not after a fixed sleep, which a
    # loaded machine can outlast before the gateway reads anything): some of b's
    # orders may not have been processed.
    first = a.recv(timeout=30)
    gw.kill9()
    before_a = [first, *drain(a, 0.5)]
    before_b = drain(b, 0.5)
    assert any(m.name == "ACCEPTED" for m in before_a)
    # While the gateway is down, another participant trades against user 1's asks.
    with CoreClient(str(core.ready["trade"])) as direct:
        with CoreClient(str(core.ready["admin"])) as adm:
            adm.add_user(3)
        with CoreClient(str(core.ready["fund"])) as fund:
            fund.deposit(31, 3, 2, 10**12)
        rep = direct.one(commands.new_limit(10**12, 3, 1, Side.BUY, 1020, 60, tif=2))
        assert rep["status"] == 1
    gw.start()
    a2 = login(gw, key1, next_seq=1)
    after_a = drain(a2)
    check_accounted(a2, before_a, after_a)
    # The executions against user 3 happened while the gateway was down: replayed.
    execs = [m for m in after_a if m.name == "EXECUTED"]
    assert len(execs) > len([m for m in before_a if m.name == "EXECUTED"])
    with CoreClient(str(core.ready["admin"])) as adm:
        avail, held = adm.control("balance", user_id=1, asset_id=1)["balance"]
    assert sum(m.qty_lots for m in execs) == 10**12 - avail - held  # base sold, lot = 1
    b2 = login(gw, key2, next_seq=1)
    check_accounted(b2, before_b, drain(b2))


@pytest.mark.parametrize("link", ["stream", "zmq"])
def test_kill9_core_mid_flow(tmp_path: Path, link: str) -> None:
    """The gateway on the core's stream trade link (it reconnects to the restarted core
    at the same path) and on the zmq trade socket: the same guarantees."""
    (tmp_path / "logs").mkdir()
    core = CoreProcess.on_fixed_ports(
        tmp_path / "core", tmp_path / "logs", "fsync", stream=link == "stream"
    )
    core.start()
    setup_market(core)
    # Long heartbeats: the blocking test clients do not read while the core restarts.
    gw = GatewayProcess(
        core, tmp_path / "gw.db", tmp_path / "logs",
        "--heartbeat-ms", "20000", "--core-reply-timeout-ms", "2000",
    )  # fmt: skip
    gw.start(port=0)
    assert gw.ready["config"]["core_trade_endpoint"].startswith("unix:") == (link == "stream")
    try:
        ka = make_key(gw.db, tmp_path / "a.key", 1)
        kb = make_key(gw.db, tmp_path / "b.key", 2)
        a, b = login(gw, ka), login(gw, kb)
        for i in range(1, 31):
            a.enter_order(i, symbol_id=1, side=Side.SELL, price_ticks=2000 + i, qty_lots=2)
            b.enter_order(i, symbol_id=1, side=Side.BUY, price_ticks=2000 + i, qty_lots=1)
            if i == 15:
                core.kill9()
        before_a, before_b = drain(a, 2.0), drain(b, 2.0)
        core.start()
        # Orders entered while the core is down are refused, never queued for later.
        a.enter_order(99, symbol_id=1, side=Side.SELL, price_ticks=5000, qty_lots=1)
        time.sleep(1.0)
        a.enter_order(100, symbol_id=1, side=Side.SELL, price_ticks=5000, qty_lots=1)
        more_a = drain(a, 2.0)
        assert any(m.cl_ord_id == 100 and m.name == "ACCEPTED" for m in more_a)
        a.close()
        b.close()
        time.sleep(0.3)
        a2, b2 = login(gw, ka), login(gw, kb)
        check_accounted(a2, before_a + more_a, drain(a2))
        check_accounted(b2, before_b, drain(b2))
        # Every order sent, acknowledged or not, ends known (orders whose command was
        # lost with the core are resolved by a cancel probe after the reply timeout).
        deadline = time.monotonic() + 30
        for c, cls in ((a2, [*range(1, 31), 99, 100]), (b2, list(range(1, 31)))):
            while True:
                for cl in cls:
                    c.order_status(cl)
                st = [m for m in c.messages(timeout=1.0) if m.name == "ORDER_STATUS_REPLY"]
                if all(m.state != STATE_PENDING for m in st) or time.monotonic() > deadline:
                    break
            assert len(st) == len(cls)
            assert all(m.state not in (STATE_PENDING, STATE_UNKNOWN) for m in st), [
                (m.cl_ord_id, m.state) for m in st
            ]
    finally:
        gw.cleanup()
        core.cleanup()


def test_shutdown_cancels_on_disconnect(gw: GatewayProcess, key1: Path) -> None:
    a = login(gw, key1, cod=True)
    a.enter_order(5, symbol_id=1, side=Side.SELL, price_ticks=777, qty_lots=1)
    assert a.recv().name == "ACCEPTED"
    assert gw.stop() == 0
    gw.start()
    a2 = login(gw, key1, next_seq=2)
    m = a2.recv()
    assert (m.name, m.cl_ord_id, m.reason) == ("CANCELED", 5, Reason.USER_CANCELED)


def test_order_lost_with_the_core_is_resolved(tmp_path: Path) -> None:
    """A NEW the core received but never journaled (stopped, then killed) is resent or
    probed after the reply timeout: it ends either placed once (the resend reached the
    restarted core) or REJECTED(CORE_UNAVAILABLE), never left pending."""
    import signal

    from gateway.wire.codes import GwReason

    (tmp_path / "logs").mkdir()
    core = CoreProcess.on_fixed_ports(tmp_path / "core", tmp_path / "logs", "fsync")
    core.start()
    setup_market(core)
    gw = GatewayProcess(
        core, tmp_path / "gw.db", tmp_path / "logs",
        "--heartbeat-ms", "20000", "--core-reply-timeout-ms", "1000",
    )  # fmt: skip
    gw.start(port=0)
    try:
        a = login(gw, make_key(gw.db, tmp_path / "a.key", 1))
        a.enter_order(1, symbol_id=1, side=Side.SELL, price_ticks=3000, qty_lots=1)
        assert a.recv().name == "ACCEPTED"
        assert core.proc is not None
        core.proc.send_signal(signal.SIGSTOP)
        a.enter_order(2, symbol_id=1, side=Side.SELL, price_ticks=3001, qty_lots=1)
        time.sleep(0.5)
        core.kill9()  # order 2 was queued to the stopped core, never journaled
        core.start()
        m = a.recv(timeout=30)
        assert m.cl_ord_id == 2
        assert m.name == "ACCEPTED" or (m.name, m.reason) == (
            "REJECTED",
            GwReason.CORE_UNAVAILABLE,
        )
        a.order_status(1)
        assert a.recv().state == STATE_OPEN  # the journaled order survived the crash
        a.order_status(2)
        st = a.recv()
        assert st.state == (STATE_OPEN if m.name == "ACCEPTED" else STATE_REJECTED)
        assert not [x for x in a.messages(timeout=0.5) if x.cl_ord_id == 2]  # nothing more
    finally:
        gw.cleanup()
        core.cleanup()


def test_resend_after_lost_reply_is_answered_duplicate(tmp_path: Path) -> None:
    """A NEW not answered within the reply timeout is resent byte for byte; when the
    first copy was applied, the core answers the resend DUPLICATE: one order, one
    ACCEPTED, never two."""
    import signal

    (tmp_path / "logs").mkdir()
    core = CoreProcess(tmp_path / "core", tmp_path / "logs", "async")
    core.start()
    setup_market(core)
    gw = GatewayProcess(
        core, tmp_path / "gw.db", tmp_path / "logs",
        "--heartbeat-ms", "20000", "--core-reply-timeout-ms", "2000",
    )  # fmt: skip
    gw.start(port=0)
    try:
        a = login(gw, make_key(gw.db, tmp_path / "a.key", 1))
        assert core.proc is not None
        # Stopped for 3 s: no reply within 2 s, the NEW is resent; both copies are
        # answered well before the resend's own timeout (4 s) would probe the order.
        core.proc.send_signal(signal.SIGSTOP)
        a.enter_order(7, symbol_id=1, side=Side.SELL, price_ticks=3000, qty_lots=1)
        time.sleep(3.0)
        core.proc.send_signal(signal.SIGCONT)
        msgs = a.messages(timeout=2.0)
        assert [(m.name, m.cl_ord_id) for m in msgs] == [("ACCEPTED", 7)]
        a.order_status(7)
        assert a.recv().state == STATE_OPEN
        err = (tmp_path / "logs" / "gw-1.err").read_text()
        assert "resent NEW answered DUPLICATE" in err
    finally:
        gw.cleanup()
        core.cleanup()
