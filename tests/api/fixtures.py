"""Fixtures of part A's API tests: a real core with BTCUSDT, a real `bursa api`, keys.

Imported by each test module (``from tests.api.fixtures import ...``) rather than a
conftest.py, which the market tests of this package may have their own of.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import keys
from tests.api.apiproc import ApiProcess, setup_market
from tests.e2e.coreproc import CoreProcess


@pytest.fixture
def core(tmp_path: Path) -> Iterator[CoreProcess]:
    """A running core (fsync journal) with the BTCUSDT market and users 1 and 2."""
    (tmp_path / "logs").mkdir(exist_ok=True)
    c = CoreProcess(tmp_path / "core", tmp_path / "logs", "fsync")
    c.start()
    setup_market(c)
    yield c
    c.cleanup()


@pytest.fixture
def api(core: CoreProcess, tmp_path: Path) -> Iterator[ApiProcess]:
    """A running `bursa api` in front of ``core`` (generous order limits)."""
    a = ApiProcess(core, tmp_path / "api", tmp_path / "logs", "--orders-per-10s", "100000")
    a.start()
    yield a
    a.cleanup()


@pytest.fixture
def key1(api: ApiProcess) -> keys.ApiKey:
    """An HMAC trading key of user 1."""
    return api.make_key(1)


@pytest.fixture
def key2(api: ApiProcess) -> keys.ApiKey:
    """An HMAC trading key of user 2."""
    return api.make_key(2)
