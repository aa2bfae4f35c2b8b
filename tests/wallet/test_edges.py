"""Edge cases of the scanner and its parts: a reorg deeper than the kept history,
competing branches flipping back and forth, the core down and back, configuration
errors, the simulated node over HTTP going away."""

from __future__ import annotations

import pytest

from tests.e2e.coreproc import CoreProcess
from tests.wallet.conftest import CoreHandle
from tests.wallet.simfix import BTC, make_wallet, utxo_cfg
from wallet.chain import NodeUnavailableError
from wallet.config import AssetConfig, ChainConfig, parse
from wallet.corelink import CoreFunding
from wallet.scanner import ChainRuntime, Wallet
from wallet.simchain import SimChain
from wallet.simrpc import SimRpcAdapter, SimServer
from wallet.store import Store


def test_reorg_deeper_than_kept_history_halts(core, tmp_path):
    sim = SimChain(seed=31)
    w = make_wallet(tmp_path / "w.db", core, [(utxo_cfg(keep_blocks=5), sim)])
    for _ in range(12):
        sim.mine()
        w.step_all()
    assert w.store.lowest_block("sbtc") == 8  # pruned to keep_blocks
    sim.reorg(8)
    w.step_all()
    assert w.store.halted("sbtc") and "deeper than the 5 kept blocks" in str(w.store.halted("sbtc"))
    assert w.store.counters()["sbtc.incidents"] == 1
    addr = w.deposit_address("sbtc", 1)
    sim.send([(addr, 3_000)])
    sim.mine(3)
    w.resume("sbtc", "ops")
    w.step_all()
    assert w.store.halted("sbtc")  # the same unresolvable fork again
    w.resume("sbtc", "ops", rescan_from=3)
    w.step_all()
    assert not w.store.halted("sbtc")
    assert w._start(w.chains["sbtc"]) == 3  # scanned again from the operator height
    assert [h["status"] for h in w.history(1)] == ["credited"]
    assert core.balance(1, BTC) == (3_000, 0)


def test_competing_branches_flip_flop_credit_once(core, tmp_path):
    sim = SimChain(seed=32)
    w = make_wallet(tmp_path / "w.db", core, [(utxo_cfg(credit_confirmations=3), sim)])
    addr = w.deposit_address("sbtc", 1)
    sim.mine(2)
    fork = sim.best[-1]
    sim.send([(addr, 9_000)])
    (a1,) = sim.mine()  # branch A holds the deposit
    w.step_all()
    tx = sim.blocks[a1].txids[0]
    b1 = sim.mine_on(fork, txids=[])
    b2 = sim.mine_on(b1)  # B overtakes: the deposit goes back to the mempool
    w.step_all()
    assert [h["status"] for h in w.history(1)] == ["orphaned"]
    a2 = sim.mine_on(a1)
    sim.mine_on(a2)  # A overtakes again: the deposit is back, 3 deep
    w.step_all()
    assert sim.tx_status(tx).confirmations == 3
    assert [h["status"] for h in w.history(1)] == ["credited"]
    sim.mine_on(sim.mine_on(sim.mine_on(b2)))  # B wins at last (a deeper reorg)
    w.step_all()
    assert [h["status"] for h in w.history(1)] == ["reversed"]
    assert core.balance(1, BTC) == (0, 9_000)
    assert core.conservation_ok()


def test_core_down_and_back(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    proc = CoreProcess(tmp_path / "core", logs, "fsync")
    try:
        proc.start()
        h = CoreHandle(proc)
        h.admin.add_asset(BTC, 8)
        h.admin.add_fee_tier(0, 0, 0)
        h.admin.add_user(1, 0)
        sim = SimChain(seed=33)
        cfg = utxo_cfg()
        db = tmp_path / "w.db"
        w = Wallet(Store(str(db)), [ChainRuntime(cfg, sim)], h.funding)
        addr = w.deposit_address("sbtc", 1)
        sim.send([(addr, 4_000)])
        sim.mine(3)
        h.close()
        proc.kill9()
        w.core = CoreFunding(h.fund_ep, timeout_ms=300)
        w.step_all()  # the credit is intended, the core does not answer
        assert w.store.counters()["sbtc.core_timeout"] == 1
        (d,) = w.store.deposits()
        assert d.credit_state == "intent"
        w.store.close()
        proc.start()  # recovers from its journal, on new ports
        h = CoreHandle(proc)
        w = Wallet(Store(str(db)), [ChainRuntime(cfg, sim)], h.funding)
        w.step_all()
        assert [x["status"] for x in w.history(1)] == ["credited"]
        assert h.balance(1, BTC) == (4_000, 0)
        assert h.conservation_ok()
        h.close()
    finally:
        proc.cleanup()


def test_config_validation():
    asset = AssetConfig(1)
    base = dict(name="c", kind="ltc", network="ltc", xpub="x", assets=(asset,))
    for bad in (
        {"kind": "doge"},
        {"pending_confirmations": 7, "credit_confirmations": 6},
        {"credit_confirmations": 0, "pending_confirmations": 0},
        {"keep_blocks": 6},
        {"account": 2},
        {"assets": ()},
        {"assets": (asset, AssetConfig(2))},
    ):
        with pytest.raises(ValueError):
            ChainConfig(**{**base, **bad})  # type: ignore[arg-type]
    for bad_asset in (
        {"asset_id": 0},
        {"asset_id": 1, "scale": 0},
        {"asset_id": 1, "min_deposit": 0},
    ):
        with pytest.raises(ValueError):
            AssetConfig(**bad_asset)  # type: ignore[arg-type]
    cfg = parse(
        {
            "db": "x.db",
            "chains": {
                "ltc": {
                    "kind": "ltc",
                    "network": "ltc",
                    "xpub": "x",
                    "assets": [{"asset_id": 3, "min_deposit": 5}],
                }
            },
        }
    )
    assert cfg.chains[0].asset_for("").asset_id == 3  # type: ignore[union-attr]
    assert cfg.chains[0].asset_for("0xabc") is None
    with pytest.raises(TypeError):
        parse({"no_such_key": 1})


def test_simrpc_adapter_and_node_down():
    sim = SimChain(seed=34)
    srv = SimServer(sim).start()
    try:
        ad = SimRpcAdapter(srv.url, "sbtc")
        t = sim.send([("a", 5)])
        assert [p.txid for p in ad.mempool_payments(["a"])] == [t]
        (h,) = sim.mine()
        assert ad.tip() == sim.tip() and ad.block_at(1) == sim.block_at(1)
        assert ad.block_by_hash(h) == sim.block_by_hash(h) and ad.block_at(9) is None
        assert ad.payments_in_block(h, ["a"]) == sim.payments_in_block(h, ["a"])
        assert ad.balance("a") == 5 and ad.fee_estimate() == 10
        assert ad.tx_status(t) == sim.tx_status(t)
        assert ad.broadcast(b"\x01") == sim.broadcast(b"\x01")
        sim.stop()
        with pytest.raises(NodeUnavailableError):
            ad.tip()
        sim.start()
        with pytest.raises(ValueError):
            ad._call("stop")  # only adapter methods are served
    finally:
        srv.close()
    with pytest.raises(NodeUnavailableError):
        SimRpcAdapter(srv.url, "sbtc", timeout_s=2).tip()


def test_demo(tmp_path, capsys):
    from wallet.demo import run_demo

    assert run_demo(tmp_path / "demo.db") == {"available": 150_000, "held": 0}
    out = capsys.readouterr().out
    assert '"stage": "reorg above the threshold"' in out and '"conservation_errors": []' in out


def test_core_rejects_a_deposit_for_an_unknown_user(core, tmp_path):
    sim = SimChain(seed=35)
    w = make_wallet(tmp_path / "w.db", core, [(utxo_cfg(), sim)])
    addr = w.deposit_address("sbtc", 500)  # not a user of the core
    sim.send([(addr, 5_000)])
    sim.mine(3)
    w.step_all()
    (h,) = w.history(500)
    assert h["status"] == "rejected" and h["reason"].endswith("UNKNOWN_USER")
    assert w.store.events("sbtc")[-1]["kind"] == "rejected"
    assert core.conservation_ok()


def test_reversed_deposit_stays_reversed_through_later_reorgs(core, tmp_path):
    sim = SimChain(seed=36)
    w = make_wallet(tmp_path / "w.db", core, [(utxo_cfg(), sim)])
    addr = w.deposit_address("sbtc", 1)
    sim.mine(2)
    sim.send([(addr, 6_000)])
    for _ in range(3):
        sim.mine()
        w.step_all()
    sim.reorg(3)  # the tx comes back in the mempool, mined again below
    w.step_all()
    w.resume("sbtc")
    for _ in range(2):
        sim.mine()
        w.step_all()
    sim.reorg(7, keep=False)  # reaches below the old block (3) of the reversed deposit
    w.step_all()
    assert [h["status"] for h in w.history(1)] == ["reversed"]
    (d,) = w.store.deposits()
    assert d.credit_state == "held" and core.balance(1, BTC) == (0, 6_000)
    assert core.conservation_ok()
