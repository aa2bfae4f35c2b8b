"""Fuzzing: atheris on the decoders (100,000 inputs), random and mutated sessions
against a live gateway (no crash, no hang, a clear reject or disconnect, core state
unchanged by garbage)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from bindings.client import CoreClient
from bindings.gateway_client import GatewayClient, login_frame, order_frame
from gateway import keys
from gateway.wire import codec
from tests.e2e.coreproc import REPO, CoreProcess
from tests.gateway.gwproc import GatewayProcess

RUNS = 100_000


def test_atheris_decoders() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tests.gateway.fuzz_decoders", f"-runs={RUNS}", "-seed=1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Done {RUNS} runs" in out.stderr


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 2:
            del b[pos : pos + rng.randint(1, 8)]
        else:
            b = b[:pos]
    return bytes(b)


def session_answer(port: int, data: bytes) -> list[str]:
    """Send ``data``, then read until EOF (or 1.5 s of quiet); the messages' names."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    names: list[str] = []
    try:
        s.sendall(data)
        r = codec.FrameReader()
        s.settimeout(1.5)
        while True:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            for t, b in r.feed(chunk):
                names.append(codec.decode(t, b, inbound=False).name)
    finally:
        s.close()
    return names


def state_hash(core: CoreProcess) -> str:
    with CoreClient(str(core.ready["admin"])) as adm:
        return str(adm.control("state_hash")["state_hash"])


def test_random_and_mutated_sessions(gw: GatewayProcess, core: CoreProcess, key1: Path) -> None:
    rng = random.Random(17)
    kid, priv = keys.read_key_file(key1)
    before = state_hash(core)
    # Garbage and mutated logins: refused or disconnected, the core never touched.
    for i in range(60):
        login = login_frame(kid, priv, 1, True)
        orders = b"".join(order_frame(j, 1, 1, 1, price_ticks=10) for j in range(3))
        data = rng.randbytes(rng.randint(1, 300)) if i % 2 else mutate(rng, login) + orders
        names = session_answer(gw.port, data)
        assert not names or names[-1] in ("LOGIN_REJECTED", "END_OF_SESSION", "LOGIN_ACCEPTED")
        if "LOGIN_ACCEPTED" in names:  # a mutation that left the login intact
            before = state_hash(core)
        time.sleep(0.05)  # stay under the per-address login rate
    assert state_hash(core) == before
    # Valid logins followed by mutated application traffic: the gateway survives.
    for _ in range(30):
        body = b"".join(
            order_frame(rng.randint(1, 50), 1, rng.choice((1, 2)), rng.randint(0, 5),
                        price_ticks=rng.randint(0, 2000))
            for _ in range(5)
        ) + codec.encode("CANCEL_ORDER", cl_ord_id=rng.randint(1, 50))  # fmt: skip
        names = session_answer(gw.port, login_frame(kid, priv, 0, True) + mutate(rng, body))
        assert names and names[0] in ("LOGIN_ACCEPTED", "LOGIN_REJECTED")
        time.sleep(0.05)
    good = GatewayClient("127.0.0.1", gw.port, key_file=str(key1))
    good.login(next_seq=0)
    good.order_status(424242)
    assert good.recv().name == "ORDER_STATUS_REPLY"
    assert gw.proc is not None and gw.proc.poll() is None
