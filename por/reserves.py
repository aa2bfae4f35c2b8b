"""The reserves side: address-control signatures and the reserves-vs-liabilities report.

A reserves file lists the exchange's addresses with their on-chain balances at
a stated block height, each with a signature over :func:`control_message`, a
message that names the liabilities root, the height and the address, so a
signature cannot be replayed from an older proof.  Signatures use the legacy
"Bitcoin Signed Message" scheme (BIP-137 compact recoverable ECDSA, as
``bitcoin-cli signmessage`` and most wallets produce) for P2PKH and P2WPKH
addresses, verified with embit.

What is verified here: that whoever made the file held the private key of each
address whose signature checks.  What is NOT verified: the balances.  They are
the operator's statement at ``height``; an auditor checks each address against
a node or explorer at that height (docs/por.md, "Reserves").
"""

from __future__ import annotations

import base64
import json
from typing import Any

from embit import ec, script
from embit.compact import to_bytes as varint
from embit.hashes import double_sha256
from embit.networks import NETWORKS
from embit.util import secp256k1

from por.tree import MAX_SUM, PorError

#: BIP-137 header byte ranges (27 + recid + offset) -> address type.
_HEADER = {27: "p2pkh-uncompressed", 31: "p2pkh", 35: "p2sh-p2wpkh", 39: "p2wpkh"}


def control_message(root_hex: str, height: int, address: str) -> str:
    """The message signed for one address: binds the root, the height and the address."""
    return f"bursa proof of reserves: root {root_hex} height {height} address {address}"


def message_hash(message: str) -> bytes:
    """double-SHA256 of the "Bitcoin Signed Message" envelope of ``message``."""
    m = message.encode()
    return bytes(double_sha256(b"\x18Bitcoin Signed Message:\n" + varint(len(m)) + m))


def _address(pub: ec.PublicKey, kind: str, network: dict[str, Any]) -> str:
    if kind in ("p2pkh", "p2pkh-uncompressed"):
        return str(script.p2pkh(pub).address(network))
    if kind == "p2wpkh":
        return str(script.p2wpkh(pub).address(network))
    return str(script.p2sh(script.p2wpkh(pub)).address(network))


def sign_message(
    wif: str, message: str, *, kind: str = "p2wpkh", network: str = "main"
) -> tuple[str, str]:
    """Sign ``message`` with the WIF key; returns (address, base64 signature).

    ``kind``: p2pkh, p2sh-p2wpkh or p2wpkh.  For tests and for an offline signer
    (``bursa por sign``): the key never needs to reach the host that builds the report.
    """
    key = ec.PrivateKey.from_wif(wif)
    sig = secp256k1.ecdsa_sign_recoverable(message_hash(message), key.secret)
    compact, recid = secp256k1.ecdsa_recoverable_signature_serialize_compact(sig)
    header = next(h for h, k in _HEADER.items() if k == kind) + recid
    return _address(key.get_public_key(), kind, NETWORKS[network]), base64.b64encode(
        bytes([header]) + compact
    ).decode()


def address_of(wif: str, *, kind: str = "p2wpkh", network: str = "main") -> str:
    """The ``kind`` address of the WIF key on ``network``."""
    return _address(ec.PrivateKey.from_wif(wif).get_public_key(), kind, NETWORKS[network])


def verify_message(address: str, message: str, signature_b64: str, network: str) -> str | None:
    """None when ``signature_b64`` is a valid BIP-137 signature of ``message`` by the key
    of ``address`` on ``network``; otherwise the reason it is not."""
    try:
        raw = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        return "signature is not base64"
    if len(raw) != 65 or not 27 <= raw[0] <= 42:
        return "signature is not a 65-byte BIP-137 compact signature"
    base = 27 + (raw[0] - 27) // 4 * 4
    recid = raw[0] - base
    kind = _HEADER[base]
    try:
        sig = secp256k1.ecdsa_recoverable_signature_parse_compact(raw[1:], recid)
        point = secp256k1.ecdsa_recover(sig, message_hash(message))
        compressed = kind != "p2pkh-uncompressed"
        flag = secp256k1.EC_COMPRESSED if compressed else secp256k1.EC_UNCOMPRESSED
        pub = ec.PublicKey.parse(secp256k1.ec_pubkey_serialize(point, flag))
    except (ValueError, RuntimeError) as e:
        return f"no public key recovers from the signature ({e})"
    if network not in NETWORKS:
        return f"unknown network {network!r}"
    if _address(pub, kind, NETWORKS[network]) != address:
        return "signed by a key that does not own this address"
    return None


def report(root: dict[str, Any], reserves: dict[str, Any]) -> dict[str, Any]:
    """Compare reserves with the liabilities of ``root`` (root.json), per asset.

    Only addresses whose signature verifies count as reserves; the others are
    listed with the reason.  An asset whose verified reserves are below its
    liabilities is flagged ``SHORTFALL``.

    Raises
    ------
    PorError
        A malformed reserves file.
    """
    height = reserves.get("height")
    network = reserves.get("network", "main")
    addrs = reserves.get("addresses")
    if type(height) is not int or height < 0 or not isinstance(addrs, list):
        raise PorError("reserves: needs an integer 'height' and an 'addresses' list")
    liab = {int(a): int(t) for a, t in root["totals"].items()}
    per: dict[int, dict[str, int]] = {
        a: {"liabilities": t, "reserves_verified": 0, "reserves_unverified": 0}
        for a, t in liab.items()
    }
    seen: set[str] = set()
    rows = []
    for i, e in enumerate(addrs):
        if not isinstance(e, dict):
            raise PorError(f"reserves: addresses[{i}] is not an object")
        addr, asset, bal, sig = e.get("address"), e.get("asset"), e.get("balance"), e.get("sig")
        if not isinstance(addr, str) or type(asset) is not int or not isinstance(sig, str):
            raise PorError(f"reserves: addresses[{i}] needs address, asset, balance, sig")
        if type(bal) is not int or not 0 <= bal <= MAX_SUM:
            raise PorError(f"reserves: addresses[{i}]: balance must be in [0, 2**64-1]")
        if addr in seen:
            raise PorError(f"reserves: address {addr} listed twice")
        seen.add(addr)
        msg = control_message(root["root"], height, addr)
        reason = verify_message(addr, msg, sig, network)
        if asset not in per:
            per[asset] = {"liabilities": 0, "reserves_verified": 0, "reserves_unverified": 0}
        per[asset]["reserves_verified" if reason is None else "reserves_unverified"] += bal
        rows.append(
            {"address": addr, "asset": asset, "balance": bal, "control": reason or "verified"}
        )
    assets = {}
    for a, v in sorted(per.items()):
        short = max(0, v["liabilities"] - v["reserves_verified"])
        assets[str(a)] = {**v, "shortfall": short, "status": "SHORTFALL" if short else "OK"}
    return {
        "seq": root["seq"],
        "root": root["root"],
        "height": height,
        "network": network,
        "assets": assets,
        "addresses": rows,
        "shortfall": any(v["status"] == "SHORTFALL" for v in assets.values()),
        "verified": "address control by signature over root+height+address",
        "not_verified": "on-chain balances (operator statement at 'height': check on a node)",
    }


def load(path: str) -> dict[str, Any]:
    """Read a JSON object file."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise PorError(f"{path}: {e}") from e
    if not isinstance(doc, dict):
        raise PorError(f"{path}: not a JSON object")
    return doc
