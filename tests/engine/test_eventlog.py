"""Event log: append, reopen, torn and corrupt tails, truncation, reader, frame splitting."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bursa_wire.layout import EV_DTYPE
from engine.eventlog import (
    REGEN_SUFFIX,
    EventLog,
    EventLogReader,
    EventLogVerifier,
    list_segments,
    split_event_frames,
)
from engine.storage import FileStorage
from engine.wire.frames import (
    EVENT_HEADER_SIZE,
    REPLAY_NOT_AVAILABLE,
    REPLAY_OK,
    FrameError,
    decode_event_frame,
    encode_event_frame,
)


def events_for(first: int, last: int, per_cmd: int = 2) -> np.ndarray:
    """``per_cmd`` events for every command of odd seq in first..last (even: none)."""
    pairs = [(s, k) for s in range(first, last + 1) if s % 2 for k in range(per_cmd)]
    ev = np.zeros(len(pairs), dtype=EV_DTYPE)
    ev["seq"] = [s for s, _ in pairs]
    ev["order_id"] = [s * 10 + k for s, k in pairs]
    return ev


def fill(log: EventLog, ranges: list[tuple[int, int]]) -> None:
    for a, b in ranges:
        log.append_events(a, b, events_for(a, b))


def test_frame_roundtrip_and_crc():
    ev = events_for(3, 7)
    frame = encode_event_frame(3, 7, ev.tobytes())
    f = decode_event_frame(frame)
    assert (f.first_seq, f.last_seq) == (3, 7)
    assert f.events.tobytes() == ev.tobytes()
    bad = bytearray(frame)
    bad[EVENT_HEADER_SIZE + 5] ^= 1
    with pytest.raises(FrameError):
        decode_event_frame(bytes(bad))
    with pytest.raises(FrameError):
        decode_event_frame(frame[:-1])


def test_reopen_keeps_everything(tmp_path):
    st_ = FileStorage(str(tmp_path))
    log = EventLog(st_)
    assert log.open() == 0
    fill(log, [(1, 4), (5, 5), (6, 20)])
    again = EventLog(FileStorage(str(tmp_path)))
    assert again.open() == 20
    assert again.first_seq == 1


def test_torn_tail_is_cut(tmp_path):
    st_ = FileStorage(str(tmp_path))
    log = EventLog(st_)
    log.open()
    fill(log, [(1, 4), (5, 9)])
    name = list_segments(st_)[-1][1]
    size = st_.size(name)
    st_.truncate(name, size - 10)  # a half-written last record
    again = EventLog(FileStorage(str(tmp_path)))
    assert again.open() == 4
    frame = again.append_events(5, 6, events_for(5, 6))  # and the log continues from there
    # Right after the last whole record (appends go at the tracked end, no gap, no overlap).
    assert st_.size(name) == again._segment_size
    assert st_.read(name, st_.size(name) - len(frame), len(frame)) == frame
    assert EventLog(FileStorage(str(tmp_path))).open() == 6


def test_corrupt_record_cuts_from_there(tmp_path):
    st_ = FileStorage(str(tmp_path))
    log = EventLog(st_, segment_bytes_max=600)
    log.open()
    fill(log, [(1, 4), (5, 9), (10, 12), (13, 15)])
    segs = list_segments(st_)
    assert len(segs) >= 2
    # Flip a payload byte of the second segment's first record.
    name = segs[1][1]
    data = bytearray(st_.read(name, 0, 1 << 20))
    data[EVENT_HEADER_SIZE + 1] ^= 0xFF
    st_.write_at(name, 0, bytes(data))
    again = EventLog(FileStorage(str(tmp_path)))
    last = again.open()
    assert last == segs[1][0] - 1
    assert [n for _, n in list_segments(st_)] == [segs[0][1]]


def test_truncate_after_drops_newer_records(tmp_path):
    st_ = FileStorage(str(tmp_path))
    log = EventLog(st_, segment_bytes_max=600)
    log.open()
    fill(log, [(1, 4), (5, 9), (10, 12), (13, 15)])
    log.truncate_after(9)
    assert log.last_seq == 9
    log.append_events(10, 11, events_for(10, 11))
    assert EventLog(FileStorage(str(tmp_path))).open() == 11
    log.truncate_after(0)
    assert log.last_seq == 0
    assert list_segments(st_) == []


def test_reader_from_any_seq(tmp_path):
    st_ = FileStorage(str(tmp_path))
    log = EventLog(st_, segment_bytes_max=700)
    log.open()
    ranges = [(1, 4), (5, 9), (10, 12), (13, 15), (16, 30)]
    fill(log, ranges)
    reader = EventLogReader(FileStorage(str(tmp_path)))
    everything = events_for(1, 30)
    for start in range(1, 32):
        frames, next_seq, status = reader.read(start, 1 << 20, 1 << 30)
        assert status == REPLAY_OK
        assert next_seq == max(31, start)
        got = [decode_event_frame(f) for f in frames]
        if got:
            assert got[0].first_seq == start
            for a, b in itertools.pairwise(got):
                assert b.first_seq == a.last_seq + 1
        evs = np.concatenate([f.events for f in got]) if got else np.zeros(0, EV_DTYPE)
        assert evs.tobytes() == everything[everything["seq"] >= start].tobytes()
    # Bounded answers: at least one frame, never more than asked once one is in.
    frames, next_seq, _ = reader.read(1, 1, 1 << 30)
    assert len(frames) == 1 and next_seq == 5


def test_reader_sees_new_records_and_ignores_half_written(tmp_path):
    st_ = FileStorage(str(tmp_path))
    log = EventLog(st_)
    log.open()
    fill(log, [(1, 3)])
    reader = EventLogReader(FileStorage(str(tmp_path)))
    assert reader.read(1, 100, 1 << 20)[1] == 4
    frame = encode_event_frame(4, 6, events_for(4, 6).tobytes())
    name = list_segments(st_)[-1][1]
    st_.append(name, frame[:40])  # the writer is mid-record
    frames, next_seq, _ = reader.read(4, 100, 1 << 20)
    assert frames == [] and next_seq == 4
    st_.append(name, frame[40:])
    frames, next_seq, _ = reader.read(4, 100, 1 << 20)
    assert len(frames) == 1 and next_seq == 7


def test_reader_before_first_segment(tmp_path):
    st_ = FileStorage(str(tmp_path))
    log = EventLog(st_)
    log.open()
    log.append_events(10, 12, events_for(10, 12))  # older segments archived away
    reader = EventLogReader(FileStorage(str(tmp_path)))
    frames, next_seq, status = reader.read(3, 100, 1 << 20)
    assert (frames, next_seq, status) == ([], 10, REPLAY_NOT_AVAILABLE)


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(0, 12), min_size=1, max_size=40),
    max_events=st.integers(1, 15),
    first=st.integers(1, 1000),
)
def test_split_event_frames(counts, max_events, first):
    """Frames are gap-free, cut on command boundaries, and small unless one command is big."""
    seqs = [first + i for i, c in enumerate(counts) for _ in range(c)]
    ev = np.zeros(len(seqs), dtype=EV_DTYPE)
    ev["seq"] = seqs
    ev["order_id"] = np.arange(len(seqs))
    last = first + len(counts) - 1
    frames = split_event_frames(first, last, ev, max_events)
    assert frames[0][0] == first and frames[-1][1] == last
    for (_a0, b0, _), (a1, _b1, _) in itertools.pairwise(frames):
        assert a1 == b0 + 1
    for a, b, part in frames:
        assert a <= b
        assert ((part["seq"] >= a) & (part["seq"] <= b)).all()
        if len(part) > max_events:
            assert len(set(part["seq"].tolist())) == 1
    assert np.concatenate([p for _, _, p in frames]).tobytes() == ev.tobytes()


class CountingStorage(FileStorage):
    """A FileStorage counting the bytes read per file name."""

    def __init__(self, directory: str) -> None:
        super().__init__(directory)
        self.bytes_read: dict[str, int] = {}

    def read(self, name: str, offset: int, length: int) -> bytes:
        data = super().read(name, offset, length)
        self.bytes_read[name] = self.bytes_read.get(name, 0) + len(data)
        return data


def many_segments(path: str) -> list[tuple[int, str]]:
    log = EventLog(FileStorage(path), segment_bytes_max=600)
    log.open()
    fill(log, [(a, a + 3) for a in range(1, 200, 4)])
    segs = list_segments(FileStorage(path))
    assert len(segs) >= 10
    return segs


def test_open_reads_only_the_last_segment(tmp_path):
    segs = many_segments(str(tmp_path))
    counting = CountingStorage(str(tmp_path))
    log = EventLog(counting)
    assert log.open() == 200
    assert log.first_seq == 1
    last = segs[-1][1]
    assert set(counting.bytes_read) == {last}
    assert counting.bytes_read[last] <= counting.size(last)
    # A wholly corrupt (or empty) last segment is dropped and the one before is read.
    counting.write_at(last, 0, b"\0" * 8)
    again = EventLog(CountingStorage(str(tmp_path)))
    assert again.open() == segs[-1][0] - 1
    assert [n for _, n in list_segments(counting)] == [n for _, n in segs[:-1]]
    again.append_events(segs[-1][0], 200, events_for(segs[-1][0], 200))
    assert EventLog(FileStorage(str(tmp_path))).open() == 200


def test_truncate_after_reads_one_segment(tmp_path):
    many_segments(str(tmp_path))
    counting = CountingStorage(str(tmp_path))
    log = EventLog(counting)
    log.open()
    counting.bytes_read.clear()
    log.truncate_after(100)
    assert log.last_seq == 100
    assert len(counting.bytes_read) == 1
    assert EventLog(FileStorage(str(tmp_path))).open() == 100
    reader = EventLogReader(FileStorage(str(tmp_path)))
    frames, next_seq, _ = reader.read(1, 1 << 20, 1 << 30)
    ev = np.concatenate([decode_event_frame(f).events for f in frames])
    assert next_seq == 101 and ev.tobytes() == events_for(1, 100).tobytes()


def damage(storage: FileStorage, name: str, at: int) -> None:
    data = bytearray(storage.read(name, 0, 1 << 20))
    data[at] ^= 0xFF
    storage.write_at(name, 0, bytes(data))


def test_damaged_older_segment_is_found_served_up_to_and_regenerated(tmp_path):
    segs = many_segments(str(tmp_path))
    st_ = FileStorage(str(tmp_path))
    (first, name), (nxt, _) = segs[3], segs[4]
    good = st_.read(name, 0, 1 << 20)
    damage(st_, name, len(good) - 5)  # the segment's last record
    log = EventLog(st_)
    assert log.open() == 200  # start does not read it
    reader = EventLogReader(FileStorage(str(tmp_path)))
    frames, next_seq, status = reader.read(1, 1 << 20, 1 << 30)
    assert status == REPLAY_OK and first < next_seq < nxt  # served up to the damage
    assert reader.damaged == {name}
    # The background check finds it, in bounded steps.
    verifier = EventLogVerifier(st_, list_segments(st_), step_bytes=100)
    found = []
    for _ in range(10_000):
        if verifier.done:
            break
        hit = verifier.step()
        if hit is not None:
            found.append(hit)
    assert verifier.done and found == [(first, nxt - 1, name)]
    assert verifier.bytes_read <= sum(st_.size(n) for _, n in segs)
    # Regenerated (here from the same events), the reader serves everything again.
    regenerated = encode_event_frame(first, nxt - 1, events_for(first, nxt - 1).tobytes())
    log.replace_segment(name, iter([regenerated]))
    resume = next_seq
    frames, next_seq, _ = reader.read(resume, 1 << 20, 1 << 30)
    assert reader.damaged == set()
    got = np.concatenate([decode_event_frame(f).events for f in frames])
    assert got.tobytes() == events_for(resume, 200).tobytes()
    assert next_seq == 201


def test_regen_leftover_is_removed_at_open(tmp_path):
    many_segments(str(tmp_path))
    st_ = FileStorage(str(tmp_path))
    st_.append(list_segments(st_)[2][1] + REGEN_SUFFIX, b"partial")
    EventLog(st_).open()
    assert not [n for n in st_.list() if n.endswith(REGEN_SUFFIX)]
