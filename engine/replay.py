"""`bursa replay <journal dir>`: rebuild the core from a journal and print its state hash.

By default the rebuild starts from scratch (an empty core, every segment from
seq 1, archived segments included) and never writes to the directory, so it can
run against a live core's directory or a standby's copy.  ``--from-snapshot``
starts from the newest valid snapshot instead.  Exit status: 0 when the journal
is sound and conservation holds, 1 on journal corruption (the message names the
segment, batch, record seq and byte offset), 3 when conservation fails, 2 on
usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass

from engine.corelike import CoreClass
from engine.journal import JournalCorrupt
from engine.recovery import RecoveryReport, recover
from engine.storage import FileStorage, StorageError


@dataclass
class ReplayResult:
    """What a replay rebuilt."""

    last_seq: int
    commands: int
    state_hash: bytes
    conservation_errors: list[str]
    report: RecoveryReport


def replay_dir(
    directory: str, *, from_scratch: bool = True, core_cls: CoreClass | None = None
) -> ReplayResult:
    """Rebuild the core from the journal in ``directory`` without modifying it.

    Raises
    ------
    JournalCorrupt
        Damage inside the durable prefix, or a missing segment.
    """
    storage = FileStorage(directory, read_only=True)  # never writes nor creates
    try:
        core, report = recover(
            storage,
            core_cls=core_cls,
            repair=False,
            use_snapshots=not from_scratch,
            include_archived=from_scratch,
        )
    finally:
        storage.close()
    return ReplayResult(
        last_seq=core.last_seq,
        commands=report.commands_replayed,
        state_hash=core.state_hash(),
        conservation_errors=list(core.conservation_errors()),
        report=report,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``bursa replay``; returns the exit status."""
    parser = argparse.ArgumentParser(prog="bursa replay", description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="data directory holding journal-*.seg files")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--from-scratch",
        dest="from_scratch",
        action="store_true",
        default=True,
        help="replay every segment from seq 1, ignoring snapshots (default)",
    )
    group.add_argument(
        "--from-snapshot",
        dest="from_scratch",
        action="store_false",
        help="start from the newest valid snapshot",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.directory):
        print(f"bursa replay: {args.directory}: not a directory", file=sys.stderr)
        return 2
    try:
        result = replay_dir(args.directory, from_scratch=args.from_scratch)
    except JournalCorrupt as e:
        print(f"bursa replay: {e}", file=sys.stderr)
        return 1
    except StorageError as e:
        print(f"bursa replay: I/O error: {e}", file=sys.stderr)
        return 1
    rep = result.report
    out = {
        "last_seq": result.last_seq,
        "commands": result.commands,
        "state_hash": result.state_hash.hex(),
        "conservation": "ok" if not result.conservation_errors else "FAILED",
        "conservation_errors": result.conservation_errors,
        "snapshot_seq": rep.snapshot_seq,
        "segments": len(rep.segments_read),
        "tail": None
        if rep.tail_damage is None
        else f"{rep.tail_damage.kind} at {rep.tail_damage.segment}:{rep.tail_damage.offset} "
        f"({rep.tail_damage.reason}; not repaired: replay is read-only)",
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"last seq       {result.last_seq}")
        print(f"commands       {result.commands} (from snapshot seq {rep.snapshot_seq})")
        print(f"segments       {len(rep.segments_read)}")
        print(f"state hash     {result.state_hash.hex()}")
        print(f"conservation   {out['conservation']}")
        for err in result.conservation_errors:
            print(f"  {err}")
        if out["tail"]:
            print(f"tail           {out['tail']}")
    return 0 if not result.conservation_errors else 3
