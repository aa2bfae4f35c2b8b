"""One database interface over SQLite (default) and PostgreSQL (psycopg 3).

The ledger's SQL is written once with ``?`` placeholders and ``ON CONFLICT``
upserts, which both databases accept (``?`` becomes ``%s`` for psycopg).  Bulk
inserts use multi-row ``executemany`` on SQLite and ``COPY ... FROM STDIN`` on
PostgreSQL.  A URL picks the backend: ``sqlite:///path/to/file.db`` (or a bare
path) or ``postgresql://...``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

# Errors after which the connection is reopened and the batch retried from the
# database's state (the transaction was rolled back or never committed).
import psycopg

CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.OperationalError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)

Row = tuple[Any, ...]


def is_postgres(url: str) -> bool:
    """True for a ``postgresql://`` / ``postgres://`` URL (or a libpq ``key=value`` string)."""
    return url.startswith(("postgresql://", "postgres://")) or "dbname=" in url


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///...`` URL or a bare path."""
    return url[len("sqlite:///") :] if url.startswith("sqlite:///") else url


class Db:
    """A connection in explicit-transaction mode: every write happens between
    :meth:`begin` and :meth:`commit` (or :meth:`rollback`).

    Parameters
    ----------
    url : str
        ``sqlite:///file.db``, a bare SQLite path, or a PostgreSQL URL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = is_postgres(url)
        self.backend = "postgres" if self.postgres else "sqlite"
        self._conn: Any = None
        self.connect()

    def connect(self) -> None:
        """(Re)open the connection."""
        self.close()
        if self.postgres:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        else:
            path = sqlite_path(self.url)
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # One thread at a time, but the ledger's background writer is another thread.
            conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
            # WAL: readers (queries, reconcile) never block the writer; FULL
            # synchronous: a committed batch survives power loss, not only kill -9.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: batches touch many pages
            self._conn = conn

    def close(self) -> None:
        """Close the connection (ignoring errors of a broken one)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a dead connection may fail to close
                self._conn.close()
            self._conn = None

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def begin(self) -> None:
        """Start a transaction (SQLite: IMMEDIATE, taking the write lock now)."""
        self._conn.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")

    def commit(self) -> None:
        """Commit the transaction."""
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        """Roll back the open transaction, if any (errors of a dead connection ignored)."""
        with contextlib.suppress(Exception):  # nothing to roll back, or the link is gone
            self._conn.execute("ROLLBACK")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        cur = self._conn.execute(self._sql(sql), params)
        return int(cur.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement per row."""
        rows = list(rows)
        if not rows:
            return
        if self.postgres:
            with self._conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            self._conn.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of a SELECT."""
        if self.postgres:
            with self._conn.cursor() as cur:
                cur.execute(self._sql(sql), params)
                return [tuple(r) for r in cur.fetchall()]
        return list(self._conn.execute(sql, params).fetchall())

    def insert_rows(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Bulk insert: COPY on PostgreSQL, executemany on SQLite."""
        if not rows:
            return
        cols = ", ".join(columns)
        if self.postgres:
            with self._conn.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
        else:
            marks = ", ".join("?" * len(columns))
            self._conn.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)

    def upsert_rows(
        self,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> None:
        """Insert or update rows by ``key``.  PostgreSQL: COPY into a temporary
        table, then one ``INSERT ... SELECT ... ON CONFLICT`` (one round trip
        instead of one per row); SQLite: ``executemany`` of the same upsert."""
        if not rows:
            return
        cols = ", ".join(columns)
        sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
        if self.postgres:
            tmp = f"tmp_{table}"
            self._conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {tmp} (LIKE {table}) ON COMMIT DELETE ROWS"
            )
            self.insert_rows(tmp, columns, rows)
            self._conn.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {tmp} {conflict}")
            return
        marks = ", ".join("?" * len(columns))
        self._conn.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks}) {conflict}", rows)

    def __enter__(self) -> Db:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
