"""`bursa por`: build the liabilities tree, hand out proofs, verify, sign, report reserves.

Subcommands::

    bursa por build (--data-dir D [--seq N] | --balances FILE) --out DIR [--config F]
    bursa por proof USER --dir DIR [--out FILE]
    bursa por verify ROOT PROOF            (same as bursa-por verify / python por/verify.py)
    bursa por sign --wif-file F --root ROOT --height H [--kind K] [--network NET]
    bursa por reserves --root ROOT --reserves FILE [--out FILE]

``build`` writes ``DIR/root.json`` (publish it) and ``DIR/proofs.jsonl`` (one
proof per line, each holding that user's salt: give each user only their own
line) and prints one JSON summary line.  Exit status: 0 ok, 1 rejected input /
failed check / reserves shortfall, 2 usage.  See docs/por.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from typing import Any

from por import reserves as res
from por import verify as ver
from por.tree import PorError, build


def _write(path: str, text: str, private: bool = False) -> None:
    """Write atomically (temp file + rename); ``private`` files are mode 0600."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


BUILD_KEYS = ("data_dir", "balances", "seq", "out")


def apply_config(args: argparse.Namespace) -> None:
    """Fill unset ``build`` options from ``--config`` (TOML, section ``[por]``); flags win."""
    if args.config is None:
        conf: dict[str, Any] = {}
    else:
        try:
            with open(args.config, "rb") as f:
                conf = tomllib.load(f).get("por", {})
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise PorError(f"{args.config}: {e}") from e
        unknown = set(conf) - set(BUILD_KEYS)
        if unknown:
            raise PorError(f"{args.config}: unknown [por] keys {sorted(unknown)}")
    for key in BUILD_KEYS:
        if getattr(args, key) is None and key in conf:
            setattr(args, key, conf[key])
    if args.data_dir is not None and args.balances is not None:
        raise PorError("give one of --data-dir and --balances, not both")
    if args.data_dir is None and args.balances is None:
        raise PorError("give --data-dir or --balances (flag or [por] config key)")
    if args.out is None:
        raise PorError("give --out (flag or [por] config key)")
    if args.seq is not None and (type(args.seq) is not int or args.seq < 0):
        raise PorError(f"seq must be a non-negative integer, got {args.seq!r}")


def cmd_build(args: argparse.Namespace) -> int:
    """Build the tree and write root.json + proofs.jsonl."""
    apply_config(args)
    extra: dict[str, Any] = {}
    if args.balances is not None:
        if args.seq is not None:
            raise PorError("--seq applies to --data-dir; a balances file states its own seq")
        from por.source import from_json

        liab = from_json(args.balances)
    else:
        from por import source

        core = source.core_at(args.data_dir, args.seq)
        errors = core.conservation_errors()
        if errors:  # a tree over an inconsistent ledger would prove nothing
            raise PorError(f"conservation fails at seq {core.last_seq}: {'; '.join(errors)}")
        liab = source.from_core(core)
        extra = {
            "fee_accounts": {str(a): v for a, v in source.fee_accounts(core).items()},
            "net_deposits": {str(a): v for a, v in source.net_deposits(core).items()},
        }
    tree = build(liab)
    os.makedirs(args.out, exist_ok=True)
    root = tree.root_json()
    _write(os.path.join(args.out, "root.json"), json.dumps(root, indent=1) + "\n")
    lines = [json.dumps(tree.proof(u), separators=(",", ":")) for u in liab.users]
    _write(os.path.join(args.out, "proofs.jsonl"), "\n".join(lines) + "\n", private=True)
    print(json.dumps({"root": root["root"], "seq": root["seq"], "leaves": root["leaves"],
                      "totals": root["totals"], "out": args.out, **extra}))  # fmt: skip
    return 0


def find_proof(directory: str, user_id: int) -> dict[str, Any]:
    """The proof of ``user_id`` from ``directory``/proofs.jsonl."""
    path = os.path.join(directory, "proofs.jsonl")
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                p = json.loads(line)
                if p.get("user_id") == user_id:
                    return dict(p)
    except (OSError, ValueError) as e:
        raise PorError(f"{path}: {e}") from e
    raise PorError(f"user {user_id} has no proof in {path}")


def cmd_proof(args: argparse.Namespace) -> int:
    """Print or write one user's proof."""
    text = json.dumps(find_proof(args.dir, args.user), indent=1) + "\n"
    if args.out:
        _write(args.out, text, private=True)
    else:
        sys.stdout.write(text)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """Sign the control message of one address (run where the key lives)."""
    with open(args.wif_file, encoding="utf-8") as f:
        wif = f.read().strip()
    root = ver.load_json(args.root)
    ver.check_root(root)  # sign only a root whose fields its hash commits to
    kind, net = args.kind, args.network
    address = res.address_of(wif, kind=kind, network=net)
    msg = res.control_message(str(root["root"]), args.height, address)
    address, sig = res.sign_message(wif, msg, kind=kind, network=net)
    print(json.dumps({"address": address, "message": msg, "sig": sig}))
    return 0


def cmd_reserves(args: argparse.Namespace) -> int:
    """Check reserves against the published root; exit 1 on any shortfall."""
    root = ver.load_json(args.root)
    ver.check_root(root)  # the totals compared are the ones the root hash commits to
    rep = res.report(root, res.load(args.reserves))
    text = json.dumps(rep, indent=1) + "\n"
    if args.out:
        _write(args.out, text)
    sys.stdout.write(text)
    return 1 if rep["shortfall"] else 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``bursa por``."""
    p = argparse.ArgumentParser(prog="bursa por", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build root.json and proofs.jsonl")
    b.add_argument("--config", help="TOML file; section [por]: data_dir, balances, seq, out")
    b.add_argument("--data-dir", help="core data directory (journal, snapshots)")
    b.add_argument("--balances", help="JSON balances file instead of a core")
    b.add_argument("--seq", type=int, help="state after this core seq (default: the last)")
    b.add_argument("--out", help="output directory")
    b.set_defaults(fn=cmd_build)
    pr = sub.add_parser("proof", help="one user's proof from a build directory")
    pr.add_argument("user", type=int)
    pr.add_argument("--dir", required=True, help="the build's output directory")
    pr.add_argument("--out", help="write here instead of stdout")
    pr.set_defaults(fn=cmd_proof)
    s = sub.add_parser("sign", help="sign an address's control message (offline host)")
    s.add_argument("--wif-file", required=True, help="file holding the WIF private key")
    s.add_argument("--root", required=True, help="root.json")
    s.add_argument("--height", type=int, required=True, help="block height of the balances")
    s.add_argument("--kind", default="p2wpkh", choices=["p2pkh", "p2sh-p2wpkh", "p2wpkh"])
    s.add_argument("--network", default="main", choices=["main", "test", "regtest", "signet"])
    s.set_defaults(fn=cmd_sign)
    r = sub.add_parser("reserves", help="reserves vs liabilities report")
    r.add_argument("--root", required=True, help="root.json")
    r.add_argument("--reserves", required=True, help="reserves file (docs/por.md)")
    r.add_argument("--out", help="also write the report here")
    r.set_defaults(fn=cmd_reserves)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bursa por``; returns the exit status."""
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["verify"]:
        return ver.main(args_in[1:])
    args = parser().parse_args(args_in)
    try:
        rc: int = args.fn(args)
    except (PorError, ver.ProofError) as e:
        print(f"bursa por {args.cmd}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"bursa por {args.cmd}: {e}", file=sys.stderr)
        return 2
    return rc
