# Fixed-layout little-endian records, packed.  The single source of truth for
# field names, order, types and units is bursa_wire/layout.py; these C structs
# mirror it and tests/pyx/test_layout.py fails on any drift (offsets and sizes).
from pyx.types cimport ticks_t, lots_t, oid_t, seq_t, uid_t
from libc.stdint cimport int64_t, uint64_t, uint32_t, uint16_t, uint8_t

cdef packed struct CmdRec:       # 96 bytes
    uint64_t seq                 # global sequence number (assigned by the sequencer)
    uint64_t ts_ns               # sequencer clock, ns since epoch
    uint64_t client_ref          # caller's correlation id, echoed in the reply
    uint64_t order_id            # order id (or external reference for funding commands)
    int64_t price_ticks          # limit price / new price
    int64_t qty_lots             # quantity / new remaining quantity / quote budget
    int64_t stop_price_ticks     # stop trigger price
    int64_t a0                   # command-specific (see layout.py)
    int64_t a1
    int64_t a2
    uint32_t user_id
    uint16_t symbol_id
    uint8_t kind                 # CmdKind (book) or core command kind
    uint8_t side                 # Side
    uint8_t ord_type             # OrdType
    uint8_t tif                  # Tif
    uint8_t stp                  # Stp
    uint8_t flags                # CmdFlag bits
    uint32_t a3

cdef packed struct EvRec:        # 96 bytes
    uint64_t seq                 # sequence number of the command that produced it
    uint64_t ts_ns               # sequencer clock of that command
    uint64_t order_id            # subject order (the taker on TRADE)
    uint64_t maker_order_id      # TRADE: resting order
    int64_t price_ticks
    int64_t qty_lots
    int64_t leaves_lots          # subject's open quantity after this event
    uint64_t match_id            # TRADE: monotonic per book
    int64_t taker_fee            # TRADE: filled by the core, minor units of quote
    int64_t maker_fee            # TRADE: filled by the core, minor units of quote
    uint32_t user_id
    uint32_t maker_user_id
    uint16_t symbol_id
    uint16_t reason              # Reason
    uint8_t kind                 # EvKind
    uint8_t side                 # Side (the aggressor on TRADE)
    uint8_t flags                # EvFlag bits
    uint8_t ord_type


cdef packed struct ReplyRec:     # 40 bytes, mirrors REPLY_DTYPE in bursa_wire/layout.py
    uint64_t seq
    uint64_t client_ref
    uint64_t order_id
    int64_t value
    uint32_t user_id
    uint16_t reason
    uint8_t kind
    uint8_t status
