"""What the dashboard reads from the children's own Prometheus endpoints and the wallet.

:func:`scrape` fetches one ``/metrics`` page into ``{sample name: [(labels, value)]}``;
:class:`Rates` keeps the previous scrape of the core to turn counters into rates and
histogram buckets into percentiles over the last interval (the bucket bound that
holds the percentile: what Prometheus's ``histogram_quantile`` would bound it by);
:func:`recent_alerts` reads the wallet's alert events from its database (read-only).
"""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[str, list[tuple[dict[str, str], float]]]
SCRAPE_TIMEOUT_S = 0.5
ALERT_KINDS = ("alert", "incident", "hold", "resumed", "settled")


def scrape(url: str | None, timeout_s: float = SCRAPE_TIMEOUT_S) -> Samples:
    """Every sample of one endpoint (empty when it does not answer)."""
    if not url:
        return {}
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            text = r.read().decode()
    except (OSError, ValueError):
        return {}
    out: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in labels.items())
    )


def buckets(samples: Samples, name: str, **labels: str) -> dict[float, float]:
    """A histogram's cumulative counts by upper bound (``+Inf`` as infinity)."""
    out: dict[float, float] = {}
    for lab, v in samples.get(f"{name}_bucket", []):
        if all(lab.get(k) == x for k, x in labels.items()):
            le = float(lab["le"])
            out[le] = out.get(le, 0.0) + v
    return out


def quantile_bound(now: dict[float, float], before: dict[float, float], q: float) -> float | None:
    """The upper bound of the bucket holding quantile ``q`` of the observations made
    between two scrapes (None: no observation); infinity past the last bound."""
    delta = {le: now[le] - before.get(le, 0.0) for le in now}
    n = delta.get(float("inf"), 0.0)
    if n <= 0:
        return None
    for le in sorted(delta):
        if delta[le] >= q * n:
            return le
    return float("inf")


@dataclass
class CoreRates:
    """The core over the last interval: commands/s, ack latency and fdatasync time."""

    commands_per_s: float = 0.0
    ack_p50_s: float | None = None
    ack_p99_s: float | None = None
    fsync_mean_s: float | None = None
    fsync_p99_s: float | None = None
    fsyncs: int = 0


class Rates:
    """Consecutive scrapes of the core -> :class:`CoreRates`."""

    ACK = "bursa_core_ack_latency_seconds"
    SYNC = "bursa_core_fdatasync_seconds"

    def __init__(self) -> None:
        self.before: Samples = {}
        self.at = 0.0
        self.last = CoreRates()

    def update(self, core: Samples) -> CoreRates:
        """The rates since the previous call (the last ones when the core did not answer)."""
        now = time.monotonic()
        if not core:
            return self.last
        prev, dt = self.before, now - self.at
        out = CoreRates()
        if prev and dt > 0:
            cmds = total(core, "bursa_core_commands_total") - total(
                prev, "bursa_core_commands_total"
            )
            out.commands_per_s = max(0.0, cmds / dt)
            ack, ack0 = buckets(core, self.ACK), buckets(prev, self.ACK)
            out.ack_p50_s = quantile_bound(ack, ack0, 0.5)
            out.ack_p99_s = quantile_bound(ack, ack0, 0.99)
            j = {"file": "journal"}
            sync, sync0 = buckets(core, self.SYNC, **j), buckets(prev, self.SYNC, **j)
            n = total(core, f"{self.SYNC}_count", **j) - total(prev, f"{self.SYNC}_count", **j)
            if n > 0:
                spent = total(core, f"{self.SYNC}_sum", **j) - total(prev, f"{self.SYNC}_sum", **j)
                out.fsync_mean_s = spent / n
                out.fsync_p99_s = quantile_bound(sync, sync0, 0.99)
                out.fsyncs = int(n)
        self.before, self.at, self.last = core, now, out
        return out


def recent_alerts(wallet_db: Path, limit: int = 5) -> list[str]:
    """The wallet's latest alert/incident/hold events, newest first, one line each."""
    if not wallet_db.exists():
        return []
    marks = ",".join("?" * len(ALERT_KINDS))
    try:
        con = sqlite3.connect(f"file:{wallet_db}?mode=ro", uri=True, timeout=1)
        try:
            rows = con.execute(
                f"SELECT ts_ns, chain, kind, detail FROM events WHERE kind IN ({marks}) "
                "ORDER BY id DESC LIMIT ?",
                (*ALERT_KINDS, limit),
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []  # the wallet is creating its schema; next time
    out = []
    for ts_ns, chain, kind, detail in rows:
        try:
            d = json.loads(detail)
        except ValueError:
            d = {}
        what = d.get("what") or d.get("reason") or ", ".join(f"{k}={v}" for k, v in d.items())
        hhmmss = time.strftime("%H:%M:%S", time.gmtime(int(ts_ns) / 1e9))
        out.append(f"{hhmmss} wallet {chain} {kind}: {what}")
    return out
