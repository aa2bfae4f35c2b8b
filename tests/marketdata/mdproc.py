"""Run a real `bursa marketdata` process beside a real core (tests and the benchmark)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.core import Core
from engine.recovery import recover
from engine.storage import FileStorage
from tests.childproc import ChildProcess


class MarketDataProcess(ChildProcess):
    """One `python -m bursa marketdata` child; stdout/stderr go to files in ``log_dir``."""

    def __init__(self, log_dir: Path, core_ready: dict[str, Any], *extra: str) -> None:
        super().__init__("marketdata", "md", log_dir)
        self.core_ready = core_ready
        self.extra = list(extra)

    def start(self, pub: str, service: str) -> dict[str, Any]:
        """Start it binding ``pub`` and ``service``; wait for and return its ready line."""
        assert not self.running()
        self.spawn(
            [
                "marketdata",
                "--core-pub-endpoint", self.core_ready["pub"],
                "--core-replay-endpoint", self.core_ready["replay"],
                "--pub-endpoint", pub, "--service-endpoint", service, *self.extra,
            ]
        )  # fmt: skip
        return self.wait_ready()


def core_from_journal(data_dir: Path) -> Core:
    """The core's state rebuilt read-only from its journal (the replay-derived book)."""
    storage = FileStorage(str(data_dir))
    try:
        core, _ = recover(storage, repair=False, use_snapshots=False, include_archived=True)
    finally:
        storage.close()
    assert isinstance(core, Core)
    return core
