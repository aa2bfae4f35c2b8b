"""A long random command stream through the DEBUG build of the book.

The debug build (``make debug``: bounds, wraparound and overflow checks, C
asserts) is imported in a subprocess with ``PYTHONPATH=build/debug:.``.  There:

* a prefix of the stream runs through the per-command API beside the reference
  book; every event must match, ``check_invariants()`` runs periodically, and the
  state hashes must agree at the end of the prefix;
* the whole stream runs through the batch API in chunks, ``check_invariants()``
  after each chunk; the run reports a digest of all events and the final state.

The release build (in place, this process) runs the same stream; both builds must
give the same event count, event digest and state hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

import pyx.book
from pyx.enums import EvKind, Reason
from tests.bookgen import STREAM_CONFIG, exchange_stream

ROOT = Path(__file__).resolve().parents[2]
DEBUG_DIR = ROOT / "build" / "debug"
STREAM_SEED = 20261128
STREAM_COMMANDS = 300_000
PREFIX_COMMANDS = 30_000  # per-command API, compared with the reference book
CHUNK_COMMANDS = 2_000  # batch size between two check_invariants() calls
CHECK_EVERY = 500  # per-command prefix: commands between check_invariants() calls
SUBPROCESS_TIMEOUT_S = 400

RUNNER = r"""
import hashlib, json, sys
from collections import Counter
import numpy as np
import pyx.book
from pyx.book import Book
from tests.bookgen import STREAM_CONFIG, apply_record, ev_tuples
from tests.refbook import RefBook

path, prefix, chunk, check_every = sys.argv[1], *map(int, sys.argv[2:5])
recs = np.load(path)
out = {"module": pyx.book.__file__}

# 1. prefix, per-command, beside the reference book
cy, ref = Book(1, **STREAM_CONFIG), RefBook(1, **STREAM_CONFIG)
for i in range(prefix):
    cy.clear_events()
    ref.clear_events()
    apply_record(cy, recs, i)
    apply_record(ref, recs, i)
    got, want = ev_tuples(cy.events()), ev_tuples(ref.events())
    if got != want:
        out["mismatch"] = {"index": i, "command": repr(recs[i]), "cython": got, "ref": want}
        break
    if i % check_every == 0:
        cy.check_invariants()
        assert cy.l3() == ref.l3() and cy.stops() == ref.stops(), i
cy.check_invariants()
out["prefix_hash"] = cy.state_hash().hex()
out["prefix_ref_hash"] = ref.state_hash().hex()

# 2. the whole stream through the batch API
book = Book(1, **STREAM_CONFIG)
digest = hashlib.blake2b(digest_size=16)
n_events = 0
kinds = Counter()
for start in range(0, len(recs), chunk):
    ev = book.process(recs[start:start + chunk])
    digest.update(ev.tobytes())
    n_events += len(ev)
    kinds.update(zip(ev["kind"].tolist(), ev["reason"].tolist()))
    book.check_invariants()
out.update(
    n_events=n_events,
    events_digest=digest.hexdigest(),
    state_hash=book.state_hash().hex(),
    n_orders=book.n_orders,
    last_price=book.last_price(),
    kinds=sorted([k, r, n] for (k, r), n in kinds.items()),
)
print(json.dumps(out))
"""


def ensure_debug_build() -> None:
    """Build build/debug/ if it is missing or older than the sources (no venv step)."""
    subprocess.run(
        ["make", "-s", "build/debug/.stamp"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )


def run_release(recs: np.ndarray) -> dict[str, Any]:
    """The whole stream through the release build, as the runner does."""
    book = pyx.book.Book(1, **STREAM_CONFIG)
    digest = hashlib.blake2b(digest_size=16)
    n_events = 0
    for start in range(0, len(recs), CHUNK_COMMANDS):
        ev = book.process(recs[start : start + CHUNK_COMMANDS])
        digest.update(ev.tobytes())
        n_events += len(ev)
    book.check_invariants()
    return {
        "n_events": n_events,
        "events_digest": digest.hexdigest(),
        "state_hash": book.state_hash().hex(),
        "n_orders": book.n_orders,
        "last_price": book.last_price(),
    }


def test_long_stream_debug_build_matches_reference_and_release(tmp_path):
    ensure_debug_build()
    recs = exchange_stream(STREAM_SEED, STREAM_COMMANDS)
    path = tmp_path / "stream.npy"
    np.save(path, recs)
    env = {**os.environ, "PYTHONPATH": f"{DEBUG_DIR}{os.pathsep}{ROOT}"}
    args = [str(path), str(PREFIX_COMMANDS), str(CHUNK_COMMANDS), str(CHECK_EVERY)]
    proc = subprocess.run(
        [sys.executable, "-P", "-c", RUNNER, *args],  # -P: cwd not on sys.path
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    dbg = json.loads(proc.stdout.strip().splitlines()[-1])
    print({k: v for k, v in dbg.items() if k != "kinds"})

    # The debug build really ran, and this process runs the release build.
    assert Path(dbg["module"]).resolve().is_relative_to(DEBUG_DIR.resolve()), dbg["module"]
    assert not Path(pyx.book.__file__).resolve().is_relative_to(DEBUG_DIR.resolve())

    assert "mismatch" not in dbg, dbg.get("mismatch")
    assert dbg["prefix_hash"] == dbg["prefix_ref_hash"]

    rel = run_release(recs)
    for key, value in rel.items():
        assert dbg[key] == value, key

    # The stream exercised what it is meant to: every book event kind, trades,
    # self-trade prevention, stop triggers and a wide set of rejects.
    seen = Counter({(k, r): n for k, r, n in dbg["kinds"]})
    kinds = {k for k, _ in seen}
    assert kinds == {int(k) for k in EvKind if k < 20}
    assert seen[(EvKind.TRADE, 0)] > STREAM_COMMANDS // 50
    must_see = [
        (EvKind.CANCELED, Reason.SELF_TRADE),
        (EvKind.REDUCED, Reason.SELF_TRADE),
        (EvKind.CANCELED, Reason.BUDGET_EXHAUSTED),
        (EvKind.CANCELED, Reason.FOK_NOT_FILLABLE),
        (EvKind.CANCELED, Reason.MASS_CANCELED),
        (EvKind.REJECTED, Reason.STOP_WOULD_TRIGGER),
        (EvKind.REJECTED, Reason.DUPLICATE_ORDER_ID),
        (EvKind.REJECTED, Reason.POST_ONLY_WOULD_TAKE),
        (EvKind.REJECTED, Reason.UNKNOWN_COMMAND),
        (EvKind.REJECTED, Reason.NOT_REPLACEABLE),
    ]
    for pair in must_see:
        assert seen[(int(pair[0]), int(pair[1]))] > 0, pair
    assert dbg["n_orders"] > 100  # a real book at the end, not an emptied one
