"""`bursa` command line: one entry point, one module per subcommand.

Each subcommand lives in the module that owns it and exposes ``main(argv)``;
this file only dispatches, so adding a subcommand never touches another's code.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("bursa.demo", "in-process demo: a symbol, an order flow, top of book, trades"),
    "run": ("bursa.exchange.supervisor", "the whole exchange under a supervisor, until Ctrl-C"),
    "tour": ("bursa.run", "scripted tour: start the core, trade BTC/USDT, restart it, exit"),
    "config": ("bursa.exchange.config", "print the effective configuration (config show)"),
    "core": ("engine.server", "run the core process (ZeroMQ command/event/replay sockets)"),
    "replay": ("engine.replay", "rebuild state from a journal directory and print its hash"),
    "sim": ("sim.run", "one deterministic simulation: --seed N [--commands K]"),
    "sim-campaign": ("sim.campaign", "many seeds in parallel with a progress bar"),
    "admin": ("bursa.admin", "admin commands to a running core"),
    "gateway": ("gateway.server", "order-entry gateway: TCP sessions, API keys, execution reports"),
    "clearing": ("clearing.cli", "the double-entry ledger: run the follower, or query it"),
    "reconcile": ("clearing.reconcile", "ledger vs core balances and conservation at one seq"),
    "marketdata": ("marketdata.server", "public market-data feed (ZeroMQ PUB + snapshot/replay)"),
    "watch": ("marketdata.watch", "live terminal view of a symbol: book, trades, candles"),
    "wallet": ("wallet.main", "deposit scanner: chain adapters, deposit addresses, credits"),
    "por": ("por.cli", "proof of reserves: liabilities tree, user proofs, reserves report"),
    "api": ("api.app", "Binance-compatible REST + WebSocket API (ccxt, python-binance)"),
    "bench": ("bursa.bench", "the benchmark suite and its report (source checkout: make bench)"),
}


def usage() -> str:
    """The help text listing every subcommand."""
    lines = ["usage: bursa <command> [args]", "", "commands:"]
    lines += [f"  {name:<13} {doc}" for name, (_, doc) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``bursa <command> ...`` to the owning module's ``main``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    entry = SUBCOMMANDS.get(args[0])
    if entry is None:
        print(f"bursa: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(entry[0])
    rc: int = module.main(args[1:])
    return rc


if __name__ == "__main__":
    sys.exit(main())
