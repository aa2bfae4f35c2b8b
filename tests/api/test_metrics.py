"""`bursa api` serves Prometheus metrics: requests by route template and status, the
last core seq applied, WebSocket connections (the process's ready line names the URL)."""

from __future__ import annotations

import urllib.request

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.api.apiproc import ApiProcess
from tests.api.fixtures import api, core  # noqa: F401  (fixtures)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint, keyed by name and sorted labels."""
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_requests_are_counted_by_route_template_and_status(api: ApiProcess) -> None:  # noqa: F811
    url = api.ready["metrics"]
    assert url.startswith("http://127.0.0.1:")
    for _ in range(3):
        assert requests.get(api.url + "/api/v3/ping", timeout=10).status_code == 200
    for n in range(2):  # distinct raw paths, one label: never a label per client path
        assert requests.get(api.url + f"/nothing/{n}", timeout=10).status_code == 404
    got = scrape(url)
    ping = ("route", "/api/v3/ping"), ("method", "GET"), ("status", "200")
    assert got[("bursa_api_requests_total", tuple(sorted(ping)))] == 3
    miss = ("route", "unmatched"), ("method", "GET"), ("status", "404")
    assert got[("bursa_api_requests_total", tuple(sorted(miss)))] == 2
    assert not any("/nothing/" in str(labels) for _, labels in got)
    assert got[("bursa_api_core_seq", ())] >= 1  # the market setup's events were applied
    assert got[("bursa_api_market_ws_connections", ())] == 0
    live = got[("bursa_api_event_frames_total", (("source", "live"),))]
    replayed = got[("bursa_api_event_frames_total", (("source", "replayed"),))]
    assert live + replayed >= 1  # the market setup's events, from either source
    assert got[("bursa_api_event_source_up", ())] == 1
