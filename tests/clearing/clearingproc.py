"""Run `bursa clearing run` as a child process for end-to-end tests."""

from __future__ import annotations

import time
from pathlib import Path

from clearing.db import Db
from tests.childproc import REPO as REPO
from tests.childproc import ChildProcess, bursa_env


class ClearingChild(ChildProcess):
    """One `python -m bursa clearing run` child; logs in ``log_dir``."""

    def __init__(self, db_url: str, pub: str, replay: str, log_dir: Path, *extra: str) -> None:
        super().__init__("clearing", "clearing", log_dir)
        self.db_url = db_url
        self.pub = pub
        self.replay = replay
        self.extra = list(extra)

    def start(self, wait: bool = True) -> None:
        """Start the child (and wait for its ready line)."""
        env = bursa_env()
        env.pop("BURSA_CLEARING_DB", None)  # the --db flag names the ledger, nothing else
        self.spawn(
            ["clearing", "run", "--db", self.db_url, "--core-pub-endpoint", self.pub,
             "--core-replay-endpoint", self.replay, "--flush-ms", "20", *self.extra],
            env,
        )  # fmt: skip
        if wait:
            self.wait_ready()


def wait_ledger_at(db_url: str, seq: int, timeout_s: float = 60.0) -> int:
    """Wait until the ledger's last_seq reaches ``seq``; returns it."""
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        try:
            with Db(db_url) as db:
                rows = db.query("SELECT last_seq FROM clearing_state WHERE id = 1")
                last = int(rows[0][0]) if rows else -1
        except Exception:
            last = -1
        if last >= seq:
            return last
        time.sleep(0.05)
    raise TimeoutError(f"ledger at {last}, wanted {seq}")
