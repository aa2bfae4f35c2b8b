"""Stubs of pyx.enums, generated from pyx/enums.pxd by tools/gen_docs.py."""

from enum import IntEnum

class Side(IntEnum):
    BUY = 1
    SELL = 2

class OrdType(IntEnum):
    LIMIT = 1
    MARKET = 2
    MARKET_QUOTE = 3
    STOP_LIMIT = 4
    STOP_MARKET = 5

class Tif(IntEnum):
    GTC = 1
    IOC = 2
    FOK = 3

class Stp(IntEnum):
    STP_NONE = 0
    CANCEL_NEWEST = 1
    CANCEL_OLDEST = 2
    CANCEL_BOTH = 3
    DECREMENT = 4

class CmdKind(IntEnum):
    NEW = 1
    CANCEL = 2
    REDUCE = 3
    REPLACE = 4
    MASS_CANCEL = 5

class CmdFlag(IntEnum):
    POST_ONLY = 1
    MASS_ALL_USERS = 2

class EvKind(IntEnum):
    ACCEPTED = 1
    REJECTED = 2
    TRADE = 3
    CANCELED = 4
    REDUCED = 5
    REPLACED = 6
    TRIGGERED = 7

class EvFlag(IntEnum):
    TAKER_DONE = 1
    MAKER_DONE = 2

class Reason(IntEnum):
    OK = 0
    USER_CANCELED = 1
    IOC_REMAINDER = 2
    NO_LIQUIDITY = 3
    SELF_TRADE = 4
    MASS_CANCELED = 5
    BUDGET_EXHAUSTED = 6
    DUPLICATE_ORDER_ID = 101
    UNKNOWN_ORDER_ID = 102
    INVALID_QTY = 103
    QTY_OFF_LOT = 104
    QTY_OUT_OF_RANGE = 105
    PRICE_OFF_TICK = 106
    PRICE_OUT_OF_BAND = 107
    NOTIONAL_OVERFLOW = 108
    POST_ONLY_WOULD_TAKE = 109
    FOK_NOT_FILLABLE = 110
    INVALID_SIDE = 111
    INVALID_ORDER_TYPE = 112
    INVALID_TIF = 113
    INVALID_STP = 114
    BOOK_FULL = 115
    REDUCE_NOT_SMALLER = 116
    STOP_WOULD_TRIGGER = 117
    NOT_REPLACEABLE = 118
    REPLACE_NO_CHANGE = 119
    INVALID_FLAGS = 120
    UNKNOWN_COMMAND = 121
