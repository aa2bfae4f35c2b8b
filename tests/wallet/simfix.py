"""Build a wallet over simulated chains (in-process) against a real core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.wallet.conftest import XPUB_BIP44_ETH, XPUB_BIP84, CoreHandle
from wallet.config import AssetConfig, ChainConfig
from wallet.scanner import ChainRuntime, Wallet
from wallet.simchain import SimChain
from wallet.store import Store

TOKEN_CONTRACT = "0x00000000000000000000000000000000000000aa"
FAKE_CONTRACT = "0x00000000000000000000000000000000000000bb"
BTC, ETH, USDT = 1, 2, 3


def utxo_cfg(**kw: Any) -> ChainConfig:
    """A simulated BTC-like chain: credit after 3, pending at 1, minimum 1000 sat."""
    base: dict[str, Any] = dict(
        name="sbtc",
        kind="sim-rpc",
        network="btc-regtest",
        xpub=XPUB_BIP84,
        assets=(AssetConfig(BTC, min_deposit=1000),),
        pending_confirmations=1,
        credit_confirmations=3,
        pool_size=5,
    )
    base.update(kw)
    return ChainConfig(**base)


def eth_cfg(**kw: Any) -> ChainConfig:
    """A simulated account chain with ETH (gwei credits) and one token."""
    base: dict[str, Any] = dict(
        name="seth",
        kind="sim-rpc",
        network="eth",
        xpub=XPUB_BIP44_ETH,
        assets=(
            AssetConfig(ETH, min_deposit=10**15, scale=10**9),
            AssetConfig(USDT, token=TOKEN_CONTRACT, min_deposit=100),
        ),
        pending_confirmations=1,
        credit_confirmations=4,
        pool_size=5,
    )
    base.update(kw)
    return ChainConfig(**base)


def make_wallet(
    db: Path | str, core: CoreHandle, chains: list[tuple[ChainConfig, SimChain]], **kw: Any
) -> Wallet:
    """A Wallet over in-process simulated chains (a new one on the same db = a restart)."""
    return Wallet(Store(str(db)), [ChainRuntime(c, s) for c, s in chains], core.funding, **kw)
