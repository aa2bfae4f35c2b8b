"""A stuck M-of-N (PSBT) withdrawal is fee-bumped by a replacement PSBT spending the
same inputs, re-signed by the offline signers, and pays exactly once, whichever of the
two transactions confirms (simulated chain, real core)."""

from __future__ import annotations

from pathlib import Path

import pytest
from embit.psbt import PSBT

from tests.wallet.conftest import CoreHandle
from tests.wallet.test_withdrawals import BTC, COSIGNERS, DEPOSIT, DEST, NET, World
from wallet import custody, signer
from wallet.keys import KeyFile
from wallet.withdrawals import RequestError, Withdrawal

AMOUNT = 3_000_000  # above hot_max_tx: multisig


@pytest.fixture
def world(core: CoreHandle, tmp_path: Path) -> World:
    return World(core, tmp_path / "w.db")


def signed_multisig(world: World, tmp_path: Path, ref: str) -> tuple[Withdrawal, list[KeyFile]]:
    """A multisig withdrawal of user 3 signed by cosigners 0 and 2 and broadcast."""
    world.w.whitelist(3, "sbtc", DEST[2], at_ns=0)
    # each signer's daily limit fits ONE payment: re-signing the bump must not count twice
    kfs = [KeyFile(k, NET, max_tx=5_000_000, max_daily=AMOUNT + 10_000) for k in COSIGNERS]
    w = world.w.request(ref, 3, "sbtc", DEST[2], AMOUNT)
    world.w.step()
    got = world.w.get(w.wid)
    assert got is not None
    if got.state == "review":
        world.w.review(w.wid, True, "alice", "large, verified")
        world.w.step()
        got = world.w.get(w.wid)
        assert got is not None
    assert got.state == "awaiting_signatures" and got.custody == "multisig"
    for i in (0, 2):
        world.w.add_signatures(w.wid, signer.sign(got.psbt, kfs[i], tmp_path / f"l{i}"))
    world.w.step()
    got = world.w.get(w.wid)
    assert got is not None and got.state == "broadcast"
    return got, kfs


def stuck(world: World, blocks: int = 2) -> None:
    for _ in range(blocks):  # empty blocks: the transaction stays in the mempool
        world.sim.mine_on(world.sim.best[-1])


def spends(raw_hex: str) -> set[str]:
    from embit.transaction import Transaction

    tx = Transaction.parse(bytes.fromhex(raw_hex))
    return {f"{i.txid.hex()}:{i.vout}" for i in tx.vin}


def test_multisig_bump_resigned_pays_once(world: World, core: CoreHandle, tmp_path: Path) -> None:
    w, kfs = signed_multisig(world, tmp_path, "ms-bump")
    (first,) = world.w.attempts(w.wid)
    assert first[0] in world.sim.mempool
    assert world.w.pending_bump(w.wid) == ""
    stuck(world)
    world.w.step()
    # the replacement waits for signatures; nothing new was sent, the original stays
    got = world.w.get(w.wid)
    assert got is not None and got.state == "broadcast"
    pending = world.w.pending_bump(w.wid)
    assert pending and len(world.w.attempts(w.wid)) == 1
    bump = PSBT.from_string(pending)
    old = PSBT.from_string(got.psbt)
    assert custody.spends_of(bump) == custody.spends_of(old)  # the SAME inputs
    assert bump.tx.vout[0].value == AMOUNT and bump.tx.vout[0].script_pubkey == (
        old.tx.vout[0].script_pubkey
    )
    assert bump.tx.vout[1].value < old.tx.vout[1].value  # the higher fee comes from change
    world.w.step()  # still unsigned: still waiting, still one attempt
    assert len(world.w.attempts(w.wid)) == 1
    # one signature is not enough; a PSBT of another transaction is refused
    n = world.w.add_signatures(w.wid, signer.sign(pending, kfs[0], tmp_path / "l0"))
    assert n == 1
    world.w.step()
    assert len(world.w.attempts(w.wid)) == 1
    with pytest.raises(ValueError):
        world.w.add_signatures(w.wid, got.psbt)
    # the second signer's ledger already holds the original: the bump fits its daily
    # limit because only one of the two can ever confirm
    n = world.w.add_signatures(w.wid, signer.sign(pending, kfs[2], tmp_path / "l2"))
    assert n == 2
    world.w.step()
    tries = world.w.attempts(w.wid)
    assert len(tries) == 2 and tries[1][2] >= tries[0][2] * 3 // 2
    assert spends(tries[0][1]) == spends(tries[1][1])
    assert tries[1][0] in world.sim.mempool and tries[0][0] not in world.sim.mempool
    assert world.w.pending_bump(w.wid) == ""
    world.run()
    done = world.w.get(w.wid)
    assert done is not None and done.state == "committed" and done.txid == tries[1][0]
    assert world.paid(DEST[2]) == AMOUNT
    assert core.balance(3, BTC) == (DEPOSIT - AMOUNT - 1000, 0)
    assert core.conservation_ok()
    states = [s for s, _, _ in world.w.steps(w.wid)]
    assert "bump_awaiting_signatures" in states and "bumped" in states


def test_signer_counts_a_bump_once_but_not_a_new_payment(tmp_path: Path, world: World) -> None:
    w, kfs = signed_multisig(world, tmp_path, "ms-ledger")
    stuck(world)
    world.w.step()
    pending = world.w.pending_bump(w.wid)
    signer.sign(pending, kfs[0], tmp_path / "l0")  # the bump: same inputs, counted once
    # a NEW payment from other coins would take the same signer over its daily limit
    assert world.cfg.multisig is not None
    world.sim.send([(world.cfg.multisig.address(), 10_000_000)])
    world.sim.mine()
    other = world.w.request("ms-other", 3, "sbtc", DEST[2], 2_000_000)
    world.w.step()
    o = world.w.get(other.wid)
    assert o is not None
    if o.state == "review":
        world.w.review(o.wid, True, "alice", "ok")
        world.w.step()
        o = world.w.get(other.wid)
        assert o is not None
    assert o.state == "awaiting_signatures"
    with pytest.raises(signer.SignerRefusedError, match="max_daily"):
        signer.sign(o.psbt, kfs[0], tmp_path / "l0")


def test_original_confirms_while_the_bump_awaits_signatures(
    world: World, core: CoreHandle, tmp_path: Path
) -> None:
    w, kfs = signed_multisig(world, tmp_path, "ms-orig")
    stuck(world)
    world.w.step()
    pending = world.w.pending_bump(w.wid)
    assert pending
    sig = signer.sign(pending, kfs[0], tmp_path / "l0")
    world.run()  # the original is mined after all
    done = world.w.get(w.wid)
    assert done is not None and done.state == "committed"
    assert done.txid == world.w.attempts(w.wid)[0][0]
    assert world.w.pending_bump(w.wid) == ""
    with pytest.raises(RequestError):  # late signatures of the replacement: refused
        world.w.add_signatures(w.wid, sig)
    assert world.paid(DEST[2]) == AMOUNT
    assert core.balance(3, BTC) == (DEPOSIT - AMOUNT - 1000, 0)
    assert core.conservation_ok()
