"""`bursa clearing run`: follow the core's events into the ledger, exactly once.

Start: open the database (migrations), load the ledger's state, catch up from
``last_seq + 1`` through the core's replay service in bounded rounds, then
follow the live stream (``bindings.client.EventSubscriber``: gap-free,
duplicate-free).  Many frames go into one transaction (up to
``batch_events`` events, or whatever arrived within ``flush_ms``), committed
together with the new ``last_seq`` by a background writer thread while the
next batch is mapped (at most one transaction in flight).  A lost database connection: reopen,
reload the state of the last commit, re-read events after it.  A silent or
restarted core: resubscribe from the ledger's position.  SIGTERM/SIGINT:
commit what is queued and exit 0.  Events that cannot be applied (a gap, an
order or symbol never seen: not the core's stream) or a second writer on the
same database: log it, write nothing more, exit 3.  kill -9: whatever was not committed is
read again on the next start.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from types import FrameType
from typing import Any

from bindings.client import CoreError, EventSubscriber
from clearing.config import ClearingConfig, add_arguments, load
from clearing.db import CONNECTION_ERRORS, Db
from clearing.ledger import ConcurrentWriterError, Ledger, StreamError
from engine import logs
from engine.metrics_http import Collector, counter, gauge, subscriber_families
from engine.metrics_http import serve as serve_metrics

log = logging.getLogger("bursa.clearing")

# Exit code when the stream cannot be applied (gap, unknown order, second writer).
EXIT_STREAM = 3
# Frames taken from the live stream per poll (bounds memory with batch_events).
POLL_FRAMES = 64


class ClearingProcess:
    """The follower loop (see module doc).

    Parameters
    ----------
    config : ClearingConfig
        Validated settings.
    """

    def __init__(self, config: ClearingConfig) -> None:
        self.config = config
        self.stopping = False
        self.db: Db | None = None
        self.sub: EventSubscriber | None = None
        self.reconnects = 0
        self.resubscribes = 0
        self.head_seq = 0  # the highest core seq seen (live frames, the replay log's end)

    def open(self, attempts: int = 0) -> bool:
        """Connect (retrying every ``reconnect_ms``; ``attempts`` 0: until stopping)
        and load the ledger; False if stopped or out of attempts first."""
        n = 0
        while not self.stopping:
            try:
                self.db = Db(self.config.db)
                self.ledger = Ledger(self.db)
                return True
            except CONNECTION_ERRORS as e:
                n += 1
                if attempts and n >= attempts:
                    raise
                log.warning("database unavailable (%s); retrying", e)
                time.sleep(self.config.reconnect_ms / 1000)
        return False

    def _subscribe(self) -> EventSubscriber:
        if self.sub is not None:
            self.sub.close()
        c = self.config
        self.sub = EventSubscriber(
            c.core_pub_endpoint, c.core_replay_endpoint, from_seq=self.ledger.last_seq + 1
        )
        return self.sub

    def _catch_up(self, sub: EventSubscriber) -> None:
        """Replay from the ledger's position to the log's end in rounds of at most
        ``batch_events`` events, committing each round (bounded memory)."""
        led = self.ledger
        while not self.stopping:
            frames, _next_seq, log_last = sub.replay(
                led.last_seq + 1, max_events=self.config.batch_events
            )
            for f in frames:
                led.apply_frame(f.first_seq, f.last_seq, f.events)
            self.head_seq = max(self.head_seq, log_last, led.last_seq)
            led.flush_async()  # written while the next round is fetched and mapped
            sub.next_seq = led.last_seq + 1
            if not frames or led.last_seq >= log_last:
                log.info("caught up to core seq %d", led.last_seq, extra={"seq": led.last_seq})
                return

    def _follow(self, sub: EventSubscriber) -> None:
        """Live frames into batches until stopping (or an error propagates)."""
        led = self.ledger
        c = self.config
        first_pending = 0.0
        while not self.stopping:
            frames = sub.poll(timeout_ms=c.poll_ms, max_frames=POLL_FRAMES)
            for f in frames:
                led.apply_frame(f.first_seq, f.last_seq, f.events)
            self.head_seq = max(self.head_seq, led.last_seq)
            # A failed background write must surface even when the stream is idle (a
            # database restart): the batch it lost is not dirty, so nothing else asks.
            led.settle_background()
            if not led.dirty:
                continue
            now = time.monotonic()
            if not first_pending:
                first_pending = now
            if (
                led.pending_events >= c.batch_events
                or not frames
                or (now - first_pending) * 1000 >= c.flush_ms
            ):
                led.flush_async()
                first_pending = 0.0

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code."""
        while not self.stopping:
            try:
                sub = self._subscribe()
                self._catch_up(sub)
                self._follow(sub)
            except CONNECTION_ERRORS as e:
                log.warning("database connection lost (%s); reconnecting", e)
                self._reconnect()
            except (TimeoutError, CoreError) as e:
                # The core is down or restarted: resubscribe from what the ledger holds.
                log.warning("core stream interrupted (%s); resubscribing", e)
                self.resubscribes += 1
                time.sleep(self.config.reconnect_ms / 1000)
            except (StreamError, ConcurrentWriterError) as e:
                # Not the core's stream from the ledger's position, or a second writer:
                # nothing more is written (what is committed stays consistent).
                log.error("stopping: %s: %s", type(e).__name__, e)
                self._close()
                return EXIT_STREAM
        try:
            self.ledger.flush()
        except CONNECTION_ERRORS as e:
            log.warning("final commit lost (%s); the events are read again on restart", e)
        self._close()
        return 0

    def _close(self) -> None:
        if self.sub is not None:
            self.sub.close()
        if self.db is not None:
            self.db.close()

    def _reconnect(self) -> None:
        """Reopen the database until it answers, then reload the committed state."""
        while not self.stopping:
            time.sleep(self.config.reconnect_ms / 1000)
            try:
                assert self.db is not None
                self.db.connect()
                self.ledger.reload()
                self.reconnects += 1
                log.info("database back; resuming after seq %d", self.ledger.last_seq,
                         extra={"seq": self.ledger.last_seq})  # fmt: skip
                return
            except CONNECTION_ERRORS as e:
                log.info("database still unavailable: %s", e)


def families(proc: ClearingProcess) -> list[Any]:
    """The follower's metrics at scrape time (names start ``bursa_clearing_``)."""
    p = "bursa_clearing"
    led = getattr(proc, "ledger", None)
    if led is None:
        return []
    committed = led.committed_seq
    head = max(proc.head_seq, led.last_seq)
    return [
        gauge(f"{p}_committed_seq", "last core seq committed to the ledger database", committed),
        gauge(f"{p}_applied_seq", "last core seq applied in memory", led.last_seq),
        gauge(f"{p}_head_seq", "highest core seq seen on the stream", head),
        gauge(f"{p}_lag_seq", "seqs seen but not yet committed", max(0, head - committed)),
        counter(f"{p}_entries", "ledger entries (double-entry legs) applied", led.n_entries),
        counter(f"{p}_events", "core events applied", led.n_events),
        counter(f"{p}_db_reconnects", "database connections reopened", proc.reconnects),
        counter(f"{p}_resubscribes", "core stream interruptions (resubscribed)", proc.resubscribes),
        *subscriber_families(proc.sub, p),
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Flags of ``bursa clearing run``."""
    p = argparse.ArgumentParser(prog="bursa clearing run", description=__doc__.splitlines()[0])
    add_arguments(p)
    p.add_argument("--batch-events", type=int)
    p.add_argument("--flush-ms", type=int)
    p.add_argument("--metrics", help="Prometheus /metrics HOST:PORT (default 127.0.0.1:0; off)")
    logs.add_arguments(p)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run the clearing process; prints one JSON ready line on stdout."""
    args = parse_args(argv)
    logs.setup("clearing", args.log_format, args.log_level)
    try:
        config = load(args)
    except (ValueError, OSError) as e:
        print(f"bursa clearing: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    proc = ClearingProcess(config)

    def _stop(signum: int, frame: FrameType | None) -> None:
        proc.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # A database that is down at start is waited for, as one lost later is.
    try:
        if not proc.open():
            return 0
    except (ValueError, OSError) as e:
        print(f"bursa clearing: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    assert proc.db is not None
    try:
        url, _ = serve_metrics(config.metrics, Collector(lambda: families(proc)))
    except (ValueError, OSError) as e:
        print(f"bursa clearing: metrics: {e}", file=sys.stderr)
        return 1
    ready = {
        "ready": True,
        "metrics": url,
        "backend": proc.db.backend,
        "last_seq": proc.ledger.last_seq,
        "pub": config.core_pub_endpoint,
        "replay": config.core_replay_endpoint,
    }
    print(json.dumps(ready), flush=True)
    return proc.run()
