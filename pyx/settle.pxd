# Settlement of the events a book call appended: fills (fees included), releases of
# ended orders, re-holds of reduced ones; every amount moves between held and available
# or to a fee account, so the sum over all accounts of an asset is conserved.
from libc.stdint cimport int32_t
from pyx.core cimport CoreState

cdef int settle_events(CoreState self, Py_ssize_t e0, int32_t ss) except -1
