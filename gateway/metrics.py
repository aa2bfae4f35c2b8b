"""The gateway's Prometheus metrics, read from its counters at scrape time.

The gateway's loop counts in plain ints (``Gateway.stats``, ``Gateway.throttles``);
:func:`families` turns them into metric families (names start ``bursa_gateway_``)
for :func:`engine.metrics_http.serve`.
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import CounterMetricFamily

from engine.metrics_http import counter, gauge, subscriber_families

P = "bursa_gateway"


def families(gw: Any) -> list[Any]:
    """Sessions, messages, throttles, reports, core traffic of one running gateway."""
    st = dict(gw.stats)
    throttles = CounterMetricFamily(
        f"{P}_throttles",
        "messages refused or sessions ended by a limit, by reason",
        labels=["reason"],
    )
    for reason, n in sorted(dict(gw.throttles).items()):
        throttles.add_metric([reason], float(n))
    return [
        gauge(f"{P}_sessions", "logged-in sessions", len(gw.sessions)),
        gauge(f"{P}_connections", "open TCP connections (logged in or not)", len(gw.conns)),
        counter(f"{P}_messages_in", "application messages received", st["messages_in"]),
        counter(f"{P}_orders", "orders and cancels passed to the core", st["orders"]),
        counter(
            f"{P}_reports", "sequenced messages to sessions (execution reports...)", st["reports"]
        ),
        throttles,
        counter(f"{P}_frames_to_core", "command frames sent to the core", st["frames_to_core"]),
        counter(f"{P}_retries", "commands resent after a lost core reply", st["retries"]),
        counter(
            f"{P}_duplicates", "core replies DUPLICATE (a retry already applied)", st["duplicates"]
        ),
        counter(f"{P}_core_events", "core events applied", st["events"]),
        counter(
            f"{P}_acks_from_reply",
            "ACCEPTED reports built from the core's reply (read before the event)",
            st["acks_from_reply"],
        ),
        gauge(f"{P}_inflight_frames", "command frames awaiting the core's reply", len(gw.inflight)),
        gauge(f"{P}_open_orders", "open orders of every session", sum(gw.open_by_user.values())),
        gauge(f"{P}_orders_in_memory", "orders in the in-memory map", len(gw.store.orders)),
        counter(
            f"{P}_orders_evicted",
            "ended orders evicted from memory (served from SQLite)",
            gw.store.evicted,
        ),
        counter(
            f"{P}_turn_records",
            "quiet turns made durable by one write to the turn file instead of a commit",
            gw.store.turn_writes,
        ),
        *subscriber_families(gw.sub, P),
    ]
