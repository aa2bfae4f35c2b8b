"""A real `bursa core` process takes deposits, trades and withdrawals; `bursa por build`
then rebuilds its state from the data directory at a stated seq, and every user's proof
verifies, each leaf holds exactly the user's available + held, and the totals plus the
fee accounts equal the core's deposits - withdrawals (its conservation totals)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bindings.client import CoreClient
from engine.wire import commands
from engine.wire.frames import STATUS_APPLIED, STATUS_REJECTED
from por import source
from por import verify as ver
from por.tree import PorError
from pyx.enums import Side
from tests.e2e.coreproc import REPO, CoreProcess

BASE, QUOTE, SYMBOL = 1, 2, 1
USERS = list(range(101, 121))


def _endpoint(core: CoreProcess, name: str) -> str:
    """The socket for ``name`` commands (trade/fund/admin once the core splits them)."""
    return str(core.ready[name])


def _trades(c: CoreClient, rng: np.random.Generator, n: int, first_oid: int) -> None:
    recs = []
    for i in range(n):
        side = Side.BUY if rng.integers(2) else Side.SELL
        user = USERS[int(rng.integers(len(USERS)))]
        price = int(1000 + rng.integers(-4, 5))
        recs.append(commands.new_limit(first_oid + i, user, SYMBOL, side, price,
                                       int(rng.integers(1, 9))))  # fmt: skip
    cmds = np.concatenate(recs)
    for i in range(0, n, 10):
        c.send(cmds[i : i + 10])
    reps = c.drain()
    assert len(reps) == n and set(reps["status"].tolist()) <= {STATUS_APPLIED, STATUS_REJECTED}
    assert (reps["status"] == STATUS_APPLIED).sum() > n // 2


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Drive a real core, record its state hashes at two seqs, stop it."""
    tmp = tmp_path_factory.mktemp("por_core")
    (tmp / "logs").mkdir()
    core = CoreProcess(tmp / "data", tmp / "logs", "fsync")
    rng = np.random.default_rng(21)
    try:
        core.start()
        admin = CoreClient(_endpoint(core, "admin"))
        fund = CoreClient(_endpoint(core, "fund"))
        trade = CoreClient(_endpoint(core, "trade"))
        setup = [commands.add_asset(BASE, 8), commands.add_asset(QUOTE, 2),
                 commands.add_fee_tier(0, 1_000, 2_000),
                 commands.add_symbol(SYMBOL, BASE, QUOTE, max_price_ticks=10**6,
                                     max_qty_lots=10**4),
                 *[commands.add_user(u) for u in USERS]]  # fmt: skip
        assert (admin.request(np.concatenate(setup))["status"] == STATUS_APPLIED).all()
        deps = [commands.deposit(1000 + u, u, QUOTE, int(rng.integers(10**6, 10**9)))
                for u in USERS[:-1]]  # fmt: skip
        deps += [
            commands.deposit(2000 + u, u, BASE, int(rng.integers(10**3, 10**6))) for u in USERS[:-1]
        ]  # fmt: skip  (the last user never deposits)
        assert (fund.request(np.concatenate(deps))["status"] == STATUS_APPLIED).all()
        _trades(trade, rng, 200, first_oid=1)
        mid = admin.control("state_hash")
        _trades(trade, rng, 200, first_oid=10_000)
        held = [commands.withdraw_hold(1, USERS[0], QUOTE, 5_000),
                commands.withdraw_hold(2, USERS[1], QUOTE, 7_000)]  # fmt: skip
        assert (fund.request(np.concatenate(held))["status"] == STATUS_APPLIED).all()
        assert (fund.request(commands.withdraw_commit(1))["status"] == STATUS_APPLIED).all()
        final = admin.control("state_hash")
        live = {(u, a): tuple(admin.control("balance", user_id=u, asset_id=a)["balance"])
                for u in USERS for a in (BASE, QUOTE)}  # fmt: skip
        assert admin.control("conservation")["ok"]
        for c in (admin, fund, trade):
            c.close()
        assert core.stop() == 0
        yield {"data": tmp / "data", "tmp": tmp, "mid": mid, "final": final, "live": live}
    finally:
        core.cleanup()


def _por(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bursa", "por", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


def _proofs(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "proofs.jsonl").read_text().splitlines()]


def test_build_from_core_dir_every_proof_verifies(run):
    out = run["tmp"] / "out"
    res = _por("build", "--data-dir", str(run["data"]), "--out", str(out))
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["seq"] == run["final"]["last_seq"]
    root = ver.load_json(str(out / "root.json"))
    proofs = _proofs(out)
    assert sorted(p["user_id"] for p in proofs) == USERS and root["leaves"] == len(USERS)
    for p in proofs:
        assert ver.verify(root, p)["verified"]
        for a in (BASE, QUOTE):  # the leaf is the live core's available + held
            assert p["balances"][str(a)] == sum(run["live"][(p["user_id"], a)])
    assert proofs[-1]["salt"] != proofs[0]["salt"]
    for a in (BASE, QUOTE):  # totals + fees == deposits - withdrawals (conservation)
        k = str(a)
        assert root["totals"][k] + summary["fee_accounts"][k] == summary["net_deposits"][k]
        assert root["totals"][k] == sum(sum(run["live"][(u, a)]) for u in USERS)
    assert root["totals"][str(QUOTE)] > 0 and summary["fee_accounts"][str(QUOTE)] > 0
    # `bursa por proof USER` hands out one line; the bare verifier accepts it.
    mine = out / "mine.json"
    assert _por("proof", str(USERS[3]), "--dir", str(out), "--out", str(mine)).returncode == 0
    v = subprocess.run([sys.executable, "-I", "-S", str(REPO / "por" / "verify.py"),
                        str(out / "root.json"), str(mine)], capture_output=True, text=True,
                       timeout=60, check=False)  # fmt: skip
    assert v.returncode == 0, v.stderr
    assert _por("proof", "999", "--dir", str(out)).returncode == 1


def test_state_at_a_stated_seq_is_the_live_cores(run):
    mid, final = run["mid"], run["final"]
    data = str(run["data"])
    assert source.core_at(data, mid["last_seq"]).state_hash().hex() == mid["state_hash"]
    assert source.core_at(data, final["last_seq"]).state_hash().hex() == final["state_hash"]
    assert source.core_at(data).state_hash().hex() == final["state_hash"]  # snapshot path
    for seq in range(mid["last_seq"] - 12, mid["last_seq"] + 13):  # cuts inside batches
        assert source.core_at(data, seq).last_seq == seq
    with pytest.raises(PorError, match="ends at seq"):
        source.core_at(data, final["last_seq"] + 1)
    out = run["tmp"] / "out_mid"
    res = _por("build", "--data-dir", data, "--seq", str(mid["last_seq"]), "--out", str(out))
    assert res.returncode == 0, res.stderr
    root = ver.load_json(str(out / "root.json"))
    assert root["seq"] == mid["last_seq"]
    for p in _proofs(out):
        ver.verify(root, p)
    late = _por("build", "--data-dir", data, "--seq", str(final["last_seq"] + 5), "--out",
                str(out))  # fmt: skip
    assert late.returncode == 1 and "ends at seq" in late.stderr


def test_build_refuses_a_state_that_breaks_conservation(run, tmp_path, monkeypatch, capsys):
    from engine.core import Core
    from por import cli

    monkeypatch.setattr(Core, "conservation_errors", lambda self: ["asset 2: broken"])
    args = ["build", "--data-dir", str(run["data"]), "--out", str(tmp_path / "o")]
    assert cli.main(args) == 1
    assert "conservation fails" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_balances_file_gives_the_same_liabilities(run):
    core = source.core_at(str(run["data"]))
    rows = [{"user": u, "asset": a, "account": acc, "available": av, "held": hd}
            for u, a, acc, av, hd in core._dump(with_books=False)["balances"]]  # fmt: skip
    f = run["tmp"] / "balances.json"
    f.write_text(json.dumps({"seq": core.last_seq, "balances": rows}))
    out = run["tmp"] / "out_file"
    assert _por("build", "--balances", str(f), "--out", str(out)).returncode == 0
    root = ver.load_json(str(out / "root.json"))
    assert root["totals"] == {str(a): t for a, t in zip(
        source.from_core(core).assets, source.from_core(core).totals(), strict=True)}  # fmt: skip
    rows.append(dict(rows[0]))
    f.write_text(json.dumps({"seq": core.last_seq, "balances": rows}))
    dup = _por("build", "--balances", str(f), "--out", str(out))
    assert dup.returncode == 1 and "duplicate balance" in dup.stderr
