"""Ethereum M-of-N custody: the messages owners of ``wallet/contracts/MultiSigWallet.sol``
sign off line, and the call that executes them.

A withdrawal above the hot wallet's limits on an account chain becomes a
:class:`Request` (chain id, contract, the contract's nonce, destination, value,
data, executor = the hot account, inner gas limit). Each offline signer recomputes
the EIP-712 digest from those fields itself (:meth:`Request.digest`), judges the
payment (:meth:`Request.payment`: ETH to an address, or an ERC-20 ``transfer``),
and signs with its key (libsecp256k1 through embit, low-s, recoverable; the same
library as the hot wallet's transactions; Keccak-256 is pycryptodome's). The online
side recovers each signer (:func:`recover`), keeps owners only, and with M of them
the hot account sends ``execute(signatures, destination, value, data, executor,
gasLimit)`` to the contract (:func:`execute_calldata`). The contract checks the same
digest, so an online host that edits a field gets "bad signature".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from embit import ec
from embit.util import secp256k1

from wallet.addresses import eth_address, keccak256, to_checksum_address
from wallet.ethtx import ERC20_TRANSFER

DOMAIN_TYPEHASH = keccak256(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
TX_TYPEHASH = keccak256(
    b"MultiSigTransaction(address destination,uint256 value,bytes data,uint256 nonce,"
    b"address executor,uint256 gasLimit)"
)
NAME_HASH = keccak256(b"BursaMultiSig")
VERSION_HASH = keccak256(b"1")
EXECUTE = keccak256(b"execute(bytes,address,uint256,bytes,address,uint256)")[:4]
NONCE = keccak256(b"nonce()")[:4]
INNER_GAS = 100_000  # gas forwarded to the payment (an ETH transfer or a token transfer)
OUTER_GAS = 200_000  # the execute() transaction's gas limit on top of INNER_GAS


def _word(x: int | str | bytes) -> bytes:
    """One 32-byte ABI word: an unsigned int, an address (hex) or 32 raw bytes."""
    if isinstance(x, bytes):
        if len(x) != 32:
            raise ValueError("a bytes32 word must be 32 bytes")
        return x
    if isinstance(x, str):
        raw = bytes.fromhex(x.lower().removeprefix("0x"))
        if len(raw) != 20:
            raise ValueError(f"not an Ethereum address: {x!r}")
        return raw.rjust(32, b"\0")
    if not 0 <= x < 2**256:
        raise ValueError("uint256 out of range")
    return x.to_bytes(32, "big")


def _dynamic(b: bytes) -> bytes:
    """ABI encoding of a ``bytes`` value's tail: length, then data padded to 32 bytes."""
    return _word(len(b)) + b + b"\0" * (-len(b) % 32)


@dataclass(frozen=True)
class Request:
    """One call of the multisig contract, as its owners sign it."""

    chain_id: int
    contract: str
    nonce: int
    destination: str
    value: int
    data: str  # hex, "" for a plain ETH transfer
    executor: str
    gas_limit: int = INNER_GAS

    def digest(self) -> bytes:
        """The EIP-712 digest (``MultiSigWallet.digestOf``)."""
        domain = keccak256(
            DOMAIN_TYPEHASH + NAME_HASH + VERSION_HASH + _word(self.chain_id)
            + _word(self.contract)
        )  # fmt: skip
        inner = keccak256(
            TX_TYPEHASH + _word(self.destination) + _word(self.value)
            + keccak256(bytes.fromhex(self.data)) + _word(self.nonce) + _word(self.executor)
            + _word(self.gas_limit)
        )  # fmt: skip
        return keccak256(b"\x19\x01" + domain + inner)

    def payment(self) -> tuple[str, str, int]:
        """(token "" for ETH, recipient, amount) of this call (ValueError: not a payment)."""
        raw = bytes.fromhex(self.data)
        if not raw:
            return "", to_checksum_address(self.destination), self.value
        if self.value == 0 and len(raw) == 68 and raw[:4] == ERC20_TRANSFER:
            if raw[4:16] != b"\0" * 12:
                raise ValueError("malformed token transfer")
            to = to_checksum_address(raw[16:36].hex())
            return to_checksum_address(self.destination), to, int.from_bytes(raw[36:], "big")
        raise ValueError("only ETH transfers and ERC-20 transfer() calls are signed")

    def to_json(self) -> str:
        """The request as one JSON object (what the signer reads)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Request:
        """Parse a request (ValueError on anything malformed)."""
        try:
            d = json.loads(text)
            req = cls(
                int(d["chain_id"]), str(d["contract"]), int(d["nonce"]), str(d["destination"]),
                int(d["value"]), str(d["data"]), str(d["executor"]), int(d["gas_limit"]),
            )  # fmt: skip
            req.digest()  # validates the addresses and ranges
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a multisig request: {exc}") from None
        return req


def request_for(
    chain_id: int, contract: str, nonce: int, to: str, amount: int, token: str, executor: str
) -> Request:
    """The request paying ``amount`` wei (or units of ``token``) to ``to``."""
    if token:
        data = ERC20_TRANSFER + _word(to) + _word(amount)
        return Request(chain_id, contract, nonce, token, 0, data.hex(), executor)
    return Request(chain_id, contract, nonce, to, amount, "", executor)


def sign(req: Request, key: ec.PrivateKey) -> str:
    """An owner's signature of ``req``: r || s || v (65 bytes, hex; v is 27 or 28)."""
    sig = secp256k1.ecdsa_sign_recoverable(req.digest(), key.secret)
    compact, recid = secp256k1.ecdsa_recoverable_signature_serialize_compact(sig)
    return (bytes(compact) + bytes([27 + recid])).hex()


def recover(req: Request, signature: str) -> str:
    """The checksummed address that signed ``req`` (ValueError: not a valid signature)."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
        if len(raw) != 65 or raw[64] not in (27, 28):
            raise ValueError("a signature is 65 bytes ending in v = 27 or 28")
        sig = secp256k1.ecdsa_recoverable_signature_parse_compact(raw[:64], raw[64] - 27)
        pub = secp256k1.ecdsa_recover(sig, req.digest())
        sec = secp256k1.ec_pubkey_serialize(pub, secp256k1.EC_COMPRESSED)
    except Exception as exc:
        raise ValueError(f"invalid signature: {exc}") from None
    return eth_address(ec.PublicKey.parse(bytes(sec)))


def execute_calldata(req: Request, signatures: list[str]) -> bytes:
    """``execute(...)`` with ``signatures`` ordered by signer address, as the contract wants."""
    ordered = sorted(signatures, key=lambda s: int(recover(req, s), 16))
    sigs = b"".join(bytes.fromhex(s) for s in ordered)
    data = bytes.fromhex(req.data)
    head_words = 6
    off_sigs = head_words * 32
    off_data = off_sigs + len(_dynamic(sigs))
    head = (
        _word(off_sigs) + _word(req.destination) + _word(req.value) + _word(off_data)
        + _word(req.executor) + _word(req.gas_limit)
    )  # fmt: skip
    return EXECUTE + head + _dynamic(sigs) + _dynamic(data)
