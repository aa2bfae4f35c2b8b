"""`bursa por build` options and config, output files, and roots the CLI refuses."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from por import cli
from por import verify as ver
from por.tree import BalanceRow, build, liabilities


def _balances(tmp: Path) -> Path:
    f = tmp / "b.json"
    f.write_text(json.dumps({"seq": 9, "balances": [
        {"user": 1, "asset": 1, "available": 5, "held": 2},
        {"user": 2, "asset": 1, "account": 1, "available": 1, "held": 0}]}))  # fmt: skip
    return f


def test_build_from_config_and_flags_win(tmp_path, capsys):
    f = _balances(tmp_path)
    conf = tmp_path / "por.toml"
    conf.write_text(f'[por]\nbalances = "{f}"\nout = "{tmp_path / "from_conf"}"\n')
    assert cli.main(["build", "--config", str(conf)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seq"] == 9 and summary["totals"] == {"1": 8}
    out = tmp_path / "from_conf"
    assert stat.S_IMODE((out / "proofs.jsonl").stat().st_mode) == 0o600  # salts are private
    assert cli.main(["build", "--config", str(conf), "--out", str(tmp_path / "flag")]) == 0
    assert (tmp_path / "flag" / "root.json").exists()
    root = ver.load_json(str(out / "root.json"))
    for line in (out / "proofs.jsonl").read_text().splitlines():
        ver.verify(root, json.loads(line))


@pytest.mark.parametrize(
    "conf, args, msg",
    [
        ("[por]\nbogus = 1\n", [], "unknown [por] keys"),
        ("[por]\n", ["--out", "x"], "give --data-dir or --balances"),
        ('[por]\ndata_dir = "d"\n', ["--balances", "b", "--out", "x"], "not both"),
        ('[por]\nbalances = "b"\n', [], "give --out"),
        ('[por]\nbalances = "b"\nseq = -3\nout = "x"\n', [], "seq must be"),
        ("[por\n", [], "por.toml"),
    ],
)
def test_bad_build_options(tmp_path, capsys, conf, args, msg):
    (tmp_path / "por.toml").write_text(conf)
    assert cli.main(["build", "--config", str(tmp_path / "por.toml"), *args]) == 1
    assert msg in capsys.readouterr().err


def test_reserves_and_sign_refuse_a_root_whose_hash_does_not_commit(tmp_path, capsys):
    root = build(liabilities(3, [BalanceRow(1, 1, 0, 10, 0)])).root_json()
    root["totals"]["1"] = 1  # understate liabilities without recomputing the root
    (tmp_path / "root.json").write_text(json.dumps(root))
    (tmp_path / "res.json").write_text('{"height": 1, "addresses": []}')
    (tmp_path / "k").write_text("cUeKHd5orzT3mz8P9pxyREHfsWtVfgsfDjiZZBcjUBAaGk1BTj7N")
    r = str(tmp_path / "root.json")
    assert cli.main(["reserves", "--root", r, "--reserves", str(tmp_path / "res.json")]) == 1
    assert "does not commit" in capsys.readouterr().err
    args = ["sign", "--wif-file", str(tmp_path / "k"), "--root", r, "--height", "1"]
    assert cli.main(args) == 1
    assert "does not commit" in capsys.readouterr().err
