"""`bursa clearing`: ``run`` the process, or query the ledger.

Queries print one JSON object per line (amounts in minor units):

    bursa clearing run [--db URL] [--core-pub-endpoint E] [--core-replay-endpoint E]
    bursa clearing balances USER [--as-of-seq SEQ]
    bursa clearing history USER [--limit N] [--before-seq SEQ]
    bursa clearing orders USER                 open orders
    bursa clearing order USER ORDER_ID         one order's state and events
    bursa clearing fills USER [--limit N]
    bursa clearing fees                        fee revenue by asset and UTC day
    bursa clearing totals                      per asset: available, held, fee, supply, sum
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from clearing import queries
from clearing.config import add_arguments, load
from clearing.db import CONNECTION_ERRORS, Db

QUERIES = ("balances", "history", "orders", "order", "fills", "fees", "totals")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bursa clearing", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="query", required=True)
    # Dispatched before parsing (clearing.process has its own flags); listed for --help.
    sub.add_parser("run", help="run the clearing process (bursa clearing run --help)")
    for name in QUERIES:
        q = sub.add_parser(name)
        add_arguments(q)
        if name not in ("fees", "totals"):
            q.add_argument("user", type=int)
        if name == "order":
            q.add_argument("order_id", type=int)
        if name == "balances":
            q.add_argument("--as-of-seq", type=int)
        if name in ("history", "fills"):
            q.add_argument("--limit", type=int, default=100)
        if name == "history":
            q.add_argument("--before-seq", type=int)
    return p


def _run_query(db: Db, a: argparse.Namespace) -> list[Any]:
    if a.query == "balances":
        return list(queries.balances(db, a.user, a.as_of_seq))
    if a.query == "history":
        return queries.history(db, a.user, a.limit, a.before_seq)
    if a.query == "orders":
        return queries.open_orders(db, a.user)
    if a.query == "order":
        return [queries.order_history(db, a.user, a.order_id)]
    if a.query == "fills":
        return queries.fills(db, a.user, a.limit)
    if a.query == "fees":
        return queries.fee_revenue(db)
    return list(queries.totals(db))


def main(argv: list[str]) -> int:
    """Dispatch ``run`` to :mod:`clearing.process`, everything else to a query."""
    if argv and argv[0] == "run":
        from clearing import process

        return process.main(argv[1:])
    a = _parser().parse_args(argv)
    try:
        cfg = load(a)
        with Db(cfg.db) as db:
            out = _run_query(db, a)
    except (ValueError, OSError, *CONNECTION_ERRORS) as e:  # type: ignore[misc]
        print(f"bursa clearing: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    for row in out:
        print(json.dumps(row))
    return 0
