# Integer types of the hot path, in one place (liquibook types.h).
# Prices are integer ticks, quantities integer lots, amounts integer minor units.
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint16_t, uint8_t, int32_t

ctypedef int64_t ticks_t     # price, in ticks
ctypedef int64_t lots_t      # quantity, in lots
ctypedef int64_t minor_t     # money, in an asset's minor units
ctypedef uint64_t oid_t      # order id
ctypedef uint64_t seq_t      # global sequence number
ctypedef uint32_t uid_t      # user id
ctypedef int32_t slot_t      # index into a preallocated pool; -1 = none
