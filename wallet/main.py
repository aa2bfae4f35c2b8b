"""`bursa wallet`: the deposit scanner process and its operator subcommands.

    bursa wallet [run] --config wallet.toml        scan every chain until SIGTERM
    bursa wallet address --chain C --user U        a user's deposit address
    bursa wallet history --user U                  a user's deposits (JSON lines)
    bursa wallet incidents                         halted chains and incident events
    bursa wallet resume --chain C --operator NAME [--rescan-from H]
                                                   lift a chain's halt after an incident
    bursa wallet settle --ref R --action release|commit   resolve a reversed deposit's hold
    bursa wallet demo                              the deposit flow on the simulated chain

Withdrawals (docs/wallet.md, "Withdrawals"):

    bursa wallet withdraw --client-ref R --user U --chain C --address A --amount N
    bursa wallet withdrawals [--user U]            withdrawals with state, score, custody
    bursa wallet review list|show|approve|reject [--wid W --operator NAME --reason TEXT]
                                                   (= bursa admin withdrawals ...)
    bursa wallet psbt --wid W                      a multisig withdrawal's PSBT (base64)
    bursa wallet submit-psbt --wid W --in FILE     add a signer's signatures
    bursa wallet whitelist|blacklist --chain C --address A [--user U]
    bursa wallet kyc --user U --tier T  /  security-change --user U --kind K
    bursa wallet unhalt --chain C --operator NAME  resume withdrawals after the breaker
    bursa wallet treasury                          on-chain balances vs liabilities
    bursa wallet quarantine [--chain C]            coins kept out of withdrawals and sweeps
    bursa wallet release-coin --chain C --outpoint TXID:N --operator NAME --reason TEXT
    bursa wallet keygen --key FILE --network N [--max-tx N --max-daily N]   (offline)
    bursa wallet sign-psbt --key FILE --in FILE --out FILE                  (offline)
        (a PSBT, or an Ethereum multisig request: JSON in, {"signer", "signature"} out;
        keygen --contract 0x.. --chain-id N makes such an owner's key file)

keygen and sign-psbt read no config or database: they run on the signer's host.
The passphrase of a key file comes from ``--passphrase-file`` or $BURSA_KEY_PASSPHRASE.

The config is the ``[wallet]`` section of a TOML file (see :mod:`wallet.config`);
``--db``, ``--core-fund-endpoint``, ``--core-admin-endpoint`` and ``--poll-ms``
override it. ``run`` prints one JSON ready line, then scans every ``poll_ms``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import tomllib
from collections.abc import Callable
from typing import Any

from engine import logs
from engine.metrics_http import Collector
from engine.metrics_http import serve as serve_metrics
from wallet import review_cli, withdraw_config
from wallet.chain import ChainAdapter
from wallet.config import ChainConfig, WalletConfig, parse
from wallet.corelink import CoreFunding
from wallet.metrics import WalletMetrics
from wallet.scanner import ChainRuntime, Wallet, kill_after
from wallet.store import Store
from wallet.withdraw_cli import WITHDRAW_ACTIONS, offline, withdraw_cli
from wallet.withdrawals import CoinSource, Withdrawals, WithdrawChain

log = logging.getLogger("bursa.wallet")


def make_adapter(cfg: ChainConfig) -> ChainAdapter:
    """The adapter of a configured chain (nothing connects until it is used)."""
    if cfg.kind == "sim-rpc":
        from wallet.simrpc import SimRpcAdapter

        return SimRpcAdapter(cfg.url, cfg.name)
    if cfg.kind == "ltc":
        from wallet.ltc import BitcoinAdapter

        return BitcoinAdapter(cfg.url, cfg.name)
    from wallet.eth import EthAdapter

    return EthAdapter(cfg.url, cfg.name)


def load_config(args: argparse.Namespace) -> WalletConfig:
    """The config file's ``[wallet]`` section with flags applied."""
    section: dict[str, Any] = {}
    if args.config:
        with open(args.config, "rb") as f:
            section = dict(tomllib.load(f).get("wallet", {}))
    cfg = parse(section)
    over = {
        k: v
        for k, v in {
            "db": args.db,
            "core_fund_endpoint": args.core_fund_endpoint,
            "core_admin_endpoint": args.core_admin_endpoint,
            "poll_ms": args.poll_ms,
            "metrics": args.metrics,
        }.items()
        if v is not None
    }
    return dataclasses.replace(cfg, **over)


def build(cfg: WalletConfig) -> tuple[Wallet, CoreFunding]:
    """The Wallet of a config and its core link."""
    core = CoreFunding(cfg.core_fund_endpoint, cfg.core_admin_endpoint, cfg.core_timeout_ms)
    hook = kill_after(cfg.fault_kill_after_credits) if cfg.fault_kill_after_credits else None
    chains = [ChainRuntime(c, make_adapter(c)) for c in cfg.chains]
    return Wallet(Store(cfg.db), chains, core, after_credit=hook), core


def build_withdrawals(
    cfg: WalletConfig, wallet: Wallet, core: CoreFunding, passfile: str | None, keys: bool
) -> Withdrawals | None:
    """The withdrawal machine of a config (None when no chain has a withdraw table)."""
    if not cfg.withdraw:
        return None
    parsed = {n: withdraw_config.parse_chain(n, dict(raw)) for n, raw in cfg.withdraw.items()}
    chains: dict[str, tuple[WithdrawChain, CoinSource]] = {}
    for name, (wc, _) in parsed.items():
        node = wc.node or name
        if node not in wallet.chains:
            raise ValueError(f"withdraw.{name}: no chain {node!r} in [wallet.chains]")
        rt = wallet.chains[node]
        wc = dataclasses.replace(wc, deposit_xpub=rt.cfg.xpub)  # sweeps derive from it
        chains[name] = (wc, rt.adapter)  # type: ignore[assignment]
    fault = _kill_at(cfg.fault_kill_at) if cfg.fault_kill_at else (lambda _p: None)
    return Withdrawals(
        wallet.store,
        chains,
        core,
        hot_keys=withdraw_config.load_hot_keys(parsed, passfile) if keys else {},
        rules=withdraw_config.parse_rules(cfg.risk),
        fault=fault,
    )


def _kill_at(point: str) -> Callable[[str], None]:
    """Test fault injection: SIGKILL this process at ``point`` (after the effect, before
    it is recorded)."""

    def hook(p: str) -> None:
        if p == point:
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def run(wallet: Wallet, cfg: WalletConfig, withdrawals: Withdrawals | None = None) -> int:
    """Scan until SIGTERM/SIGINT."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    readings = WalletMetrics()
    readings.refresh(wallet, withdrawals, force=True)
    url, _ = serve_metrics(cfg.metrics, Collector(readings.collect))
    ready = {
        "ready": True,
        "metrics": url,
        "db": cfg.db,
        "chains": {c.name: {"kind": c.kind, "url": c.url} for c in cfg.chains},
        "withdrawals": sorted(withdrawals.chains) if withdrawals is not None else [],
    }
    print(json.dumps(ready), flush=True)
    while not stop.is_set():
        try:
            wallet.step_all()
            if withdrawals is not None:
                withdrawals.step()
        except Exception:
            # Never die on one bad step: log it, count it, try again next poll (every
            # step starts from the persisted state, so a retry is safe).
            log.exception("wallet step failed")
            wallet.store.bump("wallet.step_errors")
        readings.refresh(wallet, withdrawals)
        stop.wait(cfg.poll_ms / 1000)
    log.info("wallet stopping")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `bursa wallet`."""
    p = argparse.ArgumentParser(prog="bursa wallet", description=__doc__.split("\n")[0])
    p.add_argument(
        "action",
        nargs="?",
        default="run",
        choices=(
            "run", "address", "history", "incidents", "resume", "settle", "demo",
            "withdraw", "withdrawals", "review", "psbt", "submit-psbt", "whitelist",
            "blacklist", "kyc", "security-change", "unhalt", "treasury", "keygen", "sign-psbt",
            "quarantine", "release-coin",
        ),
    )  # fmt: skip
    p.add_argument("sub", nargs="?", choices=review_cli.ACTIONS, help="review")
    p.add_argument("--config", help="TOML file; its [wallet] section")
    p.add_argument("--db", help="SQLite path, sqlite:///path or postgresql:// URL")
    p.add_argument("--core-fund-endpoint")
    p.add_argument("--core-admin-endpoint")
    p.add_argument("--poll-ms", type=int)
    p.add_argument("--metrics", help="run: Prometheus /metrics HOST:PORT (default 127.0.0.1:0)")
    p.add_argument("--chain")
    p.add_argument("--user", type=int)
    p.add_argument("--ref", type=int)
    p.add_argument("--action", dest="settle_action", choices=("release", "commit"))
    p.add_argument("--operator", default="")
    p.add_argument("--rescan-from", type=int, help="resume: scan again from this height")
    logs.add_arguments(p)
    p.add_argument("--client-ref", help="withdraw: the client reference (idempotency key)")
    p.add_argument("--address")
    p.add_argument("--amount", type=int)
    p.add_argument("--wid", type=int)
    p.add_argument("--reason", default="")
    p.add_argument("--tier", type=int)
    p.add_argument("--kind", default="")
    p.add_argument("--key", help="keygen/sign-psbt: the encrypted key file")
    p.add_argument("--network", default="")
    p.add_argument("--max-tx", type=int, default=0)
    p.add_argument("--max-daily", type=int, default=0)
    p.add_argument("--in", dest="infile")
    p.add_argument("--out", dest="outfile")
    p.add_argument("--passphrase-file")
    p.add_argument("--outpoint", help="release-coin: the quarantined coin (txid:vout)")
    p.add_argument("--contract", default="", help="keygen: the Ethereum multisig it signs for")
    p.add_argument("--chain-id", type=int, default=0, help="keygen: with --contract")
    args = p.parse_args(argv)
    logs.setup("wallet", args.log_format, args.log_level)
    if args.action == "demo":
        from wallet.demo import main as demo

        return demo()
    if args.action in ("keygen", "sign-psbt"):
        return offline(args)
    try:
        cfg = load_config(args)
        wallet, core = build(cfg)
    except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        print(f"bursa wallet: bad configuration: {exc}", file=sys.stderr)
        return 2
    try:
        wd = build_withdrawals(cfg, wallet, core, args.passphrase_file, args.action == "run")
        if args.action == "run":
            return run(wallet, cfg, wd)
        if args.action in WITHDRAW_ACTIONS:
            if wd is None:
                raise ValueError("no [wallet.withdraw.<chain>] table: withdrawals are off")
            return withdraw_cli(args, wd)
        return _dispatch(args, wallet, cfg)
    except (ValueError, KeyError, TypeError) as exc:
        print(f"bursa wallet: {exc}", file=sys.stderr)
        return 2
    finally:
        wallet.store.close()
        core.close()


def _dispatch(args: argparse.Namespace, wallet: Wallet, cfg: WalletConfig) -> int:
    if args.action == "address":
        if args.chain is None or args.user is None:
            raise ValueError("address needs --chain and --user")
        print(
            json.dumps(
                {
                    "chain": args.chain,
                    "user": args.user,
                    "address": wallet.deposit_address(args.chain, args.user),
                }
            )
        )
    elif args.action == "history":
        if args.user is None:
            raise ValueError("history needs --user")
        for row in wallet.history(args.user):
            print(json.dumps(row))
    elif args.action == "incidents":
        for c in cfg.chains:
            reason = wallet.store.halted(c.name)
            print(
                json.dumps({"chain": c.name, "halted": reason is not None, "reason": reason or ""})
            )
        for e in wallet.store.events():
            if e["kind"] in ("incident", "hold", "resumed", "settled"):
                print(json.dumps(e))
    elif args.action == "resume":
        if args.chain is None or args.chain not in wallet.chains:
            raise ValueError("resume needs --chain NAME of a configured chain")
        wallet.resume(args.chain, args.operator, args.rescan_from)
        print(json.dumps({"chain": args.chain, "resumed": True}))
    elif args.action == "settle":
        if args.ref is None or args.settle_action is None:
            raise ValueError("settle needs --ref and --action release|commit")
        print(json.dumps(wallet.settle(args.ref, args.settle_action)))
    return 0
