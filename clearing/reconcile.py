"""`bursa reconcile`: the ledger against the core, at the same seq.

1. Ask the core its ``last_seq`` (``ping``) and wait until the ledger has
   applied exactly up to it (or beyond: then the ledger's balances *as of*
   that seq are used, from ``balance_after`` of the entries).
2. Ask the core's ``balance`` of every (user, asset, account) the ledger has
   seen added, then ``conservation``; its ``last_seq`` must still be the one of
   step 1 (otherwise the core moved during the reads: start again).
3. Compare: every balance to the unit, the core's conservation invariant, and
   the ledger's own invariants (every asset sums to zero, no negative balance,
   the fee account non-negative).

Prints every difference (one JSON object per line, then a summary line) and
exits 1 if there is any, 2 if the comparison could not be made, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bindings.client import CoreClient, CoreError
from clearing import queries
from clearing.config import add_arguments, load
from clearing.db import CONNECTION_ERRORS, Db
from clearing.rules import AVAILABLE, EXTERNAL, HELD, SYSTEM_USER

ACCOUNTS = (0, 1)


class NotComparableError(RuntimeError):
    """The ledger did not reach the core's seq in time, or the core kept moving."""


def _ledger_balances(db: Db, seq: int, users: list[int]) -> dict[tuple[int, int, int], list[int]]:
    """(user, asset, account) -> [available, held] of the ledger at ``seq``."""
    out: dict[tuple[int, int, int], list[int]] = {}
    if queries.last_seq(db) == seq:
        rows = db.query("SELECT user_id, account, bucket, asset, balance FROM balances")
        for u, acc, b, a, v in rows:
            if int(u) != SYSTEM_USER:
                out.setdefault((int(u), int(a), int(acc)), [0, 0])[int(b) == HELD] = int(v)
        return out
    for u in users:
        for d in queries.balances(db, u, as_of_seq=seq):
            out[(u, d["asset"], d["account"])] = [d["available"], d["held"]]
    return out


def compare(
    db: Db, core: CoreClient, wait_s: float = 30.0, attempts: int = 20, timeout_ms: int = 10_000
) -> dict[str, Any]:
    """Reconcile once; returns ``{"seq", "checked", "differences": [...]}``.

    Raises
    ------
    NotComparableError
        The ledger stayed behind the core for ``wait_s``, or the core's seq moved
        during every attempt.
    """
    for _ in range(attempts):
        seq = int(core.control("ping", timeout_ms)["last_seq"])
        deadline = time.monotonic() + wait_s
        while queries.last_seq(db) < seq:
            if time.monotonic() > deadline:
                raise NotComparableError(
                    f"ledger at seq {queries.last_seq(db)} stayed behind the core's {seq}"
                )
            time.sleep(0.05)
        users, assets = queries.users_and_assets(db)
        core_bal: dict[tuple[int, int, int], list[int]] = {}
        for u in users:
            for a in assets:
                for acc in ACCOUNTS:
                    ans = core.control("balance", timeout_ms, user_id=u, asset_id=a, account=acc)
                    core_bal[(u, a, acc)] = [int(x) for x in ans["balance"]]
        cons = core.control("conservation", timeout_ms)
        if int(cons["last_seq"]) != seq:
            continue  # the core moved while we read it: the answers mix two seqs
        return _differences(db, seq, users, core_bal, cons)
    raise NotComparableError(f"the core's seq kept moving during {attempts} attempts")


def _differences(
    db: Db,
    seq: int,
    users: list[int],
    core_bal: dict[tuple[int, int, int], list[int]],
    cons: dict[str, Any],
) -> dict[str, Any]:
    diffs: list[dict[str, Any]] = []
    led = _ledger_balances(db, seq, users)
    for key in sorted(set(core_bal) | set(led)):
        c = core_bal.get(key)
        lv = led.get(key, [0, 0])
        if c is None:
            if lv != [0, 0]:
                diffs.append({"what": "balance of a user the core was not asked about",
                              "user": key[0], "asset": key[1], "account": key[2],
                              "ledger": lv})  # fmt: skip
            continue
        if c != lv:
            diffs.append({"what": "balance", "user": key[0], "asset": key[1],
                          "account": key[2], "core": c, "ledger": lv})  # fmt: skip
    for err in cons.get("errors", []):
        diffs.append({"what": "core conservation", "error": err})
    if queries.last_seq(db) == seq:
        for t in queries.totals(db):
            if t["sum"] != 0:
                diffs.append({"what": "ledger does not sum to zero", **t})
            if t["fee"] < 0:
                diffs.append({"what": "fee account negative", **t})
        neg = db.query(
            "SELECT user_id, account, bucket, asset, balance FROM balances"
            " WHERE balance < 0 AND bucket <> ?",
            (EXTERNAL,),
        )
        for u, acc, b, a, v in neg:
            diffs.append({"what": "negative balance", "user": int(u), "account": int(acc),
                          "bucket": "held" if int(b) == HELD else
                          ("available" if int(b) == AVAILABLE else "fee"),
                          "asset": int(a), "balance": int(v)})  # fmt: skip
    return {"seq": seq, "checked": len(core_bal), "differences": diffs}


def main(argv: list[str]) -> int:
    """``bursa reconcile [--config F] [--db URL] [--core-admin-endpoint E] [--wait-s S]``."""
    p = argparse.ArgumentParser(prog="bursa reconcile", description=__doc__.splitlines()[0])
    add_arguments(p)
    p.add_argument("--wait-s", type=float, default=30.0, help="wait for the ledger to catch up")
    p.add_argument("--timeout-ms", type=int, default=10_000, help="wait for each core answer")
    args = p.parse_args(argv)
    try:
        cfg = load(args)
        with Db(cfg.db) as db, CoreClient(cfg.core_admin_endpoint) as core:
            res = compare(db, core, wait_s=args.wait_s, timeout_ms=args.timeout_ms)
    except (
        ValueError,
        OSError,
        TimeoutError,
        CoreError,
        NotComparableError,
        *CONNECTION_ERRORS,
    ) as e:  # type: ignore[misc]
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        return 2
    for d in res["differences"]:
        print(json.dumps(d))
    print(json.dumps({"seq": res["seq"], "checked": res["checked"],
                      "differences": len(res["differences"])}), flush=True)  # fmt: skip
    return 1 if res["differences"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
