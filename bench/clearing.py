"""Clearing benchmark: ledger entries/s on SQLite and PostgreSQL, and the lag behind a
live core.

Usage::

    .venv/bin/python -m bench.clearing --json [--quick] [--commands N] [--seed S]

Workload: the engine benchmark's stream (``sim/bookflow.py``: setup, pre-fill,
``--commands`` measured commands) run once through the in-process core; its
event frames (one per batch of 4,096 commands, as the core process publishes
them) are the input.

- ``sqlite_entries_per_s`` / ``postgres_entries_per_s``: the whole stream into an
  empty ledger (:class:`clearing.ledger.Ledger`): event -> entries mapping plus
  batched transactions of ``--batch-events`` events (default 50,000; the
  process's default), each committing its entries, rows and ``last_seq``.
  SQLite: a WAL file with ``synchronous=FULL`` in a temp dir; PostgreSQL: a
  throwaway local cluster (``clearing.pgtmp``, default settings, fsync on) fed
  with binary COPY.  Median of ``--repeats`` runs, each on a fresh database.
  ``*_python_map``: one run each with the pure-Python mapping (the oracle of the
  compiled ``pyx.ledgermap``), the baseline in the same run.
- ``max_lag_events``: a real ``bursa core`` (mode async) and a real
  ``bursa clearing run`` (SQLite) while a paced client sends the stream at the
  command rate that gives ``--trades-per-s`` trades/s (default 10,000); every
  20 ms the events published so far (counted by a subscriber of the core's PUB)
  minus the events the ledger has committed (``clearing_state.events``); the
  maximum over the run.  ``catch_up_ms``: from the last send until the ledger
  holds every event.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from bench.core import full_stream
from bench.meta import median_int, run_info
from bindings.client import RoutedClient
from clearing.db import Db
from clearing.ledger import Ledger
from clearing.pgtmp import PgCluster
from engine.core import Core
from engine.wire.frames import decode_event_frame
from pyx.enums import EvKind
from sim.bookflow import WorkloadConfig, generate

TARGET_SQLITE_ENTRIES_PER_S = 100_000
TARGET_POSTGRES_ENTRIES_PER_S = 50_000
FRAME_CMDS = 4096
REPO = Path(__file__).resolve().parents[1]

Frame = tuple[int, int, np.ndarray]


def core_frames(stream: np.ndarray) -> tuple[list[Frame], int]:
    """Event frames of the stream through the in-process core; and its trades."""
    core = Core()
    frames: list[Frame] = []
    trades = 0
    for i in range(0, len(stream), FRAME_CMDS):
        first = core.last_seq + 1
        ev, _ = core.run(stream[i : i + FRAME_CMDS])
        frames.append((first, int(core.last_seq), ev.copy()))
        trades += int(np.count_nonzero(ev["kind"] == EvKind.TRADE))
    assert not core.conservation_errors()
    return frames, trades


def ledger_rate(
    url: str, frames: list[Frame], batch_events: int, fast: bool = True
) -> tuple[int, int, int]:
    """(entries/s, entries per CPU second of this process, entries) of the whole
    stream into the empty ledger at ``url``.  The CPU figure shows what the writer
    does on a core of its own when the machine is shared (SQLite runs in this
    process; PostgreSQL's server time is not in it).  ``fast=False``: the
    pure-Python mapping (the oracle of pyx.ledgermap), as the baseline."""
    with Db(url) as db:
        led = Ledger(db, fast=fast)
        t0 = time.perf_counter()
        c0 = time.process_time()
        for f in frames:
            led.apply_frame(*f)
            if led.pending_events >= batch_events:
                led.flush_async()  # as the process does: write while mapping the next
        led.flush()
        dt = time.perf_counter() - t0
        dc = time.process_time() - c0
        return int(led.n_entries / dt), int(led.n_entries / max(dc, 1e-9)), led.n_entries


def lag_run(stream: np.ndarray, start: int, rate_cmds: float, workdir: Path) -> dict[str, int]:
    """Core + clearing processes; paced client; max lag in events (module doc)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("BURSA_CLEARING_DB", None)
    lp = "tcp://127.0.0.1:*"
    core_out = open(workdir / "core.out", "wb")  # noqa: SIM115 - closed below
    core = subprocess.Popen(
        [sys.executable, "-m", "bursa", "core", "--data-dir", str(workdir / "core"),
         "--trade-endpoint", lp, "--fund-endpoint", lp, "--admin-endpoint", lp,
         "--pub-endpoint", lp, "--replay-endpoint", lp, "--mode", "async"],
        stdout=core_out, stderr=subprocess.DEVNULL, cwd=REPO, env=env,
    )  # fmt: skip
    clearing = None
    try:
        ready = _ready(workdir / "core.out", core)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.connect(ready["pub"])
        cmd = ctx.socket(zmq.DEALER)
        cmd.setsockopt(zmq.SNDHWM, 0)
        cmd.setsockopt(zmq.RCVHWM, 0)
        cmd.connect(ready["trade"])  # the timed flow is order entry only
        time.sleep(0.3)  # let the SUB connect before anything is published
        published = 0

        def drain() -> None:
            nonlocal published
            while sub.poll(0):
                f = decode_event_frame(sub.recv(), verify=False)
                published += len(f.events)
            while cmd.poll(0):
                cmd.recv_multipart()

        head = stream[:start]
        setup_client = RoutedClient.from_ready(ready)  # setup spans admin, fund and trade
        for i in range(0, len(head), FRAME_CMDS):
            setup_client.request(head[i : i + FRAME_CMDS])
        setup_client.close()
        db_url = f"sqlite:///{workdir / 'lag.db'}"
        clearing_out = open(workdir / "clearing.out", "wb")  # noqa: SIM115 - closed below
        clearing = subprocess.Popen(
            [sys.executable, "-m", "bursa", "clearing", "run", "--db", db_url,
             "--core-pub-endpoint", ready["pub"], "--core-replay-endpoint", ready["replay"]],
            stdout=clearing_out, stderr=subprocess.DEVNULL, cwd=REPO, env=env,
        )  # fmt: skip
        _ready(workdir / "clearing.out", clearing)
        db = Db(db_url)

        def committed() -> int:
            return int(db.query("SELECT events FROM clearing_state WHERE id = 1")[0][0])

        # Wait until the ledger has caught up with the setup and pre-fill.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            drain()
            if published and committed() >= published:
                break
            time.sleep(0.02)
        body = stream[start:]
        published_before = published
        t0 = time.monotonic_ns()
        sent = 0
        max_lag = 0
        next_sample = t0
        while sent < len(body):
            now = time.monotonic_ns()
            due = min(len(body), int((now - t0) * rate_cmds / 1e9) + 1)
            if due > sent:
                for i in range(sent, due, FRAME_CMDS):
                    cmd.send(body[i : min(due, i + FRAME_CMDS)].tobytes())
                sent = due
            if now >= next_sample:
                drain()
                max_lag = max(max_lag, published - committed())
                next_sample = now + 20_000_000
            time.sleep(0.001)
        t_end = time.monotonic_ns()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            drain()
            lag = published - committed()
            max_lag = max(max_lag, lag)
            if lag <= 0 and sent == len(body):
                break
            time.sleep(0.005)
        t_done = time.monotonic_ns()
        catch_up_ms = (t_done - t_end) // 1_000_000
        duration_s = (t_end - t0) / 1e9
        body_events = published - published_before
        db.close()
        return {
            "max_lag_events": int(max_lag),
            "catch_up_ms": int(catch_up_ms),
            "lag_run_commands": len(body),
            "lag_run_cmds_per_s": int(len(body) / max(duration_s, 1e-9)),
            "lag_run_events": body_events,
            # What the process kept up with: the run's events over send + catch-up time.
            "clearing_events_per_s": int(body_events / max((t_done - t0) / 1e9, 1e-9)),
        }
    finally:
        for p in (clearing, core):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        core_out.close()


def _ready(path: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                ready: dict[str, Any] = json.loads(line)
                return ready
        if proc.poll() is not None:
            raise RuntimeError(f"{path.stem} exited with {proc.returncode}")
        time.sleep(0.02)
    raise TimeoutError(f"{path.stem} not ready")


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every part; the result dict (module doc)."""
    wl = generate(WorkloadConfig(commands=args.commands, seed=args.seed))
    stream, _start = full_stream(wl)
    frames, trades = core_frames(stream)
    n_events = sum(len(f[2]) for f in frames)
    tmp = Path(tempfile.mkdtemp(prefix="bench-clearing-"))
    out: dict[str, Any] = {
        "commands": len(stream),
        "events": n_events,
        "trades": trades,
        "batch_events": args.batch_events,
    }
    try:
        sq, pg, sq_cpu, pg_cpu = [], [], [], []
        for r in range(args.repeats):
            url = f"sqlite:///{tmp / f'bench-{r}.db'}"
            rate, cpu, n = ledger_rate(url, frames, args.batch_events)
            sq.append(rate)
            sq_cpu.append(cpu)
        out["entries"] = n
        # Baseline in the same run: the pure-Python mapping, one run per backend.
        base_url = f"sqlite:///{tmp / 'bench-python-map.db'}"
        out["sqlite_entries_per_s_python_map"], out["sqlite_entries_per_cpu_s_python_map"], _ = (
            ledger_rate(base_url, frames, args.batch_events, fast=False)
        )
        cluster = PgCluster(tmp)
        cluster.start()
        try:
            for _ in range(args.repeats):
                rate, cpu, _n = ledger_rate(cluster.new_database(), frames, args.batch_events)
                pg.append(rate)
                pg_cpu.append(cpu)
            out["postgres_entries_per_s_python_map"], _, _ = ledger_rate(
                cluster.new_database(), frames, args.batch_events, fast=False
            )
        finally:
            cluster.cleanup()
        out["sqlite_entries_per_s"] = median_int(sq)
        out["postgres_entries_per_s"] = median_int(pg)
        out["sqlite_entries_per_cpu_s"] = median_int(sq_cpu)
        out["postgres_client_entries_per_cpu_s"] = median_int(pg_cpu)
        out["load_avg_1m"] = round(os.getloadavg()[0], 2)
        lag_wl = generate(WorkloadConfig(commands=args.lag_commands, seed=args.seed + 1))
        lag_stream, lag_start = full_stream(lag_wl)
        trades_per_cmd = max(lag_wl.trades, 1) / max(len(lag_wl.commands), 1)
        rate_cmds = args.trades_per_s / trades_per_cmd
        out["lag_trades_per_s"] = args.trades_per_s
        out["lag_cmds_per_s_planned"] = int(rate_cmds)
        out.update(lag_run(lag_stream, lag_start, rate_cmds, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["target_sqlite_entries_per_s"] = TARGET_SQLITE_ENTRIES_PER_S
    out["target_postgres_entries_per_s"] = TARGET_POSTGRES_ENTRIES_PER_S
    out["headline"] = ["sqlite_entries_per_s", "postgres_entries_per_s", "max_lag_events"]
    out["lower_is_better"] = ["max_lag_events", "catch_up_ms"]
    out["durability"] = "sqlite WAL synchronous=FULL; postgres fsync on; core async"
    out["run"] = run_info(args.seed)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a summary (unless ``--json``) and the JSON line."""
    ap = argparse.ArgumentParser(
        prog="python -m bench.clearing", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--quick", action="store_true", help="small stream, one repeat")
    ap.add_argument("--commands", type=int, default=200_000)
    ap.add_argument("--lag-commands", type=int, default=150_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-events", type=int, default=50_000)
    ap.add_argument("--trades-per-s", type=int, default=10_000)
    args = ap.parse_args(argv)
    if args.quick:
        args.commands, args.lag_commands, args.repeats = 30_000, 30_000, 1
    res = measure(args)
    if not args.json:
        keys = ("sqlite_entries_per_s", "postgres_entries_per_s", "max_lag_events",
                "catch_up_ms", "clearing_events_per_s", "entries", "events", "trades")  # fmt: skip
        for k in keys:
            print(f"{k:>26}: {res.get(k)}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
