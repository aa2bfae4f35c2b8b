"""Start and stop real chain nodes for tests: litecoind regtest and anvil (free ports,
temporary data directories). Tests that need a node fail loudly if it is missing:
.ci/run installs both (apt-get litecoind, npm install in .node/)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.e2e.coreproc import REPO
from wallet.chain import NodeUnavailableError
from wallet.ltc import JsonRpc

START_TIMEOUT_S = 60.0
ANVIL = REPO / ".node" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
SOLCJS = REPO / ".node" / "node_modules" / "solc" / "solc.js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def litecoind_binary() -> str:
    found = shutil.which("litecoind")
    if found:
        return found
    for cand in Path("/usr/lib/litecoin").glob("**/litecoind"):
        return str(cand)
    raise FileNotFoundError("litecoind not installed: apt-get install litecoind (see .ci/run)")


def wait_rpc(rpc: JsonRpc, method: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            rpc.call(method)
            return
        except NodeUnavailableError:
            if proc.poll() is not None:
                raise RuntimeError(f"node exited: {log.read_text()[-2000:]}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Litecoind:
    """A regtest litecoind with a funded wallet ("miner")."""

    def __init__(self, datadir: Path) -> None:
        datadir.mkdir(parents=True, exist_ok=True)
        self.datadir = datadir
        self.rpc_port = free_port()
        self.url = f"http://u:p@127.0.0.1:{self.rpc_port}"
        self.log = datadir / "stdout.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    litecoind_binary(),
                    "-regtest",
                    f"-datadir={datadir}",
                    "-server=1",
                    "-listen=0",
                    f"-port={free_port()}",
                    f"-rpcport={self.rpc_port}",
                    "-rpcbind=127.0.0.1",
                    "-rpcallowip=127.0.0.1",
                    "-rpcuser=u",
                    "-rpcpassword=p",
                    "-txindex=1",
                    "-fallbackfee=0.0002",
                    "-mempoolreplacement=1",
                    "-printtoconsole=0",
                    "-dnsseed=0",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.rpc = JsonRpc(self.url)
        wait_rpc(self.rpc, "getblockcount", self.proc, self.log)
        self.rpc.call("createwallet", "miner")
        self.miner = str(self.rpc.call("getnewaddress", "", "bech32"))
        self.mine(120)  # 20 mature coinbases: independent coins per test

    def mine(self, n: int) -> list[str]:
        # A fresh coinbase address each time: after invalidateblock, mining the same
        # transactions in the same second would rebuild the invalidated block itself.
        to = str(self.rpc.call("getnewaddress", "", "bech32"))
        return [str(h) for h in self.rpc.call("generatetoaddress", n, to)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.rpc.call("stop")
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait(timeout=30)
