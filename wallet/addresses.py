"""Watch-only deposit addresses: derived from an account xpub, never from a private key.

UTXO chains use BIP84 (native SegWit P2WPKH, the xpub of ``m/84'/coin'/account'``);
Ethereum uses BIP44 (the xpub of ``m/44'/60'/0'``). Both derive the external chain
``0/i``: the i-th deposit address. Derivation is embit's (BIP32 + secp256k1 from
libsecp256k1); the Ethereum address is the last 20 bytes of the Keccak-256 of the
uncompressed public key (pycryptodome), checksummed per EIP-55.

The online host holds only the xpub: nothing here can sign or spend.
"""

from __future__ import annotations

from embit import bip32, ec, script
from embit.networks import NETWORKS

# Bech32 human-readable parts of the Bitcoin-family networks the wallet knows.
UTXO_NETWORKS: dict[str, dict[str, object]] = {
    "btc": NETWORKS["main"],
    "btc-test": NETWORKS["test"],
    "btc-regtest": NETWORKS["regtest"],
    "ltc": {**NETWORKS["main"], "name": "Litecoin", "bech32": "ltc"},
    "ltc-test": {**NETWORKS["test"], "name": "Litecoin testnet", "bech32": "tltc"},
    "ltc-regtest": {**NETWORKS["regtest"], "name": "Litecoin regtest", "bech32": "rltc"},
}
ETH_NETWORKS = ("eth",)
EXTERNAL_CHAIN = 0


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's hash, not NIST SHA3-256)."""
    from Crypto.Hash import keccak

    return keccak.new(digest_bits=256, data=data).digest()


def to_checksum_address(addr: str) -> str:
    """EIP-55 mixed-case form of a 20-byte hex address."""
    hexaddr = addr.lower().removeprefix("0x")
    if len(hexaddr) != 40 or any(c not in "0123456789abcdef" for c in hexaddr):
        raise ValueError(f"not an Ethereum address: {addr!r}")
    digest = keccak256(hexaddr.encode()).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c for i, c in enumerate(hexaddr)
    )


def eth_address(pub: ec.PublicKey) -> str:
    """The Ethereum address of a secp256k1 public key."""
    unc = ec.PublicKey.parse(pub.sec())
    unc.compressed = False
    return to_checksum_address(keccak256(unc.sec()[1:])[-20:].hex())


def parse_xpub(xpub: str) -> bip32.HDKey:
    """Parse an account-level extended PUBLIC key; an xprv is refused (watch-only host)."""
    try:
        key = bip32.HDKey.from_string(xpub.strip())
    except Exception as exc:
        raise ValueError(f"not an extended public key: {exc}") from exc
    if key.is_private:
        raise ValueError("an extended private key was given: the wallet host takes xpubs only")
    return key


def derive_address(xpub: str, network: str, index: int) -> str:
    """The ``index``-th external (deposit) address of ``xpub`` on ``network``."""
    if not 0 <= index < 2**31:
        raise ValueError("address index must be a non-hardened index 0..2**31-1")
    child = parse_xpub(xpub).derive([EXTERNAL_CHAIN, index])
    if network in ETH_NETWORKS:
        return eth_address(child.key)
    params = UTXO_NETWORKS.get(network)
    if params is None:
        raise ValueError(f"unknown network {network!r}: one of {[*UTXO_NETWORKS, *ETH_NETWORKS]}")
    addr: str = script.p2wpkh(child.key).address(params)
    return addr
