"""The wallet's persisted state: address pool, blocks seen, deposits, events, counters.

SQLite (WAL, ``synchronous=FULL``) at a path or ``sqlite:///path`` URL, or
PostgreSQL at a ``postgresql://`` URL (psycopg 3; tables in the schema ``wallet``, so
the database can be shared with other components). The same SQL runs on both: ``?``
placeholders become ``%s`` for PostgreSQL, integers are BIGINT. Every
change of one scanning step is one transaction (:meth:`Store.tx`), so a restart
or a kill -9 resumes from a consistent state: the blocks table IS the cursor
(the highest stored height), and a deposit's ``credit_state`` says whether a
credit was only intended (``intent``: retried, the core answers DUPLICATE if it
had applied it) or is known to be applied (``credited``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS addresses (
    chain TEXT NOT NULL, idx BIGINT NOT NULL, address TEXT NOT NULL,
    user_id BIGINT, assigned_ns BIGINT,
    PRIMARY KEY (chain, idx), UNIQUE (chain, address)
);
CREATE INDEX IF NOT EXISTS addresses_user ON addresses (chain, user_id);
CREATE TABLE IF NOT EXISTS blocks (
    chain TEXT NOT NULL, height BIGINT NOT NULL, hash TEXT NOT NULL, parent TEXT NOT NULL,
    PRIMARY KEY (chain, height)
);
CREATE TABLE IF NOT EXISTS deposits (
    chain TEXT NOT NULL, txid TEXT NOT NULL, kind TEXT NOT NULL, idx BIGINT NOT NULL,
    ref BIGINT NOT NULL UNIQUE, user_id BIGINT NOT NULL, asset_id BIGINT NOT NULL,
    address TEXT NOT NULL, token TEXT NOT NULL, amount TEXT NOT NULL,
    credit_amount BIGINT NOT NULL,
    block_height BIGINT NOT NULL, block_hash TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
    credit_state TEXT NOT NULL DEFAULT 'none', hold_id BIGINT NOT NULL DEFAULT 0,
    held_amount BIGINT NOT NULL DEFAULT 0,
    first_seen_ns BIGINT NOT NULL, updated_ns BIGINT NOT NULL,
    PRIMARY KEY (chain, txid, kind, idx)
);
CREATE INDEX IF NOT EXISTS deposits_user ON deposits (user_id);
CREATE TABLE IF NOT EXISTS chains (
    chain TEXT PRIMARY KEY, halted BIGINT NOT NULL DEFAULT 0, halt_reason TEXT NOT NULL DEFAULT '',
    rescan_from BIGINT
);
CREATE TABLE IF NOT EXISTS events (
    id {serial}, ts_ns BIGINT NOT NULL, chain TEXT NOT NULL,
    kind TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS withdrawals (
    wid BIGINT PRIMARY KEY, client_ref TEXT NOT NULL UNIQUE, user_id BIGINT NOT NULL,
    chain TEXT NOT NULL, asset_id BIGINT NOT NULL, address TEXT NOT NULL,
    amount BIGINT NOT NULL, fee BIGINT NOT NULL, state TEXT NOT NULL,
    score BIGINT NOT NULL DEFAULT -1, rules TEXT NOT NULL DEFAULT '',
    custody TEXT NOT NULL DEFAULT '', psbt TEXT NOT NULL DEFAULT '',
    txid TEXT NOT NULL DEFAULT '', sent_height BIGINT NOT NULL DEFAULT -1,
    reviewer TEXT NOT NULL DEFAULT '', review_reason TEXT NOT NULL DEFAULT '',
    reviewed_ns BIGINT NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '',
    created_ns BIGINT NOT NULL, updated_ns BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS withdrawals_user ON withdrawals (user_id, created_ns);
CREATE TABLE IF NOT EXISTS withdrawal_steps (
    id {serial}, wid BIGINT NOT NULL, state TEXT NOT NULL, ts_ns BIGINT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS withdrawal_txs (
    wid BIGINT NOT NULL, txid TEXT NOT NULL, raw TEXT NOT NULL, fee BIGINT NOT NULL,
    created_ns BIGINT NOT NULL, PRIMARY KEY (wid, txid)
);
CREATE TABLE IF NOT EXISTS spent_outpoints (
    chain TEXT NOT NULL, outpoint TEXT NOT NULL, wid BIGINT NOT NULL,
    PRIMARY KEY (chain, outpoint)
);
CREATE TABLE IF NOT EXISTS known_coins (
    chain TEXT NOT NULL, outpoint TEXT NOT NULL, amount BIGINT NOT NULL,
    PRIMARY KEY (chain, outpoint)
);
CREATE TABLE IF NOT EXISTS withdraw_halts (
    chain TEXT PRIMARY KEY, reason TEXT NOT NULL, ts_ns BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS address_book (
    user_id BIGINT NOT NULL, chain TEXT NOT NULL, address TEXT NOT NULL,
    added_ns BIGINT NOT NULL, PRIMARY KEY (user_id, chain, address)
);
CREATE TABLE IF NOT EXISTS blacklist (
    chain TEXT NOT NULL, address TEXT NOT NULL, PRIMARY KEY (chain, address)
);
CREATE TABLE IF NOT EXISTS eth_nonces (chain TEXT PRIMARY KEY, next BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS free_nonces (
    chain TEXT NOT NULL, nonce BIGINT NOT NULL, PRIMARY KEY (chain, nonce)
);
CREATE TABLE IF NOT EXISTS multisig_bumps (
    wid BIGINT PRIMARY KEY, psbt TEXT NOT NULL, fee BIGINT NOT NULL, created_ns BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    chain TEXT NOT NULL, outpoint TEXT NOT NULL, amount BIGINT NOT NULL, reason TEXT NOT NULL,
    ts_ns BIGINT NOT NULL, released_by TEXT NOT NULL DEFAULT '',
    release_reason TEXT NOT NULL DEFAULT '', released_ns BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (chain, outpoint)
);
CREATE TABLE IF NOT EXISTS tx_sources (
    chain TEXT NOT NULL, txid TEXT NOT NULL, address TEXT NOT NULL,
    PRIMARY KEY (chain, txid, address)
);
CREATE TABLE IF NOT EXISTS sources_checked (
    chain TEXT NOT NULL, txid TEXT NOT NULL, PRIMARY KEY (chain, txid)
);
CREATE TABLE IF NOT EXISTS kyc (user_id BIGINT PRIMARY KEY, tier BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS security_changes (
    user_id BIGINT NOT NULL, kind TEXT NOT NULL, ts_ns BIGINT NOT NULL
);
"""
SERIAL = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT", "pg": "BIGSERIAL PRIMARY KEY"}
PG_SCHEMA = "wallet"


@dataclass(frozen=True)
class Deposit:
    """One row of the deposits table (``amount`` in chain units, may exceed int64)."""

    chain: str
    txid: str
    kind: str
    idx: int
    ref: int
    user_id: int
    asset_id: int
    address: str
    token: str
    amount: int
    credit_amount: int
    block_height: int
    block_hash: str
    status: str
    reason: str
    credit_state: str
    hold_id: int
    held_amount: int
    first_seen_ns: int
    updated_ns: int


def is_postgres(url: str) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL."""
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///path`` URL or a bare path; other schemes refused."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :]
    if "://" in url:
        raise ValueError(
            f"unsupported database URL {url.split('://')[0]}://...: "
            "use a path, sqlite:///path or postgresql://..."
        )
    return url


class Sql:
    """One connection, SQLite or PostgreSQL, speaking the wallet's SQL (``?`` placeholders)."""

    def __init__(self, url: str) -> None:
        self.pg = is_postgres(url)
        self.conn: Any
        if self.pg:
            import psycopg

            try:
                self.conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
            except psycopg.OperationalError as exc:
                raise ValueError(f"cannot open database {url.split('@')[-1]}: {exc}") from exc
            self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
            self.conn.execute(f"SET search_path TO {PG_SCHEMA}")
        else:
            path = sqlite_path(url)
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
        schema = SCHEMA.format(serial=SERIAL["pg" if self.pg else "sqlite"])
        for stmt in schema.split(";"):
            if stmt.strip():
                self.conn.execute(stmt)

    def execute(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> Any:
        """Run one statement; returns a cursor (iterable, ``fetchone``)."""
        if self.pg:
            return self.conn.execute(sql.replace("?", "%s"), tuple(args))
        return self.conn.execute(sql, tuple(args))

    def executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run one statement per row."""
        if self.pg:
            with self.conn.cursor() as cur:
                cur.executemany(sql.replace("?", "%s"), rows)
        else:
            self.conn.executemany(sql, rows)

    def begin(self) -> None:
        """Start a write transaction (SQLite: take the write lock at once)."""
        self.conn.execute("BEGIN" if self.pg else "BEGIN IMMEDIATE")

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class Store:
    """The wallet database. One instance per process; not thread-safe."""

    def __init__(self, url: str) -> None:
        self.db = Sql(url)
        self._depth = 0

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    @contextmanager
    def tx(self) -> Iterator[Sql]:
        """One atomic transaction (nested calls join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.begin()
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._depth = 0

    # -- addresses ---------------------------------------------------------------------

    def pool_size(self, chain: str) -> tuple[int, int]:
        """(derived, unassigned) addresses of ``chain``."""
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN user_id IS NULL THEN 1 ELSE 0 END), 0) "
            "FROM addresses WHERE chain = ?",
            (chain,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def add_addresses(self, chain: str, rows: list[tuple[int, str]]) -> None:
        """Store pre-derived (index, address) pairs."""
        with self.tx() as db:
            db.executemany(
                "INSERT INTO addresses (chain, idx, address) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [(chain, i, a) for i, a in rows],
            )

    def address_of(self, chain: str, user_id: int) -> str | None:
        """The address assigned to ``user_id`` on ``chain``, if any."""
        row = self.db.execute(
            "SELECT address FROM addresses WHERE chain = ? AND user_id = ? ORDER BY idx LIMIT 1",
            (chain, user_id),
        ).fetchone()
        return None if row is None else str(row[0])

    def assign(self, chain: str, user_id: int) -> str | None:
        """Give ``user_id`` the lowest unassigned address (None if the pool is empty)."""
        with self.tx() as db:
            have = self.address_of(chain, user_id)
            if have is not None:
                return have
            row = db.execute(
                "SELECT idx, address FROM addresses WHERE chain = ? AND user_id IS NULL "
                "ORDER BY idx LIMIT 1",
                (chain,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE addresses SET user_id = ?, assigned_ns = ? WHERE chain = ? AND idx = ?",
                (user_id, time.time_ns(), chain, row[0]),
            )
            return str(row[1])

    def watched(self, chain: str) -> dict[str, int]:
        """Assigned addresses of ``chain`` (lowercase) -> user id."""
        rows = self.db.execute(
            "SELECT address, user_id FROM addresses WHERE chain = ? AND user_id IS NOT NULL",
            (chain,),
        )
        return {str(a).lower(): int(u) for a, u in rows}

    # -- blocks (the cursor) -----------------------------------------------------------

    def last_block(self, chain: str) -> tuple[int, str] | None:
        """Highest stored (height, hash): the scan cursor."""
        row = self.db.execute(
            "SELECT height, hash FROM blocks WHERE chain = ? ORDER BY height DESC LIMIT 1",
            (chain,),
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def block_hash(self, chain: str, height: int) -> str | None:
        """Stored hash at ``height``."""
        row = self.db.execute(
            "SELECT hash FROM blocks WHERE chain = ? AND height = ?", (chain, height)
        ).fetchone()
        return None if row is None else str(row[0])

    def lowest_block(self, chain: str) -> int | None:
        """Lowest stored height (older ones were pruned)."""
        row = self.db.execute("SELECT MIN(height) FROM blocks WHERE chain = ?", (chain,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- deposits ----------------------------------------------------------------------

    def deposit(self, chain: str, txid: str, kind: str, idx: int) -> Deposit | None:
        """One deposit by key."""
        row = self.db.execute(
            "SELECT * FROM deposits WHERE chain = ? AND txid = ? AND kind = ? AND idx = ?",
            (chain, txid, kind, idx),
        ).fetchone()
        return None if row is None else _deposit(row)

    def deposits(self, where: str = "1=1", args: tuple[Any, ...] = ()) -> list[Deposit]:
        """Deposits matching an SQL condition, oldest first."""
        rows = self.db.execute(
            f"SELECT * FROM deposits WHERE {where} ORDER BY first_seen_ns, chain, txid, kind, idx",
            args,
        )
        return [_deposit(r) for r in rows]

    # -- chains, events, counters ------------------------------------------------------

    def halted(self, chain: str) -> str | None:
        """The halt reason if ``chain``'s deposits are halted."""
        row = self.db.execute(
            "SELECT halted, halt_reason FROM chains WHERE chain = ?", (chain,)
        ).fetchone()
        return str(row[1]) if row is not None and row[0] else None

    def set_halt(self, chain: str, reason: str | None) -> None:
        """Halt (reason) or resume (None) a chain's deposits."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO chains (chain, halted, halt_reason) VALUES (?, ?, ?) "
                "ON CONFLICT (chain) DO UPDATE SET halted = excluded.halted, "
                "halt_reason = excluded.halt_reason",
                (chain, 1 if reason else 0, reason or ""),
            )

    def rescan_from(self, chain: str) -> int | None:
        """The height an operator asked to scan again from (None: the configured start)."""
        row = self.db.execute("SELECT rescan_from FROM chains WHERE chain = ?", (chain,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def set_rescan_from(self, chain: str, height: int) -> None:
        """Scan ``chain`` again from ``height`` when no block is stored."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO chains (chain, rescan_from) VALUES (?, ?) "
                "ON CONFLICT (chain) DO UPDATE SET rescan_from = excluded.rescan_from",
                (chain, height),
            )

    def event(self, chain: str, kind: str, **detail: Any) -> None:
        """Append an event row (alerts, incidents, operator actions)."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO events (ts_ns, chain, kind, detail) VALUES (?, ?, ?, ?)",
                (time.time_ns(), chain, kind, json.dumps(detail, sort_keys=True)),
            )

    def events(self, chain: str | None = None) -> list[dict[str, Any]]:
        """Event rows, oldest first."""
        q = "SELECT id, ts_ns, chain, kind, detail FROM events"
        args: tuple[Any, ...] = ()
        if chain is not None:
            q += " WHERE chain = ?"
            args = (chain,)
        return [
            {"id": i, "ts_ns": t, "chain": c, "kind": k, **json.loads(d)}
            for i, t, c, k, d in self.db.execute(q + " ORDER BY id", args)
        ]

    def bump(self, name: str, by: int = 1) -> None:
        """Increase a counter (a metric)."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
                (name, by),
            )

    def counters(self) -> dict[str, int]:
        """Every counter."""
        return {str(n): int(v) for n, v in self.db.execute("SELECT name, value FROM counters")}


def _deposit(row: tuple[Any, ...]) -> Deposit:
    vals = list(row)
    vals[9] = int(vals[9])  # amount is stored as text: wei amounts exceed SQLite's int64
    return Deposit(*vals)
