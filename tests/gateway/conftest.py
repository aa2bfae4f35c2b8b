"""Fixtures: a real core with a market, a real gateway, API key files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.coreproc import CoreProcess
from tests.gateway.gwproc import GatewayProcess, make_key, setup_market


@pytest.fixture
def core(tmp_path: Path) -> Iterator[CoreProcess]:
    """A running core (async journal: these tests are about the gateway) with a market."""
    (tmp_path / "logs").mkdir()
    c = CoreProcess(tmp_path / "core", tmp_path / "logs", "async")
    c.start()
    setup_market(c)
    yield c
    c.cleanup()


@pytest.fixture
def gw(core: CoreProcess, tmp_path: Path) -> Iterator[GatewayProcess]:
    """A running gateway in front of ``core``."""
    g = GatewayProcess(core, tmp_path / "gw.db", tmp_path / "logs", "--heartbeat-ms", "500")
    g.start(port=0)
    yield g
    g.cleanup()


@pytest.fixture
def key1(gw: GatewayProcess, tmp_path: Path) -> Path:
    """Trade key of user 1."""
    return make_key(gw.db, tmp_path / "k1.key", 1)


@pytest.fixture
def key2(gw: GatewayProcess, tmp_path: Path) -> Path:
    """Trade key of user 2."""
    return make_key(gw.db, tmp_path / "k2.key", 2)
