"""Snapshots of a core holding 64-bit external references (the wallet's deposit refs and
withdrawal ids are hashes), round-tripped through the snapshot codec."""

from __future__ import annotations

from engine.core import Core
from engine.wire import commands

BIG = (1 << 63) - 12_345  # a wallet-sized reference, far above int32


def test_snapshot_keeps_64_bit_references() -> None:
    core = Core()
    for c in (commands.add_asset(1, 8), commands.add_fee_tier(0, 0, 0), commands.add_user(2, 0)):
        core.run(c)
    core.run(commands.deposit(BIG, 2, 1, 500_000))
    core.run(commands.withdraw_hold(BIG - 1, 2, 1, 1_000))
    data = core.to_snapshot()
    again = Core.from_snapshot(data)
    assert again.state_hash() == core.state_hash()
    assert again.balance(2, 1) == core.balance(2, 1)
