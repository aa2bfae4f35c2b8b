"""The trust boundary and exactly-once against the real `bursa core` process:
the issue's crashing request, resends across kill -9 and restart, roles per socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from bindings.client import CoreClient
from engine.wire import commands
from engine.wire.frames import STATUS_APPLIED, STATUS_DUPLICATE
from pyx.enums import Reason, Side, Tif
from tests.e2e.coreproc import REPO, CoreProcess, run_replay, running_core


@pytest.fixture
def core(tmp_path) -> Iterator[CoreProcess]:
    with running_core(tmp_path) as proc:
        yield proc


def bursa_admin(core: CoreProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bursa", "admin", "--endpoint", core.admin, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=60,
        check=False,
    )


def test_the_balance_request_that_ended_the_core_is_answered(core):
    out = bursa_admin(core, "balance", "1", "9223372036854775808")
    assert out.returncode == 2  # answered with an error, not a timeout
    assert "INVALID_REQUEST: asset_id must be an integer in 0..65535" in out.stderr
    assert core.proc is not None and core.proc.poll() is None
    out = bursa_admin(core, "status")
    assert out.returncode == 0 and json.loads(out.stdout)["ok"] is True


def test_resends_have_one_effect_across_kill9_and_restart(core):
    c = core.client()
    try:
        setup = np.concatenate(
            [
                commands.add_asset(1),
                commands.add_asset(2),
                commands.add_fee_tier(0, 0, 0),
                commands.add_symbol(1, 1, 2),
                commands.add_user(7),
                commands.add_user(8),
                commands.deposit(1, 7, 2, 10**9),
                commands.deposit(2, 8, 1, 10**9),
                commands.new_limit(1, 8, 1, Side.SELL, 100, 50),
            ]
        )
        assert (c.request(setup)["status"] == STATUS_APPLIED).all()
        buy = commands.new_limit(1, 7, 1, Side.BUY, 100, 5, tif=Tif.IOC)  # same id, other user
        transfer = commands.transfer(7, 2, 1_000, 0, 1, ref=5)
        first = c.request(np.concatenate([buy, transfer]))
        assert (first["status"] == STATUS_APPLIED).all()
        before = c.control("balance", user_id=7, asset_id=1)["balance"]
    finally:
        c.close()
    core.kill9()
    core.start()
    c = core.client()
    try:
        again = c.request(np.concatenate([buy, transfer, commands.deposit(1, 7, 2, 10**9)]))
        assert (again["status"] == STATUS_DUPLICATE).all(), again
        assert list(again["value"][:2]) == list(first["value"])
        assert c.control("balance", user_id=7, asset_id=1)["balance"] == before
        # the same id with another quantity is no retry
        (rep,) = c.request(commands.new_limit(1, 7, 1, Side.BUY, 100, 6, tif=Tif.IOC))
        assert rep["reason"] == Reason.EXISTS_WITH_DIFFERENT_FIELDS
        h = c.control("state_hash")["state_hash"]
        assert c.control("conservation")["ok"]
    finally:
        c.close()
    assert core.stop() == 0
    assert run_replay(core.data_dir) == h


def test_each_socket_refuses_the_other_roles(core):
    trade, fund = CoreClient(core.trade), CoreClient(core.fund)
    try:
        (rep,) = trade.request(commands.deposit(9, 7, 2, 10**12))
        assert rep["reason"] == Reason.WRONG_SOCKET and rep["seq"] == 0
        (rep,) = fund.request(commands.add_user(99))
        assert rep["reason"] == Reason.WRONG_SOCKET
        assert trade.control("ping")["last_seq"] == 0
    finally:
        trade.close()
        fund.close()
