"""Session conformance: scripted scenarios modeled on QuickFIX's session acceptance
tests, adapted to this protocol (login, sequence numbers, replay, heartbeats,
logout, framing), against a real gateway in front of a real core."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bindings.gateway_client import login_frame
from gateway import keys
from gateway.wire import codec
from gateway.wire.codes import GwReason
from tests.e2e.coreproc import CoreProcess
from tests.gateway.gwproc import GatewayProcess, make_key, setup_market
from tests.gateway.raw import Raw

HB_MS = 300
KeyFactory = Callable[..., Path]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Path]]:
    tmp = tmp_path_factory.mktemp("session")
    (tmp / "logs").mkdir()
    core = CoreProcess(tmp / "core", tmp / "logs", "async")
    core.start()
    setup_market(core, users=(1, 2, 3))
    gw = GatewayProcess(
        core, tmp / "gw.db", tmp / "logs",
        "--heartbeat-ms", str(HB_MS), "--login-timeout-ms", "800",
        "--max-out-buffer", "65536", "--socket-sndbuf", "16384", "--max-logins-per-s-per-ip", "40",
    )  # fmt: skip
    gw.start(port=0)
    yield gw, tmp
    gw.cleanup()
    core.cleanup()


_n = itertools.count(1)


@pytest.fixture
def newkey(env: tuple[GatewayProcess, Path]) -> KeyFactory:
    gw, tmp = env

    def make(user: int = 1, perm: str = "trade", ips: tuple[str, ...] = ()) -> Path:
        return make_key(gw.db, tmp / f"k{next(_n)}.key", user, perm, ips)

    return make


@pytest.fixture
def port(env: tuple[GatewayProcess, Path]) -> int:
    return env[0].port


def logged_in(port: int, key: Path, next_seq: int = 1, cod: bool = False) -> tuple[Raw, codec.Msg]:
    r = Raw(port, key)
    r.login(next_seq, cod)
    return r, r.expect("LOGIN_ACCEPTED")


def produce(r: Raw, n: int, start_cl: int = 1) -> list[codec.Msg]:
    """n ORDER_STATUS queries -> n sequenced replies (cheap sequenced traffic)."""
    r.send(b"".join(codec.encode("ORDER_STATUS", cl_ord_id=start_cl + i) for i in range(n)))
    return r.app(n)


# ------------------------------------------------------------------ login


def test_login_fresh_session(port: int, newkey: KeyFactory) -> None:
    _r, acc = logged_in(port, newkey(3))
    assert (acc.first_seq, acc.last_seq, acc.user_id, acc.heartbeat_ms) == (1, 0, 3, HB_MS)


def test_login_next_seq_zero_means_new_messages_only(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    r, _ = logged_in(port, k)
    produce(r, 3)
    r.close()
    r2, acc = logged_in(port, k, next_seq=0)
    assert (acc.first_seq, acc.last_seq) == (4, 3)
    assert produce(r2, 1)[0].seq == 4


def test_bad_signature(port: int, newkey: KeyFactory) -> None:
    r = Raw(port, newkey())
    frame = bytearray(codec.encode("LOGIN", key_id=r.key_id, next_seq=1, ts_ns=time.time_ns(),
                                   nonce=1, signature=b"\x07" * 64))  # fmt: skip
    r.send(bytes(frame))
    r.expect_reject(GwReason.BAD_SIGNATURE)


def test_tampered_login_field_breaks_signature(port: int, newkey: KeyFactory) -> None:
    r = Raw(port, newkey())
    from bindings.gateway_client import login_frame

    frame = bytearray(login_frame(r.key_id, r.priv, 1, False))
    frame[3 + 8] ^= 1  # next_seq changed after signing
    r.send(bytes(frame))
    r.expect_reject(GwReason.BAD_SIGNATURE)


def test_unknown_key(port: int, newkey: KeyFactory) -> None:
    r = Raw(port, newkey())
    r.key_id += 10_000
    r.login()
    r.expect_reject(GwReason.UNKNOWN_KEY)


def test_revoked_key(port: int, newkey: KeyFactory, env: tuple[GatewayProcess, Path]) -> None:
    from bursa import admin

    k = newkey()
    r = Raw(port, k)
    assert admin.main(["apikey", "--db", str(env[0].db), "revoke", str(r.key_id)]) == 0
    r.login()
    r.expect_reject(GwReason.KEY_REVOKED)


@pytest.mark.parametrize("skew_s", [-3600, 3600])
def test_stale_timestamp(port: int, newkey: KeyFactory, skew_s: int) -> None:
    r = Raw(port, newkey())
    r.login(ts_ns=time.time_ns() + skew_s * 10**9)
    r.expect_reject(GwReason.STALE_TIMESTAMP)


def test_nonce_reused(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    r, _ = logged_in(port, k)
    r.send(codec.encode("LOGOUT"))
    r.expect_end(GwReason.LOGOUT)
    for expect in (None, GwReason.NONCE_REUSED):
        r = Raw(port, k)
        r.login(nonce=424242)
        if expect is None:
            r.expect("LOGIN_ACCEPTED")
            r.close()
            time.sleep(0.2)
        else:
            r.expect_reject(expect)


def test_ip_not_allowed(port: int, newkey: KeyFactory) -> None:
    r = Raw(port, newkey(ips=("10.9.9.9",)))
    r.login()
    r.expect_reject(GwReason.IP_NOT_ALLOWED)


def test_ip_allowed(port: int, newkey: KeyFactory) -> None:
    logged_in(port, newkey(ips=("10.9.9.9", "127.0.0.1")))


def test_duplicate_login_rejected_first_session_unaffected(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    r1, _ = logged_in(port, k)
    r2 = Raw(port, k)
    r2.login()
    r2.expect_reject(GwReason.ALREADY_LOGGED_IN)
    assert produce(r1, 1)[0].seq == 1


def test_relogin_after_logout(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    r, _ = logged_in(port, k)
    produce(r, 2)
    r.send(codec.encode("LOGOUT"))
    r.expect_end(GwReason.LOGOUT)
    _r2, acc = logged_in(port, k, next_seq=3)
    assert (acc.first_seq, acc.last_seq) == (3, 2)


def test_relogin_after_dropped_connection(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    r, _ = logged_in(port, k)
    r.close()
    deadline = time.monotonic() + 5
    while True:  # the gateway notices the close within a loop turn
        r2 = Raw(port, k)
        r2.login()
        m = r2.read()
        assert m is not None
        if m.name == "LOGIN_ACCEPTED":
            break
        assert m.reason == GwReason.ALREADY_LOGGED_IN and time.monotonic() < deadline
        time.sleep(0.05)


# ------------------------------------------------------- sequence numbers


def test_sequence_numbers_start_at_one_without_gaps(port: int, newkey: KeyFactory) -> None:
    r, _ = logged_in(port, newkey())
    assert [m.seq for m in produce(r, 20)] == list(range(1, 21))


def test_relogin_at_one_replays_everything(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    r, _ = logged_in(port, k)
    first = produce(r, 10)
    r.close()
    time.sleep(0.2)
    r2, acc = logged_in(port, k, next_seq=1)
    assert (acc.first_seq, acc.last_seq) == (1, 10)
    again = r2.app(10)
    assert [(m.seq, m.values) for m in again] == [(m.seq, m.values) for m in first]


def test_relogin_at_mid_seq_replays_the_rest(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    r, _ = logged_in(port, k)
    first = produce(r, 10)
    r.close()
    time.sleep(0.2)
    r2, acc = logged_in(port, k, next_seq=6)
    assert acc.first_seq == 6
    assert [m.seq for m in r2.app(5)] == [6, 7, 8, 9, 10]
    assert [m.values for m in first[5:]] == [m.values for m in r2.app(0)] + [
        m.values for m in first[5:]
    ]


def test_relogin_at_next_seq_gets_no_replay(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    r, _ = logged_in(port, k)
    produce(r, 4)
    r.close()
    time.sleep(0.2)
    r2, acc = logged_in(port, k, next_seq=5)
    assert (acc.first_seq, acc.last_seq) == (5, 4)
    assert produce(r2, 1)[0].seq == 5


def test_relogin_at_future_seq_rejected(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    r, _ = logged_in(port, k)
    produce(r, 2)
    r.close()
    time.sleep(0.2)
    r2 = Raw(port, k)
    r2.login(next_seq=10)
    r2.expect_reject(GwReason.INVALID_SEQUENCE)


def test_future_seq_on_fresh_session_rejected(port: int, newkey: KeyFactory) -> None:
    r = Raw(port, newkey())
    r.login(next_seq=2)
    r.expect_reject(GwReason.INVALID_SEQUENCE)


def test_replay_then_live_without_gap(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    r, _ = logged_in(port, k)
    produce(r, 50)
    r.close()
    time.sleep(0.2)
    r2, _ = logged_in(port, k, next_seq=1)
    # Live traffic requested while the replay is still being sent.
    r2.send(b"".join(codec.encode("ORDER_STATUS", cl_ord_id=900 + i) for i in range(20)))
    assert [m.seq for m in r2.app(70)] == list(range(1, 71))


def test_large_replay_is_chunked_and_complete(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    r, _ = logged_in(port, k)
    for _ in range(5):
        produce(r, 1000)
    r.close()
    time.sleep(0.2)
    r2, acc = logged_in(port, k, next_seq=1)
    assert acc.last_seq == 5000
    assert [m.seq for m in r2.app(5000)] == list(range(1, 5001))


def test_logout_during_replay(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    r, _ = logged_in(port, k)
    for _ in range(4):
        produce(r, 1000)
    r.close()
    time.sleep(0.2)
    r2, _ = logged_in(port, k, next_seq=1)
    r2.send(codec.encode("LOGOUT"))
    seqs = []
    while True:
        m = r2.read()
        if m is None:
            break
        if m.spec.layer == "app":
            seqs.append(m.seq)
        elif m.name == "END_OF_SESSION":
            assert m.reason == GwReason.LOGOUT
    assert seqs == list(range(1, len(seqs) + 1))
    time.sleep(0.2)
    _r3, acc = logged_in(port, k, next_seq=len(seqs) + 1)
    assert acc.last_seq == 4000


# ------------------------------------------------------------- heartbeats


def test_heartbeat_timeout(port: int, newkey: KeyFactory) -> None:
    r, _ = logged_in(port, newkey())
    r.expect_end(GwReason.HEARTBEAT_TIMEOUT, timeout=30)


def test_heartbeats_keep_the_session_alive(port: int, newkey: KeyFactory) -> None:
    r, _ = logged_in(port, newkey())
    end = time.monotonic() + 5 * HB_MS / 1000
    while time.monotonic() < end:
        r.send(codec.encode("CLIENT_HEARTBEAT"))
        time.sleep(HB_MS / 3000)
    assert produce(r, 1)[0].seq == 1


def test_server_sends_heartbeats_when_idle(port: int, newkey: KeyFactory) -> None:
    r, _ = logged_in(port, newkey())
    r.send(codec.encode("CLIENT_HEARTBEAT"))
    m = r.read(timeout=5)
    assert m is not None and m.name == "SERVER_HEARTBEAT"


def test_login_timeout(port: int) -> None:
    r = Raw(port)
    r.expect_end(GwReason.LOGIN_TIMEOUT, timeout=30)


# ----------------------------------------------------------------- logout


def test_logout(port: int, newkey: KeyFactory) -> None:
    r, _ = logged_in(port, newkey())
    r.send(codec.encode("LOGOUT"))
    r.expect_end(GwReason.LOGOUT)


def test_message_before_login_is_a_violation(port: int) -> None:
    r = Raw(port)
    r.send(codec.encode("CLIENT_HEARTBEAT"))
    r.expect_end(GwReason.PROTOCOL_VIOLATION)


def test_order_before_login_is_a_violation(port: int) -> None:
    r = Raw(port)
    r.order(1)
    r.expect_end(GwReason.PROTOCOL_VIOLATION)


def test_second_login_in_session_is_a_violation(port: int, newkey: KeyFactory) -> None:
    r, _ = logged_in(port, newkey())
    r.login()
    r.expect_end(GwReason.PROTOCOL_VIOLATION)


# ---------------------------------------------------------------- framing


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x01\x00?",  # unknown frame type
        b"\x02\x00U?",  # unknown application message
        b"\x03\x00X\x00\x00",  # wrong body size for a known type
        b"\x01\x00A",  # a gateway-only frame type sent by the client
        codec.encode("CANCEL_ORDER", cl_ord_id=1)[:-1].replace(b"\x0a\x00", b"\x09\x00", 1),
    ],
    ids=["unknown-type", "unknown-app", "bad-size", "wrong-direction", "short-body"],
)
def test_garbled_frame(port: int, newkey: KeyFactory, garbage: bytes) -> None:
    r, _ = logged_in(port, newkey())
    r.send(garbage)
    r.expect_end(GwReason.MALFORMED_MESSAGE)


def test_zero_length_frame(port: int, newkey: KeyFactory) -> None:
    r, _ = logged_in(port, newkey())
    r.send(b"\x00\x00")
    r.expect_end(GwReason.MALFORMED_MESSAGE)


def test_oversized_frame(port: int, newkey: KeyFactory) -> None:
    r, _ = logged_in(port, newkey())
    r.send(b"\xff\xffU" + b"\x00" * 100)
    r.expect_end(GwReason.OVERSIZED_FRAME)


def test_garbage_instead_of_login(port: int) -> None:
    r = Raw(port)
    r.send(b"GET / HTTP/1.1\r\n\r\n")
    m = r.expect("END_OF_SESSION")
    assert m.reason in (GwReason.OVERSIZED_FRAME, GwReason.MALFORMED_MESSAGE)


def test_frames_split_byte_by_byte(port: int, newkey: KeyFactory) -> None:
    r = Raw(port, newkey())
    from bindings.gateway_client import login_frame

    data = login_frame(r.key_id, r.priv, 1, False) + codec.encode("ORDER_STATUS", cl_ord_id=5)
    for b in data:
        r.send(bytes([b]))
        time.sleep(0.001)
    r.expect("LOGIN_ACCEPTED")
    m = r.app(1)[0]
    assert m.name == "ORDER_STATUS_REPLY" and m.cl_ord_id == 5


def test_many_frames_in_one_segment(port: int, newkey: KeyFactory) -> None:
    r = Raw(port, newkey())
    from bindings.gateway_client import login_frame

    msgs = b"".join(codec.encode("ORDER_STATUS", cl_ord_id=i) for i in range(1, 101))
    r.send(login_frame(r.key_id, r.priv, 1, False) + msgs)
    r.expect("LOGIN_ACCEPTED")
    assert [m.cl_ord_id for m in r.app(100)] == list(range(1, 101))


def test_garbage_in_one_session_leaves_others_unaffected(port: int, newkey: KeyFactory) -> None:
    good, _ = logged_in(port, newkey())
    bad, _ = logged_in(port, newkey())
    bad.send(b"\x05\x00?????")
    bad.expect_end(GwReason.MALFORMED_MESSAGE)
    assert produce(good, 3)[-1].seq == 3


# ------------------------------------------------------------------ floods


def test_login_flood(port: int, newkey: KeyFactory) -> None:
    k = newkey()
    reasons: list[str | int] = []
    # Connect and sign first, then send the logins back to back, starting just after
    # a one-second window began (earlier tests of this gateway logged in from the same
    # address): they reach the gateway within one or two windows (120 > 2 x 50).
    # (Signed before connecting: a connection idle for login_timeout_ms is ended.)
    key_id, priv = keys.read_key_file(k)
    frames = [login_frame(key_id, priv, 1, False) for _ in range(120)]
    time.sleep(1.0 - time.monotonic() % 1.0 + 0.01)  # CLOCK_MONOTONIC, as the gateway's
    conns = []
    for f in frames:
        r = Raw(port, k)
        r.send(f)
        conns.append(r)
    accepted = []
    for r in conns:
        m = r.read()
        assert m is not None
        assert m.name in ("LOGIN_ACCEPTED", "LOGIN_REJECTED"), m.name
        reasons.append(m.name if m.name == "LOGIN_ACCEPTED" else int(m.reason))
        if m.name == "LOGIN_ACCEPTED":
            accepted.append(r)
    # One session per key: while it is live every other login is refused (for the
    # rate or because the session is live).  On a slow machine the logins can span
    # more than the heartbeat timeout (3 x HB_MS): a session accepted later is then
    # legitimate only if every earlier one was ended for its silence.
    assert accepted, str(reasons)
    for r in accepted[:-1]:
        m = r.read()
        while m is not None and m.name == "SERVER_HEARTBEAT":
            m = r.read()
        assert m is not None and m.name == "END_OF_SESSION", str(reasons)
        assert m.reason == GwReason.HEARTBEAT_TIMEOUT, str(reasons)
    assert GwReason.LOGIN_RATE_EXCEEDED in reasons
    assert set(reasons) <= {
        "LOGIN_ACCEPTED",
        GwReason.ALREADY_LOGGED_IN,
        GwReason.LOGIN_RATE_EXCEEDED,
    }
    time.sleep(1.1)  # the next window admits logins again
    _r2, _ = logged_in(port, newkey())


def test_slow_consumer_is_disconnected(port: int, newkey: KeyFactory) -> None:
    r = Raw(port, newkey())
    r.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    r.login()
    r.expect("LOGIN_ACCEPTED")
    req = b"".join(codec.encode("ORDER_STATUS", cl_ord_id=i) for i in range(1000))
    ended = False
    for _ in range(400):  # up to 400k requests, never reading the answers
        try:
            r.send(req)
        except (BrokenPipeError, ConnectionResetError):
            ended = True
            break
        time.sleep(0.002)
    assert ended, "the gateway never gave up on a client that does not read"
    other, _ = logged_in(port, newkey())
    assert produce(other, 2)[-1].seq == 2
