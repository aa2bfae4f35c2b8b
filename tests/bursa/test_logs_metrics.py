"""The shared logging setup (engine/logs.py) and metrics endpoint (engine/metrics_http.py)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
import zmq

from engine import logs
from engine.metrics_http import (
    Collector,
    MetricsAddressError,
    PeerCounter,
    counter,
    parse_address,
    serve,
)
from tests.bursa.exchange_proc import ROOT


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """setup() replaces the root handlers and the excepthook: give pytest its own back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_carry_ts_level_process_msg_seq_and_exc() -> None:
    out = io.StringIO()
    logs.setup("clearing", "json", "DEBUG", stream=out)
    log = logging.getLogger("bursa.clearing")
    log.info("caught up to core seq %d", 42, extra={"seq": 42})
    log.debug("no seq here")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        log.exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # a traceback stays inside its line
    a, b, c = (json.loads(x) for x in lines)
    assert a["process"] == "clearing" and a["level"] == "info" and a["seq"] == 42
    assert a["msg"] == "caught up to core seq 42" and a["ts"].endswith("Z")
    assert "seq" not in b and b["level"] == "debug"
    assert c["level"] == "error" and "ValueError: boom" in c["exc"]


def test_text_is_the_default_and_the_environment_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(logs.ENV_FORMAT, raising=False)
    assert logs.default_format() == "text"
    monkeypatch.setenv(logs.ENV_FORMAT, "json")
    assert logs.default_format() == "json"
    monkeypatch.setenv(logs.ENV_FORMAT, "yaml")
    assert logs.default_format() == "text"
    with pytest.raises(ValueError):
        logs.setup("x", "yaml")
    line = json.loads(logs.json_line("run", "start 1 of core", seq=7))
    assert (line["process"], line["msg"], line["seq"]) == ("run", "start 1 of core", 7)


def test_an_uncaught_exception_is_one_json_line() -> None:
    code = "from engine import logs; logs.setup('core', 'json'); raise RuntimeError('disk on fire')"
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 1
    (line,) = p.stderr.splitlines()
    rec = json.loads(line)
    assert rec["level"] == "critical" and "disk on fire" in rec["msg"]
    assert "Traceback" in rec["exc"]


@pytest.mark.parametrize(
    "addr, want",
    [
        ("127.0.0.1:9151", ("127.0.0.1", 9151)),
        ("9152", ("127.0.0.1", 9152)),
        (":0", ("127.0.0.1", 0)),
        ("[::1]:9153", ("::1", 9153)),
        ("0.0.0.0:9154", ("0.0.0.0", 9154)),
        ("", None),
        ("off", None),
    ],
)
def test_metrics_addresses(addr: str, want: tuple[str, int] | None) -> None:
    assert parse_address(addr) == want


@pytest.mark.parametrize("addr", ["host:port", "127.0.0.1:70000", "x"])
def test_bad_metrics_addresses_are_refused(addr: str) -> None:
    with pytest.raises(MetricsAddressError):
        parse_address(addr)


def test_serve_exposes_the_collectors_and_the_process_metrics() -> None:
    hits = []

    def collect() -> list[object]:
        hits.append(1)  # read at scrape time, not before
        return [counter("bursa_test_things", "things", len(hits))]

    url, _ = serve("127.0.0.1:0", Collector(collect))
    assert url is not None
    n = len(hits)
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    assert f"bursa_test_things_total {n + 1}.0" in text
    assert "process_resident_memory_bytes" in text
    assert serve("off", Collector(collect))[0] is None


def test_peer_counter_follows_connections_and_disconnections() -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind("tcp://127.0.0.1:*")
    where = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    peers = PeerCounter(pub)
    subs = []
    try:
        for _ in range(2):
            s = ctx.socket(zmq.SUB)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(where)
            subs.append(s)
        wait_until(lambda: peers.peers == 2)
        subs.pop().close()
        wait_until(lambda: peers.peers == 1)
        assert peers.accepted == 2
    finally:
        for s in subs:
            s.close()
        peers.stop()
        pub.close()


def wait_until(cond: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.02)
