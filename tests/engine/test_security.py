"""Who may reach the core (engine/security.py): loopback/ipc by default, ipc
directories 0700, CURVE required off this machine, CURVE forced on loopback."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import zmq

from bindings.client import CoreClient, EventSubscriber
from engine.security import is_local_endpoint, keygen, load_client_keys
from engine.server import CoreServer, ServerConfig
from engine.wire import commands
from engine.wire.frames import STATUS_APPLIED
from tests.e2e.coreproc import REPO

LOOPBACK = "tcp://127.0.0.1:*"


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("tcp://127.0.0.1:7001", True),
        ("tcp://127.0.0.1:*", True),
        ("tcp://127.5.6.7:1", True),
        ("tcp://localhost:7001", True),
        ("tcp://[::1]:7001", True),
        ("ipc:///tmp/x/core.sock", True),
        ("inproc://x", True),
        ("tcp://0.0.0.0:7001", False),
        ("tcp://*:7001", False),
        ("tcp://eth0:7001", False),
        ("tcp://10.0.0.5:7001", False),
        ("tcp://[::]:7001", False),
        ("pgm://eth0;239.1.1.1:5555", False),
        ("nonsense", False),
    ],
)
def test_local_endpoints(endpoint: str, local: bool) -> None:
    assert is_local_endpoint(endpoint) is local


def test_a_network_endpoint_without_curve_is_refused(tmp_path: Path) -> None:
    cfg = ServerConfig(data_dir=str(tmp_path), trade_endpoint="tcp://0.0.0.0:*")
    with pytest.raises(ValueError, match="need CURVE"):
        cfg.validate()
    with pytest.raises(ValueError, match="need CURVE"):
        ServerConfig(data_dir=str(tmp_path), curve=True).validate()
    # the process says so and exits 1, binding nothing
    out = subprocess.run(
        [
            *(sys.executable, "-m", "bursa", "core", "--data-dir", str(tmp_path / "d")),
            *("--admin-endpoint", "tcp://0.0.0.0:*"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1 and "need CURVE" in out.stderr


def test_ipc_endpoints_live_in_a_private_directory(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = ServerConfig(
        data_dir=str(tmp_path / "core"),
        trade_endpoint=f"ipc://{run}/trade",
        fund_endpoint=f"ipc://{run}/fund",
        admin_endpoint=f"ipc://{run}/admin",
        pub_endpoint=f"ipc://{run}/pub",
        replay_endpoint=f"ipc://{run}/replay",
    )
    server = CoreServer(cfg)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    try:
        assert stat.S_IMODE(run.stat().st_mode) == 0o700
        for name in ("trade", "fund", "admin", "pub", "replay"):
            assert stat.S_IMODE((run / name).stat().st_mode) == 0o600
        c = CoreClient(server.admin_endpoint)
        assert c.control("ping")["ok"]
        c.close()
    finally:
        server.stopping = True
        t.join(timeout=10)


def test_curve_forced_on_loopback(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    _, server_secret = keygen(str(keys), "core")
    _, wallet_secret = keygen(str(keys / "clients"), "wallet")
    _, stranger_secret = keygen(str(tmp_path / "other"), "stranger")
    assert stat.S_IMODE(Path(server_secret).stat().st_mode) == 0o600
    cfg = ServerConfig(
        data_dir=str(tmp_path / "core"),
        trade_endpoint=LOOPBACK,
        fund_endpoint=LOOPBACK,
        admin_endpoint=LOOPBACK,
        pub_endpoint=LOOPBACK,
        replay_endpoint=LOOPBACK,
        curve=True,
        curve_secret_key=server_secret,
        curve_clients_dir=str(keys / "clients"),
    )
    server = CoreServer(cfg)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    server_public = str(keys / "core.key")
    try:
        wallet = load_client_keys(wallet_secret, server_public)
        admin = CoreClient(server.admin_endpoint, curve=wallet)
        assert admin.control("status")["curve"] is True
        rep = admin.request(commands.add_asset(1))
        assert rep["status"][0] == STATUS_APPLIED
        # the event stream is behind the same keys
        sub = EventSubscriber(server.pub_endpoint, server.replay_endpoint, curve=wallet)
        frames, _, last = sub.replay(1)
        assert last == 1 and len(frames) == 1
        sub.close()
        # no keys, or keys the core does not know: no answer, nothing applied
        for curve in (None, load_client_keys(stranger_secret, server_public)):
            intruder = CoreClient(server.fund_endpoint, curve=curve)
            intruder.sock.setsockopt(zmq.SNDTIMEO, 500)
            # The send itself may time out (the refused handshake left no peer) or the
            # reply never comes: either way nothing reaches the core.
            with pytest.raises(TimeoutError):
                intruder.send(commands.deposit(1, 1, 1, 10**9))
                intruder.recv_replies(timeout_ms=500)
            intruder.close()
        assert admin.control("ping")["last_seq"] == 1
        admin.close()
    finally:
        server.stopping = True
        t.join(timeout=10)
    assert not t.is_alive()


def test_curve_keys_are_authorized_per_role(tmp_path: Path) -> None:
    """A wallet key in clients/fund/ reaches the fund socket, not the admin socket."""
    keys = tmp_path / "keys"
    _, server_secret = keygen(str(keys), "core")
    _, wallet_secret = keygen(str(keys / "clients" / "fund"), "wallet")
    _, op_secret = keygen(str(keys / "clients" / "admin"), "operator")
    cfg = ServerConfig(
        data_dir=str(tmp_path / "core"),
        trade_endpoint=LOOPBACK,
        fund_endpoint=LOOPBACK,
        admin_endpoint=LOOPBACK,
        pub_endpoint=LOOPBACK,
        replay_endpoint=LOOPBACK,
        curve=True,
        curve_secret_key=server_secret,
        curve_clients_dir=str(keys / "clients"),
    )
    server = CoreServer(cfg)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    server_public = str(keys / "core.key")
    wallet = load_client_keys(wallet_secret, server_public)
    operator = load_client_keys(op_secret, server_public)
    try:
        op = CoreClient(server.admin_endpoint, curve=operator)
        assert op.request(commands.add_asset(1))["status"][0] == STATUS_APPLIED
        fund = CoreClient(server.fund_endpoint, curve=wallet)
        assert fund.control("ping")["ok"]
        # the wallet's key opens no other socket, the operator's not the fund socket
        for endpoint, curve in (
            (server.admin_endpoint, wallet),
            (server.trade_endpoint, wallet),
            (server.fund_endpoint, operator),
        ):
            other = CoreClient(endpoint, curve=curve)
            with pytest.raises(TimeoutError):
                other.control("ping", timeout_ms=500)
            other.close()
        op.close()
        fund.close()
    finally:
        server.stopping = True
        t.join(timeout=10)


def test_admin_keygen_cli(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bursa", "admin", "keygen", str(tmp_path / "k"), "gw"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "k" / "gw.key").exists() and (tmp_path / "k" / "gw.key_secret").exists()
