"""Observability of `bursa run`: every process's /metrics, JSON logs, the Grafana dashboard."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bursa.exchange import payments
from tests.bursa.exchange_proc import ROOT, WAIT_S, Exchange
from tests.bursa.test_supervisor import check_books

GRAFANA = ROOT / "docs" / "grafana" / "bursa.json"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
}
# What each process must export (a sample of each family the brief names).
EXPECTED = {
    "core": (
        "bursa_core_commands_total", "bursa_core_rejects_total",
        "bursa_core_ack_latency_seconds_bucket",
        "bursa_core_fdatasync_seconds_bucket", "bursa_core_batch_commands_bucket",
        "bursa_core_full_turns_total", "bursa_core_turn_messages", "bursa_core_pub_frames_total",
        "bursa_core_snapshot_seconds_count", "bursa_core_capacity_growths_total",
    ),
    "gateway": (
        "bursa_gateway_sessions", "bursa_gateway_messages_in_total",
        "bursa_gateway_throttles_total",
        "bursa_gateway_reports_total", "bursa_gateway_core_gaps_total",
    ),
    "marketdata": (
        "bursa_marketdata_subscribers", "bursa_marketdata_messages_total",
        "bursa_marketdata_dropped_total", "bursa_marketdata_core_gaps_total",
    ),
    "clearing": ("bursa_clearing_lag_seq", "bursa_clearing_entries_total"),
    "wallet": (
        "bursa_wallet_balance", "bursa_wallet_withdrawals_pending", "bursa_wallet_alerts_total",
    ),
    "api": ("bursa_api_core_seq", "bursa_api_market_ws_connections", "bursa_api_user_streams"),
}  # fmt: skip


def exported(url: str) -> tuple[set[str], dict[str, float]]:
    """(every name the endpoint declares, with its sample suffixes; unlabelled values)."""
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    names: set[str] = set()
    values: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        names.add(fam.name)
        names.update(fam.name + s for s in SUFFIXES.get(fam.type, ()))
        for s in fam.samples:
            names.add(s.name)
            if not s.labels:
                values[s.name] = s.value
    return names, values


def grafana_metric_names() -> set[str]:
    """Every metric name a query of docs/grafana/bursa.json reads."""
    dash = json.loads(GRAFANA.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 30, exprs
    return {m for e in exprs for m in re.findall(r"\b(?:bursa|process)_[a-z0-9_]+", e)}


def labelled(url: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of ``name`` by label set."""
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    return {
        frozenset(s.labels.items()): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name
    }


def chain_balance(ex: Exchange, address: str) -> int:
    """An address's balance on the running simulated chain (its JSON-RPC)."""
    url = ex.ready["children"]["chain"]["url"]
    body = json.dumps({"method": "balance", "params": [address]}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return int(json.loads(r.read())["result"])


def check_money_moved(ex: Exchange) -> None:
    """The demo's deposits were credited by the wallet after confirmations and its
    withdrawal was paid on the chain and committed in the core."""
    wallet = ex.ready["process_metrics"]["wallet"]
    deadline = time.monotonic() + WAIT_S
    while True:
        credited = labelled(wallet, "bursa_wallet_credited").get(frozenset({("asset", "1")}), 0)
        states = {
            dict(k)["state"]: v for k, v in labelled(wallet, "bursa_wallet_withdrawals").items()
        }
        if credited >= 3 * payments.FIRST_DEPOSIT and states.get("committed") == 1:
            break
        assert time.monotonic() < deadline, (credited, states)
        time.sleep(0.5)
    dest = payments.user_wallet_address(payments.WITHDRAWER)
    assert chain_balance(ex, dest) == payments.WITHDRAWAL_AMOUNT
    hot = labelled(wallet, "bursa_wallet_balance")
    hot_sats = hot[frozenset({("chain", "sbtc"), ("asset", "1"), ("tier", "hot")})]
    assert 0 < hot_sats < payments.HOT_FUNDING - payments.WITHDRAWAL_AMOUNT  # paid + network fee


def test_every_process_serves_metrics_and_logs_json(tmp_path: Path) -> None:
    ex = Exchange(tmp_path)
    try:
        urls = ex.ready["process_metrics"]
        assert set(urls) == set(EXPECTED), urls
        for name, url in urls.items():
            assert url == ex.ready["children"][name]["metrics"]
            assert url.startswith("http://127.0.0.1:"), url
        ex.wait_seq(300)  # the demo traders at work
        deadline = time.monotonic() + WAIT_S
        while True:  # the counters move with the order flow
            _, core = exported(urls["core"])
            _, gw = exported(urls["gateway"])
            _, md = exported(urls["marketdata"])
            _, cl = exported(urls["clearing"])
            if (
                core.get("bursa_core_ack_latency_seconds_count", 0) > 100
                and gw.get("bursa_gateway_reports_total", 0) > 0
                and md.get("bursa_marketdata_subscribers", 0) >= 1  # the supervisor's feed
                and cl.get("bursa_clearing_entries_total", 0) > 0
            ):
                break
            assert time.monotonic() < deadline, (core, gw, md, cl)
            time.sleep(0.5)
        assert gw["bursa_gateway_sessions"] == 4  # maker + 3 takers
        names: set[str] = set()
        for proc, url in urls.items():
            got, _ = exported(url)
            missing = set(EXPECTED[proc]) - got
            assert not missing, (proc, missing)
            names |= got
        names |= exported(ex.ready["metrics"])[0]  # the supervisor's own
        # The sample Grafana dashboard queries only names a running process exports.
        unknown = grafana_metric_names() - names
        assert not unknown, unknown
        check_money_moved(ex)
        check_books(ex)
        assert ex.stop() == 0
    finally:
        ex.kill()
    # Every line of every log file is one JSON object (ts, level, process, msg).
    logs = ex.data_dir / "logs"
    seen = set()
    for f in sorted(logs.glob("*.log")):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            assert {"ts", "level", "process", "msg"} <= set(rec), (f, rec)
            seen.add(rec["process"])
    assert {"run", "core", "marketdata", "clearing", "wallet", "gateway", "api"} <= seen, seen
    core_log = [json.loads(x) for x in (logs / "core.log").read_text().splitlines()]
    assert any("seq" in r and r["process"] == "core" for r in core_log), core_log
