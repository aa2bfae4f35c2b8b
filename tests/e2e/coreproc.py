"""Run the real `bursa core` process for end-to-end tests (start, ready, kill -9, stop)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bindings.client import RoutedClient
from tests.childproc import READY_TIMEOUT_S as READY_TIMEOUT_S
from tests.childproc import REPO as REPO
from tests.childproc import STOP_TIMEOUT_S as STOP_TIMEOUT_S
from tests.childproc import ChildProcess, bursa_env, free_port

LOOPBACK = "tcp://127.0.0.1:*"
# The core's zmq endpoints (a later flag of the same name overrides LOOPBACK).
ENDPOINTS = ("trade", "fund", "admin", "pub", "replay")


class CoreProcess(ChildProcess):
    """One `python -m bursa core` child on free loopback ports, with a stream trade
    link (``stream``, on by default) on a unix socket in a short temporary directory
    (a socket path holds 107 bytes; pytest's ``tmp_path`` can be longer) that keeps
    its path across restarts, so a client reconnects to the same address.

    Its stdout (the ready line) and stderr (logs) go to ``core-<n>.out`` / ``.err`` in
    ``log_dir`` so the child never blocks on a full pipe.
    """

    def __init__(
        self, data_dir: Path, log_dir: Path, mode: str = "fsync", *extra: str, stream: bool = True
    ) -> None:
        super().__init__("core", "core", log_dir)
        self.data_dir = data_dir
        self.mode = mode
        self.extra = list(extra)
        self.stream_dir = Path(tempfile.mkdtemp(prefix="bursa-sl-")) if stream else None

    @classmethod
    def on_fixed_ports(
        cls, data_dir: Path, log_dir: Path, mode: str = "fsync", *, stream: bool = True
    ) -> CoreProcess:
        """A core whose zmq endpoints are fixed loopback ports (its stream links keep
        their paths anyway), so its clients find it again after a kill -9 and restart."""
        eps = {name: f"tcp://127.0.0.1:{free_port()}" for name in ENDPOINTS}
        flags = [a for name, ep in eps.items() for a in (f"--{name}-endpoint", ep)]
        return cls(data_dir, log_dir, mode, *flags, stream=stream)

    def start(self) -> dict[str, Any]:
        """Start the core and wait for its ready line; returns it."""
        self.start_nowait()
        return self.wait_ready()

    def start_nowait(self) -> None:
        """Start the core without waiting for it to be ready."""
        assert not self.running()
        stream: list[str] = []
        if self.stream_dir is not None:
            stream = [
                "--trade-stream-endpoint",
                f"unix:{self.stream_dir / 'trade.sock'}",
                "--events-stream-endpoint",
                f"unix:{self.stream_dir / 'events.sock'}",
            ]
        self.spawn(
            [
                "core", "--data-dir", str(self.data_dir),
                *(a for name in ENDPOINTS for a in (f"--{name}-endpoint", LOOPBACK)),
                *stream, "--mode", self.mode, *self.extra,
            ]
        )  # fmt: skip

    def cleanup(self) -> None:
        """Kill the core if it still runs and remove the stream link's directory."""
        super().cleanup()
        if self.stream_dir is not None:
            shutil.rmtree(self.stream_dir, ignore_errors=True)

    @property
    def trade(self) -> str:
        """Bound order-entry endpoint (NEW, CANCEL, REDUCE, REPLACE, MASS_CANCEL)."""
        return str(self.ready["trade"])

    @property
    def trade_link(self) -> str:
        """Where an order-entry process connects: the stream trade link when the core
        has one, else the zmq trade socket."""
        return str(self.ready.get("trade_stream") or self.ready["trade"])

    @property
    def events_link(self) -> str:
        """Where an event subscriber's live source connects: the event stream link when
        the core has one, else the PUB socket."""
        return str(self.ready.get("events_stream") or self.ready["pub"])

    @property
    def fund(self) -> str:
        """Bound funding endpoint (DEPOSIT, WITHDRAW_*, TRANSFER)."""
        return str(self.ready["fund"])

    @property
    def admin(self) -> str:
        """Bound admin endpoint (configuration commands and every state query)."""
        return str(self.ready["admin"])

    def flags(self, *roles: str) -> list[str]:
        """``--core-<role>-endpoint <bound endpoint>`` for each of ``roles`` (the flags every
        client process of the core takes)."""
        return [a for role in roles for a in (f"--core-{role}-endpoint", str(self.ready[role]))]

    def client(self) -> RoutedClient:
        """A client sending each command to its socket (the caller closes it)."""
        return RoutedClient.from_ready(self.ready)

    @property
    def pub(self) -> str:
        """Bound PUB endpoint."""
        return str(self.ready["pub"])

    @property
    def replay(self) -> str:
        """Bound replay endpoint."""
        return str(self.ready["replay"])


@contextlib.contextmanager
def running_core(
    tmp_path: Path, mode: str = "fsync", *extra: str, data: str = "data", logs: str = "logs"
) -> Iterator[CoreProcess]:
    """A started core (data in ``tmp_path/data``, logs in ``tmp_path/logs``), killed at
    the end if it still runs: the body of a test's ``core`` fixture."""
    (tmp_path / logs).mkdir(exist_ok=True)
    proc = CoreProcess(tmp_path / data, tmp_path / logs, mode, *extra)
    try:
        proc.start()
        yield proc
    finally:
        proc.cleanup()


def run_replay(data_dir: Path) -> str:
    """`bursa replay <dir>` as a subprocess; returns the state hash it prints (hex)."""
    out = subprocess.run(
        [sys.executable, "-m", "bursa", "replay", str(data_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=bursa_env(),
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return parse_state_hash(out.stdout)


def parse_state_hash(text: str) -> str:
    """The hex state hash in `bursa replay` output (a JSON line or ``state_hash <hex>``)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            obj = json.loads(line)
            if "state_hash" in obj:
                return str(obj["state_hash"])
        for tok in line.replace("=", " ").replace(":", " ").split():
            if len(tok) >= 32 and all(ch in "0123456789abcdef" for ch in tok):
                return tok
    raise AssertionError(f"no state hash in replay output:\n{text}")
