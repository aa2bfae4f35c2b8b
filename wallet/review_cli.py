"""The withdrawal review workflow: `bursa admin withdrawals list|show|approve|reject`.

    bursa admin withdrawals list [--state review] --config wallet.toml
    bursa admin withdrawals show --wid W --config wallet.toml
    bursa admin withdrawals approve --wid W --reviewer alice --reason "called the user" \
        --config wallet.toml
    bursa admin withdrawals reject  --wid W --reviewer bob --reason "user did not confirm" \
        --config wallet.toml

``list`` prints the review queue (or the withdrawals in ``--state``, ``all`` for every
one), one JSON object per line; ``show`` prints one withdrawal with its step history
and its transactions. ``approve`` / ``reject`` need a reviewer name and a reason; both
are stored with the time of the decision (``reviewer``, ``review_reason``,
``reviewed_ns``) and as a step of the withdrawal's history. Only a withdrawal in
``review`` can be decided; anything else exits 2 and changes nothing. A rejection
releases the core hold at the wallet's next step.

`bursa wallet review list|approve|reject --operator NAME` is an alias that runs the
same code (:func:`review`). The wallet database comes from the ``[wallet]`` section of
``--config`` (or ``--db``); this command never loads a key and talks to no core.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tomllib
from typing import Any

from wallet.withdrawals import RequestError, Withdrawals

ACTIONS = ("list", "show", "approve", "reject")
EXIT_OK = 0
EXIT_USAGE = 2


def row(w: object) -> dict[str, Any]:
    """A withdrawal as a JSON-ready dict (the PSBT left out: it is long and not for review)."""
    d: dict[str, Any] = dataclasses.asdict(w)  # type: ignore[call-overload]
    d.pop("psbt", None)
    return d


def review(
    wd: Withdrawals,
    action: str,
    wid: int | None = None,
    reviewer: str = "",
    reason: str = "",
    state: str = "review",
) -> list[dict[str, Any]]:
    """Run one review action; the JSON objects to print (RequestError: refused, no change)."""
    if action == "list":
        rows = wd.query() if state == "all" else wd.query("state = ?", (state,))
        return [row(w) for w in rows]
    if wid is None:
        raise RequestError(f"{action} needs --wid W")
    if action == "show":
        w = wd.get(wid)
        if w is None:
            raise RequestError(f"no withdrawal {wid}")
        out = row(w)
        out["steps"] = [{"state": s, "ts_ns": t, "detail": d} for s, t, d in wd.steps(wid)]
        out["attempts"] = [{"txid": t, "fee": f} for t, _, f in wd.attempts(wid)]
        return [out]
    if action not in ("approve", "reject"):
        raise RequestError(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    if not reviewer or not reason:
        raise RequestError(f"{action} needs --reviewer NAME (alias --operator) and --reason TEXT")
    return [row(wd.review(wid, action == "approve", reviewer, reason))]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bursa admin withdrawals", description=__doc__.splitlines()[0])
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("--config", help="TOML file; its [wallet] section names the database")
    p.add_argument("--db", help="the wallet database (overrides the config)")
    p.add_argument("--wid", type=int)
    p.add_argument("--reviewer", "--operator", dest="reviewer", default="")
    p.add_argument("--reason", default="")
    p.add_argument("--state", default="review", help="list: this state ('all': every one)")
    return p


def main(argv: list[str] | None = None) -> int:
    """`bursa admin withdrawals ...` (see the module docstring)."""
    from wallet.main import build, build_withdrawals, load_config

    p = _parser()
    try:
        args = p.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        return int(e.code or 0) and EXIT_USAGE
    for name in ("core_fund_endpoint", "core_admin_endpoint", "poll_ms", "metrics"):
        setattr(args, name, None)
    try:
        cfg = load_config(args)
        if not cfg.withdraw:  # refuse before opening (and so creating) any database
            raise ValueError("no [wallet.withdraw.<chain>] table: withdrawals are off")
        wallet, core = build(cfg)
    except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        print(f"bursa admin withdrawals: bad configuration: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        wd = build_withdrawals(cfg, wallet, core, None, keys=False)
        if wd is None:
            raise ValueError("no [wallet.withdraw.<chain>] table: withdrawals are off")
        out = review(wd, args.action, args.wid, args.reviewer, args.reason, args.state)
    except (ValueError, KeyError, TypeError) as exc:
        print(f"bursa admin withdrawals: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        wallet.store.close()
        core.close()
    for d in out:
        print(json.dumps(d, sort_keys=True))
    return EXIT_OK
