"""Who may reach the core's sockets: local-only endpoints, ipc permissions, CURVE.

Rules (docs/architecture.md, "Trust boundary"):

- an endpoint is *local* when it is ``ipc://``, ``inproc://`` or ``tcp://`` on a
  loopback address (127.0.0.0/8, ``localhost``, ``::1``);
- an ``ipc://`` endpoint's directory is created with mode 0700 (only the core's
  OS user may connect) and the socket file is made 0600 after bind;
- a core with any non-local endpoint refuses to start unless ZeroMQ CURVE is
  configured: a server key pair and a directory of authorized client public keys
  (made by ``bursa admin keygen``); CURVE can also be forced on loopback.  Keys are
  authorized per role: a subdirectory ``trade/``, ``fund/``, ``admin/`` or
  ``stream/`` (pub + replay) of the clients directory, when present, holds the only
  keys that socket accepts; without it the socket accepts the keys at the top level.

Keys are ZeroMQ certificate files (``zmq.auth.create_certificates``): ``NAME.key``
holds the public key, ``NAME.key_secret`` both keys.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

LOCAL_HOSTNAMES = frozenset({"localhost", "ip6-localhost"})


def is_local_endpoint(endpoint: str) -> bool:
    """Whether ``endpoint`` can only be reached from this machine."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return False
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    host = host.strip("[]")
    if ";" in host:  # "source;dest" form: judge the bound side
        host = host.split(";", 1)[1]
    if host in LOCAL_HOSTNAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name or "*": reachable from the network


def prepare_ipc(endpoint: str) -> None:
    """Create the directory of an ``ipc://`` endpoint with mode 0700 (no-op otherwise).

    An existing directory is tightened to 0700 when this process owns it.
    """
    if not endpoint.startswith("ipc://"):
        return
    path = Path(endpoint[len("ipc://") :])
    d = path.parent
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    if d.stat().st_uid == os.getuid():
        d.chmod(0o700)


def after_bind(endpoint: str) -> None:
    """Make a bound ``ipc://`` socket file 0600."""
    if endpoint.startswith("ipc://"):
        p = Path(endpoint[len("ipc://") :])
        if p.exists():
            p.chmod(0o600)


@dataclass(frozen=True)
class CurveServerKeys:
    """The core's CURVE identity and the client keys it accepts."""

    public: bytes
    secret: bytes
    clients_dir: str


@dataclass(frozen=True)
class CurveClientKeys:
    """A client's CURVE key pair and the core's public key it expects."""

    public: bytes
    secret: bytes
    server_public: bytes


def load_server_keys(secret_file: str, clients_dir: str) -> CurveServerKeys:
    """Read the server's ``.key_secret`` file; ``clients_dir`` holds allowed ``.key`` files.

    Raises
    ------
    ValueError
        A file lacks a secret key or the directory does not exist.
    """
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise ValueError(f"{secret_file} holds no secret key")
    if not Path(clients_dir).is_dir():
        raise ValueError(f"CURVE client key directory {clients_dir} does not exist")
    return CurveServerKeys(public, secret, clients_dir)


def load_client_keys(secret_file: str, server_public_file: str) -> CurveClientKeys:
    """Read a client's ``.key_secret`` file and the server's public ``.key`` file."""
    public, secret = zmq.auth.load_certificate(secret_file)
    if secret is None:
        raise ValueError(f"{secret_file} holds no secret key")
    server_public, _ = zmq.auth.load_certificate(server_public_file)
    return CurveClientKeys(public, secret, server_public)


# ZAP domain (and key subdirectory) of each socket.
CURVE_DOMAINS = {
    "trade": "trade",
    "fund": "fund",
    "admin": "admin",
    "pub": "stream",
    "replay": "stream",
}


def domain_keys_dir(keys: CurveServerKeys, domain: str) -> str:
    """Where the public keys accepted in ``domain`` live (its subdirectory if any)."""
    sub = Path(keys.clients_dir) / domain
    return str(sub) if sub.is_dir() else keys.clients_dir


def start_authenticator(
    ctx: zmq.Context[zmq.Socket[bytes]], keys: CurveServerKeys
) -> ThreadAuthenticator:
    """ZAP handler thread: each socket's domain accepts exactly its directory's keys."""
    auth = ThreadAuthenticator(ctx)
    auth.start()
    for domain in sorted(set(CURVE_DOMAINS.values())):
        auth.configure_curve(domain=domain, location=domain_keys_dir(keys, domain))
    return auth


def make_server_socket(
    sock: zmq.Socket[bytes], keys: CurveServerKeys | None, role: str = "admin"
) -> None:
    """Switch ``sock`` (the socket of ``role``) to a CURVE server before it binds
    (no-op without keys)."""
    if keys is None:
        return
    sock.setsockopt_string(zmq.ZAP_DOMAIN, CURVE_DOMAINS[role])
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)


def make_client_socket(sock: zmq.Socket[bytes], keys: CurveClientKeys | None) -> None:
    """Switch ``sock`` to a CURVE client before it connects (no-op without keys)."""
    if keys is None:
        return
    sock.setsockopt(zmq.CURVE_SERVERKEY, keys.server_public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)


def keygen(directory: str, name: str) -> tuple[str, str]:
    """Write a new key pair ``NAME.key`` / ``NAME.key_secret`` into ``directory``
    (created 0700; the secret file made 0600).  Returns (public file, secret file)."""
    d = Path(directory)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(str(d), name)
    os.chmod(secret_file, 0o600)
    return str(public_file), str(secret_file)
