"""The workload (deterministic, every command kind) and the independent funding model."""

from __future__ import annotations

import random

import numpy as np

from bursa_wire.layout import REPLY_DTYPE
from engine.core import Core
from engine.wire import commands as cb
from pyx.enums import CmdKind
from sim.model import COMMITTED, RELEASED, FundingModel
from sim.workload import Workload


def _stream(seed: str, n: int) -> bytes:
    w = Workload(random.Random(seed))
    parts = [*w.setup(), w.commands(n)]
    return b"".join(p.tobytes() for p in parts)


def test_same_seed_same_stream() -> None:
    assert _stream("a", 500) == _stream("a", 500)
    assert _stream("a", 500) != _stream("b", 500)


def test_stream_has_every_command_kind_and_bad_ones() -> None:
    w = Workload(random.Random("kinds"))
    core = Core()
    for batch in w.setup():
        core.run(batch)
    kinds: set[int] = set()
    statuses: set[int] = set()
    for _ in range(60):
        batch = w.commands(50)
        _, replies = core.run(batch)
        kinds |= {int(k) for k in batch["kind"]}
        statuses |= {int(s) for s in replies["status"]}
    wanted = {int(k) for k in CmdKind if int(k) <= 35}
    assert wanted <= kinds
    assert any(k not in wanted for k in kinds)  # unknown command kinds too
    assert statuses == {1, 2, 3}  # applied, rejected, duplicate
    assert core.conservation_errors() == []


def _reply(status: int) -> np.ndarray:
    r = np.zeros(1, dtype=REPLY_DTYPE)
    r["status"] = status
    return r


def _feed(m: FundingModel, cmd: np.ndarray, status: int) -> str | None:
    return m.observe(cmd, _reply(status))


def test_model_counts_a_deposit_once() -> None:
    m = FundingModel()
    dep = cb.deposit(7, 1, 2, 500)
    assert _feed(m, dep, 1) is None
    assert _feed(m, dep, 3) is None  # the retry is a duplicate: fine
    assert m.net_minor == {2: 500}
    assert "second time" in str(_feed(m, dep, 1))


def test_model_rejects_a_duplicate_of_nothing() -> None:
    m = FundingModel()
    assert "never credited" in str(_feed(m, cb.deposit(9, 1, 2, 5), 3))
    assert "never held" in str(_feed(m, cb.withdraw_hold(4, 1, 2, 5), 3))


def test_model_withdrawal_lifecycle() -> None:
    m = FundingModel()
    assert _feed(m, cb.deposit(1, 1, 2, 100), 1) is None
    assert _feed(m, cb.withdraw_hold(10, 1, 2, 30), 1) is None
    assert _feed(m, cb.withdraw_commit(10), 1) is None
    assert m.withdrawals[10].state == COMMITTED and m.net_minor[2] == 70
    assert _feed(m, cb.withdraw_commit(10), 3) is None
    assert "second effect" in str(_feed(m, cb.withdraw_commit(10), 1))
    assert "called a duplicate" in str(_feed(m, cb.withdraw_release(10), 3))
    assert _feed(m, cb.withdraw_hold(11, 1, 2, 30), 1) is None
    assert _feed(m, cb.withdraw_release(11), 1) is None
    assert m.withdrawals[11].state == RELEASED and m.net_minor[2] == 70
    assert "second effect" in str(_feed(m, cb.withdraw_release(11), 1))
    assert _feed(m, cb.withdraw_hold(12, 1, 2, 5), 1) is None
    assert "rejected" in str(_feed(m, cb.withdraw_commit(12), 2))


def test_model_agrees_with_the_core_on_a_random_stream() -> None:
    w = Workload(random.Random("agree"))
    core, m = Core(), FundingModel()
    for batch in [*w.setup(), *(w.commands(40) for _ in range(40))]:
        stamped = cb.stamp(batch.copy(), core.last_seq + 1)
        _, replies = core.apply(stamped)
        assert m.observe(stamped, replies) is None
        assert core.conservation_errors(expected_net=m.net_minor) == []
    assert m.check_core_withdrawals(core.withdrawals()) is None
    assert m.duplicates_seen > 0
