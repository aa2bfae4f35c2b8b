"""The replay service: serves event frames from the event log to late subscribers.

It runs in its own thread with its own ZeroMQ ROUTER socket and its own storage
instance, reading only the event log files (never core state), so a long replay
never stalls the command loop beyond the GIL it shares.  Request and answer
shapes are in :mod:`engine.wire.frames`: a client (REQ, or DEALER sending an
empty delimiter first) sends ``encode_replay_request(from_seq, max_events)`` and
receives ONE multipart message: zero or more event frames, then an end marker
whose ``next_seq`` says where to ask next.  A client loops until
``next_seq > last_seq`` of the end marker, then switches to the live PUB stream.
"""

from __future__ import annotations

import logging
import threading

import zmq

from engine.eventlog import EventLogReader
from engine.security import CurveServerKeys, make_server_socket
from engine.storage import FileStorage, StorageError
from engine.wire.frames import (
    REPLAY_BAD_REQUEST,
    REPLAY_NOT_AVAILABLE,
    FrameError,
    decode_replay_request,
    encode_replay_end,
)

log = logging.getLogger("bursa.replay_service")

# Bounds of one answer: the client asks again from next_seq for more.
REPLAY_EVENTS_MAX = 65536
REPLAY_BYTES_MAX = 8 << 20
# How often the thread wakes to check for shutdown.
REPLAY_POLL_MS = 100
# Requests served per wake-up before checking for shutdown again.
REPLAY_REQUESTS_PER_WAKE = 64


class ReplayService(threading.Thread):
    """Thread serving replay requests on a ROUTER socket.

    Parameters
    ----------
    ctx : zmq.Context
        Shared context (sockets are created inside the thread).
    endpoint : str
        Where to bind (``tcp://127.0.0.1:*`` picks a free port).
    directory : str
        Data directory holding the ``events-*.log`` segments.
    curve : CurveServerKeys, optional
        Serve as a CURVE server with these keys (the core's own socket policy).
    max_message_bytes : int
        ZMQ_MAXMSGSIZE of the socket (0: no limit).
    """

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        directory: str,
        curve: CurveServerKeys | None = None,
        max_message_bytes: int = 0,
    ) -> None:
        super().__init__(name="bursa-replay", daemon=True)
        self.ctx = ctx
        self.endpoint = endpoint
        self.directory = directory
        self.bound_endpoint = ""
        self.ready = threading.Event()
        self.stop_flag = threading.Event()
        self.error: BaseException | None = None
        self.requests_served = 0
        self.curve = curve
        self.max_message_bytes = max_message_bytes

    def run(self) -> None:
        """Bind, then answer requests until :meth:`stop`."""
        storage = FileStorage(self.directory)
        reader = EventLogReader(storage)
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        if self.max_message_bytes:
            sock.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        make_server_socket(sock, self.curve, "replay")
        try:
            sock.bind(self.endpoint)
            self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        except BaseException as e:
            self.error = e
            self.ready.set()
            sock.close()
            storage.close()
            raise
        self.ready.set()
        try:
            while not self.stop_flag.is_set():
                if not sock.poll(REPLAY_POLL_MS):
                    continue
                for _ in range(REPLAY_REQUESTS_PER_WAKE):
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    sock.send_multipart(self._answer(reader, parts))
                    self.requests_served += 1
        finally:
            sock.close()
            storage.close()

    def _answer(self, reader: EventLogReader, parts: list[bytes]) -> list[bytes]:
        head = parts[:1]
        body = parts[1:]
        if len(body) == 2 and body[0] == b"":
            head.append(b"")
            body = body[1:]
        try:
            if len(body) != 1:
                raise FrameError("replay request must be one part")
            from_seq, max_events = decode_replay_request(body[0])
        except FrameError as e:
            log.warning("replay: bad request: %s", e)
            return [*head, encode_replay_end(REPLAY_BAD_REQUEST, 0, reader.last_seq)]
        limit = min(max_events, REPLAY_EVENTS_MAX) if max_events else REPLAY_EVENTS_MAX
        try:
            frames, next_seq, status = reader.read(from_seq, limit, REPLAY_BYTES_MAX)
        except (StorageError, OSError) as e:
            # Retention removed a segment under the read: those events are too old now.
            log.info("replay: %s; answering not available", e)
            reader.refresh()
            frames, next_seq, status = [], reader.first_seq, REPLAY_NOT_AVAILABLE
        return [*head, *frames, encode_replay_end(status, next_seq, reader.last_seq)]

    def stop(self) -> None:
        """Ask the thread to exit and wait for it."""
        self.stop_flag.set()
        self.join(timeout=5)
