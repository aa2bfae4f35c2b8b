"""A real `bursa core` refuses a data directory whose newest journal segment was cut.

Acknowledged commands (rejected cancels are sequenced and journaled like any
command) are sent, the core is killed -9, the newest journal segment is cut to
a batch boundary in the middle (so the journal itself looks intact), and:

- a plain restart exits non-zero naming the loss and the override flag;
- ``--accept-journal-loss`` starts on the shorter journal;
- the next plain restart starts (the operator's decision is recorded).
"""

from __future__ import annotations

import time
from pathlib import Path

from bindings.client import CoreClient
from bursa_wire.layout import CMD_SIZE
from engine.journal import HEADER_SIZE, JournalReader, list_segments
from engine.storage import FileStorage
from engine.wire import commands
from tests.e2e.coreproc import STOP_TIMEOUT_S, CoreProcess


def cut_newest_segment(data_dir: Path) -> int:
    """Cut the newest journal segment after its first batch; returns the new last seq."""
    storage = FileStorage(str(data_dir))
    try:
        name = list_segments(storage)[-1][1]
        reader = JournalReader(storage)
        batches = [b for b, _ in reader.batches(after_seq=0)]
        assert len(batches) >= 3, len(batches)
        keep = batches[len(batches) // 2]
        end = keep.offset + 2 * HEADER_SIZE + keep.count * CMD_SIZE
        storage.truncate(name, end)
        storage.sync(name)
        return keep.last_seq
    finally:
        storage.close()


def test_cut_journal_refused_then_override(tmp_path: Path) -> None:
    data = tmp_path / "core"
    core = CoreProcess(data, tmp_path, "fsync", "--snapshot-every-cmds", "0",
                       "--snapshot-every-ms", "0")  # fmt: skip
    try:
        ready = core.start()
        with CoreClient(ready["trade"]) as c:
            for i in range(40):
                c.request(commands.cancel(10_000 + i, 7))
                time.sleep(0.01)  # spread over a few high-water intervals
            last = int(c.control("ping")["last_seq"])
        assert last == 40
        core.kill9()
        kept = cut_newest_segment(data)
        assert kept < last

        core.start_nowait()
        assert core.proc is not None
        rc = core.proc.wait(timeout=STOP_TIMEOUT_S * 2)
        err = core.err_path.read_text()
        assert rc != 0 and "journal loss" in err and "--accept-journal-loss" in err, err

        core.extra.append("--accept-journal-loss")
        ready = core.start()
        assert ready["last_seq"] == kept
        assert core.stop() == 0

        core.extra.remove("--accept-journal-loss")
        ready = core.start()
        assert ready["last_seq"] == kept
        assert core.stop() == 0
    finally:
        core.cleanup()
