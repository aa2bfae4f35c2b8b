"""The served simulated chain kept on disk (``--state``) and its faucet method."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from wallet.simchain import SimChain
from wallet.simrpc import SimRpcAdapter, SimServer

ADDR = "bcrt1q05fktjrqrr5ze7ntzukj0g0wrj5he0xm0l8srm"


def rpc(url: str, method: str, *params: object) -> dict[str, object]:
    body = json.dumps({"method": method, "params": list(params)}).encode()
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        out: dict[str, object] = json.loads(r.read())
        return out


def test_faucet_pays_and_a_restarted_node_serves_the_same_chain(tmp_path: Path) -> None:
    state = str(tmp_path / "chain.pickle")
    srv = SimServer(SimServer.load(state, seed=3), state=state).start()
    try:
        assert "result" in rpc(srv.url, "faucet", [[ADDR, 12_345]])
        assert rpc(srv.url, "faucet", [[ADDR, 0]])["error"] == "bad_request"
        srv.mine()
        srv.mine()
        tip = SimRpcAdapter(srv.url, "sbtc").tip()
    finally:
        srv.close()
    again = SimServer(SimServer.load(state, seed=99), state=state).start()
    try:
        a = SimRpcAdapter(again.url, "sbtc")
        assert a.tip() == tip  # the same blocks, not a new chain (no reorg for the wallet)
        assert a.balance(ADDR) == 12_345
    finally:
        again.close()
    assert isinstance(SimServer.load(str(tmp_path / "none"), seed=1), SimChain)
