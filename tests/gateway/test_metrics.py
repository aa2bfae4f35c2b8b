"""The gateway's Prometheus endpoint: sessions, messages, throttles by reason, reports."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.wire.codes import GwReason
from tests.e2e.coreproc import CoreProcess
from tests.gateway.gwproc import GatewayProcess, setup_market
from tests.gateway.test_rejects import LIMITS, Env, client, s_order_rate


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("gwmetrics")
    (tmp / "logs").mkdir()
    core = CoreProcess(tmp / "core", tmp / "logs", "async")
    core.start()
    setup_market(core, users=(1, 2, 3), funds=10**9)
    gw = GatewayProcess(core, tmp / "gw.db", tmp / "logs", *LIMITS, "--metrics", "127.0.0.1:0")
    gw.start(port=0)
    yield gw, tmp
    gw.cleanup()
    core.cleanup()


def scrape(gw: GatewayProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(gw.ready["metrics"], timeout=30) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_throttles_sessions_and_reports_are_counted(env: Env) -> None:
    gw, _ = env
    before = scrape(gw)
    assert before[("bursa_gateway_sessions", ())] == 0
    assert s_order_rate(env) == GwReason.ORDER_RATE_EXCEEDED  # 25 orders, 20 allowed
    after = scrape(gw)
    key = ("bursa_gateway_throttles_total", (("reason", "ORDER_RATE_EXCEEDED"),))
    assert after[key] - before.get(key, 0) == 5
    inc = {
        n: after[(n, ())] - before[(n, ())]
        for n in ("bursa_gateway_messages_in_total", "bursa_gateway_reports_total")
    }
    assert inc["bursa_gateway_messages_in_total"] >= 25, inc
    # every report the client is sent: 20 ACCEPTED and 20 CANCELED (IOC orders with
    # nothing to trade against), 5 throttle rejects
    assert inc["bursa_gateway_reports_total"] == 45, inc
    c = client(env, user=3)
    try:
        assert scrape(gw)[("bursa_gateway_sessions", ())] >= 1
    finally:
        c.close()
