"""Type stubs of pyx/smallturn.pyx (the compiled small turn of the core)."""

from typing import Any

def encode_event_frame(first_seq: int, last_seq: int, events_bytes: bytes, magic: bytes) -> bytes:
    """One event frame (``engine.wire.frames.encode_event_frame``'s bytes), in C."""

def encode_stream_frame(body: bytes) -> bytes:
    """One stream-link frame (``engine.wire.streamframe.encode_frame``'s bytes)."""

def encode_journal_batch(
    first_seq: int, payload: bytes, magic: bytes, version: int, rec_size: int
) -> bytes:
    """One journal batch (``engine.journal.encode_batch``'s bytes), in C."""

class SmallTurn:
    """The compiled stream-only turn of one ``CoreServer``."""

    turns: int
    direct_batches: int
    direct_log_frames: int
    direct_replies: int
    inject_sync_errno: int

    def __init__(
        self,
        server: Any,
        allowed_kinds: bytes,
        stream_role: str,
        event_magic: bytes,
        max_frame_events: int,
        pub_zero_copy_bytes: int,
        journal_error: type[Exception] | None = None,
        journal_magic: bytes = b"",
        journal_version: int = 0,
        poll_max_events: int = 256,
        storage_error: type[Exception] | None = None,
    ) -> None: ...
    def turn(self, timeout_ms: int) -> int:
        """``CoreServer.turn`` (the poll, then this turn or the Python one)."""
    def turn_metrics(
        self, t0_ns: int, n_cmds: int, n_messages: int, replies: bytes, full: bool
    ) -> None:
        """``CoreMetrics.turn_done`` for this turn, in C."""
    def run(self, ready: dict[Any, int]) -> int:
        """Serve one turn; -1 (nothing done) if not stream-only, else commands applied."""
