"""Numbered intent-file records (bindings.intentfile): read back past a mark, exactly the
whole intact ones, whatever a crash left at the end of the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bindings import intentfile
from bindings.intentfile import RECORD_HEAD, IntentFile, numbered_records, record_crc

BODIES = st.lists(st.binary(max_size=40), max_size=8)


def _records(first: int, bodies: list[bytes]) -> list[bytes]:
    return [
        RECORD_HEAD.pack(first + i, record_crc(first + i, b), len(b)) + b
        for i, b in enumerate(bodies)
    ]


@settings(max_examples=200, deadline=None)
@given(bodies=BODIES, first=st.integers(1, 50), after=st.integers(0, 60), data=st.data())
def test_records_past_the_mark_and_a_torn_tail(
    bodies: list[bytes], first: int, after: int, data: st.DataObject
) -> None:
    recs = _records(first, bodies)
    blob = b"".join(recs)
    want = [(first + i, b) for i, b in enumerate(bodies) if first + i > after]
    assert numbered_records(blob, after) == want
    # A write cut short anywhere: exactly the records wholly before the cut.
    cut = data.draw(st.integers(0, len(blob)))
    whole, pos = 0, 0
    for r in recs:
        if pos + len(r) > cut:
            break
        pos += len(r)
        whole += 1
    assert numbered_records(blob[:cut], after) == want[: max(0, whole - (len(bodies) - len(want)))]


@settings(max_examples=200, deadline=None)
@given(bodies=BODIES.filter(bool), data=st.data())
def test_a_corrupt_record_ends_what_is_read(bodies: list[bytes], data: st.DataObject) -> None:
    """Garbage past the last good record (an OS crash can leave it) or a flipped byte
    in a record: reading stops before it, never returns a damaged record."""
    recs = _records(1, bodies)
    k = data.draw(st.integers(0, len(recs) - 1))
    bad = bytearray(recs[k])
    i = data.draw(st.integers(0, len(bad) - 1))
    bad[i] ^= 1 << data.draw(st.integers(0, 7))
    blob = b"".join(recs[:k]) + bytes(bad) + b"".join(recs[k + 1 :])
    got = numbered_records(blob, 0)
    assert got == [(i + 1, b) for i, b in enumerate(bodies[:k])]
    # Numbers must grow: a record numbered at or below the one before ends the read.
    blob = b"".join(recs) + _records(1, [b"stale"])[0]
    assert numbered_records(blob, 0) == [(i + 1, b) for i, b in enumerate(bodies)]


def test_the_file_numbers_appends_and_reads_back_past_a_mark(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    f = IntentFile(db, "-t", max_bytes=64)
    assert f.read_records(0) == [] and f.path == db + "-t"
    f.reset(7)  # the caller's mark: the next record is 8
    assert f.append_record(b"a") == 8 and f.append_record(b"bc") == 9
    assert f.size == 2 * RECORD_HEAD.size + 3 and not f.full
    assert IntentFile(db, "-t").read_records(0) == [(8, b"a"), (9, b"bc")]
    assert IntentFile(db, "-t").read_records(8) == [(9, b"bc")]
    f.append_record(bytes(64))
    assert f.full  # its own bound (max_bytes)
    f.reset(9)
    assert f.read_records(0) == [] and f.append_record(b"") == 10
    f.close()


def test_the_default_bound_is_read_at_call_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``max_bytes`` the module's INTENT_MAX_BYTES applies (the API's file)."""
    f = IntentFile(str(tmp_path / "x.db"))
    f.reset()
    f.append(b"abc")
    assert not f.full
    monkeypatch.setattr(intentfile, "INTENT_MAX_BYTES", 3)
    assert f.full
    f.close()
