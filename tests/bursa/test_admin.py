"""`bursa admin` against a real core process: every output line and exit status users see."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.coreproc import REPO, CoreProcess, running_core


@pytest.fixture
def core(tmp_path: Path) -> Iterator[CoreProcess]:
    with running_core(tmp_path) as c:
        yield c


def admin(core: CoreProcess, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """Run `bursa admin` as a user would; (exit status, JSON lines, stderr)."""
    r = subprocess.run(
        [sys.executable, "-m", "bursa", "admin", "--endpoint", core.admin,
         "--fund-endpoint", core.fund, *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return r.returncode, [json.loads(line) for line in r.stdout.splitlines()], r.stderr


def test_admin_commands_and_queries(core: CoreProcess) -> None:
    assert admin(core, "add-asset", "1", "--decimals", "8")[:2] == (
        0,
        [{"kind": "ADD_ASSET", "order_id": 0, "reason": "OK", "seq": 1, "status": "applied",
          "user_id": 0, "value": 0}],
    )  # fmt: skip
    assert admin(core, "add-asset", "2")[0] == 0
    assert admin(core, "add-fee-tier", "0", "--maker-ppm", "1000", "--taker-ppm", "2000")[0] == 0
    rc, out, _ = admin(core, "add-symbol", "1", "1", "2", "--tick-step", "5", "--lot-step", "3")
    assert rc == 0 and [o["kind"] for o in out] == ["ADD_SYMBOL", "SET_MIN_NOTIONAL"]
    assert admin(core, "add-user", "7")[0] == 0
    # deposit goes to the fund socket; the reply's value is the balance after
    rc, out, _ = admin(core, "deposit", "7", "2", "100000", "--ref", "11")
    assert rc == 0 and out[0]["kind"] == "DEPOSIT" and out[0]["value"] == 100000
    assert out[0]["order_id"] == 11 and out[0]["user_id"] == 7
    rc, out, _ = admin(core, "deposit", "7", "2", "100000", "--ref", "11")
    assert rc == 0 and out[0]["status"] == "duplicate" and out[0]["value"] == 100000
    # rejected: exit 1 and the reason's name
    rc, out, _ = admin(core, "add-asset", "1")
    assert rc == 1 and out[0]["status"] == "rejected" and out[0]["reason"] == "ASSET_EXISTS"
    rc, out, _ = admin(core, "balance", "7", "2")
    assert rc == 0 and out[0]["ok"] is True and out[0]["balance"] == [100000, 0]
    rc, out, _ = admin(core, "conservation")
    assert rc == 0 and out[0]["ok"] is True
    rc, out, _ = admin(core, "state-hash")
    assert rc == 0 and out[0]["last_seq"] == 9  # every command took a seq


def test_admin_usage_errors_exit_2(core: CoreProcess) -> None:
    rc, out, err = admin(core, "no-such-subcommand")
    assert rc == 2 and out == [] and "invalid choice" in err
    rc, out, err = admin(core, "add-user")
    assert rc == 2 and out == []
