"""The demo's money on the chain, a supervised child of `bursa run`: deposits and a withdrawal.

Everything goes through the real paths, as users and operators would:

- the exchange's treasury funds its hot wallet on the simulated chain (a ``faucet``
  payment to the hot address, :mod:`wallet.simrpc`);
- each demo taker asks for its deposit address (``bursa wallet address``) and pays
  into it from outside (a ``faucet`` payment); the wallet process sees the payment,
  counts confirmations and credits the user in the core (DEPOSIT on its fund socket);
- one taker (user 2) withdraws to its own address: ``bursa wallet kyc``,
  ``whitelist``, then ``withdraw``; the wallet process holds the amount in the core,
  signs with the hot key, broadcasts, waits for confirmations and commits;
- then, every ``--deposit-every-s``, one more deposit of a random demo user.

What was done is kept in ``--state-file`` (JSON), so a restarted process neither pays
nor withdraws twice (a withdrawal's ``client_ref`` is idempotent in the wallet too).
Prints one JSON ready line; exits 1 on an error (the supervisor restarts it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from bursa.exchange.market import TAKERS, USERS
from engine import logs
from wallet import custody
from wallet.demo import DEMO_ROOT

log = logging.getLogger("bursa.payments")

NETWORK = "btc-regtest"
CHAIN = "sbtc"
# Demo-only keys derived from the demo seed (wallet.demo): never use them for real coins.
HOT_KEY = DEMO_ROOT.derive("m/84h/1h/5h/0/0").key
HOT_FUNDING = 5 * 10**8  # sats the treasury puts in the hot wallet
FIRST_DEPOSIT = 50_000_000  # 0.5 BTC per taker
WITHDRAWER = TAKERS[0]
WITHDRAWAL_REF = "demo-withdrawal-1"
WITHDRAWAL_AMOUNT = 100_000  # 0.001 BTC
WITHDRAWAL_FEE = 1_000  # charged to the user ([wallet.withdraw.sbtc] fee)
CLI_TIMEOUT_S = 60


def hot_pubkey() -> str:
    """The demo hot wallet's public key (hex, compressed)."""
    return str(HOT_KEY.get_public_key().sec().hex())


def hot_address() -> str:
    """The demo hot wallet's P2WPKH address."""
    return str(custody.Source(NETWORK, (hot_pubkey(),)).address())


def user_wallet_address(user_id: int) -> str:
    """A demo user's own address outside the exchange (where it withdraws to)."""
    pub = DEMO_ROOT.derive(f"m/84h/1h/6h/0/{user_id}").key.get_public_key().sec().hex()
    return str(custody.Source(NETWORK, (pub,)).address())


def withdraw_table(key_file: Path) -> dict[str, Any]:
    """The ``[wallet.withdraw.sbtc]`` and ``[wallet.risk]`` tables of the demo wallet."""
    return {
        "withdraw": {
            CHAIN: {
                "asset_id": 1,
                "network": NETWORK,
                "hot_pubkey": hot_pubkey(),
                "hot_key_file": str(key_file),
                "fee": WITHDRAWAL_FEE,
                "confirmations": 2,
                "hot_max_tx": 10**8,
                "hot_daily": 10**9,
            }
        },
        "risk": {"whitelist_delay_s": 0, "tier_limits": {"1": 10**9}},
    }


class Payments:
    """The demo's chain payments (see the module doc)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.state: dict[str, Any] = {"hot_funded": False, "deposited": [], "withdrawal": False}
        if args.state_file.exists():
            self.state.update(json.loads(args.state_file.read_text()))
        self.rng = random.Random(args.seed + len(self.state.get("deposited", [])))

    def save(self) -> None:
        """Replace the state file atomically."""
        tmp = self.args.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.args.state_file)

    def faucet(self, address: str, amount: int) -> str:
        """A payment from outside the exchange to ``address`` (the simulated chain)."""
        body = json.dumps({"method": "faucet", "params": [[[address, amount]]]}).encode()
        req = urllib.request.Request(
            self.args.chain_url, body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = json.loads(r.read())
        if "result" not in answer:
            raise RuntimeError(f"faucet refused: {answer}")
        return str(answer["result"])

    def wallet(self, *argv: str) -> list[dict[str, Any]]:
        """One ``bursa wallet`` operator command; its JSON output lines."""
        a = self.args
        cmd = [sys.executable, "-m", "bursa", "wallet", *argv, "--config", str(a.config)]
        cmd += ["--db", str(a.db), "--core-fund-endpoint", a.core_fund_endpoint]
        cmd += ["--core-admin-endpoint", a.core_admin_endpoint]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
        if p.returncode != 0:
            raise RuntimeError(f"bursa wallet {argv[0]}: {p.stderr.strip()[-500:]}")
        return [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]

    def deposit(self, user_id: int, amount: int) -> None:
        """Pay ``amount`` sats into the user's deposit address from outside."""
        (row,) = self.wallet("address", "--chain", CHAIN, "--user", str(user_id))
        txid = self.faucet(str(row["address"]), amount)
        log.info("user %d deposits %d sats to %s (tx %s)", user_id, amount, row["address"], txid)

    def setup(self) -> None:
        """Fund the hot wallet, the first deposits, the withdrawal (each once)."""
        st = self.state
        if not st["hot_funded"]:
            self.faucet(hot_address(), HOT_FUNDING)
            st["hot_funded"] = True
            self.save()
            log.info("treasury funded the hot wallet %s with %d sats", hot_address(), HOT_FUNDING)
        for u in TAKERS:
            if u not in st["deposited"]:
                self.deposit(u, FIRST_DEPOSIT)
                st["deposited"].append(u)
                self.save()
        if not st["withdrawal"]:
            u, dest = WITHDRAWER, user_wallet_address(WITHDRAWER)
            self.wallet("kyc", "--user", str(u), "--tier", "1")
            self.wallet("whitelist", "--user", str(u), "--chain", CHAIN, "--address", dest)
            (row,) = self.wallet(
                "withdraw", "--client-ref", WITHDRAWAL_REF, "--user", str(u), "--chain", CHAIN,
                "--address", dest, "--amount", str(WITHDRAWAL_AMOUNT),
            )  # fmt: skip
            st["withdrawal"] = True
            self.save()
            log.info("user %d asked to withdraw %d sats to %s: %s", u, WITHDRAWAL_AMOUNT, dest,
                     row.get("state"))  # fmt: skip

    def trickle(self) -> None:
        """One more deposit of a random demo user (0.01 .. 0.1 BTC)."""
        u = self.rng.choice(sorted(USERS))
        self.deposit(u, self.rng.randrange(1_000_000, 10_000_001, 1_000))


def main(argv: list[str] | None = None) -> int:
    """Run the demo payments until SIGTERM/SIGINT; exit 1 on any error."""
    p = argparse.ArgumentParser(prog="python -m bursa.exchange.payments", description=__doc__)
    p.add_argument("--chain-url", required=True, help="the simulated chain (wallet.simrpc)")
    p.add_argument("--config", type=Path, required=True, help="the wallet's config file")
    p.add_argument("--db", type=Path, required=True, help="the wallet's database")
    p.add_argument("--core-fund-endpoint", required=True)
    p.add_argument("--core-admin-endpoint", required=True)
    p.add_argument("--state-file", type=Path, required=True, help="what was done (JSON)")
    p.add_argument("--deposit-every-s", type=float, default=20.0, help="0: no further deposits")
    p.add_argument("--seed", type=int, default=1)
    logs.add_arguments(p)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    logs.setup("payments", args.log_format, args.log_level)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pay = Payments(args)
    print(json.dumps({"ready": True, "hot_address": hot_address()}), flush=True)
    try:
        pay.setup()
        every = args.deposit_every_s
        while not stop.wait(every if every > 0 else 3600):
            if every > 0:
                pay.trickle()
    except Exception as e:  # the supervisor restarts us; say why in the log
        log.error("stopping: %s: %s", type(e).__name__, e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
