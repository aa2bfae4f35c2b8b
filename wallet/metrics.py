"""The wallet's Prometheus metrics: a reading taken by the wallet's loop, served at scrape.

The wallet's database connection belongs to its loop thread, so the loop takes a
reading every :data:`REFRESH_S` (:meth:`WalletMetrics.refresh`, SQL and chain
queries) and the scrape thread serves the last one (names start ``bursa_wallet_``):

- ``bursa_wallet_balance{chain,asset,tier}``: on-chain balances, minor units of the
  chain: ``deposit`` (every watched deposit address), ``hot`` and ``cold`` (the
  withdrawal wallets, when the chain has a ``[wallet.withdraw.<chain>]`` table);
- ``bursa_wallet_credited{asset}``: deposits credited to users in the core;
- ``bursa_wallet_deposits{status}``, ``bursa_wallet_withdrawals{state}``,
  ``bursa_wallet_withdrawals_pending{state}``
  (count) and ``bursa_wallet_withdrawals_pending_amount{state}``;
- ``bursa_wallet_alerts{kind}``: alert, incident and hold events so far;
- ``bursa_wallet_chain_halted{chain}``, ``bursa_wallet_scanned_height{chain}``;
- ``bursa_wallet_counter{name}``: the wallet's own counters (step errors...).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger("bursa.wallet.metrics")

P = "bursa_wallet"
REFRESH_S = 2.0
ALERT_KINDS = ("alert", "incident", "hold")
TERMINAL = ("committed", "released", "refused")


def _fam(kind: type[Any], name: str, doc: str, labels: list[str],
         rows: Sequence[tuple[list[str], float]]) -> Any:  # fmt: skip
    fam = kind(name, doc, labels=labels)
    for lv, v in rows:
        fam.add_metric(lv, float(v))
    return fam


class WalletMetrics:
    """The last reading of one wallet process (see the module doc)."""

    def __init__(self) -> None:
        self.families: list[Any] = []
        self.next_refresh = 0.0

    def collect(self) -> list[Any]:
        """The families of the last reading (the scrape thread)."""
        return list(self.families)

    def refresh(self, wallet: Any, withdrawals: Any = None, force: bool = False) -> None:
        """Take a reading (the wallet's loop thread) if one is due; errors are logged."""
        now = time.monotonic()
        if not force and now < self.next_refresh:
            return
        self.next_refresh = now + REFRESH_S
        try:
            self.families = self._read(wallet, withdrawals)
        except Exception:
            log.exception("wallet metrics reading failed")

    def _read(self, wallet: Any, withdrawals: Any) -> list[Any]:
        db = wallet.store.db
        balances: list[tuple[list[str], float]] = []
        halted, heights = [], []
        for name, rt in wallet.chains.items():
            watched = list(wallet.store.watched(name))
            for a in rt.cfg.assets:
                total = sum(int(rt.adapter.balance(addr, a.token)) for addr in watched)
                balances.append(([name, str(a.asset_id), "deposit"], total))
            halted.append(([name], 1 if wallet.store.halted(name) is not None else 0))
            last = wallet.store.last_block(name)
            heights.append(([name], last[0] if last else 0))
        if withdrawals is not None:
            for row in withdrawals.treasury():
                for tier in ("hot", "cold"):
                    balances.append(([row["chain"], str(row["asset_id"]), tier], row[tier]))
        credited = [
            ([str(a)], int(v))
            for a, v in db.execute(
                "SELECT asset_id, COALESCE(SUM(credit_amount), 0) FROM deposits "
                "WHERE credit_state = 'credited' GROUP BY asset_id"
            )
        ]
        deposits = [
            ([str(s)], int(n))
            for s, n in db.execute("SELECT status, COUNT(*) FROM deposits GROUP BY status")
        ]
        by_state = [
            (str(st), int(n), int(a))
            for st, n, a in db.execute(
                "SELECT state, COUNT(*), COALESCE(SUM(amount), 0) FROM withdrawals GROUP BY state"
            )
        ]
        pend = [r for r in by_state if r[0] not in TERMINAL]
        alerts = dict.fromkeys(ALERT_KINDS, 0)
        for k, n in db.execute(
            f"SELECT kind, COUNT(*) FROM events WHERE kind IN ({','.join('?' * len(ALERT_KINDS))})"
            " GROUP BY kind",
            ALERT_KINDS,
        ):
            alerts[str(k)] = int(n)
        gauge_, counter_ = GaugeMetricFamily, CounterMetricFamily
        return [
            _fam(
                gauge_,
                f"{P}_balance",
                "on-chain balance, chain units",
                ["chain", "asset", "tier"],
                balances,
            ),
            _fam(
                gauge_,
                f"{P}_credited",
                "deposits credited in the core, minor units",
                ["asset"],
                credited,
            ),
            _fam(gauge_, f"{P}_deposits", "deposits seen, by status", ["status"], deposits),
            _fam(
                gauge_,
                f"{P}_withdrawals",
                "withdrawals, by state (final ones included)",
                ["state"],
                [([s], n) for s, n, _ in by_state],
            ),
            _fam(
                gauge_,
                f"{P}_withdrawals_pending",
                "withdrawals not yet final, by state",
                ["state"],
                [([str(s)], int(n)) for s, n, _ in pend],
            ),
            _fam(
                gauge_,
                f"{P}_withdrawals_pending_amount",
                "their amount, minor units",
                ["state"],
                [([str(s)], int(a)) for s, _, a in pend],
            ),
            _fam(
                counter_,
                f"{P}_alerts",
                "alert, incident and hold events",
                ["kind"],
                [([k], n) for k, n in alerts.items()],
            ),
            _fam(
                gauge_,
                f"{P}_chain_halted",
                "1 while the chain's scanner is halted",
                ["chain"],
                halted,
            ),
            _fam(gauge_, f"{P}_scanned_height", "last block scanned", ["chain"], heights),
            _fam(
                counter_,
                f"{P}_counter",
                "the wallet's counters",
                ["name"],
                [([n], v) for n, v in sorted(wallet.store.counters().items())],
            ),
        ]
