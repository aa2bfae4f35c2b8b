"""Security-change events read from the gateway's API key database (read-only).

The gateway (``gateway/keys.py``, owned by the gateway) keeps one row per API key in
its SQLite table ``api_keys`` with ``user_id``, ``created_ns`` and ``revoked_ns``
(NULL while the key is live). A key created or revoked recently is a security
change: whoever holds a stolen session usually makes a key first and withdraws next.
The wallet reads that table as a documented input of the ``security_change`` risk
rule (``[wallet.risk] gateway_db``), through a read-only connection, so it can never
change the gateway's data. Only these three columns are read.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

QUERY = "SELECT MAX(MAX(created_ns, COALESCE(revoked_ns, 0))) FROM api_keys WHERE user_id = ?"


class KeyEventsUnavailableError(ValueError):
    """The gateway's key database cannot be read (missing file, no table, locked)."""


def last_key_change_ns(db_path: str, user_id: int) -> int | None:
    """The latest API key creation or revocation of ``user_id`` (ns), None if none."""
    path = Path(db_path)
    if not path.is_file():
        raise KeyEventsUnavailableError(f"gateway key database {db_path} does not exist")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute(QUERY, (user_id,)).fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise KeyEventsUnavailableError(f"gateway key database {db_path}: {exc}") from None
    return None if row is None or row[0] is None else int(row[0])
