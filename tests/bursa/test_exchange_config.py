"""The supervisor's config (defaults < file < env), `bursa config show`, restart backoff."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from rich.console import Console

from bursa.exchange import config, view
from bursa.exchange.children import PY, Child, ChildSpec, Wiring
from bursa.exchange.readings import CoreRates, quantile_bound
from bursa.exchange.supervisor import Supervisor, child_config

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_file_then_env(tmp_path: Path) -> None:
    f = tmp_path / "x.toml"
    f.write_text(
        '[run]\nsummary_every_s = 2\n[core]\nmode = "buffered"\n[clearing]\nflush_ms = 7\n'
    )
    cfg = config.load(str(f), environ={"BURSA_RUN_SUMMARY_EVERY_S": "3", "BURSA_WALLET_X": "a b"})
    assert cfg["run"]["summary_every_s"] == 3  # env beats the file
    assert cfg["run"]["data_dir"] == "data"  # default
    assert cfg["core"]["mode"] == "buffered"
    assert cfg["clearing"]["flush_ms"] == 7
    assert cfg["wallet"]["x"] == "a b"  # a bare word is a string
    assert config.load(None, environ={})["core"]["mode"] == "fsync"


@pytest.mark.parametrize(
    "text, env",
    [
        ("[nope]\na = 1\n", {}),
        ("[run]\nsummary_every_s = 'soon'\n", {}),
        ("[run]\ntypo = 1\n", {}),
        ("", {"BURSA_RUN_DEMO": "3"}),
        ("[run\n", {}),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(config.ConfigError):
        config.load(str(f), environ=env)


def test_config_show_prints_the_effective_toml(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("[traders]\ncycles_per_s = 4\n")
    p = subprocess.run(
        [sys.executable, "-m", "bursa", "config", "show", "--config", str(f)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"BURSA_CORE_MODE": "async", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    shown = tomllib.loads(p.stdout)
    assert shown["traders"]["cycles_per_s"] == 4
    assert shown["core"]["mode"] == "async"
    assert shown["run"] == config.DEFAULTS["run"]


def test_child_config_round_trips_through_toml() -> None:
    cfg = config.load(None, environ={})
    out = tomllib.loads(config.dumps(child_config(cfg, 12345)))
    chain = out["wallet"]["chains"]["sbtc"]
    assert chain["url"] == "http://127.0.0.1:12345"
    assert chain["assets"] == [{"asset_id": 1, "min_deposit": 10_000}]
    assert out["core_server"] == {"mode": "fsync"}


def _crasher(_: Wiring) -> list[str]:
    return [PY, "-c", "print('{\"ready\": true}', flush=True); raise SystemExit(3)"]


def test_a_crashing_child_restarts_with_bounded_doubling_backoff(tmp_path: Path) -> None:
    cfg = config.load(None, environ={})
    cfg["run"].update(backoff_initial_ms=50, backoff_max_ms=200, demo=False)
    sup = Supervisor(cfg, tmp_path)
    child = Child(ChildSpec("crasher", _crasher, "exits 3"), tmp_path / "run" / "logs", 0.05)
    sup.children, sup.by_name = [child], {"crasher": child}
    sup.start_child(child)
    delays = []
    deadline = time.monotonic() + 60
    while child.restarts < 5 and time.monotonic() < deadline:
        before = child.state
        sup.supervise(time.monotonic())
        if before == "running" and child.state == "backoff":
            delays.append(round(child.next_start - time.monotonic(), 2))
        time.sleep(0.01)
    assert child.restarts == 5 and child.last_exit == 3
    assert delays[:4] == pytest.approx([0.05, 0.1, 0.2, 0.2], abs=0.03)
    sup.stop_all()
    assert child.state == "stopped"


def test_dashboard_renders_market_and_processes() -> None:
    kids = [
        view.ChildView("core", "running", 0, 11, None, "sequencer"),
        view.ChildView("clearing", "backoff", 2, None, -9, "ledger"),
    ]
    snap = view.Snapshot(
        42, 5_999_950, 6_000_050, 17, 1234, 1200, kids,
        bids=[(5_999_950, 500), (5_999_930, 1_200)], asks=[(6_000_050, 700)],
        trades=[(6_000_070, 30, 1), (5_999_910, 20, 2)],
        rates=CoreRates(350.0, 0.001, 0.0025, 0.0063, 0.008, 100),
        money=view.Money(hot=150_000, credited=140_000, deposits=3, pending_withdrawals=2,
                         withdrawals_done=1, alerts=4),
        alerts=["07:20:01 traders exited with status -9; restart in 0.2 s"],
    )  # fmt: skip
    console = Console(record=True, width=120)
    console.print(view.dashboard(snap, "/srv/data"))
    text = console.export_text()
    assert "59,999.50" in text and "60,000.50" in text
    assert "59,999.30" in text and "0.1200" in text  # the second bid level
    assert "60,000.70" in text and "59,999.10" in text  # the trades
    assert "ledger lag" in text and "34" in text
    assert "clearing" in text and "backoff" in text and "-9" in text
    assert "up 42s" in text
    assert re.search(r"fdatasync mean\s*│\s*6.30 ms", text), text
    assert re.search(r"ack latency p99\s*│\s*≤ 2.50 ms", text), text
    assert re.search(r"hot wallet \(hot\)\s*│\s*0.00150000 BTC", text), text
    assert re.search(r"pending withdrawals\s*│\s*2", text), text
    assert "traders exited with status -9" in text
    narrow = Console(record=True, width=80)
    narrow.print(view.dashboard(snap, "/srv/data", 80))
    small = narrow.export_text()
    for text_ in ("59,999.50", "60,000.70", "6.30 ms", "0.00150000 BTC", "exited with status -9"):
        assert text_ in small, small  # 80 columns: two panels a row, nothing cut
    assert max(len(x) for x in small.splitlines()) <= 80
    line = view.summary_line(snap)
    assert line.endswith("core=running/0 clearing=backoff/2")
    assert "fdatasync 6.30 ms" in line and "hot wallet 0.00150000 BTC" in line
    assert "withdrawals pending 2" in line and "alerts 4" in line


def test_metrics_follow_the_readings() -> None:
    m = view.Metrics()
    kids = [view.ChildView("core", "running", 1, 11, None)]
    m.update(view.Snapshot(1, 0, 0, 5, 100, 90, kids))
    text = generate_latest(m.registry).decode()
    assert 'bursa_child_up{child="core"} 1.0' in text
    assert 'bursa_child_state{child="core",state="backoff"} 0.0' in text
    assert "bursa_ledger_lag 10.0" in text


def test_quantile_bound_reads_the_interval_between_two_scrapes() -> None:
    inf = float("inf")
    before = {0.001: 10.0, 0.01: 10.0, inf: 10.0}
    now = {0.001: 10.0, 0.01: 108.0, inf: 110.0}  # 100 new: 98 in (1, 10] ms, 2 above
    assert quantile_bound(now, before, 0.5) == 0.01
    assert quantile_bound(now, before, 0.99) == inf
    assert quantile_bound(before, before, 0.5) is None  # nothing new
