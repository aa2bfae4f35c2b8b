"""The withdrawal subcommands of `bursa wallet` (see :mod:`wallet.main`'s doc).

Every command prints JSON (one object per line) and exits 0, or prints the reason
to stderr and exits 2 having changed nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from embit import ec

from wallet import review_cli, signer
from wallet.addresses import eth_address
from wallet.keys import KeyFile, passphrase_from, read_key_file, write_key_file
from wallet.withdrawals import Withdrawals

WITHDRAW_ACTIONS = (
    "withdraw", "withdrawals", "review", "psbt", "submit-psbt", "whitelist", "blacklist",
    "kyc", "security-change", "unhalt", "treasury", "quarantine", "release-coin",
)  # fmt: skip


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [n for n in names if getattr(args, n) in (None, "")]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise ValueError(f"{args.action} needs {flags}")


def _row(w: object) -> str:
    d = dataclasses.asdict(w)  # type: ignore[call-overload]
    d.pop("psbt", None)
    return json.dumps(d)


def withdraw_cli(args: argparse.Namespace, wd: Withdrawals) -> int:
    """Run one withdrawal subcommand against the wallet database."""
    a = args.action
    if a == "withdraw":
        _need(args, "client_ref", "user", "chain", "address", "amount")
        print(_row(wd.request(args.client_ref, args.user, args.chain, args.address, args.amount)))
    elif a == "withdrawals":
        rows = wd.query("user_id = ?", (args.user,)) if args.user is not None else wd.query()
        for w in rows:
            print(_row(w))
    elif a == "review":  # an alias of `bursa admin withdrawals` (one implementation)
        for d in review_cli.review(wd, args.sub or "list", args.wid, args.operator, args.reason):
            print(json.dumps(d))
    elif a == "psbt":
        _need(args, "wid")
        payload = wd.signing_payload(args.wid)  # a stuck one's replacement first
        if not payload:
            raise ValueError(f"withdrawal {args.wid} has no PSBT")
        print(payload)
    elif a == "submit-psbt":
        _need(args, "wid", "infile")
        n = wd.add_signatures(args.wid, Path(args.infile).read_text())
        print(json.dumps({"wid": args.wid, "signatures": n}))
    elif a in ("whitelist", "blacklist"):
        _need(args, "chain", "address")
        if a == "whitelist":
            _need(args, "user")
            wd.whitelist(args.user, args.chain, args.address)
        else:
            wd.blacklist(args.chain, args.address)
        print(json.dumps({a: args.address, "chain": args.chain}))
    elif a == "kyc":
        _need(args, "user", "tier")
        wd.set_kyc(args.user, args.tier)
        print(json.dumps({"user": args.user, "tier": args.tier}))
    elif a == "security-change":
        _need(args, "user", "kind")
        wd.security_change(args.user, args.kind)
        print(json.dumps({"user": args.user, "kind": args.kind}))
    elif a == "unhalt":
        _need(args, "chain", "operator")
        wd.unhalt(args.chain, args.operator)
        print(json.dumps({"chain": args.chain, "withdrawals": "resumed"}))
    elif a == "quarantine":
        for q in wd.quarantine_rows(args.chain):
            print(json.dumps(q))
    elif a == "release-coin":
        _need(args, "chain", "outpoint", "operator", "reason")
        wd.release_coin(args.chain, args.outpoint, args.operator, args.reason)
        print(json.dumps({"chain": args.chain, "outpoint": args.outpoint, "released": True}))
    elif a == "treasury":
        for r in wd.treasury():
            print(json.dumps(r))
    return 0


def offline(args: argparse.Namespace) -> int:
    """keygen / sign-psbt: the signer's host, no config, no database, no network."""
    try:
        if not args.key:
            raise ValueError(f"{args.action} needs --key FILE")
        passphrase = passphrase_from(args.passphrase_file)
        if args.action == "keygen":
            if Path(args.key).exists():
                raise ValueError(f"{args.key} exists: refusing to overwrite a key")
            if not args.network:
                raise ValueError("keygen needs --network")
            kf = KeyFile(
                ec.PrivateKey(os.urandom(32)), args.network, args.max_tx, args.max_daily,
                contract=args.contract, chain_id=args.chain_id,
            )  # fmt: skip
            write_key_file(args.key, kf, passphrase)
            out = {"key": args.key, "pubkey": kf.pubkey_hex}
            if args.contract:  # an Ethereum multisig owner: the address the contract lists
                out["address"] = eth_address(kf.key.get_public_key())
            print(json.dumps(out))
            return 0
        if not args.infile or not args.outfile:
            raise ValueError("sign-psbt needs --in FILE and --out FILE")
        kf = read_key_file(args.key, passphrase)
        ledger = Path(str(args.key) + ".ledger")
        text = Path(args.infile).read_text()
        if text.lstrip().startswith("{"):  # an Ethereum multisig request (JSON)
            signed = signer.sign_eth(text, kf, ledger)
        else:
            signed = signer.sign(text, kf, ledger)
        Path(args.outfile).write_text(signed)
        print(json.dumps({"signed": args.outfile, "pubkey": kf.pubkey_hex}))
        return 0
    except (OSError, ValueError) as exc:
        print(f"bursa wallet {args.action}: {exc}", file=sys.stderr)
        return 2
