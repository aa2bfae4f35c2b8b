"""Key files encrypted at rest: one secp256k1 private key plus its holder's limits.

Format (JSON): ``{"version": 1, "kdf": "scrypt", "n", "r", "p", "salt", "nonce",
"ciphertext"}``; the key is scrypt(passphrase, salt) and the plaintext (a JSON object
``{"key": hex, "network": ..., "max_tx": int, "max_daily": int}``) is sealed with
AES-256-GCM (``cryptography``), so a wrong passphrase or an edited file is refused,
never silently misread. The passphrase comes from a file or the environment variable
``BURSA_KEY_PASSPHRASE``; it is never a command-line argument (``ps`` shows those).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from embit import ec

PASSPHRASE_ENV = "BURSA_KEY_PASSPHRASE"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


@dataclass(frozen=True)
class KeyFile:
    """A decrypted key file: the private key and the limits its holder enforces.

    ``max_tx`` / ``max_daily`` are in chain base units (satoshi); 0 means no limit.
    """

    key: ec.PrivateKey
    network: str
    max_tx: int = 0
    max_daily: int = 0
    # A deposit-sweep signer: the deposit account's xprv (its ``key`` is the xprv's own
    # key) and the only addresses it may pay (the hot wallet).
    xprv: str = ""
    sweep_to: tuple[str, ...] = ()
    # An Ethereum multisig owner: the only contract and chain id it signs for (its
    # limits are then in wei, or token units for a token request).
    contract: str = ""
    chain_id: int = 0

    @property
    def pubkey_hex(self) -> str:
        """The compressed public key, hex."""
        return str(self.key.get_public_key().sec().hex())


def _derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def write_key_file(path: Path | str, kf: KeyFile, passphrase: str) -> None:
    """Encrypt ``kf`` under ``passphrase`` into ``path`` (mode 0600, written atomically)."""
    if not passphrase:
        raise ValueError("an empty passphrase is refused")
    salt, nonce = os.urandom(16), os.urandom(12)
    plain = json.dumps(
        {
            "key": kf.key.secret.hex(),
            "network": kf.network,
            "max_tx": kf.max_tx,
            "max_daily": kf.max_daily,
            "xprv": kf.xprv,
            "sweep_to": list(kf.sweep_to),
            "contract": kf.contract,
            "chain_id": kf.chain_id,
        }
    ).encode()
    key = _derive(passphrase.encode(), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    sealed = AESGCM(key).encrypt(nonce, plain, b"bursa-key-v1")
    doc = {
        "version": 1,
        "kdf": "scrypt",
        "n": SCRYPT_N,
        "r": SCRYPT_R,
        "p": SCRYPT_P,
        "salt": salt.hex(),
        "nonce": nonce.hex(),
        "ciphertext": sealed.hex(),
    }
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_key_file(path: Path | str, passphrase: str) -> KeyFile:
    """Decrypt a key file (ValueError: unreadable, wrong passphrase or tampered)."""
    try:
        doc: dict[str, Any] = json.loads(Path(path).read_text())
        if doc.get("version") != 1 or doc.get("kdf") != "scrypt":
            raise ValueError("unknown key file version")
        key = _derive(
            passphrase.encode(),
            bytes.fromhex(doc["salt"]),
            int(doc["n"]),
            int(doc["r"]),
            int(doc["p"]),
        )
        plain = AESGCM(key).decrypt(
            bytes.fromhex(doc["nonce"]), bytes.fromhex(doc["ciphertext"]), b"bursa-key-v1"
        )
    except InvalidTag:
        raise ValueError(f"{path}: wrong passphrase or tampered key file") from None
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a bursa key file ({exc})") from None
    body = json.loads(plain)
    return KeyFile(
        ec.PrivateKey(bytes.fromhex(body["key"])),
        str(body["network"]),
        int(body.get("max_tx", 0)),
        int(body.get("max_daily", 0)),
        str(body.get("xprv", "")),
        tuple(str(a) for a in body.get("sweep_to", ())),
        str(body.get("contract", "")),
        int(body.get("chain_id", 0)),
    )


def passphrase_from(file: str | None) -> str:
    """The passphrase: the first line of ``file``, else ``$BURSA_KEY_PASSPHRASE``."""
    if file:
        return Path(file).read_text().splitlines()[0]
    value = os.environ.get(PASSPHRASE_ENV, "")
    if not value:
        raise ValueError(f"no passphrase: give --passphrase-file or set {PASSPHRASE_ENV}")
    return value
