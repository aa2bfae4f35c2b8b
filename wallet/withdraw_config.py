"""The withdrawal part of the config: ``[wallet.withdraw.<chain>]`` and ``[wallet.risk]``.

Example (docs/wallet.md explains every key)::

    [wallet.withdraw.ltc]              # <chain> names a chain of [wallet.chains]
    asset_id = 3
    network = "ltc-regtest"
    hot_pubkey = "02..."               # the hot wallet's P2WPKH key (hex)
    hot_key_file = "keys/hot.key"      # encrypted; passphrase in $BURSA_KEY_PASSPHRASE
    multisig_pubkeys = ["02..", "03..", "02.."]
    multisig_m = 2
    fee = 10000                        # charged to the user, core minor units
    hot_max_tx = 10000000              # chain units; above: multisig
    hot_daily = 50000000
    confirmations = 6
    bump_after_blocks = 3

    [wallet.withdraw.eth]              # Ethereum: above the hot limits, an M-of-N contract
    model = "account"                  # (wallet/contracts/MultiSigWallet.sol)
    multisig_contract = "0x..."
    multisig_owners = ["0x...", "0x...", "0x..."]
    multisig_m = 2

    [wallet.risk]
    tier_limits = { "0" = 0, "1" = 10000000, "2" = 1000000000 }
    medium = 1000000
    large = 100000000
    whitelist_delay_s = 86400
    gateway_db = "data/gateway/gateway.db"   # API key created/revoked: security changes
"""

from __future__ import annotations

from typing import Any

from embit import ec

from wallet.custody import Source
from wallet.keys import passphrase_from, read_key_file
from wallet.risk import WEIGHTS, Rules
from wallet.withdrawals import WithdrawChain

CHAIN_KEYS = {
    "asset_id", "network", "hot_pubkey", "hot_key_file", "multisig_pubkeys", "multisig_m",
    "fee", "scale", "confirmations", "hot_max_tx", "hot_daily", "bump_after_blocks",
    "account", "hot_floor", "hot_ceiling", "min_fee_rate", "model", "chain_id", "token", "node",
    "deposit_sweep_threshold", "multisig_contract", "multisig_owners",
}  # fmt: skip


def parse_chain(name: str, raw: dict[str, Any]) -> tuple[WithdrawChain, str]:
    """One chain's settings and its hot key file path (ValueError on a bad table)."""
    unknown = set(raw) - CHAIN_KEYS
    if unknown:
        raise ValueError(f"withdraw.{name}: unknown keys {sorted(unknown)}")
    raw = dict(raw)
    network = str(raw.pop("network"))
    hot = Source(network, (str(raw.pop("hot_pubkey")),))
    pubs = tuple(str(p) for p in raw.pop("multisig_pubkeys", ()))
    m = int(raw.pop("multisig_m", 0))
    if pubs and not 1 <= m <= len(pubs) <= 15:
        raise ValueError(f"withdraw.{name}: need 1 <= multisig_m <= len(multisig_pubkeys) <= 15")
    for p in (*hot.pubkeys, *pubs):
        ec.PublicKey.parse(bytes.fromhex(p))  # refuse a malformed key now, not when signing
    key_file = str(raw.pop("hot_key_file", ""))
    model = str(raw.pop("model", "utxo"))
    token, node = str(raw.pop("token", "")), str(raw.pop("node", ""))
    if model not in ("utxo", "account"):
        raise ValueError(f"withdraw.{name}: model is utxo or account")
    contract = str(raw.pop("multisig_contract", ""))
    owners = tuple(str(o) for o in raw.pop("multisig_owners", ()))
    if contract and (model != "account" or not 1 <= m <= len(owners)):
        raise ValueError(
            f"withdraw.{name}: multisig_contract needs model = account and "
            "1 <= multisig_m <= len(multisig_owners)"
        )
    for a in (contract, *owners) if contract else ():
        if len(bytes.fromhex(a.lower().removeprefix("0x"))) != 20:
            raise ValueError(f"withdraw.{name}: {a!r} is not an Ethereum address")
    ints: dict[str, Any] = {k: int(v) for k, v in raw.items()}
    cfg = WithdrawChain(
        chain=name,
        network=network,
        hot=hot,
        multisig=Source(network, pubs, m) if pubs else None,
        model=model,
        token=token,
        node=node,
        multisig_contract=contract,
        multisig_owners=owners,
        contract_m=m if contract else 0,
        **ints,
    )
    return cfg, key_file


def parse_rules(raw: dict[str, Any]) -> Rules:
    """The risk rules (defaults: :class:`wallet.risk.Rules`)."""
    base = Rules()
    weights = {**WEIGHTS, **{str(k): int(v) for k, v in dict(raw.get("weights", {})).items()}}
    limits = raw.get("tier_limits")
    return Rules(
        tier_limits=(
            {int(k): int(v) for k, v in dict(limits).items()} if limits else base.tier_limits
        ),
        medium=int(raw.get("medium", base.medium)),
        large=int(raw.get("large", base.large)),
        whitelist_delay_ns=int(raw.get("whitelist_delay_s", base.whitelist_delay_ns // 10**9))
        * 10**9,
        security_window_ns=int(raw.get("security_window_s", base.security_window_ns // 10**9))
        * 10**9,
        max_per_hour=int(raw.get("max_per_hour", base.max_per_hour)),
        gateway_db=str(raw.get("gateway_db", "")),
        weights=weights,
    )


def load_hot_keys(
    chains: dict[str, tuple[WithdrawChain, str]], passfile: str | None
) -> dict[str, ec.PrivateKey]:
    """Decrypt the hot key files; each must match its configured hot_pubkey."""
    out: dict[str, ec.PrivateKey] = {}
    for name, (cfg, path) in chains.items():
        if not path:
            continue
        kf = read_key_file(path, passphrase_from(passfile))
        if kf.pubkey_hex != cfg.hot.pubkeys[0]:
            raise ValueError(f"withdraw.{name}: hot_key_file does not hold hot_pubkey")
        out[name] = kf.key
    return out
