"""The child processes of `bursa run`: a table of specs, and one child's lifecycle.

Adding a process is one :class:`ChildSpec` in :data:`CHILDREN`:
its argv is built from the :class:`Wiring` (data directory, effective config file,
the ready lines of the children started before it).  Children start in table order
and stop in reverse order, so the core (first) stops last, after its snapshot.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bursa.exchange.readyline import REPO, NotReadyError, child_env, wait_ready_line
from engine import logs
from engine.metrics_http import DEFAULT_PORTS
from engine.streamlink import UNIX_PATH_MAX

PY = sys.executable
PR_SET_PDEATHSIG = 1
# The supervisor reads a starting child's stdout file this often.
READY_POLL_S = 0.05


class ChildError(RuntimeError):
    """A child that exited or stayed silent before its ready line."""


@dataclass
class Wiring:
    """What a child's argv is built from.

    Attributes
    ----------
    data_dir : Path
        The exchange's data directory (``run/`` holds sockets, logs, config).
    config_file : Path
        The children's effective config file (each reads its own section).
    cfg : dict
        The effective supervisor config (:func:`bursa.exchange.config.load`).
    ready : dict
        Child name -> its latest ready line.
    chain_port : int
        The simulated chain's HTTP port (fixed at first start, kept in ``run/``).
    gateway_port : int
        The gateway's TCP port on 127.0.0.1 (fixed at first start, kept in ``run/``,
        so the traders' sessions log in again at the same address after a restart).
    """

    data_dir: Path
    config_file: Path
    cfg: dict[str, Any]
    ready: dict[str, dict[str, Any]] = field(default_factory=dict)
    chain_port: int = 0
    gateway_port: int = 0

    def metrics_addr(self, name: str) -> str:
        """The ``--metrics`` address of child ``name``: 127.0.0.1 and ``[run] metrics_port``
        plus the child's offset (:data:`engine.metrics_http.DEFAULT_PORTS`: 9151..9156 by
        default), a free port when ``metrics_port`` is 0, ``off`` when it is -1."""
        base = int(self.cfg["run"]["metrics_port"])
        if base < 0:
            return "off"
        if base == 0:
            return "127.0.0.1:0"
        return f"127.0.0.1:{base + DEFAULT_PORTS[name] - DEFAULT_PORTS['run']}"

    def observe(self, name: str) -> list[str]:
        """The flags every bursa process gets: its metrics address, JSON logs."""
        return [f"--metrics={self.metrics_addr(name)}", "--log-format=json"]

    def bursa(self, *command: str) -> list[str]:
        """``python -m bursa <command> --config <config_file>``: a bursa process reading its
        own section of the effective config."""
        return [PY, "-m", "bursa", *command, "--config", str(self.config_file)]

    def core_flags(self, *roles: str) -> list[str]:
        """``--core-<role>-endpoint=<endpoint>`` for each of ``roles`` (``trade``, ``fund``,
        ``admin``, ``pub``, ``replay``), from the core's ready line: how a client process
        of the core is wired to the sockets it may use."""
        core = self.ready["core"]
        return [f"--core-{role}-endpoint={core[role]}" for role in roles]

    @property
    def trade_link(self) -> str:
        """The core's stream trade link if it has one, else its zmq trade socket."""
        core = self.ready["core"]
        return str(core.get("trade_stream") or core["trade"])

    @property
    def events_link(self) -> str:
        """The core's event stream link if it has one, else its PUB socket."""
        core = self.ready["core"]
        return str(core.get("events_stream") or core["pub"])

    @property
    def hot_key_file(self) -> Path:
        """The demo hot wallet's encrypted key (created by the supervisor, demo only)."""
        return self.data_dir.resolve() / "wallet" / "hot.key"

    @property
    def hot_pass_file(self) -> Path:
        """Its passphrase (a demo: a real one comes from the operator, never a file here)."""
        return self.data_dir.resolve() / "wallet" / "hot.pass"

    @property
    def gateway_dir(self) -> Path:
        """The gateway's database and the demo users' private key files."""
        return self.data_dir.resolve() / "gateway"

    def ipc(self, name: str) -> str:
        """A stable ipc:// endpoint under ``run/`` (the same after every restart)."""
        return f"ipc://{self.data_dir.resolve() / 'run' / (name + '.ipc')}"


@dataclass(frozen=True)
class ChildSpec:
    """One supervised process: its name and how to build its command line."""

    name: str
    argv: Callable[[Wiring], list[str]]
    doc: str
    demo: bool = False  # only with [run] demo = true


def _core(w: Wiring) -> list[str]:
    argv = [*w.bursa("core"), "--data-dir", str(w.data_dir / "core"), *w.observe("core")]
    for role in ("trade", "fund", "admin", "pub", "replay"):
        argv.append(f"--{role}-endpoint={w.ipc('core-' + role)}")
    # The stream links (engine/streamlink.py): the gateway's and the API's way in, and
    # the API's event source; without them (a socket path over 107 bytes) they use
    # the zmq trade and PUB sockets.
    run = w.data_dir.resolve() / "run"
    for flag, name in (("trade-stream", "core-trade.sock"), ("events-stream", "core-events.sock")):
        if len(os.fsencode(str(run / name))) <= UNIX_PATH_MAX:
            argv.append(f"--{flag}-endpoint=unix:{run / name}")
    return argv


def _chain(w: Wiring) -> list[str]:
    c = w.cfg["chain"]
    return [
        PY,
        "-m",
        "wallet.simrpc",
        "--seed",
        str(c["seed"]),
        "--port",
        str(w.chain_port),
        "--block-ms",
        str(c["block_ms"]),
        # Kept on disk: a restarted node serves the same chain (no reorg of credited deposits).
        f"--state={w.data_dir.resolve() / 'chain' / 'chain.pickle'}",
    ]


def _marketdata(w: Wiring) -> list[str]:
    return [
        *w.bursa("marketdata"),
        *w.core_flags("pub", "replay"),
        f"--pub-endpoint={w.ipc('md-pub')}",
        f"--service-endpoint={w.ipc('md-service')}",
        *w.observe("marketdata"),
    ]


def _clearing(w: Wiring) -> list[str]:
    return [
        *w.bursa("clearing", "run"),
        f"--db=sqlite:///{w.data_dir.resolve() / 'clearing' / 'ledger.db'}",
        *w.core_flags("pub", "replay", "admin"),
        *w.observe("clearing"),
    ]


def _wallet(w: Wiring) -> list[str]:
    argv = [
        *w.bursa("wallet", "run"),
        f"--db={w.data_dir.resolve() / 'wallet' / 'wallet.db'}",
        *w.core_flags("fund", "admin"),
        *w.observe("wallet"),
    ]
    if w.cfg["run"]["demo"] and w.hot_pass_file.exists():
        argv.append(f"--passphrase-file={w.hot_pass_file}")  # the demo hot key's
    return argv


def _gateway(w: Wiring) -> list[str]:
    return [
        *w.bursa("gateway"),
        "--host=127.0.0.1",
        f"--port={w.gateway_port}",
        f"--db-path={w.gateway_dir / 'gateway.db'}",
        f"--core-trade-endpoint={w.trade_link}",
        f"--core-pub-endpoint={w.events_link}",
        *w.core_flags("admin", "replay"),
        *w.observe("gateway"),
    ]


def _api(w: Wiring) -> list[str]:
    md = w.ready["marketdata"]
    return [
        *w.bursa("api"),
        "--host=127.0.0.1",
        f"--db-path={w.data_dir.resolve() / 'api' / 'api.db'}",
        f"--keys-db={w.gateway_dir / 'gateway.db'}",
        f"--core-trade-endpoint={w.trade_link}",
        f"--core-pub-endpoint={w.events_link}",
        *w.core_flags("admin", "replay"),
        f"--marketdata-pub-endpoint={md['pub']}",
        f"--marketdata-service-endpoint={md['service']}",
        *w.observe("api"),
    ]


def _traders(w: Wiring) -> list[str]:
    t = w.cfg["traders"]
    return [
        PY,
        "-m",
        "bursa.exchange.traders",
        f"--gateway-port={w.ready['gateway']['port']}",
        f"--key-dir={w.gateway_dir / 'keys'}",
        f"--stats-file={w.data_dir.resolve() / 'run' / 'traders.json'}",
        "--cycles-per-s",
        str(t["cycles_per_s"]),
        "--seed",
        str(t["seed"]),
        "--log-format=json",
    ]


def _payments(w: Wiring) -> list[str]:
    return [
        PY,
        "-m",
        "bursa.exchange.payments",
        f"--chain-url=http://127.0.0.1:{w.chain_port}",
        f"--config={w.config_file}",
        f"--db={w.data_dir.resolve() / 'wallet' / 'wallet.db'}",
        *w.core_flags("fund", "admin"),
        f"--state-file={w.data_dir.resolve() / 'run' / 'payments.json'}",
        f"--deposit-every-s={w.cfg['chain']['deposit_every_s']}",
        "--log-format=json",
    ]


# The demo traders come last: they log in to the gateway with the keys the supervisor
# creates before the gateway's first start (bursa.exchange.market.api_keys).
CHILDREN: tuple[ChildSpec, ...] = (
    ChildSpec("core", _core, "sequencer, matching, journal (bursa core)"),
    ChildSpec("chain", _chain, "simulated blockchain node (python -m wallet.simrpc)"),
    ChildSpec("marketdata", _marketdata, "public feed + snapshot service (bursa marketdata)"),
    ChildSpec("clearing", _clearing, "double-entry ledger in SQLite (bursa clearing run)"),
    ChildSpec("wallet", _wallet, "deposit scanner of the simulated chain (bursa wallet)"),
    ChildSpec("gateway", _gateway, "order-entry gateway, TCP + API keys (bursa gateway)"),
    ChildSpec("api", _api, "Binance-compatible REST + WebSocket API (bursa api)"),
    ChildSpec("traders", _traders, "demo market maker + takers", demo=True),
    ChildSpec("payments", _payments, "demo deposits + a withdrawal on the chain", demo=True),
)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies (even by kill -9),
    and a session of its own so a terminal's Ctrl-C reaches only the supervisor."""
    os.setsid()
    # Not Linux: the supervisor's own stop path still stops its children.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One running (or waiting) child: process, ready line, state, restarts, backoff."""

    def __init__(
        self, spec: ChildSpec, run_dir: Path, backoff_initial_s: float, log_dir: Path | None = None
    ) -> None:
        self.spec = spec
        self.run_dir = run_dir  # the ready line (.out) and the pid file
        self.log_dir = log_dir or run_dir  # the log (stderr, JSON lines)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}
        self.state = "stopped"  # starting | running | backoff | stopped
        self.restarts = 0
        self.starts = 0
        self.started_at = 0.0
        self.next_start = 0.0
        self.backoff_s = backoff_initial_s
        self.last_exit: int | None = None

    @property
    def name(self) -> str:
        """The spec's name."""
        return self.spec.name

    @property
    def out_path(self) -> Path:
        """Where the child's stdout (its ready line) goes."""
        return self.run_dir / f"{self.name}.out"

    @property
    def log_path(self) -> Path:
        """The child's stderr (its log), appended across restarts."""
        return self.log_dir / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        """The current process id (for operators and tests)."""
        return self.run_dir / f"{self.name}.pid"

    def start(self, argv: list[str], timeout_s: float) -> dict[str, Any]:
        """Start and wait for the JSON ready line; returns it (:class:`ChildError` if none)."""
        self.state = "starting"
        self.starts += 1
        # Processes that take no --log-format flag read it from the environment.
        env = child_env(**{logs.ENV_FORMAT: "json"})
        with open(self.out_path, "wb") as out, open(self.log_path, "ab") as err:
            err.write(
                logs.json_line("run", f"start {self.starts} of {self.name}: {shlex.join(argv)}")
            )
            err.flush()
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=err, cwd=REPO, env=env, preexec_fn=_die_with_parent
            )
        self.pid_path.write_text(f"{self.proc.pid}\n")
        try:
            ready = wait_ready_line(self.proc, self.out_path, timeout_s, poll_s=READY_POLL_S)
        except NotReadyError as e:
            if e.exit_status is None:
                self.kill()
            else:
                self.last_exit = e.exit_status
            raise ChildError(f"{self.name}: {e}") from e
        self.ready = ready
        self.state = "running"
        self.started_at = time.monotonic()
        return ready

    def exited(self) -> int | None:
        """The exit status if the process has exited, else None."""
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout_s: float) -> int | None:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL; the exit status."""
        self.state = "stopped"
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL and reap (the error path)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
