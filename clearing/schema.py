"""Versioned schema migrations of the ledger (SQLite and PostgreSQL alike).

A small migration table instead of alembic: alembic needs SQLAlchemy as a second
database layer beside the raw drivers the ledger uses for COPY and batched
inserts, while the schema is plain DDL both databases accept as written.  Each
migration is ``(version, name, statements)``; :func:`migrate` applies, in one
transaction each, those whose version is not yet in ``schema_migrations``.
Never edit a released migration: append a new one.
"""

from __future__ import annotations

import time

from clearing.db import Db

# ids (order, match, reference) are u64 on the wire and stored as the signed
# BIGINT with the same 64 bits (clearing.ledger.i64 / u64).
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "ledger, balances, orders, trades, deposits, withdrawals",
        [
            """CREATE TABLE clearing_state (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                last_seq BIGINT NOT NULL,
                events BIGINT NOT NULL,
                entries BIGINT NOT NULL
            )""",
            "INSERT INTO clearing_state (id, last_seq, events, entries) VALUES (1, 0, 0, 0)",
            # One row per ledger line; amount > 0 debit, < 0 credit (clearing.rules).
            """CREATE TABLE entries (
                seq BIGINT NOT NULL,
                ev_idx INTEGER NOT NULL,
                line INTEGER NOT NULL,
                ts_ns BIGINT NOT NULL,
                cause TEXT NOT NULL,
                user_id BIGINT NOT NULL,
                account INTEGER NOT NULL,
                bucket INTEGER NOT NULL,
                asset INTEGER NOT NULL,
                amount BIGINT NOT NULL,
                balance_after BIGINT NOT NULL,
                order_id BIGINT NOT NULL,
                match_id BIGINT NOT NULL,
                ref BIGINT NOT NULL,
                PRIMARY KEY (seq, ev_idx, line)
            )""",
            "CREATE INDEX entries_user ON entries (user_id, seq)",
            """CREATE TABLE balances (
                user_id BIGINT NOT NULL,
                account INTEGER NOT NULL,
                bucket INTEGER NOT NULL,
                asset INTEGER NOT NULL,
                balance BIGINT NOT NULL,
                seq BIGINT NOT NULL,
                PRIMARY KEY (user_id, account, bucket, asset)
            )""",
            """CREATE TABLE symbols (
                symbol_id INTEGER PRIMARY KEY,
                base_asset INTEGER NOT NULL,
                quote_asset INTEGER NOT NULL,
                price_multiplier BIGINT NOT NULL,
                base_per_lot BIGINT NOT NULL,
                seq BIGINT NOT NULL
            )""",
            "CREATE TABLE assets (asset_id INTEGER PRIMARY KEY, decimals INTEGER NOT NULL,"
            " seq BIGINT NOT NULL)",
            "CREATE TABLE users (user_id BIGINT PRIMARY KEY, seq BIGINT NOT NULL)",
            # Current state of every order that was accepted, keyed by (user, order id);
            # a user's open orders come from the primary key's user_id prefix.
            """CREATE TABLE orders (
                user_id BIGINT NOT NULL,
                order_id BIGINT NOT NULL,
                symbol_id INTEGER NOT NULL,
                side INTEGER NOT NULL,
                ord_type INTEGER NOT NULL,
                price_ticks BIGINT NOT NULL,
                qty_lots BIGINT NOT NULL,
                leaves_lots BIGINT NOT NULL,
                filled_lots BIGINT NOT NULL,
                status TEXT NOT NULL,
                reason INTEGER NOT NULL,
                hold_asset INTEGER NOT NULL,
                hold BIGINT NOT NULL,
                created_seq BIGINT NOT NULL,
                updated_seq BIGINT NOT NULL,
                PRIMARY KEY (user_id, order_id)
            )""",
            # History of every order event (rejects too); a trade gives the taker
            # (role 0) and the maker (role 1) one row each.
            """CREATE TABLE order_events (
                seq BIGINT NOT NULL,
                ev_idx INTEGER NOT NULL,
                role INTEGER NOT NULL,
                ts_ns BIGINT NOT NULL,
                user_id BIGINT NOT NULL,
                order_id BIGINT NOT NULL,
                kind TEXT NOT NULL,
                symbol_id INTEGER NOT NULL,
                side INTEGER NOT NULL,
                price_ticks BIGINT NOT NULL,
                qty_lots BIGINT NOT NULL,
                leaves_lots BIGINT NOT NULL,
                reason INTEGER NOT NULL,
                PRIMARY KEY (seq, ev_idx, role)
            )""",
            "CREATE INDEX order_events_order ON order_events (user_id, order_id, seq)",
            """CREATE TABLE trades (
                seq BIGINT NOT NULL,
                ev_idx INTEGER NOT NULL,
                ts_ns BIGINT NOT NULL,
                symbol_id INTEGER NOT NULL,
                match_id BIGINT NOT NULL,
                price_ticks BIGINT NOT NULL,
                qty_lots BIGINT NOT NULL,
                quote_amount BIGINT NOT NULL,
                base_amount BIGINT NOT NULL,
                taker_side INTEGER NOT NULL,
                taker_user_id BIGINT NOT NULL,
                taker_order_id BIGINT NOT NULL,
                taker_fee BIGINT NOT NULL,
                maker_user_id BIGINT NOT NULL,
                maker_order_id BIGINT NOT NULL,
                maker_fee BIGINT NOT NULL,
                fee_asset INTEGER NOT NULL,
                PRIMARY KEY (seq, ev_idx)
            )""",
            "CREATE INDEX trades_taker ON trades (taker_user_id, seq)",
            "CREATE INDEX trades_maker ON trades (maker_user_id, seq)",
            """CREATE TABLE deposits (
                seq BIGINT NOT NULL,
                ev_idx INTEGER NOT NULL,
                ts_ns BIGINT NOT NULL,
                user_id BIGINT NOT NULL,
                account INTEGER NOT NULL,
                asset INTEGER NOT NULL,
                ref BIGINT NOT NULL,
                amount BIGINT NOT NULL,
                PRIMARY KEY (seq, ev_idx)
            )""",
            """CREATE TABLE withdrawals (
                withdrawal_id BIGINT PRIMARY KEY,
                user_id BIGINT NOT NULL,
                account INTEGER NOT NULL,
                asset INTEGER NOT NULL,
                amount BIGINT NOT NULL,
                status TEXT NOT NULL,
                held_seq BIGINT NOT NULL,
                done_seq BIGINT NOT NULL
            )""",
        ],
    ),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]


def applied_versions(db: Db) -> set[int]:
    """Versions recorded in ``schema_migrations`` (created if missing)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ns BIGINT NOT NULL)"
    )
    return {int(r[0]) for r in db.query("SELECT version FROM schema_migrations")}


def migrate(db: Db) -> list[int]:
    """Apply every missing migration, each in its own transaction; returns them."""
    done = applied_versions(db)
    new = []
    for version, name, statements in MIGRATIONS:
        if version in done:
            continue
        db.begin()
        try:
            for st in statements:
                db.execute(st)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at_ns) VALUES (?, ?, ?)",
                (version, name, time.time_ns()),
            )
            db.commit()
        except BaseException:
            db.rollback()
            raise
        new.append(version)
    return new
