"""Read API of the ledger (also behind ``bursa clearing <query>``).

Every function takes an open :class:`clearing.db.Db` and returns plain dicts
of integers and strings (amounts in minor units, ids as u64), so the same
answers serve the command line, tests and future APIs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from clearing.db import Db
from clearing.ledger import (
    ENTRY_COLUMNS,
    ORDER_COLUMNS,
    ORDER_EVENT_COLUMNS,
    TRADE_COLUMNS,
    i64,
    u64,
)
from clearing.rules import AVAILABLE, BUCKET_NAMES, EXTERNAL, FEE, HELD, SYSTEM_USER

_ID_COLUMNS = {"order_id", "match_id", "ref", "taker_order_id", "maker_order_id", "withdrawal_id"}


def _dicts(columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        d: dict[str, Any] = {}
        for c, v in zip(columns, r, strict=True):
            if isinstance(v, str):
                d[c] = v
            else:
                d[c] = u64(int(v)) if c in _ID_COLUMNS else int(v)
        out.append(d)
    return out


def last_seq(db: Db) -> int:
    """The last core seq the ledger applied."""
    return int(db.query("SELECT last_seq FROM clearing_state WHERE id = 1")[0][0])


def balances(db: Db, user_id: int, as_of_seq: int | None = None) -> list[dict[str, int]]:
    """A user's ``available`` and ``held`` per (account, asset), now or as of a seq.

    As of ``seq``: each account's ``balance_after`` of its last entry at or
    before ``seq`` (accounts untouched by then are absent).
    """
    if as_of_seq is None:
        rows = db.query(
            "SELECT account, bucket, asset, balance FROM balances WHERE user_id = ?", (user_id,)
        )
    else:
        rows = db.query(
            "SELECT account, bucket, asset, balance_after FROM ("
            " SELECT account, bucket, asset, balance_after, ROW_NUMBER() OVER ("
            "  PARTITION BY account, bucket, asset ORDER BY seq DESC, ev_idx DESC, line DESC"
            " ) AS rn FROM entries WHERE user_id = ? AND seq <= ?) AS t WHERE rn = 1",
            (user_id, as_of_seq),
        )
    per: dict[tuple[int, int], dict[str, int]] = {}
    for acc, bucket, asset, bal in rows:
        d = per.setdefault(
            (int(acc), int(asset)),
            {"account": int(acc), "asset": int(asset), "available": 0, "held": 0},
        )
        d[BUCKET_NAMES[int(bucket)]] = int(bal)
    return [per[k] for k in sorted(per)]


def history(
    db: Db, user_id: int, limit: int = 100, before_seq: int | None = None
) -> list[dict[str, Any]]:
    """A user's ledger entries, newest first (``before_seq`` pages back)."""
    cols = ", ".join(ENTRY_COLUMNS)
    top = before_seq if before_seq is not None else 2**63 - 1
    rows = db.query(
        f"SELECT {cols} FROM entries WHERE user_id = ? AND seq < ?"
        " ORDER BY seq DESC, ev_idx DESC, line DESC LIMIT ?",
        (user_id, top, limit),
    )
    out = _dicts(ENTRY_COLUMNS, rows)
    for d in out:
        d["bucket"] = BUCKET_NAMES[d["bucket"]]
    return out


def open_orders(db: Db, user_id: int) -> list[dict[str, Any]]:
    """A user's live orders (resting or pending stops) with what they hold."""
    cols = ", ".join(ORDER_COLUMNS)
    rows = db.query(
        f"SELECT {cols} FROM orders WHERE status = 'live' AND user_id = ? ORDER BY order_id",
        (user_id,),
    )
    return _dicts(ORDER_COLUMNS, rows)


def order_history(db: Db, user_id: int, order_id: int) -> dict[str, Any]:
    """One order: its current state and every event of it (fills included)."""
    cols = ", ".join(ORDER_COLUMNS)
    cur = db.query(
        f"SELECT {cols} FROM orders WHERE user_id = ? AND order_id = ?", (user_id, i64(order_id))
    )
    ecols = ", ".join(ORDER_EVENT_COLUMNS)
    evs = db.query(
        f"SELECT {ecols} FROM order_events WHERE user_id = ? AND order_id = ? ORDER BY seq, ev_idx",
        (user_id, i64(order_id)),
    )
    return {
        "order": _dicts(ORDER_COLUMNS, cur)[0] if cur else None,
        "events": _dicts(ORDER_EVENT_COLUMNS, evs),
    }


def fills(db: Db, user_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """A user's trades, newest first, from its side: role, order, fee paid."""
    cols = ", ".join(TRADE_COLUMNS)
    rows = db.query(
        f"SELECT {cols} FROM trades WHERE taker_user_id = ? OR maker_user_id = ?"
        " ORDER BY seq DESC, ev_idx DESC LIMIT ?",
        (user_id, user_id, limit),
    )
    out = []
    for t in _dicts(TRADE_COLUMNS, rows):
        # A self-trade (STP off) is the user's taker fill and maker fill at once.
        for role in ("taker", "maker"):
            if t[f"{role}_user_id"] != user_id:
                continue
            side = t["taker_side"] if role == "taker" else 3 - t["taker_side"]
            out.append({
                "seq": t["seq"], "ts_ns": t["ts_ns"], "symbol_id": t["symbol_id"],
                "match_id": t["match_id"], "role": role, "order_id": t[f"{role}_order_id"],
                "side": side, "price_ticks": t["price_ticks"], "qty_lots": t["qty_lots"],
                "quote_amount": t["quote_amount"], "base_amount": t["base_amount"],
                "fee": t[f"{role}_fee"], "fee_asset": t["fee_asset"],
            })  # fmt: skip
    return out


def fee_revenue(db: Db) -> list[dict[str, Any]]:
    """Fees credited to the fee accounts per asset and UTC day (from ``ts_ns``)."""
    day = 86_400 * 10**9
    rows = db.query(
        "SELECT asset, ts_ns / ? AS d, SUM(amount) FROM entries"
        " WHERE user_id = ? AND bucket = ? GROUP BY asset, d ORDER BY d, asset",
        (day, SYSTEM_USER, FEE),
    )
    return [
        {
            "asset": int(a),
            "day": dt.datetime.fromtimestamp(int(d) * 86_400, dt.UTC).date().isoformat(),
            "fees": int(s),
        }
        for a, d, s in rows
    ]


def totals(db: Db) -> list[dict[str, int]]:
    """Per asset: users' available and held, fee account, outstanding supply
    (minus the external account) and the ledger's sum (zero when balanced)."""
    rows = db.query(
        "SELECT CASE WHEN user_id = ? THEN 0 ELSE 1 END AS u, bucket, asset, SUM(balance)"
        " FROM balances GROUP BY u, bucket, asset",
        (SYSTEM_USER,),
    )
    per: dict[int, dict[str, int]] = {}
    for is_user, bucket, asset, s in rows:
        d = per.setdefault(int(asset), {"asset": int(asset), "available": 0, "held": 0,
                                        "fee": 0, "supply": 0, "sum": 0})  # fmt: skip
        b, v = int(bucket), int(s)
        d["sum"] += v
        if not int(is_user) and b == EXTERNAL:
            d["supply"] -= v
        elif b == FEE:
            d["fee"] += v
        elif b == AVAILABLE:
            d["available"] += v
        elif b == HELD:
            d["held"] += v
    return [per[a] for a in sorted(per)]


def users_and_assets(db: Db) -> tuple[list[int], list[int]]:
    """Every user and asset the ledger has seen added."""
    users = [int(r[0]) for r in db.query("SELECT user_id FROM users ORDER BY user_id")]
    assets = [int(r[0]) for r in db.query("SELECT asset_id FROM assets ORDER BY asset_id")]
    return users, assets
