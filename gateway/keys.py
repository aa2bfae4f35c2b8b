"""API keys: Ed25519 or HMAC keys per user, login verification, `bursa admin apikey`.

The gateway and the Binance-compatible API (`bursa api`, docs/api.md) share this key
store (SQLite, table ``api_keys`` in the gateway's database): one key, one user,
usable at both doors.  Every key has an ``api_key`` string (what Binance clients send
as ``X-MBX-APIKEY``) and a type:

- ``ed25519`` (default): only the public key is stored; ``create`` writes the private
  half to a key file (JSON, mode 0600) that only the client keeps.  Gateway logins
  and API requests (Binance's Ed25519 signatures) both verify with it.
- ``hmac``: a shared secret (Binance's HMAC-SHA256 keys; API only, a gateway login
  with it is refused).  The secret is stored encrypted (AES-256-GCM, the key id as
  associated data) under a master key kept in a file next to the database
  (``api-secrets.key``, 32 random bytes, mode 0600); the key file holds it in clear.

Login proof (docs/protocol.md, "Login signature"): an Ed25519 signature over
``LOGIN_DOMAIN`` + the LOGIN body's signed bytes, which include a client timestamp
and a nonce.  :meth:`KeyStore.verify_login` checks, each with its own code: known
key, not revoked, peer address allowed, timestamp within ``skew_ns``, signature,
nonce not used before (nonces are remembered for twice the skew window, in the
database, so a restart does not open a replay window).

Examples::

    bursa admin apikey create 7 --perm trade --allow-ip 127.0.0.1 --out mm.key
    bursa admin apikey create 7 --type hmac --out bot.key   # {"api_key", "secret", ...}
    bursa admin apikey list
    bursa admin apikey revoke 3
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bursa_wire.gw_layout import BY_NAME, LOGIN_DOMAIN, LOGIN_SIGNED_LEN
from gateway.wire.codes import GwReason

PERM_TRADE = "trade"
PERM_READ = "read"
DEFAULT_DB = "data/gateway/gateway.db"
DEFAULT_SKEW_NS = 30 * 10**9
TYPE_ED25519 = "ed25519"
TYPE_HMAC = "hmac"
MASTER_KEY_FILE = "api-secrets.key"  # next to the database (module docstring)
API_KEY_LEN = 64  # characters of an api_key / HMAC secret (Binance's length)
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Columns added for the API (older databases get them by ALTER TABLE at connect).
_ADDED_COLUMNS = (
    ("key_type", "TEXT NOT NULL DEFAULT 'ed25519'"),
    ("api_key", "TEXT"),
    ("secret_enc", "BLOB"),
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    perm TEXT NOT NULL,
    allow_ips TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    revoked_ns INTEGER
);
CREATE TABLE IF NOT EXISTS login_nonces (
    key_id INTEGER NOT NULL,
    nonce INTEGER NOT NULL,
    ts_ns INTEGER NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
"""


class LoginError(Exception):
    """A refused login; ``reason`` is its gateway reason code."""

    def __init__(self, reason: GwReason) -> None:
        super().__init__(reason.name)
        self.reason = reason


@dataclass(frozen=True)
class ApiKey:
    """One stored key (public half only)."""

    key_id: int
    user_id: int
    public_key: bytes
    perm: str
    allow_ips: tuple[str, ...]
    revoked: bool
    key_type: str = TYPE_ED25519
    api_key: str = ""

    @property
    def can_trade(self) -> bool:
        """True if the key may send orders (not read-only)."""
        return self.perm == PERM_TRADE


def connect(db_path: str | Path) -> sqlite3.Connection:
    """Open (and create) the gateway database in WAL mode."""
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), isolation_level=None, timeout=30)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(SCHEMA)
    have = {str(r[1]) for r in con.execute("PRAGMA table_info(api_keys)")}
    for name, decl in _ADDED_COLUMNS:
        if name not in have:
            con.execute(f"ALTER TABLE api_keys ADD COLUMN {name} {decl}")
    con.execute("CREATE UNIQUE INDEX IF NOT EXISTS api_keys_by_api_key ON api_keys (api_key)")
    return con


def _random_token() -> str:
    """A random alphanumeric string of API_KEY_LEN characters (``secrets``)."""
    return "".join(secrets.choice(_ALNUM) for _ in range(API_KEY_LEN))


def _db_dir(con: sqlite3.Connection) -> Path:
    """The directory of the connection's main database file."""
    for row in con.execute("PRAGMA database_list"):
        if row[1] == "main" and row[2]:
            return Path(str(row[2])).parent
    return Path(".")


def signed_bytes(login_body: bytes) -> bytes:
    """The bytes a LOGIN signature covers (domain + body without the signature)."""
    return LOGIN_DOMAIN + login_body[:LOGIN_SIGNED_LEN]


def sign_login(
    private_key: bytes, key_id: int, next_seq: int, ts_ns: int, nonce: int, flags: int
) -> bytes:
    """The signature field of a LOGIN with these values (client side)."""
    spec = BY_NAME["LOGIN"]
    body = spec.struct.pack(key_id, next_seq, ts_ns, nonce, flags, b"\x00" * 64)
    return Ed25519PrivateKey.from_private_bytes(private_key).sign(signed_bytes(body))


class KeyStore:
    """API keys and login nonces in the gateway's SQLite database."""

    def __init__(
        self,
        con: sqlite3.Connection,
        skew_ns: int = DEFAULT_SKEW_NS,
        master_key_path: str | Path | None = None,
    ) -> None:
        self.con = con
        self.skew_ns = skew_ns
        self.master_key_path = (
            Path(master_key_path) if master_key_path else _db_dir(con) / MASTER_KEY_FILE
        )
        self._aead: AESGCM | None = None

    def _cipher(self) -> AESGCM:
        """AES-256-GCM under the master key file (created, mode 0600, on first use)."""
        if self._aead is None:
            path = self.master_key_path
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pass  # another process created it first: use theirs
                else:
                    with os.fdopen(fd, "wb") as f:
                        f.write(AESGCM.generate_key(bit_length=256))
                        f.flush()
                        os.fsync(f.fileno())
            key = path.read_bytes()
            if len(key) != 32:
                raise ValueError(f"{path}: master key must be 32 bytes")
            self._aead = AESGCM(key)
        return self._aead

    def create(
        self,
        user_id: int,
        perm: str = PERM_TRADE,
        allow_ips: tuple[str, ...] = (),
        key_type: str = TYPE_ED25519,
    ) -> tuple[ApiKey, bytes]:
        """Create a key for ``user_id``; return (key, private part).

        The private part is the raw Ed25519 private key, or the HMAC secret (ASCII).
        """
        if perm not in (PERM_TRADE, PERM_READ):
            raise ValueError(f"perm must be {PERM_TRADE!r} or {PERM_READ!r}")
        if key_type not in (TYPE_ED25519, TYPE_HMAC):
            raise ValueError(f"key type must be {TYPE_ED25519!r} or {TYPE_HMAC!r}")
        if not 0 < user_id < 2**32:
            raise ValueError("user_id must be in 1..2**32-1")
        api_key = _random_token()
        if key_type == TYPE_ED25519:
            priv = Ed25519PrivateKey.generate()
            pub = priv.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
            raw = priv.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
        else:
            pub, raw = b"", _random_token().encode()
        self.con.execute("BEGIN IMMEDIATE")
        try:
            cur = self.con.execute(
                "INSERT INTO api_keys (user_id, public_key, perm, allow_ips, created_ns,"
                " key_type, api_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user_id, pub, perm, ",".join(allow_ips), time.time_ns(), key_type, api_key),
            )
            key_id = int(cur.lastrowid or 0)
            if key_type == TYPE_HMAC:
                nonce = secrets.token_bytes(12)
                enc = nonce + self._cipher().encrypt(nonce, raw, str(key_id).encode())
                self.con.execute(
                    "UPDATE api_keys SET secret_enc = ? WHERE key_id = ?", (enc, key_id)
                )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return ApiKey(key_id, user_id, pub, perm, allow_ips, False, key_type, api_key), raw

    _COLUMNS = "key_id, user_id, public_key, perm, allow_ips, revoked_ns, key_type, api_key"

    @staticmethod
    def _key(row: tuple[Any, ...]) -> ApiKey:
        ips = tuple(x for x in str(row[4]).split(",") if x)
        return ApiKey(
            int(row[0]), int(row[1]), bytes(row[2]), str(row[3]), ips, row[5] is not None,
            str(row[6]), str(row[7] or ""),
        )  # fmt: skip

    def get(self, key_id: int) -> ApiKey | None:
        """The key with this id, or None."""
        row = self.con.execute(
            f"SELECT {self._COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
        ).fetchone()
        return None if row is None else self._key(row)

    def by_api_key(self, api_key: str) -> ApiKey | None:
        """The key whose ``api_key`` string this is (revoked ones included), or None."""
        row = self.con.execute(
            f"SELECT {self._COLUMNS} FROM api_keys WHERE api_key = ?", (api_key,)
        ).fetchone()
        return None if row is None else self._key(row)

    def hmac_secret(self, key: ApiKey) -> bytes:
        """The decrypted HMAC secret of an ``hmac`` key.

        Raises ValueError if the key is not an HMAC key or its secret does not decrypt
        (wrong master key file).
        """
        if key.key_type != TYPE_HMAC:
            raise ValueError("not an HMAC key")
        row = self.con.execute(
            "SELECT secret_enc FROM api_keys WHERE key_id = ?", (key.key_id,)
        ).fetchone()
        if row is None or row[0] is None:
            raise ValueError("no secret stored")
        enc = bytes(row[0])
        try:
            return self._cipher().decrypt(enc[:12], enc[12:], str(key.key_id).encode())
        except Exception as e:  # cryptography's InvalidTag: wrong master key or damage
            raise ValueError("stored secret does not decrypt") from e

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included."""
        ids = [int(r[0]) for r in self.con.execute("SELECT key_id FROM api_keys ORDER BY key_id")]
        return [k for k in (self.get(i) for i in ids) if k is not None]

    def revoke(self, key_id: int) -> bool:
        """Revoke a key (new logins refused); False if unknown or already revoked."""
        cur = self.con.execute(
            "UPDATE api_keys SET revoked_ns = ? WHERE key_id = ? AND revoked_ns IS NULL",
            (time.time_ns(), key_id),
        )
        return cur.rowcount == 1

    def verify_login(
        self, login_body: bytes, values: dict[str, Any], peer_ip: str, now_ns: int
    ) -> ApiKey:
        """Check a LOGIN (raw body and decoded values); return its key or raise LoginError."""
        key = self.get(int(values["key_id"]))
        if key is None:
            raise LoginError(GwReason.UNKNOWN_KEY)
        if key.revoked:
            raise LoginError(GwReason.KEY_REVOKED)
        if key.key_type != TYPE_ED25519:
            raise LoginError(GwReason.BAD_SIGNATURE)  # HMAC keys are for the API only
        if key.allow_ips and peer_ip not in key.allow_ips:
            raise LoginError(GwReason.IP_NOT_ALLOWED)
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(
                bytes(values["signature"]), signed_bytes(login_body)
            )
        except InvalidSignature:
            raise LoginError(GwReason.BAD_SIGNATURE) from None
        ts = int(values["ts_ns"])
        if abs(now_ns - ts) > self.skew_ns:
            raise LoginError(GwReason.STALE_TIMESTAMP)
        nonce = int(values["nonce"]) - 2**63  # SQLite integers are signed 64-bit
        try:
            self.con.execute("BEGIN IMMEDIATE")
            self.con.execute(
                "DELETE FROM login_nonces WHERE ts_ns < ?", (now_ns - 2 * self.skew_ns,)
            )
            self.con.execute(
                "INSERT INTO login_nonces (key_id, nonce, ts_ns) VALUES (?, ?, ?)",
                (key.key_id, nonce, now_ns),
            )
            self.con.execute("COMMIT")
        except sqlite3.IntegrityError:
            self.con.execute("ROLLBACK")
            raise LoginError(GwReason.NONCE_REUSED) from None
        return key


def write_key_file(path: str | Path, key: ApiKey, private: bytes) -> None:
    """Write the private key file (JSON, mode 0600) the client logs in with.

    Ed25519: ``private_key`` (hex) and ``private_key_pem`` (PKCS#8, what Binance
    clients load); HMAC: ``secret``.  Both carry ``api_key``.
    """
    data: dict[str, Any] = {"key_id": key.key_id, "user_id": key.user_id}
    data["type"] = key.key_type
    data["api_key"] = key.api_key
    if key.key_type == TYPE_HMAC:
        data["secret"] = private.decode()
    else:
        data["private_key"] = private.hex()
        pem = Ed25519PrivateKey.from_private_bytes(private).private_bytes(
            ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()
        )
        data["private_key_pem"] = pem.decode()
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
        f.write("\n")


def read_key_file(path: str | Path) -> tuple[int, bytes]:
    """(key_id, private key bytes) from a key file."""
    data = json.loads(Path(path).read_text())
    return int(data["key_id"]), bytes.fromhex(data["private_key"])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bursa admin apikey", description="manage gateway API keys")
    p.add_argument("--db", default=DEFAULT_DB, help="the gateway's database")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("create", help="create a key for a user; writes the private key file")
    s.add_argument("user_id", type=int)
    s.add_argument("--perm", choices=(PERM_TRADE, PERM_READ), default=PERM_TRADE)
    s.add_argument(
        "--type", choices=(TYPE_ED25519, TYPE_HMAC), default=TYPE_ED25519, dest="key_type"
    )
    s.add_argument("--allow-ip", action="append", default=[], help="repeat; none = any")
    s.add_argument("--out", required=True, help="private key file to write")
    sub.add_parser("list", help="list keys (public data only)")
    s = sub.add_parser("revoke", help="revoke a key")
    s.add_argument("key_id", type=int)
    return p


def main(argv: list[str] | None = None) -> int:
    """`bursa admin apikey create|list|revoke` (module docstring); 0 ok, 1 refused, 2 usage."""
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        return int(e.code or 0) and 2
    store = KeyStore(connect(args.db))
    try:
        if args.cmd == "create":
            key, priv = store.create(args.user_id, args.perm, tuple(args.allow_ip), args.key_type)
            write_key_file(args.out, key, priv)
            print(
                json.dumps(
                    {
                        "ok": True,
                        "key_id": key.key_id,
                        "user_id": key.user_id,
                        "perm": key.perm,
                        "type": key.key_type,
                        "api_key": key.api_key,
                        "key_file": args.out,
                    }
                )
            )
            return 0
        if args.cmd == "list":
            for k in store.list():
                print(
                    json.dumps(
                        {
                            "key_id": k.key_id,
                            "user_id": k.user_id,
                            "perm": k.perm,
                            "allow_ips": list(k.allow_ips),
                            "revoked": k.revoked,
                            "type": k.key_type,
                            "api_key": k.api_key,
                            "public_key": k.public_key.hex(),
                        }
                    )
                )
            return 0
        ok = store.revoke(args.key_id)
        print(json.dumps({"ok": ok, "key_id": args.key_id}))
        return 0 if ok else 1
    except ValueError as e:
        print(json.dumps({"ok": False, "error": str(e)}), file=sys.stderr)
        return 2
    finally:
        store.con.close()
