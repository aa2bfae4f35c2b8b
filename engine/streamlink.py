"""The core's stream trade link: frames on a unix stream socket, served by the core loop.

A ZeroMQ round trip wakes an I/O thread on each side (four thread wake-ups per
request and reply); on a local link most of the gateway's acknowledgement
latency is that.  This link carries the same bytes as the zmq ``trade`` socket,
length-prefixed (:mod:`engine.wire.streamframe`), on a unix stream socket whose
listening descriptor and connections the core's own poller
(:mod:`engine.looppoll`) watches, so a command is read, committed and answered in
the same loop turn as those of the zmq sockets, with no other thread involved.

Access: the socket file is 0600 in a 0700 directory (as ``ipc://`` endpoints,
:mod:`engine.security`), and a connection whose peer (``SO_PEERCRED``) is not the
core's own OS user or root is closed at once.  The link is local only: across
machines the zmq ``trade`` socket (with CURVE) stays the way in.

The same class serves the event stream link (``events_stream_endpoint``,
``inbound=False``): every PUB frame, the same bytes, length-prefixed, to each
connected subscriber; a subscriber sends nothing (any byte closes it), and one
whose queued frames pass :data:`MAX_EVENT_OUT_BYTES` is closed like a stopped
reader (it fills the gap from the replay service after reconnecting, as a PUB
subscriber does after ZeroMQ dropped frames for it).

Bounds (named below): connections, body bytes per frame, bytes read per
connection per turn (fairness), bytes queued out per connection (a peer that
stops reading is closed: it never grows the core's memory or blocks the loop;
a partial write is kept and finished when the socket is writable).  Nothing a
peer sends can stop the core or change state: a length over the bound, a read
error or an end of stream closes that connection only.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import struct
from pathlib import Path

import zmq

from engine.looppoll import LoopPoller
from engine.wire.streamframe import FrameDecoder, StreamFrameError, encode_frame

log = logging.getLogger("bursa.core.streamlink")

SCHEME = "unix:"
# Open connections at most; beyond, a new one is accepted and closed at once.
MAX_STREAM_CONNS = 64
# Connections accepted per loop turn at most (a connection flood cannot stall a turn).
MAX_ACCEPTS_PER_TURN = 16
# Bytes read from one connection per loop turn at most: a busy peer cannot starve
# the others (the rest stays in the kernel; the level-triggered poll sees it next turn).
READ_BYTES_PER_TURN = 1 << 20
# Reply bytes queued for one connection at most; a peer that lets more pile up is
# not reading and is closed (its kernel buffer is full too).
MAX_OUT_BYTES = 32 << 20
# Event bytes queued for one subscriber of the event stream link at most (as PUB's
# 2,048 frames of <= 64 KiB); beyond, it is closed.
MAX_EVENT_OUT_BYTES = 128 << 20
# Listen backlog of the socket (connections waiting for accept).
LISTEN_BACKLOG = 64
# sun_path holds 108 bytes with the terminating NUL.
UNIX_PATH_MAX = 107
_PEERCRED = struct.Struct("3i")  # pid, uid, gid (struct ucred)
POLLIN = int(zmq.POLLIN)
POLLOUT = int(zmq.POLLOUT)


def stream_path(endpoint: str) -> str:
    """The socket path of a ``unix:/abs/path`` endpoint.

    Raises
    ------
    ValueError
        Not ``unix:`` followed by an absolute path of at most 107 bytes.
    """
    if not endpoint.startswith(SCHEME):
        raise ValueError(f"stream endpoint must be unix:/absolute/path, not {endpoint!r}")
    path = endpoint[len(SCHEME) :]
    if not path.startswith("/"):
        raise ValueError(f"stream endpoint path must be absolute: {endpoint!r}")
    if len(os.fsencode(path)) > UNIX_PATH_MAX:
        raise ValueError(f"stream endpoint path over {UNIX_PATH_MAX} bytes: {endpoint!r}")
    return path


def _claim_path(path: str) -> None:
    """Make ``path`` free to bind: its directory 0700, a stale socket file removed.

    Raises
    ------
    OSError
        Another process serves on the path, or it is not a socket.
    """
    d = Path(path).parent
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    if d.stat().st_uid == os.getuid():
        d.chmod(0o700)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # left by a process that died (kill -9): nobody listens
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"another process serves on {path}")


class StreamConn:
    """One accepted connection: its decoder, its queued reply bytes."""

    __slots__ = ("decoder", "deferred", "doomed", "fd", "key", "out", "sock")

    def __init__(self, sock: socket.socket, max_body_bytes: int) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.key = self.fd.to_bytes(4, "little")  # the reply routing key within a turn
        self.decoder = FrameDecoder(max_body_bytes)
        self.out = bytearray()  # reply bytes the kernel did not take yet
        self.doomed = False  # close once this turn's replies had their chance
        self.deferred: list[bytes] = []  # bodies read but not staged (batch full)


class StreamLink:
    """The listening socket and its connections, watched by the core's poller.

    Parameters
    ----------
    endpoint : str
        ``unix:/abs/path`` to bind.
    poller : engine.looppoll.LoopPoller
        The core loop's poller: the listening descriptor and every connection's are
        registered in it (POLLIN; POLLOUT only while replies wait).
    max_body_bytes : int
        Largest frame body accepted (the core's ``MAX_MESSAGE_BYTES``).
    name : str
        Prefix of the counters (``trade_stream``, ``events_stream``).
    inbound : bool
        Whether peers send frames (the trade link) or nothing (the event stream
        link: a byte from a subscriber is a protocol error).
    """

    def __init__(
        self,
        endpoint: str,
        poller: LoopPoller,
        max_body_bytes: int,
        name: str = "trade_stream",
        inbound: bool = True,
    ) -> None:
        self.name = name
        self.inbound = inbound
        self.path = stream_path(endpoint)
        self.endpoint = SCHEME + self.path
        self.poller = poller
        self.max_body_bytes = max_body_bytes
        _claim_path(self.path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        os.chmod(self.path, 0o600)
        self._inode = os.stat(self.path).st_ino
        self.listener.listen(LISTEN_BACKLOG)
        self.listener.setblocking(False)
        self.listen_fd = self.listener.fileno()
        poller.register(self.listen_fd, POLLIN)
        self.conns: dict[int, StreamConn] = {}
        self.by_key: dict[bytes, StreamConn] = {}
        self.doomed: list[StreamConn] = []
        # Connections whose bodies wait for the next turn (the batch was full).
        self.deferred: list[StreamConn] = []
        self.n_accepted = 0
        self.n_refused = 0
        self.n_protocol_errors = 0
        self.n_slow_closed = 0
        self._uid = os.getuid()
        #: Bytes read from one connection per turn at most (READ_BYTES_PER_TURN).
        self.read_bytes = READ_BYTES_PER_TURN

    def counters(self) -> dict[str, int]:
        """The link's counters for the core's ``status`` (and ready line)."""
        n = self.name
        return {
            f"{n}_conns": len(self.conns),
            f"{n}_accepted": self.n_accepted,
            f"{n}_refused": self.n_refused,
            f"{n}_protocol_errors": self.n_protocol_errors,
            f"{n}_slow_closed": self.n_slow_closed,
        }

    # ------------------------------------------------------------------ input

    def read(self, ready: dict[object, int]) -> list[tuple[StreamConn, list[bytes]]]:
        """Serve this turn's poll result: accept, write pending replies, read frames.

        Returns the complete bodies read per connection, connections in poll order.
        """
        out: list[tuple[StreamConn, list[bytes]]] = []
        skip: list[StreamConn] = []
        if self.deferred:
            # Bodies left over from a full batch go first; their connections are
            # not read again until those are staged (the bound on what one holds).
            for conn in self.deferred:
                out.append((conn, conn.deferred))
                conn.deferred = []
            skip = [c for c, _ in out]
            self.deferred = []
        conns = self.conns
        for fd, ev in ready.items():
            conn = conns.get(fd)  # type: ignore[call-overload]
            if conn is None:
                if fd == self.listen_fd:
                    self._accept()
                continue
            if ev & POLLOUT:
                self._flush(conn)
            if ev & ~POLLOUT and not conn.doomed and (not skip or conn not in skip):
                bodies = self._read(conn)
                if bodies:
                    out.append((conn, bodies))
        return out

    def defer(self, conn: StreamConn, bodies: list[bytes]) -> None:
        """Keep bodies the turn's batch had no room for; :meth:`read` returns them
        first next turn (the core polls without waiting while any are kept)."""
        if conn.fd in self.conns and bodies:
            conn.deferred = bodies
            self.deferred.append(conn)

    def _read(self, conn: StreamConn) -> list[bytes]:
        try:
            data = conn.sock.recv(self.read_bytes)
        except BlockingIOError:
            return []
        except OSError as e:
            self.read_failed(conn, e)
            return []
        return self.decode(conn, data)

    def read_failed(self, conn: StreamConn, e: OSError) -> None:
        """A read of ``conn`` failed (not "would block"): close it."""
        log.info("stream connection %d: read failed (%s): closed", conn.fd, e)
        self.close_conn(conn)

    def decode(self, conn: StreamConn, data: bytes) -> list[bytes]:
        """The bodies that ``data``, just read from ``conn``, completes; an end of
        stream, a byte from an event subscriber or a framing error handled.  (The
        compiled turn, :mod:`pyx.smallturn`, reads in C and calls this for every
        read that is not exactly one whole frame.)"""
        if not data:
            # End of stream (a half-close included): pending replies still get a try.
            self._doom(conn)
            return []
        if not self.inbound:
            self.n_protocol_errors += 1
            log.warning("%s connection %d: a subscriber sends nothing: closed", self.name, conn.fd)
            self.close_conn(conn)
            return []
        try:
            return conn.decoder.feed(data)
        except StreamFrameError as e:
            self.n_protocol_errors += 1
            log.warning("stream connection %d: %s: closed", conn.fd, e)
            self.close_conn(conn)
            return []

    def _accept(self) -> None:
        for _ in range(MAX_ACCEPTS_PER_TURN):
            try:
                sock, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of descriptors: the pending ones wait
                log.error("stream link accept failed: %s", e)
                return
            _pid, uid, _gid = _PEERCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            )
            if uid not in (self._uid, 0) or len(self.conns) >= MAX_STREAM_CONNS:
                self.n_refused += 1
                log.warning(
                    "stream link: connection refused (%s)",
                    f"peer uid {uid}" if uid not in (self._uid, 0) else "connection limit",
                )
                sock.close()
                continue
            sock.setblocking(False)
            conn = StreamConn(sock, self.max_body_bytes)
            self.conns[conn.fd] = conn
            self.by_key[conn.key] = conn
            self.poller.register(conn.fd, POLLIN)
            self.n_accepted += 1

    # ----------------------------------------------------------------- output

    def send(self, key: bytes, body: bytes) -> None:
        """Queue one reply body for the connection ``key`` (dropped if it is gone)."""
        conn = self.by_key.get(key)
        if conn is not None:
            self.queue_frame(conn, encode_frame(body))

    def broadcast(self, body: bytes) -> None:
        """Queue one body (an event frame) for every connection."""
        if not self.conns:
            return
        frame = encode_frame(body)
        for conn in list(self.conns.values()):
            if not conn.doomed:
                self.queue_frame(conn, frame)

    def _max_out(self) -> int:
        return MAX_OUT_BYTES if self.inbound else MAX_EVENT_OUT_BYTES

    def queue_frame(self, conn: StreamConn, frame: bytes) -> None:
        """Write one encoded frame to ``conn`` now, or queue what the kernel does not
        take (after bytes already queued); a peer over the bound is closed.  (The
        compiled turn, :mod:`pyx.smallturn`, sends its reply frames through it.)"""
        if conn.out:
            if len(conn.out) + len(frame) > self._max_out():
                self._slow(conn)
                return
            conn.out += frame
            return
        try:
            sent = conn.sock.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError as e:
            log.info("stream connection %d: write failed (%s): closed", conn.fd, e)
            self.close_conn(conn)
            return
        if sent < len(frame):
            if len(frame) - sent > self._max_out():
                self._slow(conn)
                return
            conn.out += frame[sent:]
            self.poller.modify(conn.fd, POLLIN | POLLOUT)

    def _flush(self, conn: StreamConn) -> None:
        """Write queued reply bytes (the socket polled writable)."""
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            return
        except OSError as e:
            log.info("stream connection %d: write failed (%s): closed", conn.fd, e)
            self.close_conn(conn)
            return
        del conn.out[:sent]
        if not conn.out:
            self.poller.modify(conn.fd, POLLIN)

    def _slow(self, conn: StreamConn) -> None:
        self.n_slow_closed += 1
        log.warning(
            "%s connection %d: over %d bytes queued (peer not reading): closed",
            self.name,
            conn.fd,
            self._max_out(),
        )
        self.close_conn(conn)

    def _doom(self, conn: StreamConn) -> None:
        conn.doomed = True
        self.doomed.append(conn)

    def end_turn(self) -> None:
        """Close the connections that ended their stream this turn, after one last
        try to write their pending replies."""
        doomed, self.doomed = self.doomed, []
        for conn in doomed:
            if conn.fd in self.conns and conn.out:
                self._flush(conn)
            self.close_conn(conn)

    # ----------------------------------------------------------------- close

    def close_conn(self, conn: StreamConn) -> None:
        """Forget and close one connection (idempotent)."""
        if self.conns.pop(conn.fd, None) is None:
            return
        self.by_key.pop(conn.key, None)
        self.poller.unregister(conn.fd)
        conn.sock.close()

    def close(self) -> None:
        """Close every connection and the listener; remove the socket file if ours."""
        for conn in list(self.conns.values()):
            self.close_conn(conn)
        self.poller.unregister(self.listen_fd)
        self.listener.close()
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass
