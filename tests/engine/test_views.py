"""Named views of admin and funding records: same bytes, names that say the unit.

The builders write through the views, the compiled core reads raw offsets; these
tests check the views are well formed and that both sides agree on every byte.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from bursa_wire.layout import CMD_DTYPE, EV_DTYPE
from engine.core import Core
from engine.wire import commands as cmd
from engine.wire.events import decode
from engine.wire.views import CMD_VIEWS, EV_VIEWS, View
from pyx.enums import CmdKind, EvKind, Side

U16 = st.integers(1, 2**16 - 1)
U32 = st.integers(1, 2**32 - 1)
I62 = st.integers(1, 2**62 - 1)


def _spans(view: View) -> list[tuple[int, int, str]]:
    fields = view.dtype.fields
    assert fields is not None
    return sorted((off, off + dt.itemsize, name) for name, (dt, off, *_) in fields.items())


def test_views_are_well_formed() -> None:
    for views, base in ((CMD_VIEWS, CMD_DTYPE), (EV_VIEWS, EV_DTYPE)):
        for kind, view in views.items():
            assert view.dtype.itemsize == base.itemsize, kind
            spans = _spans(view)
            for (_, end, a), (start, _, b) in itertools.pairwise(spans):
                assert end <= start, (kind, a, b)  # no two names share a byte
            for f in view.fields:  # a part stays inside its record field
                dt, off = base.fields[f.wire][:2]  # type: ignore[index]
                lo, hi = off, off + dt.itemsize
                vdt, voff = view.dtype.fields[f.name][:2]  # type: ignore[index]
                assert lo <= voff and voff + vdt.itemsize <= hi, (kind, f.name)


def test_money_fields_say_their_unit() -> None:
    """Every amount of money in a view is named ``*_minor``; none hides in a lots field."""
    for views in (CMD_VIEWS, EV_VIEWS):
        for kind, view in views.items():
            for f in view.fields:
                if f.wire in ("qty_lots", "taker_fee", "maker_fee") and "minor" in f.unit:
                    is_rate = f.name in ("price_multiplier", "base_per_lot")
                    assert f.name.endswith("_minor") or is_rate, (kind, f.name)
    assert "amount_minor" in CMD_VIEWS[CmdKind.DEPOSIT].dtype.names  # type: ignore[operator]
    assert "hold_minor" in EV_VIEWS[EvKind.ACCEPTED].dtype.names  # type: ignore[operator]


@given(
    ref=I62, user=st.integers(1, 2**24 - 1), asset=U16, amount=I62, account=st.sampled_from([0, 1])
)
def test_funding_builders_write_the_fields_the_core_reads(
    ref, user, asset, amount, account
) -> None:
    for rec in (
        cmd.deposit(ref, user, asset, amount, account=account),
        cmd.withdraw_hold(ref, user, asset, amount, account=account),
    ):
        # the raw record the compiled core reads (docs/commands.md byte tables)
        assert rec[["order_id", "user_id", "symbol_id", "qty_lots", "a0"]].tolist() == [
            (ref, user, asset, amount, account)
        ]
    t = cmd.transfer(user, asset, amount, account, 1 - account, ref=ref)
    assert t[["order_id", "qty_lots", "a0", "a1"]].tolist() == [(ref, amount, account, 1 - account)]
    v = CMD_VIEWS[CmdKind.TRANSFER].of(t)
    assert (int(v["ref"][0]), int(v["amount_minor"][0]), int(v["to_account"][0])) == (
        ref,
        amount,
        1 - account,
    )


@given(base=U16, quote=U16, tick=U32, lot=U32)
def test_add_symbol_packs_steps_and_assets_as_before(base, quote, tick, lot) -> None:
    rec = cmd.add_symbol(1, base, quote, tick_step=tick, lot_step=lot)
    assert int(rec["a3"][0]) == base | quote << 16
    assert int(rec["order_id"][0]) == tick | lot << 32
    v = CMD_VIEWS[CmdKind.ADD_SYMBOL].of(rec)
    assert (int(v["tick_step"][0]), int(v["lot_step"][0])) == (tick, lot)
    assert (int(v["base_asset_id"][0]), int(v["quote_asset_id"][0])) == (base, quote)


def test_core_events_read_through_views_match_the_commands() -> None:
    """The compiled core (raw offsets) and the views agree on every named field."""
    core = Core()
    b = cmd.CmdBatch()
    b.add(cmd.add_asset(1, 8)).add(cmd.add_asset(2, 2)).add(cmd.add_fee_tier(0, 0, 0))
    b.add(cmd.add_symbol(1, 1, 2, tick_step=5, lot_step=3, price_multiplier=7, base_per_lot=11))
    b.add(cmd.add_user(9)).add(cmd.deposit(41, 9, 2, 10_000, account=1))
    b.add(cmd.transfer(9, 2, 4_000, 1, 0, ref=42))
    b.add(cmd.withdraw_hold(43, 9, 2, 1_000, account=1))
    b.add(cmd.new_limit(1, 9, 1, Side.BUY, 10, 3))
    ev, rep = core.apply(b.to_array(first_seq=1))
    assert (rep["status"] == cmd.ReplyStatus.APPLIED).all()
    by_kind = {int(e["kind"]): decode(e) for e in ev}
    sym = by_kind[EvKind.SYMBOL_ADDED]
    assert (sym["tick_step"], sym["lot_step"], sym["price_multiplier"]) == (5, 3, 7)
    assert (sym["base_asset_id"], sym["quote_asset_id"], sym["base_per_lot"]) == (1, 2, 11)
    dep = by_kind[EvKind.DEPOSITED]
    assert (dep["ref"], dep["amount_minor"], dep["account"], dep["available_minor"]) == (
        41,
        10_000,
        1,
        10_000,
    )
    tr = by_kind[EvKind.TRANSFERRED]
    assert (tr["amount_minor"], tr["from_account"], tr["to_account"]) == (4_000, 1, 0)
    assert tr["available_minor"] == 6_000
    wd = by_kind[EvKind.WITHDRAW_HELD]
    assert (wd["withdrawal_id"], wd["amount_minor"], wd["available_minor"]) == (43, 1_000, 5_000)
    acc = by_kind[EvKind.ACCEPTED]
    # 3 lots at 10 ticks x multiplier 7, no fee: the hold is 210 quote minor units
    assert (acc["hold_minor"], acc["hold_delta_minor"]) == (210, 210)
    assert acc["hold_minor"] == int(rep["value"][-1])
    # the same bytes through the array view, no copy
    accepted = ev[ev["kind"] == EvKind.ACCEPTED]
    assert np.shares_memory(EV_VIEWS[EvKind.ACCEPTED].of(accepted), accepted)
    assert EV_VIEWS[EvKind.ACCEPTED].of(accepted)["hold_minor"].tolist() == [210]


def test_tuple_index_of_a_named_field() -> None:
    view = EV_VIEWS[EvKind.DEPOSITED]
    ev = np.zeros(1, dtype=EV_DTYPE)
    view.of(ev)["amount_minor"] = 123
    assert ev.tolist()[0][view.index("amount_minor")] == 123
    assert view.wire("amount_minor") == "qty_lots"
