"""Session stream retention: bounded by count and age, persisted floor, clear re-login
refusal (SEQUENCE_BEFORE_RETENTION) for a removed sequence number."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bursa_wire.gw_layout import BY_NAME
from gateway.store import Store
from gateway.wire import codec
from gateway.wire.codes import GwReason
from tests.e2e.coreproc import CoreProcess
from tests.gateway.gwproc import GatewayProcess, make_key
from tests.gateway.raw import Raw

STATUS = BY_NAME["ORDER_STATUS_REPLY"]


def _payload(cl: int) -> bytes:
    return codec.app_payload(STATUS, {"cl_ord_id": cl})


def _fill(store: Store, key_id: int, turns: int, per_turn: int) -> None:
    """``turns`` commits of ``per_turn`` messages each (one chunk per commit)."""
    for t in range(turns):
        for i in range(per_turn):
            store.append(key_id, _payload(t * per_turn + i + 1))
        store.commit()


def test_prune_by_count_keeps_newest_whole_chunks(tmp_path: Path) -> None:
    s = Store(tmp_path / "gw.db")
    _fill(s, 7, turns=10, per_turn=3)  # seqs 1..30 in chunks of 3
    _fill(s, 8, turns=1, per_turn=2)
    now = time.time_ns() // 1_000_000
    removed = s.prune_streams(10, 0, now, set(), 1000)
    # Newest 10 of key 7 are 21..30: chunks ending at <= 20 go (1..18 and 19..21 stays).
    assert removed == 18
    assert s.first_kept(7) == 19 and s.first_kept(8) == 1
    assert [q for q, _ in s.stream(7, 1, 100)] == list(range(19, 31))
    assert s.stream(7, 19, 1)[0][1] == _payload(19)
    assert s.prune_streams(10, 0, now, set(), 1000) == 0  # idempotent
    s.close()


def test_prune_by_age_is_bounded_and_skips_busy_sessions(tmp_path: Path) -> None:
    s = Store(tmp_path / "gw.db")
    _fill(s, 1, turns=5, per_turn=2)
    _fill(s, 2, turns=2, per_turn=1)
    later = time.time_ns() // 1_000_000 + 60_000
    # Everything is older than 1 s a minute from now; at most 2 chunks per call.
    assert s.prune_streams(0, 1000, later, {2}, 2) == 4
    assert s.first_kept(1) == 5 and s.first_kept(2) == 1
    assert s.prune_streams(0, 1000, later, {2}, 2) == 4
    assert s.prune_streams(0, 1000, later, set(), 100) == 2 + 2
    assert s.first_kept(1) == 11 and s.first_kept(2) == 3
    assert s.stream(1, 1, 100) == [] and s.stream(2, 1, 100) == []
    # Nothing is removed while both bounds are off or nothing is old enough.
    _fill(s, 1, turns=1, per_turn=1)
    assert s.prune_streams(0, 0, later, set(), 100) == 0
    assert s.prune_streams(0, 3_600_000, later, set(), 100) == 0
    s.close()


def test_prune_visits_sessions_round_robin(tmp_path: Path) -> None:
    s = Store(tmp_path / "gw.db")
    for key_id in (5, 6, 7):
        _fill(s, key_id, turns=2, per_turn=1)
    later = time.time_ns() // 1_000_000 + 60_000
    assert s.prune_streams(0, 1000, later, set(), 100, max_keys=2) == 4
    assert [s.first_kept(k) for k in (5, 6, 7)] == [3, 3, 1]
    assert s.prune_streams(0, 1000, later, set(), 100, max_keys=2) == 2
    assert [s.first_kept(k) for k in (5, 6, 7)] == [3, 3, 3]
    s.close()


def test_floor_and_numbering_survive_a_restart(tmp_path: Path) -> None:
    s = Store(tmp_path / "gw.db")
    _fill(s, 3, turns=4, per_turn=5)
    s.prune_streams(0, 1, time.time_ns() // 1_000_000 + 10_000, set(), 100)
    assert s.first_kept(3) == 21
    s.close()
    s = Store(tmp_path / "gw.db")
    # Every message was removed, yet the session continues at 21, not at 1.
    assert s.first_kept(3) == 21 and s.last_seq[3] == 20
    assert s.append(3, _payload(1)) == 21
    s.close()


def test_old_database_gets_the_age_column(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE out_chunks (key_id INTEGER NOT NULL, last_seq INTEGER NOT NULL,"
        " first_seq INTEGER NOT NULL, payloads BLOB NOT NULL, PRIMARY KEY (key_id, last_seq))"
        " WITHOUT ROWID"
    )
    con.execute("INSERT INTO out_chunks VALUES (4, 2, 1, ?)", (_payload(1) + _payload(2),))
    con.commit()
    con.close()
    s = Store(db)
    now = time.time_ns() // 1_000_000
    # Old chunks count as written at the upgrade: not removed by a one-hour bound.
    assert s.prune_streams(0, 3_600_000, now, set(), 100) == 0
    assert [q for q, _ in s.stream(4, 1, 10)] == [1, 2]
    assert s.prune_streams(0, 3_600_000, now + 7_200_000, set(), 100) == 2
    s.close()


def _stored_last_seq(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT IFNULL(MAX(last_seq), 0) FROM out_chunks").fetchone()[0])
    finally:
        con.close()


def test_relogin_before_retention_is_refused(tmp_path: Path, core: CoreProcess) -> None:
    gw = GatewayProcess(
        core, tmp_path / "gw.db", tmp_path / "logs", "--stream-retain-msgs", "5",
        "--heartbeat-ms", "500",
    )  # fmt: skip
    gw.start(port=0)
    try:
        key = make_key(gw.db, tmp_path / "k.key", 1)
        for batch in range(4):  # four turns (four chunks) of 5 sequenced replies
            r = Raw(gw.port, key)
            r.login(0)
            r.expect("LOGIN_ACCEPTED")
            r.send(
                b"".join(codec.encode("ORDER_STATUS", cl_ord_id=batch * 5 + i) for i in range(5))
            )
            assert [m.seq for m in r.app(5)] == list(range(batch * 5 + 1, batch * 5 + 6))
            r.send(codec.encode("LOGOUT"))
            r.expect_end(GwReason.LOGOUT)
            # A chunk is one commit's messages: the ticker fills each batch from the
            # turn file (docs/gateway.md, "Replay design") before the next one starts.
            deadline = time.monotonic() + 10.0
            while _stored_last_seq(gw.db) < batch * 5 + 5 and time.monotonic() < deadline:
                time.sleep(0.02)
        time.sleep(2.5)  # retention runs once a second
        r = Raw(gw.port, key)
        r.login(1)
        r.expect_reject(GwReason.SEQUENCE_BEFORE_RETENTION)
        # The newest 5 (16..20) are kept: asking for them replays exactly those.
        r = Raw(gw.port, key)
        r.login(16)
        acc = r.expect("LOGIN_ACCEPTED")
        assert (acc.first_seq, acc.last_seq) == (16, 20)
        assert [m.seq for m in r.app(5)] == [16, 17, 18, 19, 20]
        r.send(codec.encode("LOGOUT"))
        r.expect_end(GwReason.LOGOUT)
        # What a client does after the refusal: log in for new messages only, then ask
        # ORDER_STATUS for the orders it tracks.
        r = Raw(gw.port, key)
        r.login(0)
        assert r.expect("LOGIN_ACCEPTED").first_seq == 21
        r.send(codec.encode("ORDER_STATUS", cl_ord_id=1))
        (m,) = r.app(1)
        assert m.name == "ORDER_STATUS_REPLY" and m.seq == 21
        r.close()
    finally:
        gw.cleanup()
