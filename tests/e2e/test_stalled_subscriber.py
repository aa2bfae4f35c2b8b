"""A subscriber that never reads cannot grow the core's memory (issue 16).

A raw SUB socket connects, subscribes and never reads (tiny receive buffers, so
TCP pushes back at once), while a client pushes more than 2 GiB of events through
a real `bursa core`.  The core's RSS must stay bounded (PUB drops that
subscriber's frames beyond its bounded queue: SNDHWM x bounded frame bytes), and
the stalled subscriber, once it reads again, finds a gap in sequence numbers that
the replay service fills.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import zmq

from bindings.client import EventSubscriber
from bursa_wire.layout import CMD_DTYPE, EV_DTYPE
from engine.wire import commands
from engine.wire.frames import decode_event_frame
from tests.e2e.coreproc import CoreProcess

#: Events pushed in total (x 96 bytes): a little over 2 GiB.
PUSH_BYTES = 2_200 * 1024 * 1024
FRAME_CMDS = 16_384
WINDOW = 4  # frames in flight
#: The issue saw ~1.4 GiB growth in 20 s with message-counted queues.
MAX_GROWTH_MIB = 300


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def cancel_frame() -> bytes:
    """FRAME_CMDS cancels of unknown orders: each is sequenced and emits one event."""
    recs = np.concatenate([commands.cancel(1_000_000 + i, 7) for i in range(FRAME_CMDS)])
    assert recs.dtype == CMD_DTYPE
    return recs.tobytes()


def test_stalled_subscriber_keeps_core_rss_bounded(tmp_path: Path) -> None:
    data = tmp_path / "core"
    core = CoreProcess(data, tmp_path, "none", "--snapshot-every-cmds", "0",
                       "--snapshot-every-ms", "0")  # fmt: skip
    ctx = zmq.Context()
    try:
        ready = core.start()
        assert core.proc is not None
        pid = core.proc.pid
        stalled = ctx.socket(zmq.SUB)
        stalled.setsockopt(zmq.RCVHWM, 1)
        stalled.setsockopt(zmq.RCVBUF, 4096)
        stalled.setsockopt(zmq.LINGER, 0)
        stalled.setsockopt(zmq.SUBSCRIBE, b"")
        stalled.connect(ready["pub"])
        client = ctx.socket(zmq.DEALER)
        client.setsockopt(zmq.LINGER, 0)
        client.connect(ready["trade"])
        frame = cancel_frame()
        n_frames = PUSH_BYTES // (FRAME_CMDS * EV_DTYPE.itemsize) + 1
        warm = n_frames // 10
        inflight = 0
        base = 0.0
        peak = 0.0
        for i in range(n_frames):
            client.send(frame)
            inflight += 1
            if inflight >= WINDOW:
                assert client.poll(60_000), "no reply from the core"
                client.recv()
                inflight -= 1
            if i == warm:
                base = rss_mib(pid)
            if i > warm and i % 64 == 0:
                peak = max(peak, rss_mib(pid))
        for _ in range(inflight):
            assert client.poll(60_000)
            client.recv()
        peak = max(peak, rss_mib(pid))
        growth = peak - base
        print(f"core RSS: {base:.0f} MiB after warm-up, peak {peak:.0f} MiB, growth {growth:.0f}")
        assert growth < MAX_GROWTH_MIB, (base, peak)

        # The stalled subscriber reads again: what was queued for it is contiguous
        # and ends early (the rest was dropped); the next live frame reveals the
        # gap, and the replay service serves the missing events.
        first = decode_event_frame(stalled.recv(), verify=True)
        expected = first.last_seq + 1
        queued = 1
        while stalled.poll(2_000):
            f = decode_event_frame(stalled.recv(), verify=True)
            assert f.first_seq == expected
            expected = f.last_seq + 1
            queued += 1
        client.send(commands.cancel(1, 7).tobytes())
        assert client.poll(60_000)
        client.recv()
        f = decode_event_frame(stalled.recv(), verify=True)
        print(f"stalled subscriber: {queued} frames queued, then a gap {expected}..{f.first_seq}")
        assert f.first_seq > expected, "no frame was dropped for the stalled subscriber"
        gap_at = (expected, f.first_seq)
        with EventSubscriber(ready["pub"], ready["replay"], ctx=ctx) as sub:
            frames, _next, _last = sub.replay(gap_at[0], max_events=FRAME_CMDS)
        assert frames and frames[0].first_seq == gap_at[0]
        seqs = np.concatenate([f.events["seq"] for f in frames])
        assert int(seqs[0]) == gap_at[0] and np.all(np.diff(seqs.astype(np.int64)) == 1)
        stalled.close()
        client.close()
        assert core.stop() == 0
    finally:
        core.cleanup()
        ctx.destroy(linger=0)
        shutil.rmtree(data, ignore_errors=True)  # ~2 GiB of event log
        assert not os.path.exists(data)
