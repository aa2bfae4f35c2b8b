"""bench.por runs small and prints one JSON object with its documented keys."""

from __future__ import annotations

import json

from bench import por


def test_por_bench_small(capsys) -> None:
    assert por.main(["--json", "--users", "37", "--repeats", "1", "--verify", "5"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["users"] == 37 and r["depth"] == 6 and r["verify_count"] == 5
    assert r["build_users_per_s"] > 0 and r["proof_bytes"] > 0
