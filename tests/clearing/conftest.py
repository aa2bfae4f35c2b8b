"""Fixtures of the clearing tests: a throwaway PostgreSQL cluster and a ``db_url``
parametrised over both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clearing.pgtmp import PgCluster


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgCluster]:
    """One PostgreSQL server for the whole session (initdb + pg_ctl in a temp dir)."""
    cluster = PgCluster(tmp_path_factory.mktemp("pg"))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database()
