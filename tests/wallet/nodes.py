"""Start and stop real chain nodes for tests: litecoind regtest and anvil (free ports,
temporary data directories). Tests that need a node fail loudly if it is missing:
.ci/run installs both (apt-get litecoind, npm install in .node/)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.childproc import free_port
from tests.e2e.coreproc import REPO
from wallet.chain import NodeUnavailableError
from wallet.jsonrpc import JsonRpc

START_TIMEOUT_S = 60.0
ANVIL = REPO / ".node" / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
SOLCJS = REPO / ".node" / "node_modules" / "solc" / "solc.js"


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


def compile_contracts(src: Path, out: Path) -> dict[str, str]:
    """Compile a Solidity file with solcjs (npm ``solc``); contract name -> bytecode hex."""
    if not SOLCJS.exists():
        raise FileNotFoundError("solc not installed: npm install in .node/ (see .ci/run)")
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["node", str(SOLCJS), "--bin", "--abi", "-o", str(out), str(src)],
        check=True,
        capture_output=True,
        cwd=src.parent,
        timeout=120,
    )
    return {p.stem.rsplit("_", 1)[-1]: p.read_text().strip() for p in out.glob("*.bin")}


def word(x: int | str) -> str:
    """One 32-byte ABI word (an int or an address) as hex without 0x."""
    if isinstance(x, str):
        return x.lower().removeprefix("0x").rjust(64, "0")
    return hex(x)[2:].rjust(64, "0")


class Anvil:
    """A local anvil node (automine) with its unlocked default accounts."""

    def __init__(self, workdir: Path) -> None:
        if not ANVIL.exists():
            raise FileNotFoundError("anvil not installed: npm install in .node/ (see .ci/run)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "anvil.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [str(ANVIL), "--host", "127.0.0.1", "--port", str(self.port), "--silent"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.rpc = JsonRpc(self.url)
        wait_rpc(self.rpc, "eth_blockNumber", self.proc, self.log)
        self.accounts = [str(a) for a in self.rpc.call("eth_accounts")]

    def send(self, to: str | None, value: int = 0, data: str = "", frm: int = 0) -> dict[str, Any]:
        """eth_sendTransaction (mined at once); returns the receipt."""
        tx: dict[str, str] = {
            "from": self.accounts[frm],
            "value": hex(value),
            "gas": hex(3_000_000),
        }
        if to is not None:
            tx["to"] = to
        if data:
            tx["data"] = "0x" + data.removeprefix("0x")
        txid = self.rpc.call("eth_sendTransaction", tx)
        deadline = time.monotonic() + START_TIMEOUT_S
        while (rcpt := self.rpc.call("eth_getTransactionReceipt", txid)) is None:
            assert time.monotonic() < deadline, f"{txid} not mined"
            time.sleep(0.01)
        return dict(rcpt)

    def deploy(self, bytecode: str, *args: int | str) -> str:
        rcpt = self.send(None, data=bytecode + "".join(word(a) for a in args))
        assert int(rcpt["status"], 16) == 1
        return str(rcpt["contractAddress"])

    def mine(self, n: int = 1) -> None:
        for _ in range(n):
            self.rpc.call("evm_mine")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


PG_BIN = Path("/usr/lib/postgresql")


def pg_bin(name: str) -> str:
    """A PostgreSQL server binary (Debian keeps them under /usr/lib/postgresql/N/bin)."""
    found = shutil.which(name)
    if found:
        return found
    for cand in sorted(PG_BIN.glob(f"*/bin/{name}"), reverse=True):
        return str(cand)
    raise FileNotFoundError(f"{name} not installed: apt-get install postgresql (see .ci/run)")


class Postgres:
    """A private PostgreSQL cluster on a free loopback port (trust auth, temporary data).

    The server refuses to run as root, so as root it runs as the ``postgres`` user.
    """

    def __init__(self) -> None:
        import os
        import pwd
        import tempfile

        self.dir = Path(tempfile.mkdtemp(prefix="bursa-wallet-pg-"))
        self.port = free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        data = self.dir / "data"
        subprocess.run(
            [*self.prefix, pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.ctl = [*self.prefix, pg_bin("pg_ctl"), "-D", str(data)]
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*self.ctl, "-o", opts, "-l", str(self.dir / "log"), "-w", "start"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        subprocess.run([*self.ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
