# Trading commands (NEW, CANCEL, REDUCE, REPLACE, MASS_CANCEL): the checks and the hold
# of an order before it reaches its book, the book call, then settlement (pyx/settle.pyx).
from libc.stdint cimport int64_t, uint64_t, int32_t
from pyx.types cimport oid_t
from pyx.records cimport CmdRec
from pyx.core cimport CoreState, ReplyRec

cdef int new_order(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int cancel_order(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int reduce_order(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int replace_order(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int mass_cancel(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int remember_order(CoreState self, int32_t us, oid_t oid, uint64_t fp,
                        int64_t value) except -1
