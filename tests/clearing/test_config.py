"""Settings, migrations and bad input of the clearing commands."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from clearing import cli, config, reconcile
from clearing.db import Db
from clearing.schema import SCHEMA_VERSION, migrate


def _args(**kw: object) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    config.add_arguments(p)
    ns = p.parse_args([])
    for k, v in kw.items():
        setattr(ns, k, v)
    return ns


def test_sources_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[clearing]\ndb = "sqlite:///from-file.db"\nbatch_events = 7\n')
    monkeypatch.delenv(config.ENV_DB, raising=False)
    assert config.load(_args(config=str(f))).db == "sqlite:///from-file.db"
    assert config.load(_args(config=str(f))).batch_events == 7
    monkeypatch.setenv(config.ENV_DB, "postgresql://u@h/db")
    assert config.load(_args(config=str(f))).db == "postgresql://u@h/db"
    assert config.load(_args(config=str(f), db="x.db")).db == "x.db"


def test_bad_settings_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.ENV_DB, raising=False)
    f = tmp_path / "c.toml"
    f.write_text("[clearing]\ndbb = 1\n")
    with pytest.raises(ValueError, match="unknown"):
        config.load(_args(config=str(f)))
    f.write_text("[clearing]\nbatch_events = 0\n")
    with pytest.raises(ValueError, match="batch_events"):
        config.load(_args(config=str(f)))
    # The commands report it and exit non-zero without touching anything.
    assert cli.main(["run", "--config", str(f)]) == 1
    assert cli.main(["totals", "--config", str(f)]) == 2
    assert reconcile.main(["--config", str(f)]) == 2


def test_migrations_are_recorded_once(db_url: str) -> None:
    with Db(db_url) as db:
        assert migrate(db) == list(range(1, SCHEMA_VERSION + 1))
        assert migrate(db) == []
        rows = db.query("SELECT version FROM schema_migrations")
        assert [int(r[0]) for r in rows] == list(range(1, SCHEMA_VERSION + 1))


def test_reconcile_without_a_core_is_an_error(tmp_path: Path) -> None:
    # Nothing listens there: the comparison cannot be made (exit 2, not 0).
    db = f"sqlite:///{tmp_path / 'l.db'}"
    rc = reconcile.main(
        ["--db", db, "--core-admin-endpoint", "tcp://127.0.0.1:9", "--timeout-ms", "300"]
    )
    assert rc == 2
