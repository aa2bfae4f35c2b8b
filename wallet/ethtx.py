"""Ethereum legacy transactions signed with EIP-155 replay protection (hot wallet).

RLP encoding, the signing hash, a recoverable secp256k1 signature (libsecp256k1
through embit) and the transaction hash (Keccak-256 of the raw bytes). Only what
a transfer or a contract call needs: nonce, gas price, gas, to, value, data.
"""

from __future__ import annotations

from embit import ec
from embit.util import secp256k1

from wallet.addresses import keccak256

TRANSFER_GAS = 21_000
TOKEN_GAS = 100_000  # an ERC-20 transfer's gas limit (unused gas is not charged)
ERC20_TRANSFER = bytes.fromhex("a9059cbb")  # transfer(address,uint256)


def _rlp_bytes(b: bytes) -> bytes:
    if len(b) == 1 and b[0] < 0x80:
        return b
    return _rlp_len(len(b), 0x80) + b


def _rlp_len(n: int, offset: int) -> bytes:
    if n < 56:
        return bytes([offset + n])
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(ln)]) + ln


def _rlp_int(v: int) -> bytes:
    if v < 0:
        raise ValueError("RLP integers are non-negative")
    return _rlp_bytes(v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b"")


def rlp_list(items: list[bytes | int]) -> bytes:
    """RLP of a flat list of byte strings and integers."""
    body = b"".join(_rlp_int(i) if isinstance(i, int) else _rlp_bytes(i) for i in items)
    return _rlp_len(len(body), 0xC0) + body


def _addr(a: str) -> bytes:
    raw = bytes.fromhex(a.lower().removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"not an Ethereum address: {a!r}")
    return raw


def sign_transfer(
    key: ec.PrivateKey,
    chain_id: int,
    nonce: int,
    gas_price: int,
    to: str,
    value: int,
    token: str = "",
) -> bytes:
    """The raw signed transaction paying ``value`` to ``to``: wei, or units of the ERC-20
    ``token`` (a ``transfer(to, value)`` call to the token contract)."""
    dest = _addr(to)
    if token:
        data = ERC20_TRANSFER + dest.rjust(32, b"\0") + value.to_bytes(32, "big")
        return sign_call(key, chain_id, nonce, gas_price, TOKEN_GAS, token, 0, data)
    return sign_call(key, chain_id, nonce, gas_price, TRANSFER_GAS, to, value, b"")


def sign_call(
    key: ec.PrivateKey,
    chain_id: int,
    nonce: int,
    gas_price: int,
    gas: int,
    to: str,
    value: int,
    data: bytes,
) -> bytes:
    """The raw signed transaction of any call (``data`` to contract ``to``, ``value`` wei)."""
    fields: list[bytes | int] = [nonce, gas_price, gas, _addr(to), value, data]
    digest = keccak256(rlp_list([*fields, chain_id, 0, 0]))
    sig = secp256k1.ecdsa_sign_recoverable(digest, key.secret)
    compact, recid = secp256k1.ecdsa_recoverable_signature_serialize_compact(sig)
    r, s = int.from_bytes(compact[:32], "big"), int.from_bytes(compact[32:], "big")
    return rlp_list([*fields, recid + 35 + 2 * chain_id, r, s])


def tx_hash(raw: bytes) -> str:
    """The transaction hash (0x-prefixed hex)."""
    return "0x" + keccak256(raw).hex()
