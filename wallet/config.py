"""The wallet's configuration: the ``[wallet]`` section of a TOML file.

Example (docs/wallet.md explains every key)::

    [wallet]
    db = "data/wallet/wallet.db"
    core_fund_endpoint = "tcp://127.0.0.1:7001"
    poll_ms = 1000

    [wallet.chains.ltc]
    kind = "ltc"                      # sim-rpc | ltc | eth
    network = "ltc-regtest"           # address encoding (addresses.UTXO_NETWORKS, "eth")
    url = "http://user:pass@127.0.0.1:19443"
    xpub = "tpub..."
    pending_confirmations = 1
    credit_confirmations = 6
    assets = [{ asset_id = 3, min_deposit = 10000 }]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHAIN_KINDS = ("sim-rpc", "ltc", "eth")


@dataclass(frozen=True)
class AssetConfig:
    """One asset a chain carries: its native coin (``token`` "") or an ERC-20 contract.

    ``min_deposit`` is in chain units (satoshi, wei, token units); ``scale`` is the
    number of chain units per core minor unit (ETH: 10**9 credits gwei, so a
    deposit fits the core's int64); a remainder below one minor unit is not credited.
    """

    asset_id: int
    token: str = ""
    min_deposit: int = 1
    scale: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.asset_id < 65536:
            raise ValueError(f"asset_id must be 1..65535, not {self.asset_id}")
        if self.min_deposit < 1 or self.scale < 1:
            raise ValueError("min_deposit and scale must be >= 1")


@dataclass(frozen=True)
class ChainConfig:
    """One watched chain."""

    name: str
    kind: str
    network: str
    xpub: str
    assets: tuple[AssetConfig, ...]
    url: str = ""
    pending_confirmations: int = 1
    credit_confirmations: int = 6
    start_height: int = 0
    pool_size: int = 20
    keep_blocks: int = 1000
    account: int = 1
    max_blocks_per_step: int = 500

    def __post_init__(self) -> None:
        if self.kind not in CHAIN_KINDS:
            raise ValueError(f"chain {self.name}: kind must be one of {CHAIN_KINDS}")
        if not 0 <= self.pending_confirmations <= self.credit_confirmations:
            raise ValueError(
                f"chain {self.name}: need 0 <= pending_confirmations <= credit_confirmations"
            )
        if self.credit_confirmations < 1:
            raise ValueError(f"chain {self.name}: credit_confirmations must be >= 1")
        if self.keep_blocks <= self.credit_confirmations:
            raise ValueError(f"chain {self.name}: keep_blocks must exceed credit_confirmations")
        if self.account not in (0, 1):
            raise ValueError(f"chain {self.name}: account is 0 (trading) or 1 (funding)")
        if not self.assets:
            raise ValueError(f"chain {self.name}: at least one asset")
        tokens = [a.token.lower() for a in self.assets]
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"chain {self.name}: an asset is configured twice")

    def asset_for(self, token: str) -> AssetConfig | None:
        """The configured asset of a token contract ("" = the native coin)."""
        for a in self.assets:
            if a.token.lower() == token.lower():
                return a
        return None


@dataclass(frozen=True)
class WalletConfig:
    """The whole ``[wallet]`` section."""

    db: str = "data/wallet/wallet.db"
    core_fund_endpoint: str = "tcp://127.0.0.1:7001"
    core_admin_endpoint: str = ""
    poll_ms: int = 1000
    core_timeout_ms: int = 10_000
    chains: tuple[ChainConfig, ...] = field(default_factory=tuple)
    # Test-only fault injection: SIGKILL this process right after the N-th DEPOSIT
    # reply, before it is recorded (0 = never). See tests/wallet/test_process.py.
    fault_kill_after_credits: int = 0
    # ``[wallet.withdraw.<chain>]`` and ``[wallet.risk]`` tables, parsed by
    # wallet.withdraw_config (withdrawals are off when ``withdraw`` is empty).
    withdraw: dict[str, Any] = field(default_factory=dict)
    risk: dict[str, Any] = field(default_factory=dict)
    # Test-only: SIGKILL this process at a withdrawal fault point (e.g. "after_broadcast").
    fault_kill_at: str = ""
    # Prometheus /metrics address of `bursa wallet run` ("" or "off": none; wallet.metrics).
    metrics: str = "127.0.0.1:0"


def parse(section: dict[str, Any]) -> WalletConfig:
    """Build a :class:`WalletConfig` from the ``[wallet]`` table (ValueError on bad input)."""
    chains = []
    for name, raw in dict(section.get("chains", {})).items():
        raw = dict(raw)
        assets = tuple(AssetConfig(**dict(a)) for a in raw.pop("assets", ()))
        chains.append(ChainConfig(name=name, assets=assets, **raw))
    top = {k: v for k, v in section.items() if k != "chains"}
    return WalletConfig(chains=tuple(chains), **top)
