"""Watch-only derivation (BIP84, BIP44 Ethereum) and the persisted address pool."""

from __future__ import annotations

import pytest
from embit import bip32, bip39

from tests.wallet.conftest import XPUB_BIP44_ETH, XPUB_BIP84
from wallet.addresses import derive_address, to_checksum_address
from wallet.store import Store

ABANDON = bip32.HDKey.from_seed(bip39.mnemonic_to_seed("abandon " * 11 + "about"))


def test_bip84_mainnet_vector():
    # BIP84's published test vector: m/84'/0'/0'/0/0 of the "abandon ... about" seed.
    xpub = ABANDON.derive("m/84h/0h/0h").to_public().to_base58()
    assert derive_address(xpub, "btc", 0) == "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
    assert derive_address(xpub, "btc", 1) == "bc1qnjg0jd8228aq7egyzacy8cys3knf9xvrerkf9g"


def test_litecoin_regtest_and_ethereum():
    assert derive_address(XPUB_BIP84, "ltc-regtest", 0).startswith("rltc1q")
    assert derive_address(XPUB_BIP84, "ltc", 0).startswith("ltc1q")
    # Widely published first account of the "abandon ... about" seed (m/44'/60'/0'/0/0).
    assert derive_address(XPUB_BIP44_ETH, "eth", 0) == "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"


def test_eip55_checksum_vector():
    addr = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    assert to_checksum_address(addr.lower()) == addr
    with pytest.raises(ValueError):
        to_checksum_address("0x1234")


def test_private_keys_and_bad_input_refused():
    xprv = ABANDON.derive("m/84h/0h/0h").to_base58()
    with pytest.raises(ValueError, match="private"):
        derive_address(xprv, "btc", 0)
    with pytest.raises(ValueError):
        derive_address("xpubnonsense", "btc", 0)
    with pytest.raises(ValueError, match="unknown network"):
        derive_address(XPUB_BIP84, "doge", 0)
    with pytest.raises(ValueError):
        derive_address(XPUB_BIP84, "btc", 2**31)


def test_pool_assigns_once_per_user_and_persists(tmp_path):
    from tests.wallet.simfix import utxo_cfg
    from wallet.scanner import ChainRuntime, Wallet
    from wallet.simchain import SimChain

    cfg = utxo_cfg(pool_size=3)
    db = tmp_path / "w.db"
    w = Wallet(Store(str(db)), [ChainRuntime(cfg, SimChain())], core=None)  # type: ignore[arg-type]
    assert w.store.pool_size("sbtc") == (3, 3)
    a1 = w.deposit_address("sbtc", 1)
    a2 = w.deposit_address("sbtc", 2)
    assert a1 == derive_address(cfg.xpub, cfg.network, 0)
    assert a2 == derive_address(cfg.xpub, cfg.network, 1)
    assert w.deposit_address("sbtc", 1) == a1
    assert w.store.pool_size("sbtc") == (5, 3)  # refilled
    w.store.close()
    w2 = Wallet(Store(str(db)), [ChainRuntime(cfg, SimChain())], core=None)  # type: ignore[arg-type]
    assert w2.deposit_address("sbtc", 2) == a2
    assert w2.store.watched("sbtc") == {a1.lower(): 1, a2.lower(): 2}
    with pytest.raises(ValueError):
        w2.deposit_address("nochain", 1)
    with pytest.raises(ValueError):
        w2.deposit_address("sbtc", 0)
