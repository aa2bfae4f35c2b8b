# cython: language_level=3
"""The core's common small turn, compiled (issues #17 and #22).

:class:`SmallTurn` runs, in C, the part of ``CoreServer.turn`` that follows the
poll when only stream-link descriptors fired (the gateway's and the API's way in):
it stages the frames the stream link read (record count, kind check and copy into
the staging buffer), hands the batch to the Sequencer's ``stage`` (stamp, journal
write, read-back, apply), encodes the event frame and the reply bytes, calls
``make_durable`` (the fdatasync in fsync mode), appends the frame to the event log,
publishes it, sends the replies and records the turn's metrics.  The same calls in
the same order as the Python turn (``CoreServer._turn_ready``), so the journal, the
event log, the published frames and the replies are the same bytes; the Python turn
stays the oracle (``tests/engine/test_compiled_turn.py`` runs both on the same
inputs and compares every byte and the state).

Not handled here (``run`` returns -1 having done nothing, and the server runs the
Python turn): a ZeroMQ socket in the poll result (trade/fund/admin commands and
control requests), bodies a full batch left for the next turn, and an event batch
larger than one frame.  I/O goes through the same objects as in the Python turn
(the link, the Sequencer's journal writer and ``Storage``, the event log, the PUB
socket), so fault injection, the storage-failure exits and every bound still apply;
nothing leaves the process and nothing is logged before ``make_durable`` returned.

This module imports nothing of the engine (the layering rule): the server hands
it its objects and constants.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyBUF_READ
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.memoryview cimport PyMemoryView_FromMemory
from libc.errno cimport errno
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset
from cpython.bytearray cimport PyByteArray_GET_SIZE
from libc.errno cimport EAGAIN, EINTR, EIO
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.unistd cimport fdatasync, pread, pwrite

import os
import select
import time

import numpy as np
import zmq

from crc32c import crc32c as _crc32c

from bursa_wire.layout import CMD_DTYPE, CMD_SIZE as _CMD_SIZE, EV_SIZE as _EV_SIZE
from bursa_wire.layout import REPLY_DTYPE, STATUS_REJECTED as _STATUS_REJECTED

cdef Py_ssize_t CMD_BYTES = _CMD_SIZE
cdef Py_ssize_t EV_BYTES = _EV_SIZE
cdef Py_ssize_t KIND_AT = CMD_DTYPE.fields["kind"][1]
cdef Py_ssize_t SEQ_AT = CMD_DTYPE.fields["seq"][1]
cdef Py_ssize_t TS_AT = CMD_DTYPE.fields["ts_ns"][1]
cdef Py_ssize_t REPLY_BYTES = REPLY_DTYPE.itemsize
cdef Py_ssize_t REPLY_KIND_AT = REPLY_DTYPE.fields["kind"][1]
cdef Py_ssize_t REPLY_STATUS_AT = REPLY_DTYPE.fields["status"][1]
cdef unsigned char STATUS_REJECTED = _STATUS_REJECTED
#: A turn of at least this many commands has its metrics counted by
#: ``CoreMetrics.turn_done`` itself (numpy counting), below here.
cdef Py_ssize_t METRICS_LOOP_MAX = 256
cdef enum:
    # Bytes of an event frame's header (magic, count, first and last seq, CRC, pad).
    EVENT_HEADER_BYTES = 32
    # Bytes of a stream frame's length prefix (u32 little-endian).
    STREAM_HEADER_BYTES = 4
    # Bytes of a journal batch's header (the trailer is a copy of it).
    JOURNAL_HEADER_BYTES = 32
    # Largest batch the direct journal path writes (Sequencer.direct_journal's bound).
    DIRECT_MAX_CMDS = 64

cdef object _perf_counter_ns = time.perf_counter_ns
cdef int EPOLLIN_ = select.EPOLLIN
cdef int EPOLLOUT_ = select.EPOLLOUT
cdef int EPOLL_ERR_ = select.EPOLLERR | select.EPOLLHUP | select.EPOLLRDHUP


cdef extern from "<sys/socket.h>" nogil:
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    int MSG_NOSIGNAL


cdef inline uint32_t _get_u32(const unsigned char *p) noexcept nogil:
    return (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
            | (<uint32_t>p[3] << 24))


cdef inline void _put_u32(char *p, uint32_t v) noexcept nogil:
    # Little-endian whatever the host (the wire formats are little-endian).
    p[0] = <char>(v & 0xFF)
    p[1] = <char>((v >> 8) & 0xFF)
    p[2] = <char>((v >> 16) & 0xFF)
    p[3] = <char>((v >> 24) & 0xFF)


cdef inline void _put_u64(char *p, uint64_t v) noexcept nogil:
    _put_u32(p, <uint32_t>v)  # the low half (truncation)
    _put_u32(p + 4, <uint32_t>(v >> 32))


def encode_event_frame(uint64_t first_seq, uint64_t last_seq, bytes events_bytes,
                       bytes magic):
    """One event frame (``engine.wire.frames.encode_event_frame``'s bytes), in C.

    ``magic`` is the frame's 4-byte magic; ``events_bytes`` whole 96-byte records.
    """
    cdef Py_ssize_t nbytes = PyBytes_GET_SIZE(events_bytes)
    assert nbytes % EV_BYTES == 0, "event payload must be whole records"
    assert 0 < first_seq <= last_seq, (first_seq, last_seq)
    assert PyBytes_GET_SIZE(magic) == 4
    cdef Py_ssize_t n_events = nbytes // EV_BYTES
    assert n_events <= <Py_ssize_t>0xFFFFFFFFu
    head = PyBytes_FromStringAndSize(NULL, 24)
    cdef char *h = PyBytes_AS_STRING(head)
    memcpy(h, PyBytes_AS_STRING(magic), 4)
    _put_u32(h + 4, <uint32_t>n_events)
    _put_u64(h + 8, first_seq)
    _put_u64(h + 16, last_seq)
    cdef uint32_t crc = _crc32c(events_bytes, _crc32c(head))
    frame = PyBytes_FromStringAndSize(NULL, EVENT_HEADER_BYTES + nbytes)
    cdef char *f = PyBytes_AS_STRING(frame)
    memcpy(f, h, 24)
    _put_u32(f + 24, crc)
    _put_u32(f + 28, 0)
    memcpy(f + EVENT_HEADER_BYTES, PyBytes_AS_STRING(events_bytes), nbytes)
    return frame


cdef void _observe(object buckets, double value, long long n) except *:
    """``engine.metrics.Buckets.observe`` (the same bisect_left over its float bounds,
    the same double arithmetic)."""
    cdef tuple bounds = buckets.bounds
    cdef Py_ssize_t lo = 0, hi = len(bounds), mid
    while lo < hi:
        mid = (lo + hi) // 2
        if PyFloat_AS_DOUBLE(bounds[mid]) < value:
            lo = mid + 1
        else:
            hi = mid
    cdef list counts = buckets.counts
    counts[lo] = counts[lo] + n
    buckets.sum = buckets.sum + value * <double>n


def encode_stream_frame(bytes body):
    """One stream-link frame (``engine.wire.streamframe.encode_frame``'s bytes)."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body)
    assert n <= <Py_ssize_t>0xFFFFFFFFu
    frame = PyBytes_FromStringAndSize(NULL, STREAM_HEADER_BYTES + n)
    cdef char *f = PyBytes_AS_STRING(frame)
    _put_u32(f, <uint32_t>n)
    memcpy(f + STREAM_HEADER_BYTES, PyBytes_AS_STRING(body), n)
    return frame



cdef int _pwrite_all(int fd, const char *p, Py_ssize_t n, long long offset) noexcept nogil:
    """Write ``n`` bytes at ``offset`` (retrying EINTR and partial writes): 0, the
    errno of a failed ``pwrite``, or EIO for a write of nothing (``FileStorage``'s
    "short write")."""
    cdef Py_ssize_t done = 0, r
    while done < n:
        r = pwrite(fd, p + done, n - done, offset + done)
        if r < 0:
            if errno == EINTR:
                continue
            return errno
        if r == 0:
            return EIO
        done += r
    return 0

cdef class SmallTurn:
    """The compiled stream-only turn of one ``CoreServer`` (see the module doc).

    Parameters
    ----------
    server : engine.server.CoreServer
        Its ``stream`` (not None), ``sequencer``, ``eventlog``, ``metrics``,
        ``pub``, ``events_stream``, ``socks``, ``_stage`` and counters are used.
    allowed_kinds : bytes
        The kind values the ``trade`` role accepts.
    stream_role : str
        The role name the server's sender tuples use for the stream link.
    event_magic : bytes
        The event frame magic.
    max_frame_events : int
        Largest event count encoded here as one frame (more: the Python turn's split).
    pub_zero_copy_bytes : int
        Frames at least this long are published with ``copy=False``.
    journal_error : type, optional
        ``engine.journal.JournalWriteError``: given, small batches are journaled
        by the direct path when ``Sequencer.direct_journal`` allows it (see
        :meth:`_stage_direct`); None: always through ``Sequencer.stage``.
    journal_magic, journal_version : bytes, int
        The journal batch header's magic and version (with ``journal_error``).
    poll_max_events : int
        ``engine.looppoll.MAX_EVENTS`` (descriptors one wait returns at most).
    storage_error : type, optional
        ``engine.storage.StorageError``: given, an event frame is appended to an
        already-open event-log segment by one ``pwrite`` here (:meth:`_log_direct`)
        when the log's storage hands out its descriptors (``direct_fds``); None:
        always ``EventLog.append_frame``.
    """

    cdef object server
    cdef object stream
    cdef object events_stream
    cdef object metrics
    cdef object pub
    cdef tuple socks
    cdef object stage_arr
    cdef unsigned char[::1] stage
    cdef unsigned char allowed[256]
    cdef object stream_role
    cdef bytes event_magic
    cdef Py_ssize_t limit
    cdef Py_ssize_t max_frame_cmds
    cdef Py_ssize_t max_frame_events
    cdef Py_ssize_t pub_zero_copy_bytes
    cdef object journal_error
    cdef bytes journal_magic
    cdef unsigned int journal_version
    # The read-back buffer of the direct journal path (one largest direct batch).
    cdef char *scratch
    # The stream link's read buffer (its bytes per connection per turn).
    cdef char *rbuf
    cdef Py_ssize_t rbuf_size
    cdef int pollout
    cdef int pollin
    cdef int pollerr
    cdef object poller
    cdef object ep_poll
    cdef object storage_error
    # The event log's storage last seen and its name -> descriptor map (None: no
    # direct append); looked up again whenever the log's storage object changes.
    cdef object el_storage
    cdef object el_fds
    # pyzmq's compiled ``send`` (the backend's, below the Python ``Socket.send``
    # wrapper) when the PUB socket is a pyzmq socket; else None (``pub.send``).
    cdef object zsend
    cdef bint fsync_mode
    cdef int max_events
    #: Turns run here (for the tests and the status).
    cdef public long long turns
    #: Batches journaled by the direct path (the rest went through ``Sequencer.stage``).
    cdef public long long direct_batches
    #: Event frames appended by :meth:`_log_direct` (the rest: ``EventLog.append_frame``).
    cdef public long long direct_log_frames
    #: Reply frames written by one ``send`` here (the rest: ``StreamLink.queue_frame``).
    cdef public long long direct_replies
    #: Tests only: the next direct fdatasync fails with this errno (0: none).  The
    #: direct path bypasses the ``Storage`` object a test would wrap to inject it.
    cdef public int inject_sync_errno

    def __cinit__(self, *args, **kwargs):
        self.scratch = <char *>malloc(2 * JOURNAL_HEADER_BYTES + DIRECT_MAX_CMDS * CMD_BYTES)
        if self.scratch == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.scratch)
        free(self.rbuf)

    def __init__(self, server, bytes allowed_kinds, str stream_role, bytes event_magic,
                 Py_ssize_t max_frame_events, Py_ssize_t pub_zero_copy_bytes,
                 journal_error=None, bytes journal_magic=b"", unsigned int journal_version=0,
                 int poll_max_events=256, storage_error=None):
        assert server.stream is not None
        self.server = server
        self.stream = server.stream
        self.events_stream = server.events_stream
        self.metrics = server.metrics
        self.pub = server.pub
        self.socks = tuple(server.socks.values())
        self.stage_arr = server._stage
        self.stage = server._stage.view(np.uint8)
        memset(self.allowed, 0, 256)
        cdef unsigned char k
        for k in allowed_kinds:
            self.allowed[k] = 1
        self.stream_role = stream_role
        self.event_magic = event_magic
        self.limit = server.config.max_batch_cmds
        self.max_frame_cmds = server.config.max_frame_cmds
        self.max_frame_events = max_frame_events
        self.pub_zero_copy_bytes = pub_zero_copy_bytes
        assert self.stage.shape[0] >= (self.limit + self.max_frame_cmds) * CMD_BYTES
        assert journal_error is None or len(journal_magic) == 4
        self.journal_error = journal_error
        self.journal_magic = journal_magic
        self.journal_version = journal_version
        self.rbuf_size = getattr(self.stream, "read_bytes", 0)
        if self.rbuf_size > 0:
            self.rbuf = <char *>malloc(self.rbuf_size)
            if self.rbuf == NULL:
                raise MemoryError()
        self.pollout = int(zmq.POLLOUT)
        self.pollin = int(zmq.POLLIN)
        self.pollerr = int(zmq.POLLERR)
        self.poller = getattr(server, "poller", None)
        if self.poller is not None:
            self.ep_poll = self.poller._ep.poll
            self.max_events = poll_max_events
        self.turns = 0
        self.direct_batches = 0
        self.direct_log_frames = 0
        self.direct_replies = 0
        self.inject_sync_errno = 0
        self.storage_error = storage_error
        self.el_storage = None
        self.el_fds = None
        self.zsend = None
        backend = getattr(zmq.backend, "Socket", None)
        if backend is not None and isinstance(self.pub, backend):
            self.zsend = backend.send
        self.fsync_mode = getattr(getattr(server, "sequencer", None), "mode", "") == "fsync"

    cdef inline Py_ssize_t _count(self, bytes body):
        """Records of a command frame, or -1 if malformed (``_command_count``)."""
        cdef Py_ssize_t size = PyBytes_GET_SIZE(body)
        if size == 0 or size % CMD_BYTES or size // CMD_BYTES > self.max_frame_cmds:
            return -1
        return size // CMD_BYTES

    cdef inline bint _kinds_ok(self, bytes body, Py_ssize_t k):
        """Every record's kind is one the trade role accepts (``kinds_allowed``)."""
        cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(body)
        cdef Py_ssize_t i
        for i in range(k):
            if not self.allowed[p[i * CMD_BYTES + KIND_AT]]:
                return False
        return True

    cpdef long long turn(self, int timeout_ms) except -2:
        """``CoreServer.turn``: the poll (``LoopPoller.poll``'s common case in C: no
        ZeroMQ socket touched, only raw descriptors fired), then :meth:`run`, or the
        Python turn.  A wake-up involving a ZeroMQ socket goes on in
        ``LoopPoller.finish``; a touched socket, through ``LoopPoller.poll``."""
        stream = self.stream
        cdef bint deferred = bool(stream.deferred)
        cdef int t = 0 if deferred else timeout_ms
        cdef dict ready
        cdef list fired
        cdef dict zmq_fds
        cdef int ev, bits
        poller = self.poller
        if poller._touched:
            ready = dict(poller.poll(t))
        else:
            # t / 1000.0: a float division (t / 1000 of C ints would truncate to whole seconds).
            fired = self.ep_poll(-1.0 if t < 0 else t / 1000.0, self.max_events)
            zmq_fds = poller._zmq
            ready = {}
            for fd, pev in fired:
                if fd in zmq_fds:
                    ready = dict(poller.finish(fired, t))
                    break
                ev = pev
                bits = 0
                if ev & EPOLLIN_:
                    bits |= self.pollin
                if ev & EPOLLOUT_:
                    bits |= self.pollout
                if ev & EPOLL_ERR_:
                    bits |= self.pollerr
                ready[fd] = bits
        if not ready and not deferred:
            return 0
        cdef long long n = self.run(ready)
        if n >= 0:
            return n
        return self.server._turn_ready(ready)

    cpdef long long run(self, dict ready) except -2:
        """Serve one turn whose poll result is ``ready``; -1 (nothing done) if it is
        not a stream-only turn, else the commands applied."""
        cdef object stream = self.stream
        cdef object sock
        for sock in self.socks:
            if sock in ready:
                return -1
        if stream.deferred:
            return -1
        t0_ns = _perf_counter_ns()
        cdef list senders = []
        cdef list refused = []
        cdef Py_ssize_t n_cmds = 0
        cdef Py_ssize_t i, k, nb
        cdef list bodies
        cdef bytes body
        cdef unsigned char *dst
        for conn, bodies in self._read_stream(stream, ready):
            key = conn.key
            nb = len(bodies)
            for i in range(nb):
                if n_cmds >= self.limit:
                    stream.defer(conn, bodies[i:])
                    break
                body = bodies[i]
                k = self._count(body)
                if k <= 0:
                    senders.append((self.stream_role, key, False, PyBytes_GET_SIZE(body), -1))
                elif not self._kinds_ok(body, k):
                    senders.append((self.stream_role, key, False, len(refused), -2))
                    refused.append(body)
                else:
                    dst = &self.stage[n_cmds * CMD_BYTES]
                    memcpy(dst, PyBytes_AS_STRING(body), k * CMD_BYTES)
                    senders.append((self.stream_role, key, False, n_cmds, k))
                    n_cmds += k
        events_stream = self.events_stream
        if events_stream is not None and _link_ready(events_stream, ready):
            events_stream.read(ready)  # accepts, writes queued frames, closes senders
        cdef bytes replies = self._commit(n_cmds)
        self._send_replies(senders, replies, refused)
        if stream.doomed:
            stream.end_turn()
        if events_stream is not None and events_stream.doomed:
            events_stream.end_turn()
        self.turn_metrics(t0_ns, n_cmds, len(senders), replies, n_cmds >= self.limit)
        if n_cmds and self.fsync_mode:
            # (Sequencer.note_durable does nothing in the other modes.)
            self.server.sequencer.note_durable()
        self.turns += 1
        return n_cmds

    cdef list _read_stream(self, stream, dict ready):
        """``StreamLink.read`` for a turn with nothing deferred: accept, flush
        pending replies, read each ready connection (in C, :meth:`_recv`)."""
        cdef list out = []
        cdef dict conns = stream.conns
        listen_fd = stream.listen_fd
        cdef int ev
        for fd, pev in ready.items():
            conn = conns.get(fd)
            if conn is None:
                if fd == listen_fd:
                    stream._accept()
                continue
            ev = pev
            if ev & self.pollout:
                stream._flush(conn)
                if conns.get(fd) is not conn:
                    continue  # closed by the flush (a failed write)
            if ev & ~self.pollout and not conn.doomed:
                bodies = self._recv(stream, conn)
                if bodies:
                    out.append((conn, bodies))
        return out

    cdef list _recv(self, stream, conn):
        """``StreamLink._read`` of one connection: one ``recv`` of up to the link's
        ``read_bytes`` into this object's buffer; a read that is exactly one whole
        frame (the request/reply case; ``FrameDecoder.feed``'s own fast path)
        becomes its body here, anything else (a partial frame, several, an end of
        stream, a length over the bound) goes through ``StreamLink.decode``."""
        assert self.rbuf != NULL
        cdef int cfd = conn.fd
        cdef ssize_t r
        cdef int err = 0
        with nogil:
            while True:
                r = recv(cfd, self.rbuf, self.rbuf_size, 0)
                if r < 0 and errno == EINTR:
                    continue
                if r < 0:
                    err = errno
                break
        if r < 0:
            if err == EAGAIN:  # (EWOULDBLOCK on Linux)
                return []
            stream.read_failed(conn, OSError(err, os.strerror(err)))
            return []
        cdef uint32_t size
        decoder = conn.decoder
        if r >= STREAM_HEADER_BYTES and stream.inbound and not decoder.failed:
            size = _get_u32(<const unsigned char *>self.rbuf)
            if (<Py_ssize_t>size + STREAM_HEADER_BYTES == r
                    and PyByteArray_GET_SIZE(decoder._buf) == 0
                    and <Py_ssize_t>size <= <Py_ssize_t>decoder.max_body_bytes):
                decoder._need = 0
                return [PyBytes_FromStringAndSize(self.rbuf + STREAM_HEADER_BYTES, size)]
        return stream.decode(conn, PyBytes_FromStringAndSize(self.rbuf, r))

    cpdef turn_metrics(self, long long t0_ns, Py_ssize_t n_cmds, Py_ssize_t n_messages,
                       bytes replies, bint full):
        """``CoreMetrics.turn_done`` for this turn (the same counters, the same values);
        a large turn or one with rejects hands (part of) it to the metrics' own code."""
        m = self.metrics
        if n_cmds >= METRICS_LOOP_MAX:
            m.turn_done(t0_ns, n_cmds, n_messages, replies, full)
            return
        m.turns += 1
        m.turn_messages = n_messages
        if n_messages > m.turn_messages_max:
            m.turn_messages_max = n_messages
        if full:
            m.full_turns += 1
        if n_cmds == 0:
            return
        cdef long long now = _perf_counter_ns()
        # (now - t0) * 1e-9 as Python computes it: the int made a double, then multiplied.
        _observe(m.ack, <double>(now - t0_ns) * 1e-9, n_cmds)
        _observe(m.batch, <double>n_cmds, 1)
        assert PyBytes_GET_SIZE(replies) == n_cmds * REPLY_BYTES
        cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(replies)
        cdef list by_kind = m.commands_by_kind
        cdef Py_ssize_t i
        cdef unsigned char k
        cdef bint rejected = False
        for i in range(n_cmds):
            k = p[i * REPLY_BYTES + REPLY_KIND_AT]
            by_kind[k] = by_kind[k] + 1
            if p[i * REPLY_BYTES + REPLY_STATUS_AT] == STATUS_REJECTED:
                rejected = True
        if rejected:
            m.count_rejects(replies, replies[REPLY_KIND_AT::REPLY_BYTES],
                            replies[REPLY_STATUS_AT::REPLY_BYTES])

    cdef bytes _commit(self, Py_ssize_t n_cmds):
        """``CoreServer._commit``: stage, encode, make durable, log, publish."""
        if n_cmds == 0:
            return b""
        server = self.server
        seq = server.sequencer
        cdef long long prev_last = seq.last_seq
        cdef object direct = None
        if self.journal_error is not None:
            direct = seq.direct_journal(n_cmds)
        if direct is not None:
            events, replies = self._stage_direct(seq, <tuple>direct, n_cmds)
        else:
            # A view of the staging buffer (no copy), as in the Python turn.
            events, replies = seq.stage(self.stage_arr[:n_cmds])
        cdef long long last = seq.last_seq
        assert len(replies) == n_cmds, (len(replies), n_cmds)
        assert last >= prev_last
        cdef object frames = ()
        if last > prev_last:
            if len(events) <= self.max_frame_events:
                frames = ((encode_event_frame(prev_last + 1, last, events.tobytes(),
                                              self.event_magic), prev_last + 1, last),)
            else:
                frames = server._event_frames(prev_last + 1, last, events)
        if replies.dtype is not REPLY_DTYPE and replies.dtype != REPLY_DTYPE:
            replies = replies.astype(REPLY_DTYPE)
        cdef bytes out = replies.tobytes()
        if direct is not None:
            self._durable_direct(seq, <tuple>direct)
        else:
            seq.make_durable()
        eventlog = server.eventlog
        for frame, a, b in frames:
            if not self._log_direct(eventlog, <bytes>frame, a, b):
                eventlog.append_frame(frame, a, b)
            self._pub_send(frame)
        server.n_batches += 1
        server.n_commands += n_cmds
        server._cmds_since_snapshot += last - prev_last
        return out

    cdef tuple _stage_direct(self, seq, tuple direct, Py_ssize_t n):
        """``Sequencer.stage`` of ``n`` staged commands written straight to the
        journal's descriptor (``direct`` from ``Sequencer.direct_journal``): stamp,
        encode (``encode_journal_batch``'s bytes), ``pwrite`` at the writer's end,
        ``pread`` back and compare, apply; the writer's and the Sequencer's
        counters as ``JournalWriter.append``/``verify`` and ``stage`` set them.  A
        failed write or read-back marks the writer failed and raises
        ``JournalWriteError`` (the process exits through recovery), as there."""
        writer, fd, _hist, first, ts = direct
        assert 0 < n <= DIRECT_MAX_CMDS, n
        cdef int cfd = fd
        cdef uint64_t first_seq = first
        cdef uint64_t ts_ns = ts
        cdef char *base = <char *>&self.stage[0]
        cdef Py_ssize_t i
        for i in range(n):
            _put_u64(base + i * CMD_BYTES + SEQ_AT, first_seq + <uint64_t>i)
            _put_u64(base + i * CMD_BYTES + TS_AT, ts_ns)
        cdef Py_ssize_t plen = n * CMD_BYTES
        cdef Py_ssize_t total = 2 * JOURNAL_HEADER_BYTES + plen
        buf = PyBytes_FromStringAndSize(NULL, total)
        cdef char *o = PyBytes_AS_STRING(buf)
        memcpy(o + JOURNAL_HEADER_BYTES, base, plen)
        _journal_header(o, first_seq, o + JOURNAL_HEADER_BYTES, plen, self.journal_magic,
                        self.journal_version, CMD_BYTES)
        memcpy(o + JOURNAL_HEADER_BYTES + plen, o, JOURNAL_HEADER_BYTES)
        cdef long long offset = writer.size
        cdef Py_ssize_t r = 0
        cdef int err = 0
        writer.dirty = True
        with nogil:
            err = _pwrite_all(cfd, o, total, offset)
        if err:
            writer.failed = True
            raise self.journal_error(
                f"journal write of seq {first_seq} failed: [Errno {err}] write "
                f"{writer.segment}: {os.strerror(err)}")
        with nogil:
            while True:
                r = pread(cfd, self.scratch, total, offset)
                if r < 0 and errno == EINTR:
                    continue
                if r < 0:
                    err = errno
                break
        if err:
            writer.failed = True
            raise self.journal_error(
                f"journal read-back of {writer.segment} failed: [Errno {err}] read "
                f"{writer.segment}: {os.strerror(err)}")
        if r != total or memcmp(self.scratch, o, total) != 0:
            writer.failed = True
            raise self.journal_error(
                f"journal read-back of {writer.segment} at byte {offset} differs from what "
                f"was written ({r} of {total} bytes read)")
        writer.size = offset + total
        writer.next_seq = first_seq + <uint64_t>n
        core = seq.core
        events, replies = core.apply(self.stage_arr[:n])
        cdef uint64_t last = first_seq + <uint64_t>n - 1
        seq._last_seq = last
        assert core.last_seq == last, (core.last_seq, last)
        stats = seq.stats
        stats.batches += 1
        stats.commands += n
        seq._cmds_since_snap += n
        self.direct_batches += 1
        return events, replies

    cdef _durable_direct(self, seq, tuple direct):
        """``Sequencer.make_durable`` after :meth:`_stage_direct`: in fsync mode one
        ``fdatasync`` of the descriptor, timed into the segment's sync histogram
        (``TimedStorage.sync``), then the writer's synced seq and the Sequencer's
        sync count; a failure marks the writer failed and raises
        ``JournalWriteError`` with nothing sent.  (``direct_journal`` only allows a
        deferred high-water record and caller-driven snapshots: nothing else is due
        here.)"""
        if seq.mode != "fsync":
            return
        writer, fd, hist, _first, _ts = direct
        cdef int cfd = fd
        cdef int err = 0, r
        cdef timespec t0, t1
        clock_gettime(CLOCK_MONOTONIC, &t0)
        if self.inject_sync_errno:
            err, self.inject_sync_errno = self.inject_sync_errno, 0
        else:
            with nogil:
                while True:
                    r = fdatasync(cfd)
                    if r < 0 and errno == EINTR:
                        continue
                    if r < 0:
                        err = errno
                    break
        if err:
            writer.failed = True
            raise self.journal_error(
                f"journal sync of {writer.segment} failed: [Errno {err}] fdatasync "
                f"{writer.segment}: {os.strerror(err)}")
        clock_gettime(CLOCK_MONOTONIC, &t1)
        cdef long long dt_ns = (<long long>t1.tv_sec - t0.tv_sec) * 1_000_000_000 + (
            t1.tv_nsec - t0.tv_nsec)
        if hist is not None:
            _observe(hist, <double>dt_ns * 1e-9, 1)
        writer.dirty = False
        writer.synced_seq = writer.next_seq - 1
        seq.stats.syncs += 1

    cdef bint _log_direct(self, eventlog, bytes frame, long long first_seq,
                          long long last_seq) except -1:
        """``EventLog.append_frame`` of ``frame`` by one ``pwrite`` to the open
        descriptor of the log's current segment (``FileStorage.write_at``'s
        write, error text and exception); False (nothing done) when the frame
        starts a segment, the segment is not open yet, or the storage hands out no
        descriptors (a wrapper, a fault-injecting subclass): the caller then runs
        ``append_frame``, which opens the file, rolls the segment and asserts."""
        if self.storage_error is None:
            return False
        seg = eventlog._segment
        if seg is None:
            return False
        cdef long long size = eventlog._segment_size
        if size >= <long long>eventlog.segment_bytes_max:
            return False
        cdef long long prev = eventlog.last_seq
        if prev and first_seq != prev + 1 or first_seq > last_seq:
            return False  # append_frame's asserts say why
        storage = eventlog.storage
        if storage is not self.el_storage:
            getter = getattr(type(storage), "direct_fds", None)
            self.el_fds = getter(storage) if getter is not None else None
            self.el_storage = storage
        if self.el_fds is None:
            return False
        fdo = (<dict>self.el_fds).get(seg)
        if fdo is None:
            return False
        cdef int cfd = fdo
        cdef const char *p = PyBytes_AS_STRING(frame)
        cdef Py_ssize_t total = PyBytes_GET_SIZE(frame)
        cdef int err = 0
        with nogil:
            err = _pwrite_all(cfd, p, total, size)
        if err == EIO:
            raise self.storage_error(EIO, f"short write to {seg}")
        if err:
            raise self.storage_error(err, f"write {seg}: {os.strerror(err)}")
        eventlog._segment_size = size + total
        if not eventlog.first_seq:
            eventlog.first_seq = first_seq
        eventlog.last_seq = last_seq
        self.direct_log_frames += 1
        return True

    cdef _pub_send(self, bytes frame):
        """``CoreServer._pub_send`` (an event stream without connections is skipped
        here, as ``StreamLink.broadcast`` skips it; PUB through pyzmq's compiled
        ``send`` when it is a pyzmq socket)."""
        events_stream = self.events_stream
        if events_stream is not None and events_stream.conns:
            self._broadcast(events_stream, frame)
        if PyBytes_GET_SIZE(frame) < self.pub_zero_copy_bytes:
            if self.zsend is not None:
                self.zsend(self.pub, frame)
            else:
                self.pub.send(frame)
        else:
            self.pub.send(frame, copy=False)
        self.metrics.pub_frames += 1

    cdef _send_replies(self, list senders, bytes replies, list refused):
        """The common case (one sender, one well-formed frame) here; the rest
        through ``CoreServer._send_replies`` (grouping, malformed and refused)."""
        cdef tuple s
        if len(senders) == 1:
            s = <tuple>senders[0]
            if s[4] > 0:
                # One well-formed frame: its replies are the whole batch.
                assert s[3] == 0 and PyBytes_GET_SIZE(replies) == s[4] * REPLY_DTYPE.itemsize
                conn = self.stream.by_key.get(s[1])
                if conn is not None:
                    self._reply(conn, replies)
                return
        if senders:
            self.server._send_replies(senders, replies, refused)


    cdef _broadcast(self, link, bytes body):
        """``StreamLink.broadcast(body)`` (every connection not doomed gets the
        frame), each connection's write as :meth:`_send_frame`."""
        frame = encode_stream_frame(body)
        for conn in list((<dict>link.conns).values()):
            if not conn.doomed:
                self._send_frame(link, conn, frame)

    cdef _reply(self, conn, bytes body):
        """``StreamLink.queue_frame(conn, encode_frame(body))`` (:meth:`_send_frame`)."""
        if self._send_frame(self.stream, conn, encode_stream_frame(body)):
            self.direct_replies += 1

    cdef bint _send_frame(self, link, conn, bytes frame) except -1:
        """``link.queue_frame(conn, frame)``: with nothing queued for ``conn``, the
        frame goes out by one ``send`` here (True); what the kernel did not take
        (or a failed send) goes to ``queue_frame`` (it queues the rest under the
        link's bound, or logs and closes the connection)."""
        if PyByteArray_GET_SIZE(conn.out) != 0:
            link.queue_frame(conn, frame)
            return False
        cdef int cfd = conn.fd
        cdef const char *p = PyBytes_AS_STRING(frame)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(frame)
        cdef ssize_t r
        with nogil:
            while True:
                r = send(cfd, p, n, MSG_NOSIGNAL)
                if r < 0 and errno == EINTR:
                    continue
                break
        if r == n:
            return True
        # EAGAIN: all of it queued there; another error: the same send fails there
        # again and the connection is closed with its log line; partial: the rest.
        link.queue_frame(conn, frame if r <= 0 else frame[r:])
        return False


cdef bint _link_ready(link, dict ready) except -1:
    """Whether ``StreamLink.read(ready)`` has anything to do for ``link``: bodies
    deferred, or its listener or one of its connections in ``ready`` (else it
    returns no bodies having done nothing; the event stream's common turn)."""
    if link.deferred:
        return True
    listen_fd = link.listen_fd
    cdef dict conns = link.conns
    for fd in ready:
        if fd == listen_fd or fd in conns:
            return True
    return False


cdef void _journal_header(char *o, uint64_t first_seq, const char *payload, Py_ssize_t plen,
                         bytes magic, unsigned int version, unsigned int rec_size) except *:
    """Write a journal batch's 32-byte header for ``payload`` at ``o`` (``<4sHHQIII``
    + the CRC32C of those 28 bytes)."""
    assert PyBytes_GET_SIZE(magic) == 4 and rec_size > 0 and first_seq > 0
    assert plen > 0 and plen % rec_size == 0 and plen <= <Py_ssize_t>0xFFFFFFFFu
    memcpy(o, PyBytes_AS_STRING(magic), 4)
    o[4] = <char>(version & 0xFF)
    o[5] = <char>((version >> 8) & 0xFF)
    o[6] = <char>(rec_size & 0xFF)
    o[7] = <char>((rec_size >> 8) & 0xFF)
    _put_u64(o + 8, first_seq)
    _put_u32(o + 16, <uint32_t>(plen // rec_size))
    _put_u32(o + 20, <uint32_t>plen)
    # crc32c reads any buffer: a read-only memoryview over the bytes, no copy.
    cdef uint32_t pcrc = _crc32c(PyMemoryView_FromMemory(<char *>payload, plen, PyBUF_READ))
    _put_u32(o + 24, pcrc)
    cdef uint32_t hcrc = _crc32c(PyMemoryView_FromMemory(o, 28, PyBUF_READ))
    _put_u32(o + 28, hcrc)


def encode_journal_batch(uint64_t first_seq, bytes payload, bytes magic,
                         unsigned int version, unsigned int rec_size):
    """One journal batch (``engine.journal.encode_batch``'s bytes), in C: the 32-byte
    header (``<4sHHQIII`` + the CRC32C of those 28 bytes), ``payload`` (whole
    ``rec_size``-byte records), the header again as the trailer."""
    cdef Py_ssize_t plen = PyBytes_GET_SIZE(payload)
    out = PyBytes_FromStringAndSize(NULL, 64 + plen)
    cdef char *o = PyBytes_AS_STRING(out)
    memcpy(o + 32, PyBytes_AS_STRING(payload), plen)
    _journal_header(o, first_seq, o + 32, plen, magic, version, rec_size)
    memcpy(o + 32 + plen, o, 32)
    return out
