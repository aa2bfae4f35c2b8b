"""Every gateway reason code is reachable from the client (one scenario per code),
plus throttles and core rejects through the door."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bindings.gateway_client import (
    GatewayClient,
    LoginRejectedError,
    SessionEndedError,
    login_frame,
)
from gateway.wire import codec
from gateway.wire.codes import GwReason
from pyx.enums import Reason, Side, Tif
from tests.e2e.coreproc import CoreProcess
from tests.gateway.gwproc import GatewayProcess, make_key, setup_market
from tests.gateway.raw import Raw

LIMITS = (
    "--heartbeat-ms", "400", "--login-timeout-ms", "800",
    "--max-msgs-per-s", "60", "--flood-factor", "4", "--max-orders-per-s", "20",
    "--max-open-orders", "30", "--max-user-open-orders", "1000",
    "--max-logins-per-s-per-ip", "30", "--max-out-buffer", "65536", "--socket-sndbuf", "16384",
)  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Path]]:
    tmp = tmp_path_factory.mktemp("rejects")
    (tmp / "logs").mkdir()
    core = CoreProcess(tmp / "core", tmp / "logs", "async")
    core.start()
    setup_market(core, users=(1, 2, 3), funds=10**9)
    gw = GatewayProcess(core, tmp / "gw.db", tmp / "logs", *LIMITS)
    gw.start(port=0)
    yield gw, tmp
    gw.cleanup()
    core.cleanup()


_n = itertools.count(1)


def key(
    env: tuple[GatewayProcess, Path], user: int = 1, perm: str = "trade", ips: tuple[str, ...] = ()
) -> Path:
    return make_key(env[0].db, env[1] / f"r{next(_n)}.key", user, perm, ips)


def client(env: tuple[GatewayProcess, Path], **kw: object) -> GatewayClient:
    c = GatewayClient("127.0.0.1", env[0].port, key_file=str(key(env, **kw)), auto_relogin=False)  # type: ignore[arg-type]
    c.login()
    return c


def fresh_second() -> None:
    """Start at the beginning of the next one-second throttle window (CLOCK_MONOTONIC is
    shared with the gateway process)."""
    time.sleep(0.1)
    while time.monotonic() % 1.0 > 0.05:
        time.sleep(0.01)


def login_code(env: tuple[GatewayProcess, Path], **kw: object) -> int:
    c = GatewayClient("127.0.0.1", env[0].port, key_file=str(key(env)), auto_relogin=False)
    for k, v in kw.items():
        setattr(c, k, v)
    with pytest.raises(LoginRejectedError) as e:
        c.login()
    return e.value.reason


def end_code(c: GatewayClient) -> int:
    with pytest.raises(SessionEndedError) as e:
        while True:
            c.recv(timeout=10)
    return e.value.reason


Env = tuple[GatewayProcess, Path]


def s_bad_signature(env: Env) -> int:
    return login_code(env, private_key=bytes(32))


def s_unknown_key(env: Env) -> int:
    return login_code(env, key_id=987_654)


def s_key_revoked(env: Env) -> int:
    from gateway import keys

    k = key(env)
    kid, _ = keys.read_key_file(k)
    store = keys.KeyStore(keys.connect(env[0].db))
    store.revoke(kid)
    store.con.close()
    with pytest.raises(LoginRejectedError) as e:
        GatewayClient("127.0.0.1", env[0].port, key_file=str(k)).login()
    return e.value.reason


def s_stale_timestamp(env: Env) -> int:
    r = Raw(env[0].port, key(env))
    r.send(login_frame(r.key_id, r.priv, 1, False, ts_ns=time.time_ns() - 10**12))
    return int(r.expect("LOGIN_REJECTED").reason)


def s_nonce_reused(env: Env) -> int:
    k = key(env)
    r = Raw(env[0].port, k)
    r.send(login_frame(r.key_id, r.priv, 1, False, nonce=5))
    r.expect("LOGIN_ACCEPTED")
    r.close()
    time.sleep(0.2)
    r = Raw(env[0].port, k)
    r.send(login_frame(r.key_id, r.priv, 1, False, nonce=5))
    return int(r.expect("LOGIN_REJECTED").reason)


def s_already_logged_in(env: Env) -> int:
    k = key(env)
    first = GatewayClient("127.0.0.1", env[0].port, key_file=str(k))
    first.login()
    with pytest.raises(LoginRejectedError) as e:
        GatewayClient("127.0.0.1", env[0].port, key_file=str(k)).login()
    first.close()
    return e.value.reason


def s_ip_not_allowed(env: Env) -> int:
    with pytest.raises(LoginRejectedError) as e:
        GatewayClient("127.0.0.1", env[0].port, key_file=str(key(env, ips=("10.0.0.9",)))).login()
    return e.value.reason


def s_invalid_sequence(env: Env) -> int:
    with pytest.raises(LoginRejectedError) as e:
        GatewayClient("127.0.0.1", env[0].port, key_file=str(key(env))).login(next_seq=99)
    return e.value.reason


def s_login_rate(env: Env) -> int:
    k = key(env)
    fresh_second()
    codes = []
    for _ in range(40):
        c = GatewayClient("127.0.0.1", env[0].port, key_file=str(k))
        try:
            c.login()
        except LoginRejectedError as e:
            codes.append(e.reason)
    time.sleep(1.0)
    return GwReason.LOGIN_RATE_EXCEEDED if GwReason.LOGIN_RATE_EXCEEDED in codes else -1


def s_read_only(env: Env) -> int:
    c = client(env, perm="read")
    c.enter_order(1, symbol_id=1, side=Side.BUY, price_ticks=10, qty_lots=1)
    m = c.recv()
    assert m.name == "REJECTED"
    c.order_status(1)  # reading is allowed
    assert c.recv().name == "ORDER_STATUS_REPLY"
    return int(m.reason)


def s_duplicate_cl_ord_id(env: Env) -> int:
    c = client(env, user=2)
    c.enter_order(1, symbol_id=1, side=Side.BUY, price_ticks=10, qty_lots=1)
    assert c.recv().name == "ACCEPTED"
    c.enter_order(1, symbol_id=1, side=Side.BUY, price_ticks=11, qty_lots=1)
    m = c.recv()
    assert m.name == "REJECTED"
    return int(m.reason)


def s_unknown_cl_ord_id(env: Env) -> int:
    a = client(env, user=2)
    a.enter_order(1, symbol_id=1, side=Side.BUY, price_ticks=10, qty_lots=1)
    assert a.recv().name == "ACCEPTED"
    b = client(env, user=3)  # another user cannot reach a's order through its ids
    b.cancel(1)
    m = b.recv()
    assert m.name == "CANCEL_REJECTED" and m.request == 1
    return int(m.reason)


def s_order_rate(env: Env) -> int:
    c = client(env, user=2)
    fresh_second()
    for i in range(25):
        c.enter_order(100 + i, symbol_id=1, side=Side.BUY, price_ticks=1, qty_lots=1, tif=Tif.IOC)
    msgs = list(c.messages(timeout=1.0))
    reasons = [int(m.reason) for m in msgs if m.name == "REJECTED"]
    assert reasons.count(GwReason.ORDER_RATE_EXCEEDED) == 5, reasons
    return GwReason.ORDER_RATE_EXCEEDED


def s_message_rate(env: Env) -> int:
    c = client(env)
    fresh_second()
    c.send_raw(b"".join(codec.encode("ORDER_STATUS", cl_ord_id=i) for i in range(70)))
    msgs = [c.recv() for _ in range(70)]
    reasons = [int(m.reason) for m in msgs]
    assert reasons.count(GwReason.MESSAGE_RATE_EXCEEDED) == 10
    return GwReason.MESSAGE_RATE_EXCEEDED


def s_open_orders(env: Env) -> int:
    c = client(env, user=2)
    cl = itertools.count(1)
    for _ in range(2):
        fresh_second()
        for _ in range(15):
            c.enter_order(next(cl), symbol_id=1, side=Side.BUY, price_ticks=5, qty_lots=1)
    assert [m.name for m in c.messages(timeout=1.0)] == ["ACCEPTED"] * 30
    c.enter_order(next(cl), symbol_id=1, side=Side.BUY, price_ticks=5, qty_lots=1)
    m = c.recv()
    assert m.name == "REJECTED"
    c.mass_cancel(1)
    return int(m.reason)


def s_order_not_open(env: Env) -> int:
    c = client(env, user=2)
    c.enter_order(1, symbol_id=1, side=Side.BUY, price_ticks=10, qty_lots=1)
    c.cancel(1)
    assert [m.name for m in c.messages(timeout=1.0)] == ["ACCEPTED", "CANCELED"]
    c.cancel(1)
    m = c.recv()
    assert m.name == "CANCEL_REJECTED"
    return int(m.reason)


def s_logout(env: Env) -> int:
    c = client(env)
    c.send_raw(codec.encode("LOGOUT"))
    return end_code(c)


def s_heartbeat_timeout(env: Env) -> int:
    r = Raw(env[0].port, key(env))
    r.login()
    r.expect("LOGIN_ACCEPTED")
    return int(r.expect("END_OF_SESSION", timeout=30).reason)


def s_malformed(env: Env) -> int:
    c = client(env)
    c.send_raw(b"\x01\x00?")
    return end_code(c)


def s_oversized(env: Env) -> int:
    c = client(env)
    c.send_raw(b"\xff\x7fU")
    return end_code(c)


def s_flood(env: Env) -> int:
    c = client(env)
    fresh_second()
    c.send_raw(b"".join(codec.encode("ORDER_STATUS", cl_ord_id=i) for i in range(300)))
    return end_code(c)


def s_login_timeout(env: Env) -> int:
    r = Raw(env[0].port)
    return int(r.expect("END_OF_SESSION", timeout=30).reason)


def s_protocol_violation(env: Env) -> int:
    r = Raw(env[0].port)
    r.send(codec.encode("CLIENT_HEARTBEAT"))
    return int(r.expect("END_OF_SESSION").reason)


def s_core_unavailable_and_shutdown(env: Env, tmp: Path, want: GwReason) -> int:
    (tmp / "logs").mkdir(exist_ok=True)
    core = CoreProcess(tmp / "core", tmp / "logs", "async")
    core.start()
    setup_market(core)
    gw = GatewayProcess(
        core, tmp / "gw.db", tmp / "logs", "--core-send-hwm", "1",
        "--max-out-buffer", "65536", "--socket-sndbuf", "16384",
    )  # fmt: skip
    gw.start(port=0)
    try:
        k = make_key(gw.db, tmp / "k.key", 1)
        if want == GwReason.SLOW_CONSUMER:
            r = Raw(gw.port, k)
            r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            r.login()
            r.expect("LOGIN_ACCEPTED")
            req = b"".join(codec.encode("ORDER_STATUS", cl_ord_id=i) for i in range(1000))
            for _ in range(400):  # never reading the answers
                try:
                    r.send(req)
                except (BrokenPipeError, ConnectionResetError):
                    # Aborted: the reason cannot be written to a full socket; the log has it.
                    return GwReason.SLOW_CONSUMER if "SLOW_CONSUMER" in gw.stderr() else -1
                time.sleep(0.002)
            return -1
        c = GatewayClient("127.0.0.1", gw.port, key_file=str(k), auto_relogin=False)
        c.login()
        if want == GwReason.SHUTDOWN:
            gw.stop()
            return end_code(c)
        core.kill9()
        for i in range(1, 6):
            c.enter_order(i, symbol_id=1, side=Side.BUY, price_ticks=10, qty_lots=1)
            time.sleep(0.2)
        rej = [m for m in c.messages(timeout=1.0) if m.name == "REJECTED"]
        assert rej
        return int(rej[0].reason)
    finally:
        gw.cleanup()
        core.cleanup()


SCENARIOS: dict[GwReason, Callable[[Env], int]] = {
    GwReason.BAD_SIGNATURE: s_bad_signature,
    GwReason.UNKNOWN_KEY: s_unknown_key,
    GwReason.KEY_REVOKED: s_key_revoked,
    GwReason.STALE_TIMESTAMP: s_stale_timestamp,
    GwReason.NONCE_REUSED: s_nonce_reused,
    GwReason.ALREADY_LOGGED_IN: s_already_logged_in,
    GwReason.IP_NOT_ALLOWED: s_ip_not_allowed,
    GwReason.INVALID_SEQUENCE: s_invalid_sequence,
    GwReason.LOGIN_RATE_EXCEEDED: s_login_rate,
    GwReason.READ_ONLY_KEY: s_read_only,
    GwReason.DUPLICATE_CL_ORD_ID: s_duplicate_cl_ord_id,
    GwReason.UNKNOWN_CL_ORD_ID: s_unknown_cl_ord_id,
    GwReason.ORDER_RATE_EXCEEDED: s_order_rate,
    GwReason.MESSAGE_RATE_EXCEEDED: s_message_rate,
    GwReason.OPEN_ORDERS_EXCEEDED: s_open_orders,
    GwReason.ORDER_NOT_OPEN: s_order_not_open,
    GwReason.LOGOUT: s_logout,
    GwReason.HEARTBEAT_TIMEOUT: s_heartbeat_timeout,
    GwReason.MALFORMED_MESSAGE: s_malformed,
    GwReason.OVERSIZED_FRAME: s_oversized,
    GwReason.FLOOD: s_flood,
    GwReason.LOGIN_TIMEOUT: s_login_timeout,
    GwReason.PROTOCOL_VIOLATION: s_protocol_violation,
}


def test_every_code_has_a_scenario() -> None:
    special = {GwReason.CORE_UNAVAILABLE, GwReason.SHUTDOWN, GwReason.SLOW_CONSUMER}
    # Needs a gateway with a small retention bound: tests/gateway/test_retention.py.
    special.add(GwReason.SEQUENCE_BEFORE_RETENTION)
    assert set(SCENARIOS) | special == set(GwReason)


@pytest.mark.parametrize("code", list(SCENARIOS), ids=lambda c: c.name)
def test_code_is_reachable(env: Env, code: GwReason) -> None:
    assert SCENARIOS[code](env) == code


@pytest.mark.parametrize(
    "code",
    [GwReason.CORE_UNAVAILABLE, GwReason.SHUTDOWN, GwReason.SLOW_CONSUMER],
    ids=lambda c: c.name,
)
def test_code_is_reachable_with_own_core(env: Env, tmp_path: Path, code: GwReason) -> None:
    assert s_core_unavailable_and_shutdown(env, tmp_path, code) == code


def test_core_rejects_come_through_with_the_core_code(env: Env) -> None:
    c = client(env, user=2)
    c.enter_order(1, symbol_id=1, side=Side.BUY, price_ticks=10, qty_lots=0)
    c.enter_order(2, symbol_id=99, side=Side.BUY, price_ticks=10, qty_lots=1)
    c.enter_order(3, symbol_id=1, side=Side.BUY, price_ticks=10**6, qty_lots=10**5)  # funds
    c.enter_order(4, symbol_id=1, side=0, price_ticks=10, qty_lots=1)  # refused at the door
    got = sorted((c.recv() for _ in range(4)), key=lambda m: int(m.cl_ord_id))
    assert [(m.name, m.cl_ord_id) for m in got] == [
        ("REJECTED", 1),
        ("REJECTED", 2),
        ("REJECTED", 3),
        ("REJECTED", 4),
    ]
    assert [m.reason for m in got] == [
        Reason.INVALID_QTY,
        Reason.UNKNOWN_SYMBOL,
        Reason.INSUFFICIENT_FUNDS,
        Reason.INVALID_SIDE,
    ]


def test_replace_reduce_cancel_and_their_rejects(env: Env) -> None:
    c = client(env, user=2)
    c.enter_order(1, symbol_id=1, side=Side.BUY, price_ticks=10, qty_lots=5)
    assert c.recv().name == "ACCEPTED"
    c.replace(1, 11, 5)
    m = c.recv()
    assert (m.name, m.price_ticks, m.leaves_lots) == ("REPLACED", 11, 5)
    c.replace(1, 11, 5)
    m = c.recv()
    assert (m.name, m.reason, m.request) == ("CANCEL_REJECTED", Reason.REPLACE_NO_CHANGE, 2)
    c.reduce(1, 2)
    m = c.recv()
    assert (m.name, m.qty_lots, m.leaves_lots) == ("REDUCED", 3, 2)
    c.reduce(1, 4)
    m = c.recv()
    assert (m.name, m.reason, m.request) == ("CANCEL_REJECTED", Reason.REDUCE_NOT_SMALLER, 3)
    c.order_status(1)
    m = c.recv()
    assert (m.name, m.state, m.leaves_lots, m.price_ticks) == ("ORDER_STATUS_REPLY", 2, 2, 11)
    c.cancel(1)
    m = c.recv()
    assert (m.name, m.qty_lots, m.reason) == ("CANCELED", 2, Reason.USER_CANCELED)


def test_mass_cancel_ack_counts(env: Env) -> None:
    c = client(env, user=3)
    for i in range(1, 4):
        c.enter_order(i, symbol_id=1, side=Side.SELL, price_ticks=10**5 + i, qty_lots=1)
    assert [m.name for m in c.messages(timeout=1.0)] == ["ACCEPTED"] * 3
    c.mass_cancel(77, symbol_id=1, side=Side.SELL)
    msgs = list(c.messages(timeout=1.0))
    assert sorted(m.name for m in msgs) == ["CANCELED"] * 3 + ["MASS_CANCEL_ACK"]
    ack = next(m for m in msgs if m.name == "MASS_CANCEL_ACK")
    assert (ack.request_id, ack.canceled, ack.reason) == (77, 3, 0)
    assert all(m.reason == Reason.MASS_CANCELED for m in msgs if m.name == "CANCELED")
    c.mass_cancel(78, side=9)
    ack = c.recv()
    assert (ack.name, ack.reason) == ("MASS_CANCEL_ACK", Reason.INVALID_SIDE)
