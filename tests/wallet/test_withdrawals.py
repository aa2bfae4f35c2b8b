"""Withdrawals on the simulated chain against a real core process: every risk path,
limits across the 24-hour window, hot limits overflowing to 2-of-3 multisig signed
by offline signers, a stuck transaction bumped, a refused broadcast released, a
crash at every step, the circuit breaker. Conservation and pay-once checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from embit import ec

from engine.clock import ManualClock
from tests.wallet.conftest import ROOT, CoreHandle
from wallet import custody, signer
from wallet.keys import KeyFile, read_key_file, write_key_file
from wallet.risk import Rules
from wallet.simchain import SimChain
from wallet.store import Store
from wallet.withdrawals import RequestError, Withdrawals, WithdrawChain

BTC = 1
NET = "btc-regtest"
HOT = ec.PrivateKey(ROOT.derive("m/84h/1h/9h/0/0").key.secret)
COSIGNERS = [ec.PrivateKey(ROOT.derive(f"m/48h/1h/0h/2h/0/{i}").key.secret) for i in range(3)]
DEST = [
    custody.Source(
        NET, (ROOT.derive(f"m/84h/1h/1h/0/{i}").key.get_public_key().sec().hex(),)
    ).address()
    for i in range(5)
]
DAY = 86_400 * 10**9
DEPOSIT = 10**8


class CrashError(Exception):
    """An emulated crash at a fault point."""


def chain_cfg(**kw: Any) -> WithdrawChain:
    base: dict[str, Any] = dict(
        chain="sbtc",
        asset_id=BTC,
        network=NET,
        hot=custody.Source(NET, (HOT.get_public_key().sec().hex(),)),
        multisig=custody.Source(NET, tuple(k.get_public_key().sec().hex() for k in COSIGNERS), 2),
        fee=1000,
        confirmations=3,
        hot_max_tx=1_000_000,
        hot_daily=3_000_000,
        bump_after_blocks=2,
    )
    base.update(kw)
    return WithdrawChain(**base)


class World:
    """A core, a simulated chain with funded wallets, a clock and the wallet database."""

    def __init__(self, core: CoreHandle, db: Path | str, **kw: Any) -> None:
        self.core, self.db, self.clock = core, db, ManualClock(1_000 * DAY)
        self.sim = SimChain(network=NET)
        self.cfg = chain_cfg(**kw)
        for _ in range(4):
            self.sim.send([(self.cfg.hot.address(), 2_000_000)])
        assert self.cfg.multisig is not None
        self.sim.send([(self.cfg.multisig.address(), 50_000_000)])
        self.sim.mine()
        for u in (1, 2, 3):
            assert core.funding.deposit(1000 + u, u, BTC, DEPOSIT, 1)[0] == 1
        self.rules = Rules(tier_limits={0: 0, 1: 5_000_000, 2: 10**9})
        self.w = self.open()
        for u in (1, 2, 3):
            self.w.set_kyc(u, 2 if u == 3 else 1)
            for a in DEST:
                self.w.whitelist(u, "sbtc", a, at_ns=self.clock.now_ns() - 2 * DAY)

    def open(self, fault: Any = None) -> Withdrawals:
        """A Withdrawals over the same database (a new one = a restart)."""
        return Withdrawals(
            Store(str(self.db)),
            {"sbtc": (self.cfg, self.sim)},
            self.core.funding,
            hot_keys={"sbtc": HOT},
            rules=self.rules,
            now=self.clock.now_ns,
            fault=fault or (lambda _p: None),
        )

    def run(self, blocks: int = 4) -> None:
        """Step, mine, step until settled."""
        for _ in range(blocks):
            self.w.step()
            self.sim.mine()
        self.w.step()

    def paid(self, addr: str) -> int:
        return self.sim.balance(addr)


@pytest.fixture
def world(core: CoreHandle, tmp_path: Path) -> World:
    return World(core, tmp_path / "w.db")


def test_auto_path_pays_once_and_commits(world: World, core: CoreHandle) -> None:
    w = world.w.request("r1", 1, "sbtc", DEST[0], 50_000)
    assert w.state == "requested"
    world.run()
    got = world.w.get(w.wid)
    assert got is not None and got.state == "committed" and got.custody == "hot"
    assert got.score <= 30
    assert world.paid(DEST[0]) == 50_000
    assert core.balance(1, BTC) == (DEPOSIT - 51_000, 0)
    states = [s for s, _, _ in world.w.steps(w.wid)]
    assert states == ["requested", "held", "approved", "signed", "broadcast", "committed"]
    assert core.conservation_ok()
    # the same client reference is the same withdrawal; a different request under it is refused
    assert world.w.request("r1", 1, "sbtc", DEST[0], 50_000).wid == w.wid
    with pytest.raises(RequestError):
        world.w.request("r1", 1, "sbtc", DEST[0], 60_000)


def test_review_approve_and_reject(world: World, core: CoreHandle) -> None:
    # an address added to the book an hour ago is still in its delay: review
    fresh = custody.Source(NET, (COSIGNERS[0].get_public_key().sec().hex(),)).address()
    world.w.whitelist(1, "sbtc", fresh, at_ns=world.clock.now_ns() - 3600 * 10**9)
    a = world.w.request("ra", 1, "sbtc", fresh, 40_000)
    b = world.w.request("rb", 1, "sbtc", fresh, 30_000)
    world.w.step()
    assert {x.state for x in world.w.query()} == {"review"}
    assert core.balance(1, BTC) == (DEPOSIT - 72_000, 72_000)
    with pytest.raises(RequestError):
        world.w.review(a.wid, True, "", "no reviewer")
    world.w.review(a.wid, True, "alice", "called the user")
    rej = world.w.review(b.wid, False, "bob", "user did not confirm")
    assert (rej.reviewer, rej.review_reason, rej.reviewed_ns) == (
        "bob",
        "user did not confirm",
        world.clock.now_ns(),
    )
    world.run()
    a2, b2 = world.w.get(a.wid), world.w.get(b.wid)
    assert a2 is not None and b2 is not None
    assert (a2.state, b2.state) == ("committed", "released")
    assert world.paid(fresh) == 40_000
    assert core.balance(1, BTC) == (DEPOSIT - 41_000, 0)
    assert core.conservation_ok()


def test_hard_reject_blacklist_and_security_change(world: World, core: CoreHandle) -> None:
    world.w.blacklist("sbtc", DEST[1])
    x = world.w.request("x", 1, "sbtc", DEST[1], 40_000)
    world.w.security_change(2, "api_key_created")
    y = world.w.request("y", 2, "sbtc", DEST[0], 40_000)
    world.run()
    x2, y2 = world.w.get(x.wid), world.w.get(y.wid)
    assert (
        x2 is not None and x2.state == "released" and "blacklisted" in x2.rules and x2.score == 100
    )
    assert y2 is not None and y2.state == "review" and "security_change" in y2.rules
    assert world.paid(DEST[1]) == 0
    assert core.balance(1, BTC) == (DEPOSIT, 0)


def test_tier_limit_across_the_24h_window(core: CoreHandle, tmp_path: Path) -> None:
    # tier 1: 5,000,000 per 24h (the hot wallet's own limits out of the way)
    world = World(core, tmp_path / "w.db", hot_daily=10**9)
    a = world.w.request("d1", 1, "sbtc", DEST[0], 900_000)
    world.run()
    world.clock.advance(DAY // 2)
    for i in range(5):
        world.w.request(f"d2-{i}", 1, "sbtc", DEST[0], 900_000)
        world.run()
    rows = {r.client_ref: r for r in world.w.query()}
    assert rows["d2-3"].state == "committed", rows["d2-3"]  # 5 x 900,000 = 4.5M <= 5M
    assert rows["d2-4"].state == "released" and "over_tier_limit" in rows["d2-4"].rules
    # half a day later the first one leaves the window: 900,000 fits again
    world.clock.advance(DAY // 2 + 1)
    c = world.w.request("d3", 1, "sbtc", DEST[0], 400_000)
    world.run()
    c2 = world.w.get(c.wid)
    assert c2 is not None and c2.state == "committed", c2
    assert a.wid != c.wid
    assert core.conservation_ok()


def test_hot_limit_overflow_to_multisig(world: World, core: CoreHandle, tmp_path: Path) -> None:
    files = []
    for i, k in enumerate(COSIGNERS):
        f = tmp_path / f"cosigner{i}.key"
        write_key_file(f, KeyFile(k, NET, max_tx=5_000_000, max_daily=8_000_000), "pw")
        files.append(f)
    big = world.w.request("big", 3, "sbtc", DEST[2], 3_000_000)  # > hot_max_tx
    world.w.whitelist(3, "sbtc", DEST[2], at_ns=0)
    world.w.step()
    w = world.w.get(big.wid)
    assert w is not None and w.state in ("awaiting_signatures", "review"), w
    if w.state == "review":
        world.w.review(w.wid, True, "alice", "large, verified")
        world.w.step()
        w = world.w.get(big.wid)
        assert w is not None
    assert w.state == "awaiting_signatures" and w.custody == "multisig"
    # one signature is not enough
    kf0 = read_key_file(files[0], "pw")
    assert world.w.add_signatures(w.wid, signer.sign(w.psbt, kf0, tmp_path / "l0")) == 1
    world.run(1)
    w1 = world.w.get(w.wid)
    assert w1 is not None and w1.state == "awaiting_signatures"
    # a signer refuses what exceeds ITS limits even if the online side asks
    strict = KeyFile(COSIGNERS[2], NET, max_tx=1_000_000)
    with pytest.raises(signer.SignerRefusedError):
        signer.sign(w.psbt, strict, tmp_path / "l2")
    with pytest.raises(ValueError):
        read_key_file(files[2], "wrong")
    kf2 = read_key_file(files[2], "pw")
    assert world.w.add_signatures(w.wid, signer.sign(w.psbt, kf2, tmp_path / "l2b")) == 2
    world.run()
    w2 = world.w.get(w.wid)
    assert w2 is not None and w2.state == "committed"
    assert world.paid(DEST[2]) == 3_000_000
    # its daily limit: 3M signed, another 6M would exceed 8M
    big2 = world.w.request("big2", 3, "sbtc", DEST[2], 6_000_000)
    world.w.step()
    w3 = world.w.get(big2.wid)
    assert w3 is not None
    if w3.state == "review":
        world.w.review(w3.wid, True, "alice", "ok")
        world.w.step()
        w3 = world.w.get(big2.wid)
        assert w3 is not None
    with pytest.raises(signer.SignerRefusedError):
        signer.sign(w3.psbt, kf0, tmp_path / "l0")
    assert core.conservation_ok()


def test_hot_daily_limit_overflows(world: World) -> None:
    for i in range(4):
        world.w.request(f"h{i}", 1, "sbtc", DEST[0], 900_000)
        world.w.step()
        world.clock.advance(2 * 3600 * 10**9)  # spaced out: no velocity rule
    kinds = sorted(r.custody for r in world.w.query())
    assert kinds == ["hot", "hot", "hot", "multisig"]  # 3 x 0.9M <= 3M daily, the 4th is not


def test_stuck_transaction_bumped_pays_once(world: World, core: CoreHandle) -> None:
    w = world.w.request("s", 1, "sbtc", DEST[3], 70_000)
    world.w.step()
    first = world.w.attempts(w.wid)
    assert len(first) == 1 and first[0][0] in world.sim.mempool
    for _ in range(2):  # empty blocks: the transaction is stuck
        world.sim.mine_on(world.sim.best[-1])
    world.w.step()
    tries = world.w.attempts(w.wid)
    assert len(tries) == 2 and tries[1][2] > tries[0][2]
    assert first[0][0] not in world.sim.mempool and tries[1][0] in world.sim.mempool
    world.run()
    done = world.w.get(w.wid)
    assert done is not None and done.state == "committed" and done.txid == tries[1][0]
    assert world.paid(DEST[3]) == 70_000
    assert core.balance(1, BTC) == (DEPOSIT - 71_000, 0)


def test_refused_broadcast_is_released(world: World, core: CoreHandle) -> None:
    world.sim.reject_broadcasts = 1
    w = world.w.request("f", 1, "sbtc", DEST[0], 80_000)
    world.run()
    done = world.w.get(w.wid)
    assert done is not None and done.state == "released" and done.error
    assert world.paid(DEST[0]) == 0
    assert core.balance(1, BTC) == (DEPOSIT, 0)
    assert core.conservation_ok()
    # its inputs stay quarantined: the next withdrawal spends other coins
    (attempt,) = world.w.attempts(w.wid)
    spent = set(world.sim._parse(bytes.fromhex(attempt[1])).spends)  # type: ignore[union-attr]
    nxt = world.w.request("f2", 1, "sbtc", DEST[1], 80_000)
    world.run()
    (a2,) = world.w.attempts(nxt.wid)
    assert not spent & set(world.sim._parse(bytes.fromhex(a2[1])).spends)  # type: ignore[union-attr]
    # and if the released withdrawal's signed transaction is ever sent, the breaker halts
    world.sim.broadcast(bytes.fromhex(attempt[1]))
    world.w.step()
    assert "released withdrawal" in str(world.w.halted("sbtc"))


POINTS = ["after_hold", "after_sign", "after_broadcast", "before_commit", "after_commit"]


@pytest.mark.parametrize("point", POINTS)
def test_crash_at_each_step_resumes(world: World, core: CoreHandle, point: str) -> None:
    fired: list[str] = []

    def fault(p: str) -> None:
        if p == point and not fired:
            fired.append(p)
            raise CrashError(p)

    crashing = world.open(fault)
    crashing.request("k", 1, "sbtc", DEST[4], 60_000)
    with pytest.raises(CrashError):
        for _ in range(6):
            crashing.step()
            world.sim.mine()
    world.w = world.open()  # restart on the same database
    world.run(6)
    (row,) = world.w.query()
    assert row.state == "committed"
    assert world.paid(DEST[4]) == 60_000
    assert core.balance(1, BTC) == (DEPOSIT - 61_000, 0)
    assert core.conservation_ok()


def test_crash_after_refused_broadcast_and_release(world: World, core: CoreHandle) -> None:
    for point in ("after_refused_broadcast", "after_release"):
        # the crash before the refusal is recorded leaves it 'signed': the restart
        # sends the same transaction again, so the node must refuse twice
        world.sim.reject_broadcasts = 2 if point == "after_refused_broadcast" else 1
        fired: list[str] = []

        def fault(p: str, point: str = point, fired: list[str] = fired) -> None:
            if p == point and not fired:
                fired.append(p)
                raise CrashError(p)

        crashing = world.open(fault)
        crashing.request(point, 1, "sbtc", DEST[0], 60_000)
        with pytest.raises(CrashError):
            for _ in range(4):
                crashing.step()
        world.w = world.open()
        world.run(2)
    assert {r.state for r in world.w.query()} == {"released"}
    assert world.paid(DEST[0]) == 0
    assert core.balance(1, BTC) == (DEPOSIT, 0)


def test_circuit_breaker_halts_on_unexplained_outflow(world: World) -> None:
    world.w.step()  # learn the wallets' coins
    coin = world.sim.unspent(world.cfg.hot.address())[0][0]
    world.sim.send([(DEST[0], 1_900_000)], spends=[coin])  # a thief with the hot key
    world.w.step()
    assert world.w.halted("sbtc")
    w = world.w.request("after", 1, "sbtc", DEST[1], 50_000)
    world.run()
    w2 = world.w.get(w.wid)
    assert w2 is not None and w2.state == "approved"  # held, never signed while halted
    assert any(e["kind"] == "alert" for e in world.w.store.events("sbtc"))
    world.w.unhalt("sbtc", "ops")
    world.run()
    w3 = world.w.get(w.wid)
    assert w3 is not None and w3.state == "committed"


def test_bad_requests_change_nothing(world: World, core: CoreHandle) -> None:
    for args in [
        ("", 1, "sbtc", DEST[0], 10_000),
        ("b", 1, "nochain", DEST[0], 10_000),
        ("b", 1, "sbtc", "bc1qnotthisnetwork", 10_000),
        ("b", 1, "sbtc", DEST[0], 100),
        ("b", 1, "sbtc", DEST[0], -5),
    ]:
        with pytest.raises(ValueError):
            world.w.request(*args)
    assert world.w.query() == []
    big = world.w.request("toolarge", 1, "sbtc", DEST[0], 2 * DEPOSIT)
    world.run(1)
    r = world.w.get(big.wid)
    assert r is not None and r.state == "refused" and r.error == "INSUFFICIENT_FUNDS"
    assert core.balance(1, BTC) == (DEPOSIT, 0)


def test_breaker_halts_when_a_withdrawal_input_is_double_spent(world: World) -> None:
    w = world.w.request("ds", 1, "sbtc", DEST[0], 50_000)
    world.w.step()
    (tx,) = world.w.attempts(w.wid)
    coin = world.sim.txs[tx[0]].spends[0]
    world.sim.send([(DEST[1], 1_000_000)], spends=[coin])  # replaces ours (it signalled RBF)
    world.w.step()
    assert world.w.halted("sbtc") and "no withdrawal" in str(world.w.halted("sbtc"))


def test_sweep_hot_surplus_to_cold_and_treasury(core: CoreHandle, tmp_path: Path) -> None:
    world = World(core, tmp_path / "w.db", hot_ceiling=5_000_000, hot_floor=1_000_000)
    assert world.cfg.multisig is not None
    cold_before = world.sim.balance(world.cfg.multisig.address())
    world.run()
    (sweep,) = world.w.query("custody = 'sweep'")
    assert sweep.state == "committed" and sweep.user_id == 0
    assert world.sim.balance(world.cfg.multisig.address()) == cold_before + sweep.amount
    hot = world.sim.balance(world.cfg.hot.address())
    assert 1_000_000 <= hot <= 5_000_000
    assert not world.w.halted("sbtc")  # a sweep is an explained outflow
    assert core.balance(1, BTC) == (DEPOSIT, 0)  # and no user's money moved
    (rep,) = world.w.treasury({"sbtc": hot + cold_before + sweep.amount})
    assert rep["on_chain"] == hot + cold_before + sweep.amount and not rep["shortfall"]
    (short,) = world.w.treasury({"sbtc": rep["on_chain"] + 1})
    assert short["shortfall"] and short["surplus"] == -1


def test_hot_under_floor_raises_the_refill_metric(core: CoreHandle, tmp_path: Path) -> None:
    world = World(core, tmp_path / "w.db", hot_floor=10**9)
    world.w.step()
    assert world.w.store.counters().get("wallet.sbtc.hot_under_floor", 0) >= 1
    (rep,) = world.w.treasury()
    assert rep["hot_under_floor"]


def test_sqlite_and_postgresql_stores(core: CoreHandle, db: str) -> None:
    """The same machine on both stores: review, a crash after broadcast, a bump."""
    world = World(core, db)
    fired: list[str] = []

    def fault(p: str) -> None:
        if p == "after_broadcast" and not fired:
            fired.append(p)
            raise CrashError(p)

    crashing = world.open(fault)
    a = crashing.request("pa", 1, "sbtc", DEST[0], 60_000)
    with pytest.raises(CrashError):
        crashing.step()
    world.w = world.open()
    b = world.w.request("pb", 2, "sbtc", DEST[1], 70_000)
    world.w.blacklist("sbtc", DEST[2])
    c = world.w.request("pc", 3, "sbtc", DEST[2], 10_000)
    world.w.step()
    for _ in range(2):
        world.sim.mine_on(world.sim.best[-1])  # a and b stuck: bumped
    world.w.step()
    assert len(world.w.attempts(a.wid)) == 2
    world.run()
    states = {r.client_ref: r.state for r in world.w.query()}
    assert states == {"pa": "committed", "pb": "committed", "pc": "released"}
    assert world.paid(DEST[0]) == 60_000 and world.paid(DEST[1]) == 70_000
    assert b.wid != c.wid and core.conservation_ok()


def test_deposit_sweep_signed_by_the_offline_deposit_key(core: CoreHandle, tmp_path: Path) -> None:
    from embit import bip32

    from tests.wallet.conftest import XPUB_BIP84
    from wallet.addresses import derive_address

    world = World(core, tmp_path / "w.db", deposit_sweep_threshold=100_000, deposit_xpub=XPUB_BIP84)
    store = world.w.store
    store.add_addresses("sbtc", [(i, derive_address(XPUB_BIP84, NET, i)) for i in range(4)])
    addrs = [store.assign("sbtc", u) for u in (1, 2, 3)]
    assert all(addrs)
    world.sim.send([(str(addrs[0]), 150_000)])
    world.sim.send([(str(addrs[1]), 90_000)])  # below the threshold: stays
    world.sim.send([(str(addrs[2]), 60_000), (str(addrs[2]), 70_000)])
    world.sim.mine()
    hot_before = world.sim.balance(world.cfg.hot.address())
    world.w.step()
    (sw,) = world.w.query("custody = 'deposit-sweep'")
    assert sw.state == "awaiting_signatures"
    account = ROOT.derive("m/84h/1h/0h")
    kf = KeyFile(account.key, NET, xprv=account.to_base58(), sweep_to=(world.cfg.hot.address(),))
    # the deposit signer refuses a sweep the online side redirected
    evil = custody.build_sweep_psbt(
        XPUB_BIP84, NET, [(world.sim.unspent(str(addrs[0]))[0][0], 150_000, 0)], DEST[0], 1
    )
    assert evil is not None
    with pytest.raises(signer.SignerRefusedError, match="hot wallet"):
        signer.sign(evil[0].to_string(), kf, tmp_path / "l")
    other = KeyFile(
        account.key,
        NET,
        xprv=bip32.HDKey.from_seed(b"x" * 32).to_base58(),
        sweep_to=(world.cfg.hot.address(),),
    )
    with pytest.raises(signer.SignerRefusedError, match="deposit addresses"):
        signer.sign(sw.psbt, other, tmp_path / "l")
    world.w.add_signatures(sw.wid, signer.sign(sw.psbt, kf, tmp_path / "l"))
    world.run()
    done = world.w.get(sw.wid)
    assert done is not None and done.state == "committed"
    assert world.sim.balance(str(addrs[0])) == 0 and world.sim.balance(str(addrs[2])) == 0
    assert world.sim.balance(str(addrs[1])) == 90_000
    assert world.sim.balance(world.cfg.hot.address()) == hot_before + done.amount
    assert done.amount == 280_000 - world.w.attempts(sw.wid)[0][2]
    assert not world.w.halted("sbtc") and core.balance(1, BTC) == (DEPOSIT, 0)


def test_hot_daily_limit_window_slides(world: World) -> None:
    for i in range(3):
        world.w.request(f"s{i}", 1, "sbtc", DEST[0], 900_000)
        world.run(1)
        world.clock.advance(2 * 3600 * 10**9)
    world.clock.advance(DAY - 5 * 3600 * 10**9)  # the first left the 24 h window
    world.w.request("s3", 1, "sbtc", DEST[0], 900_000)
    world.w.step()
    assert [r.custody for r in world.w.query()] == ["hot"] * 4
