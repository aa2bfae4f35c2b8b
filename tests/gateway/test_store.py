"""The stored session streams: chunked per turn, read back message by message."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bursa_wire.gw_layout import APP_OUT
from gateway.store import Store

# Stored payloads are whole outbound messages (code + fixed-size body).
PAYLOADS = st.sampled_from(APP_OUT).flatmap(
    lambda m: st.binary(min_size=m.struct.size, max_size=m.struct.size).map(lambda b: m.code + b)
)
TURNS = st.lists(
    st.lists(st.tuples(st.integers(1, 3), PAYLOADS), max_size=8),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(turns=TURNS, from_seq=st.integers(0, 30), limit=st.integers(1, 40))
def test_stream_reads_back_every_message(
    turns: list[list[tuple[int, bytes]]], from_seq: int, limit: int
) -> None:
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "gw.db"
        store = Store(db)
        sent: dict[int, list[tuple[int, bytes]]] = {}
        for turn in turns:
            for key_id, payload in turn:
                seq = store.append(key_id, payload)
                sent.setdefault(key_id, []).append((seq, payload))
            store.commit()
        store.close()
        again = Store(db)  # reopened: the same streams and last seqs
        for key_id in (1, 2, 3):
            msgs = sent.get(key_id, [])
            assert [s for s, _ in msgs] == list(range(1, len(msgs) + 1))
            assert again.last_seq.get(key_id, 0) == len(msgs)
            want = [m for m in msgs if m[0] >= from_seq][:limit]
            assert again.stream(key_id, from_seq, limit) == want
        again.close()
