"""`bursa admin`: admin and funding commands, and state queries, to a running core.

Each subcommand sends one command record (journaled like any other) or one
control request (state queries: not journaled) to the core and prints the answer
as one JSON line.  Configuration commands and queries go to the core's ``admin``
socket (``--endpoint``), ``deposit`` to its ``fund`` socket (``--fund-endpoint``);
``keygen`` writes a CURVE key pair and talks to no core.  Exit status: 0 applied (or an idempotent
duplicate, or a query that holds), 1 rejected (or conservation violated),
2 usage error or no answer in time.

Examples::

    bursa admin add-asset 1 --decimals 8
    bursa admin add-asset 2 --decimals 2
    bursa admin add-fee-tier 0 --maker-ppm 1000 --taker-ppm 2000
    bursa admin add-symbol 1 1 2 --price-multiplier 1 --max-price-ticks 10000000
    bursa admin add-user 7
    bursa admin deposit 7 2 100000000 --ref 1
    bursa admin halt 1 ; bursa admin resume 1
    bursa admin snapshot ; bursa admin conservation ; bursa admin state-hash
    bursa admin keygen keys/ core ; bursa admin keygen keys/clients gateway
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from bindings.client import CoreClient, CoreError
from engine.security import CurveClientKeys, keygen, load_client_keys
from engine.server import DEFAULT_ADMIN_ENDPOINT, DEFAULT_FUND_ENDPOINT
from engine.wire import commands
from engine.wire.frames import STATUS_APPLIED, STATUS_DUPLICATE
from engine.wire.roles import role_of
from pyx.enums import CmdKind, Reason

Records = np.ndarray[Any, np.dtype[np.void]]

STATUS_NAMES = {1: "applied", 2: "rejected", 3: "duplicate"}
# Minimum order value (quote minor units) `add-symbol` sets unless told otherwise.
DEFAULT_MIN_NOTIONAL_MINOR = 100
EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2


def reply_dict(rep: np.void) -> dict[str, Any]:
    """A reply record as a JSON-ready dict with readable status, reason and kind."""
    reason = int(rep["reason"])
    kind = int(rep["kind"])
    try:
        reason_name = Reason(reason).name
    except ValueError:
        reason_name = str(reason)
    try:
        kind_name = CmdKind(kind).name
    except ValueError:
        kind_name = str(kind)
    return {
        "status": STATUS_NAMES.get(int(rep["status"]), str(int(rep["status"]))),
        "reason": reason_name,
        "kind": kind_name,
        "seq": int(rep["seq"]),
        "value": int(rep["value"]),
        "order_id": int(rep["order_id"]),
        "user_id": int(rep["user_id"]),
    }


def _symbol_cmd(a: argparse.Namespace) -> Records:
    cmd = commands.add_symbol(
        a.symbol_id,
        a.base_asset_id,
        a.quote_asset_id,
        tick_step=a.tick_step,
        lot_step=a.lot_step,
        price_multiplier=a.price_multiplier,
        base_per_lot=a.base_per_lot,
        min_qty_lots=a.min_qty_lots,
        max_qty_lots=a.max_qty_lots,
        min_price_ticks=a.min_price_ticks,
        max_price_ticks=a.max_price_ticks,
        protection_ticks=a.protection_ticks,
    )
    if a.min_notional_minor:
        cmd = np.concatenate([cmd, commands.set_min_notional(a.symbol_id, a.min_notional_minor)])
    return cmd


# subcommand -> builder of its command record(s) from the parsed arguments
COMMAND_BUILDERS: dict[str, Callable[[argparse.Namespace], Records]] = {
    "add-asset": lambda a: commands.add_asset(a.asset_id, a.decimals),
    "add-symbol": _symbol_cmd,
    "add-fee-tier": lambda a: commands.add_fee_tier(a.tier, a.maker_ppm, a.taker_ppm),
    "add-user": lambda a: commands.add_user(a.user_id, a.fee_tier),
    "set-fee-tier": lambda a: commands.set_fee_tier(a.user_id, a.tier),
    "deposit": lambda a: commands.deposit(
        a.ref, a.user_id, a.asset_id, a.amount_minor, account=a.account
    ),
    "halt": lambda a: commands.halt_symbol(a.symbol_id),
    "set-user-order-limit": lambda a: commands.set_user_order_limit(a.limit),
    "resume": lambda a: commands.resume_symbol(a.symbol_id),
    "suspend-user": lambda a: commands.suspend_user(a.user_id),
    "resume-user": lambda a: commands.resume_user(a.user_id),
}
QUERIES = ("snapshot", "conservation", "state-hash", "status", "balance")
# Subcommand groups owned by other modules, one line each: `bursa admin NAME ARGS...`
# runs ``MODULE.main(ARGS)`` (imported on use, so a group's dependencies load only for it).
DELEGATES: dict[str, tuple[str, str]] = {
    "apikey": ("gateway.keys", "gateway API keys: create | list | revoke"),
    "withdrawals": ("wallet.review_cli", "withdrawal reviews: list | show | approve | reject"),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bursa admin", description=__doc__.splitlines()[0])
    p.add_argument(
        "--endpoint",
        "--admin-endpoint",
        dest="endpoint",
        default=DEFAULT_ADMIN_ENDPOINT,
        help="the core's admin endpoint",
    )
    p.add_argument(
        "--fund-endpoint", default=DEFAULT_FUND_ENDPOINT, help="the core's fund endpoint (deposit)"
    )
    p.add_argument("--timeout-ms", type=int, default=10_000)
    p.add_argument("--curve-key", help="this operator's .key_secret file (core with CURVE)")
    p.add_argument("--curve-server-key", help="the core's public .key file (core with CURVE)")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, (_module, what) in DELEGATES.items():
        sub.add_parser(name, help=f"{what} (bursa admin {name} --help)", add_help=False)

    s = sub.add_parser("add-asset", help="add an asset (integer minor units)")
    s.add_argument("asset_id", type=int)
    s.add_argument("--decimals", type=int, default=0, help="display only")

    s = sub.add_parser("add-symbol", help="add a symbol (base/quote, grid, band)")
    s.add_argument("symbol_id", type=int)
    s.add_argument("base_asset_id", type=int)
    s.add_argument("quote_asset_id", type=int)
    for flag, default in (
        ("tick-step", 1),
        ("lot-step", 1),
        ("price-multiplier", 1),
        ("base-per-lot", 1),
        ("min-qty-lots", 1),
        ("max-qty-lots", 10**6),
        ("min-price-ticks", 1),
        ("max-price-ticks", 10**9),
        ("protection-ticks", 10**6),
        # Non-zero by default: dust orders cost the book and the event stream as much
        # as real ones.  0 switches the check off.
        ("min-notional-minor", DEFAULT_MIN_NOTIONAL_MINOR),
    ):
        s.add_argument(f"--{flag}", type=int, default=default)

    s = sub.add_parser("add-fee-tier", help="add a fee tier (ppm of the notional)")
    s.add_argument("tier", type=int)
    s.add_argument("--maker-ppm", type=int, default=0)
    s.add_argument("--taker-ppm", type=int, default=0)

    s = sub.add_parser("add-user", help="add a user")
    s.add_argument("user_id", type=int)
    s.add_argument("--fee-tier", type=int, default=0)

    s = sub.add_parser("set-fee-tier", help="move a user to another fee tier")
    s.add_argument("user_id", type=int)
    s.add_argument("tier", type=int)

    s = sub.add_parser("deposit", help="credit a deposit (idempotent by --ref)")
    s.add_argument("user_id", type=int)
    s.add_argument("asset_id", type=int)
    s.add_argument("amount_minor", type=int)
    s.add_argument("--ref", type=int, required=True, help="external reference (non-zero)")
    s.add_argument("--account", type=int, default=0, help="0 trading, 1 funding")

    s = sub.add_parser("set-user-order-limit", help="live orders per user at most")
    s.add_argument("limit", type=int)

    for name, what in (("halt", "halt"), ("resume", "resume")):
        s = sub.add_parser(name, help=f"{what} a symbol")
        s.add_argument("symbol_id", type=int)
    for name, what in (("suspend-user", "suspend"), ("resume-user", "resume")):
        s = sub.add_parser(name, help=f"{what} a user")
        s.add_argument("user_id", type=int)

    s = sub.add_parser("keygen", help="write a CURVE key pair NAME.key / NAME.key_secret")
    s.add_argument("directory")
    s.add_argument("name")

    sub.add_parser("snapshot", help="write a snapshot now")
    sub.add_parser("conservation", help="check the conservation invariant (exit 1 if violated)")
    sub.add_parser("state-hash", help="print the state hash and last seq")
    sub.add_parser("status", help="counters and endpoints of the core")
    s = sub.add_parser("balance", help="(available, held) of one balance, minor units")
    s.add_argument("user_id", type=int)
    s.add_argument("asset_id", type=int)
    s.add_argument("--account", type=int, default=0)
    return p


def endpoint_for(args: argparse.Namespace) -> str:
    """The core socket a parsed subcommand talks to (its commands' role)."""
    if args.cmd in COMMAND_BUILDERS:
        roles = {role_of(int(k)) for k in COMMAND_BUILDERS[args.cmd](args)["kind"]}
        if roles == {"fund"}:
            return str(args.fund_endpoint)
    return str(args.endpoint)


def run(args: argparse.Namespace, client: CoreClient) -> tuple[int, list[dict[str, Any]]]:
    """Execute one parsed subcommand; returns (exit status, answers to print)."""
    if args.cmd in COMMAND_BUILDERS:
        recs = COMMAND_BUILDERS[args.cmd](args)
        replies = client.request(recs, args.timeout_ms)
        out = [reply_dict(r) for r in replies]
        ok = all(int(r["status"]) in (STATUS_APPLIED, STATUS_DUPLICATE) for r in replies)
        return (EXIT_OK if ok else EXIT_REJECTED), out
    op = args.cmd.replace("-", "_")
    extra: dict[str, Any] = {}
    if op == "balance":
        extra = {"user_id": args.user_id, "asset_id": args.asset_id, "account": args.account}
    ans = client.control(op, args.timeout_ms, **extra)
    return (EXIT_OK if ans.get("ok") else EXIT_REJECTED), [ans]


def main(argv: list[str] | None = None) -> int:
    """`bursa admin ...` (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in DELEGATES:
        group: int = importlib.import_module(DELEGATES[argv[0]][0]).main(argv[1:])
        return group
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) and EXIT_USAGE
    if args.cmd == "keygen":
        public, secret = keygen(args.directory, args.name)
        print(json.dumps({"ok": True, "public": public, "secret": secret}))
        return EXIT_OK
    curve: CurveClientKeys | None = None
    try:
        if args.curve_key or args.curve_server_key:
            curve = load_client_keys(args.curve_key, args.curve_server_key)
        client = CoreClient(endpoint_for(args), curve=curve)
    except (OSError, ValueError, TypeError) as e:
        print(json.dumps({"ok": False, "error": str(e)}), file=sys.stderr)
        return EXIT_USAGE
    try:
        code, answers = run(args, client)
    except (TimeoutError, CoreError, ValueError) as e:
        print(json.dumps({"ok": False, "error": str(e)}), file=sys.stderr)
        return EXIT_USAGE
    finally:
        client.close()
    for a in answers:
        print(json.dumps(a, sort_keys=True))
    return code


if __name__ == "__main__":
    sys.exit(main())
