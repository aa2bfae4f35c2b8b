"""Settings of the clearing process and of the query / reconcile commands.

Sources, weakest first: defaults, the ``[clearing]`` section of a TOML file
(``--config``), the environment variable ``BURSA_CLEARING_DB`` (the database
URL only, so a password need not sit in a file), command-line flags.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass, fields
from typing import Any

ENV_DB = "BURSA_CLEARING_DB"


@dataclass
class ClearingConfig:
    """Settings (TOML keys = field names, under ``[clearing]``).

    Attributes
    ----------
    db : str
        ``sqlite:///path.db`` (default), a bare SQLite path, or a
        ``postgresql://user:pass@host:port/dbname`` URL.
    core_pub_endpoint, core_replay_endpoint : str
        The core's event PUB and replay endpoints (``pub`` / ``replay`` in its ready line).
    core_admin_endpoint : str
        The core's admin (control) endpoint, for ``bursa reconcile`` (``admin`` in
        its ready line; ``cmd`` on a core without the split sockets).
    batch_events : int
        Most events per database transaction.
    flush_ms : int
        A partial batch is committed after this long (bounds the lag when quiet).
    poll_ms : int
        Wait for live frames at most this long per loop turn.
    reconnect_ms : int
        Pause before reopening a lost database connection.
    """

    db: str = "sqlite:///data/clearing/ledger.db"
    core_pub_endpoint: str = "tcp://127.0.0.1:7002"
    core_replay_endpoint: str = "tcp://127.0.0.1:7003"
    core_admin_endpoint: str = "tcp://127.0.0.1:7001"
    batch_events: int = 50_000
    flush_ms: int = 100
    poll_ms: int = 50
    reconnect_ms: int = 200
    metrics: str = "127.0.0.1:0"  # Prometheus /metrics of `clearing run` ("" or "off": none)

    def validate(self) -> None:
        """Raise ValueError on a setting out of range."""
        if not 1 <= self.batch_events <= 1_000_000:
            raise ValueError("batch_events must be in 1..1,000,000")
        for name in ("flush_ms", "poll_ms", "reconnect_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if not self.db:
            raise ValueError("db must be a database URL or path")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags shared by every clearing command (each overrides its config key)."""
    p.add_argument("--config", help="TOML file with a [clearing] section")
    p.add_argument("--db", help=f"database URL (overrides the file and ${ENV_DB})")
    p.add_argument("--core-pub-endpoint")
    p.add_argument("--core-replay-endpoint")
    p.add_argument("--core-admin-endpoint")


def load(args: argparse.Namespace) -> ClearingConfig:
    """Defaults < TOML ``[clearing]`` < ``$BURSA_CLEARING_DB`` < flags.

    Raises
    ------
    ValueError
        Unknown keys in the section, or a setting out of range.
    """
    values: dict[str, Any] = {}
    path = getattr(args, "config", None)
    if path:
        with open(path, "rb") as fh:
            section = tomllib.load(fh).get("clearing", {})
        known = {f.name for f in fields(ClearingConfig)}
        unknown = set(section) - known
        if unknown:
            raise ValueError(f"unknown [clearing] keys: {sorted(unknown)}")
        values.update(section)
    if os.environ.get(ENV_DB):
        values["db"] = os.environ[ENV_DB]
    for f in fields(ClearingConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    cfg = ClearingConfig(**values)
    cfg.validate()
    return cfg
