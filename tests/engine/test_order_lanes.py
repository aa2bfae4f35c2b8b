"""Order-id lanes in the core (pyx/core.pxd ORDER_ID_LANE_SHIFT, docs/commands.md
"Idempotency"): bit 39 of an order id picks its lane; the gateway's ids are in lane 0,
the Binance API's in lane 1.  Each lane of a user has its own highest accepted id and
forgotten floor, so 32 forgotten API orders never make the gateway's (lower) ids
ORDER_ID_TOO_OLD; the ring of the last 32 NEWs is shared; snapshots carry both lanes
and the old one-pair format still loads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bursa_wire.layout import REPLY_DTYPE
from engine.core import SNAPSHOT_VERSION, Core, SnapshotError
from engine.wire import commands as cmd
from engine.wire.commands import ReplyStatus
from pyx.core import ORDER_ID_LANE_SHIFT, ORDER_ID_LANES
from pyx.enums import Reason, Side
from sim.model import FundingModel
from tests.engine.corekit import SYM, Ex, reject_changes_nothing

L1 = 1 << 39  # first id of lane 1 (the API's API_ID_BASE)
TOP0 = L1 - 1  # last id of lane 0
DEDUP_ORDERS = 32  # pyx/core.pxd: accepted NEWs remembered per user, over both lanes
# A version-3 snapshot (one pair of marks per user) written by the core from before lanes
# (commit 0313e6d, engine.core.Core.to_snapshot) from this scenario: user 1 entered lane-0
# ids 1000..1009, then lane-1 ids L1+5000..L1+5039 (its floor reached lane 1), user 2
# lane-0 ids 2000..2039; each a BUY of 1 lot at 100 + k % 7, all canceled after.
V3_SNAPSHOT = Path(__file__).parent / "fixtures" / "core_snapshot_v3.bin"


def _new(oid: int, uid: int = 1, px: int = 100, qty: int = 1) -> np.ndarray:
    return cmd.new_limit(oid, uid, SYM, Side.BUY, px, qty)


def _ex() -> Ex:
    ex = Ex()
    ex.user(1, quote=10**12)
    ex.user(2, quote=10**12)
    return ex


def _status(core: Core, rec: np.ndarray) -> tuple[int, int]:
    _, rep = core.run(rec)
    return int(rep["status"][0]), int(rep["reason"][0])


def test_lane_constants() -> None:
    assert ORDER_ID_LANE_SHIFT == 39 and ORDER_ID_LANES == 2
    assert ((L1 + 7) >> ORDER_ID_LANE_SHIFT, TOP0 >> ORDER_ID_LANE_SHIFT) == (1, 0)
    assert ((1 << 40) - 1) >> ORDER_ID_LANE_SHIFT == ORDER_ID_LANES - 1


def test_forty_api_orders_then_a_gateway_order_is_accepted() -> None:
    """The bug of issue #22: the API's 40 orders pushed the one floor above 2**39."""
    ex = _ex()
    ex.ok(*[_new(L1 + 1_000 + i) for i in range(40)])
    ex.ok(_new(5))  # a gateway (lane 0) id far below every API id
    ex.ok(_new(6))
    assert ex.core.order_marks(0)[1][:2] == (6, 0)
    assert ex.core.order_marks(1)[1][:2] == (L1 + 1_039, L1 + 1_009)  # 10 forgotten
    ex.check()


def test_forty_gateway_orders_then_an_api_order_is_accepted() -> None:
    ex = _ex()
    ex.ok(*[_new(1_000 + i) for i in range(40)])
    ex.ok(_new(L1 + 1))
    assert ex.core.order_marks(1)[1][:2] == (L1 + 1, 0)
    assert ex.core.order_marks(0)[1][:2] == (1_039, 1_008)  # 9 forgotten


def test_interleaved_lanes_keep_independent_floors() -> None:
    ex = _ex()
    # alternate the doors: lane 0 ids 100.., lane 1 ids L1 + 10.., 50 of each
    recs = [_new(100 + i // 2) if i % 2 == 0 else _new(L1 + 10 + i // 2) for i in range(100)]
    for r in recs:  # one by one, as two doors would send them
        ex.ok(r)
    m0, m1 = ex.core.order_marks(0)[1], ex.core.order_marks(1)[1]
    # the ring holds the last 32 NEWs of both lanes: 16 of each; 34 of each forgotten
    assert m0[:2] == (149, 133) and m1[:2] == (L1 + 59, L1 + 43)
    assert m0[2] == m1[2] and len(m0[2]) == DEDUP_ORDERS
    assert [oid >> ORDER_ID_LANE_SHIFT for oid, _, _ in m0[2]] == [0, 1] * 16
    # each lane refuses only its own forgotten ids
    reject_changes_nothing(ex, _new(133), Reason.ORDER_ID_TOO_OLD)
    reject_changes_nothing(ex, _new(100), Reason.ORDER_ID_TOO_OLD)
    reject_changes_nothing(ex, _new(L1 + 43), Reason.ORDER_ID_TOO_OLD)
    reject_changes_nothing(ex, _new(L1 + 10), Reason.ORDER_ID_TOO_OLD)
    # an unused id above its own lane's floor is new, whatever the other lane's marks
    ex.ok(_new(L1 + 44 + 1_000))  # above lane 1's hwm
    ex.ok(_new(1_000))  # above lane 0's hwm, far below lane 1's floor
    ex.check()


def test_too_old_per_lane_below_the_hwm() -> None:
    """An unused id between a lane's floor and its highest id is new in that lane only."""
    ex = _ex()
    ex.ok(*[_new(10 * i) for i in range(1, 41)])  # lane 0: 10..400, floor 80
    ex.ok(*[_new(L1 + 10 * i) for i in range(1, 41)])  # lane 1 pushes all of lane 0 out
    assert ex.core.order_marks(0)[1][:2] == (400, 400)
    assert ex.core.order_marks(1)[1][:2] == (L1 + 400, L1 + 80)
    reject_changes_nothing(ex, _new(395), Reason.ORDER_ID_TOO_OLD)  # lane 0 all forgotten
    reject_changes_nothing(ex, _new(L1 + 75), Reason.ORDER_ID_TOO_OLD)
    ex.ok(_new(L1 + 85))  # lane 1: above its floor, below its hwm, never used
    ex.ok(_new(401))


@pytest.mark.parametrize("lane", [0, 1])
def test_exact_retry_in_either_lane_is_a_duplicate(lane: int) -> None:
    ex = _ex()
    base = lane * L1
    first = _new(base + 77, px=120, qty=3)
    _, rep = ex.run(first)
    assert rep["status"][0] == ReplyStatus.APPLIED
    # the other lane fills the ring up to one slot short of pushing ``first`` out
    other = (1 - lane) * L1
    ex.ok(*[_new(other + 1 + i) for i in range(DEDUP_ORDERS - 1)])
    before = ex.core.content_hash()
    ev, again = ex.run(first)
    assert (again["status"][0], again["value"][0]) == (ReplyStatus.DUPLICATE, rep["value"][0])
    assert len(ev) == 0 and ex.core.content_hash() == before
    reject_changes_nothing(ex, _new(base + 77, px=121, qty=3), Reason.EXISTS_WITH_DIFFERENT_FIELDS)
    # one more NEW of the other lane pushes it out: now refused by its own lane's floor
    ex.ok(_new(other + 1_000))
    assert ex.core.order_marks(lane)[1][1] == base + 77
    assert ex.core.order_marks(1 - lane)[1][1] == 0
    reject_changes_nothing(ex, first, Reason.ORDER_ID_TOO_OLD)
    ex.check()


def test_same_low_bits_in_both_lanes_are_two_orders() -> None:
    ex = _ex()
    ex.ok(_new(9), _new(L1 + 9))
    assert {o["order_id"] for o in ex.core.open_orders(1)} == {9, L1 + 9}
    ex.ok(cmd.cancel(L1 + 9, 1))
    assert [o["order_id"] for o in ex.core.open_orders(1)] == [9]


def test_users_do_not_share_lanes() -> None:
    ex = _ex()
    ex.ok(*[_new(L1 + 100 + i, uid=2) for i in range(40)])
    ex.ok(*[_new(100 + i, uid=2) for i in range(40)])
    ex.ok(_new(1, uid=1), _new(L1 + 1, uid=1))
    assert ex.core.order_marks(0)[2][:2] == (139, 107)
    assert ex.core.order_marks(1)[2][:2] == (L1 + 139, L1 + 139)
    assert ex.core.order_marks(0)[1][:2] == (1, 0)
    assert ex.core.order_marks(1)[1][:2] == (L1 + 1, 0)


def _two_lane_stream() -> list[np.ndarray]:
    """NEWs of two users in both lanes, retries, stale ids and cancels, in batches."""
    batches = []
    for b in range(6):
        recs = []
        for i in range(12):
            k = b * 12 + i
            uid = 1 + k % 2
            oid = (100 + k) if k % 3 else (L1 + 500 + k)
            recs.append(_new(oid, uid=uid, px=90 + k % 11))
        if b:
            recs.append(_new(100 + b * 12 - 1, uid=2, px=90 + (b * 12 - 1) % 11))  # retry
            recs.append(_new(L1 + 500, uid=1, px=90))  # stale or retry
            recs.append(cmd.cancel(100 + b * 12 - 2, 1))
        batches.append(np.concatenate(recs))
    return batches


def test_snapshot_round_trip_with_both_lanes() -> None:
    ex = _ex()
    ex.ok(*[_new(L1 + 1_000 + i) for i in range(40)], *[_new(1 + i) for i in range(40)])
    ex.ok(*[_new(L1 + 100 + i, uid=2) for i in range(35)])
    snap = ex.core.to_snapshot()
    assert int.from_bytes(snap[10:12], "little") == SNAPSHOT_VERSION == 4
    back = Core.from_snapshot(snap)
    assert back.to_snapshot() == snap
    for lane in range(ORDER_ID_LANES):
        assert back.order_marks(lane) == ex.core.order_marks(lane)
    assert back.order_marks(1)[2][:2] == (L1 + 134, L1 + 102)
    assert 2 not in back.order_marks(0)
    # the restored core judges ids as the original does, lane by lane
    for rec in (_new(L1 + 1_000), _new(L1 + 1_020), _new(3), _new(39), _new(41), _new(L1 + 50)):
        _, a = ex.run(rec)
        _, b = back.run(rec)
        assert (a["status"][0], a["reason"][0], a["value"][0]) == (
            b["status"][0],
            b["reason"][0],
            b["value"][0],
        )
    assert back.state_hash() == ex.core.state_hash()


def test_snapshot_lane_rows_are_checked() -> None:
    ex = _ex()
    ex.ok(_new(L1 + 1))
    d = ex.core._dump()
    assert d["order_lanes"] == [(1, 1, L1 + 1, 0)]
    for bad in ([(1, 0, 5, 0)], [(1, 2, 5, 0)], [(99, 1, L1 + 5, 0)]):
        core = Core()
        with pytest.raises(ValueError, match="order-id marks"):
            core._load({**d, "order_lanes": bad})
    snap = bytearray(ex.core.to_snapshot())
    snap[10:12] = (5).to_bytes(2, "little")
    with pytest.raises(SnapshotError, match="magic/version"):
        Core.from_snapshot(bytes(snap))


def test_version_3_snapshot_still_loads_with_its_marks_split_per_lane() -> None:
    data = V3_SNAPSHOT.read_bytes()
    assert int.from_bytes(data[10:12], "little") == 3
    core = Core.from_snapshot(data)
    # user 1's one floor was L1 + 5007 (an API id): lane 1 keeps it; which lane-0 ids were
    # forgotten is unknown, so lane 0 stays refused up to its top (as before the upgrade)
    assert core.order_marks(1)[1][:2] == (L1 + 5_039, L1 + 5_007)
    assert core.order_marks(0)[1][:2] == (TOP0, TOP0)
    # user 2 never used lane 1: its marks are lane 0's, lane 1 is empty
    assert core.order_marks(0)[2][:2] == (2_039, 2_007)
    assert 2 not in core.order_marks(1)
    for rec, want in (
        (_new(2_005, uid=2), (ReplyStatus.REJECTED, Reason.ORDER_ID_TOO_OLD)),
        (_new(L1 + 5_000, uid=1), (ReplyStatus.REJECTED, Reason.ORDER_ID_TOO_OLD)),
        (_new(1_005, uid=1), (ReplyStatus.REJECTED, Reason.ORDER_ID_TOO_OLD)),
        (_new(2_039, uid=2, px=100 + 39 % 7), (ReplyStatus.DUPLICATE, 0)),
        (_new(2_040, uid=2), (ReplyStatus.APPLIED, 0)),
        (_new(L1 + 1, uid=2), (ReplyStatus.APPLIED, 0)),
        (_new(L1 + 5_040, uid=1), (ReplyStatus.APPLIED, 0)),
    ):
        assert _status(core, rec) == want, rec
    # saved again it is a version-4 snapshot that round-trips
    snap = core.to_snapshot()
    assert int.from_bytes(snap[10:12], "little") == 4
    assert Core.from_snapshot(snap).to_snapshot() == snap
    assert core.conservation_errors() == []


def test_replay_is_deterministic_across_a_snapshot() -> None:
    """The same stream gives the same state, straight or restored from a mid snapshot."""
    batches = _two_lane_stream()
    a, b = _ex(), _ex()
    replies = []
    for batch in batches:
        _, ra = a.run(batch)
        _, rb = b.run(batch)
        assert (ra == rb).all()
        replies.append(ra)
    assert a.core.state_hash() == b.core.state_hash()
    statuses = np.concatenate([r["status"] for r in replies])
    assert {int(s) for s in statuses} == {
        ReplyStatus.APPLIED,
        ReplyStatus.DUPLICATE,
        ReplyStatus.REJECTED,
    }
    c = _ex()
    for batch in batches[:3]:
        c.run(batch)
    restored = Core.from_snapshot(c.core.to_snapshot())
    for batch, want in zip(batches[3:], replies[3:], strict=True):
        _, got = restored.run(batch)
        assert (got == want).all()
    assert restored.state_hash() == a.core.state_hash()
    assert a.core.order_marks(1)[1][0] >= L1 and a.core.order_marks(0)[2][0] < L1


def test_the_simulator_model_judges_too_old_per_lane() -> None:
    """sim/model.py: ORDER_ID_TOO_OLD must name an id at or below its lane's highest
    applied id; the pre-lanes core's answer (a gateway id refused for the API's floor)
    is a violation."""

    def reply(status: int, reason: int = 0) -> np.ndarray:
        r = np.zeros(1, REPLY_DTYPE)
        r["status"], r["reason"] = status, reason
        return r

    cmds = np.concatenate([_new(L1 + 1_000 + i) for i in range(40)])
    m = FundingModel()
    assert m.observe(cmds, np.concatenate([reply(ReplyStatus.APPLIED)] * 40)) is None
    old = reply(ReplyStatus.REJECTED, Reason.ORDER_ID_TOO_OLD)
    assert m.observe(_new(L1 + 1_005), old) is None  # at or below lane 1's highest
    problem = m.observe(_new(5), old)  # lane 0 never had an order
    assert problem is not None and "lane 0" in problem
    assert m.observe(_new(5), reply(ReplyStatus.APPLIED)) is None
    assert m.observe(_new(4), old) is None
