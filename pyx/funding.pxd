# Funding commands (the wallet's socket): DEPOSIT, WITHDRAW_HOLD, WITHDRAW_COMMIT /
# WITHDRAW_RELEASE, TRANSFER, each exactly once per reference.
from pyx.records cimport CmdRec
from pyx.core cimport CoreState, ReplyRec

cdef int deposit(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int withdraw_hold(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int withdraw_end(CoreState self, const CmdRec* c, ReplyRec* r) except -1
cdef int transfer(CoreState self, const CmdRec* c, ReplyRec* r) except -1
