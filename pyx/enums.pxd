# The enums every layer shares.  Values are wire values: never renumber.
# docs/reject-codes.md is checked against Reason by tests/pyx/test_enums.py.

cpdef enum Side:
    BUY = 1
    SELL = 2

cpdef enum OrdType:
    LIMIT = 1
    MARKET = 2          # by base quantity (lots)
    MARKET_QUOTE = 3    # buy only, by quote budget (notional = sum of price_ticks * qty_lots)
    STOP_LIMIT = 4      # becomes LIMIT when the last trade price reaches stop_price_ticks
    STOP_MARKET = 5     # becomes MARKET when the last trade price reaches stop_price_ticks

cpdef enum Tif:
    GTC = 1
    IOC = 2
    FOK = 3

cpdef enum Stp:
    STP_NONE = 0
    CANCEL_NEWEST = 1   # cancel the taker's remainder
    CANCEL_OLDEST = 2   # cancel the resting maker, keep matching
    CANCEL_BOTH = 3
    DECREMENT = 4       # reduce both by the smaller quantity, no trade

cpdef enum CmdKind:
    NEW = 1
    CANCEL = 2
    REDUCE = 3          # cancel down to a smaller remaining quantity, keeps priority
    REPLACE = 4         # new price and/or remaining quantity
    MASS_CANCEL = 5     # by user, user+side, or whole book (flag MASS_ALL_USERS)
    # core admin commands (field mapping: engine/wire/commands.py, docs/commands.md)
    ADD_ASSET = 20
    ADD_SYMBOL = 21
    SET_MIN_NOTIONAL = 22
    ADD_USER = 23
    ADD_FEE_TIER = 24
    SET_FEE_TIER = 25
    HALT_SYMBOL = 26
    RESUME_SYMBOL = 27
    SUSPEND_USER = 28
    RESUME_USER = 29
    CANCEL_ALL_SYMBOL = 30  # admin mass cancel of a whole book
    # core funding commands
    DEPOSIT = 31            # idempotent by external reference
    WITHDRAW_HOLD = 32      # available -> held, idempotent by withdrawal id
    WITHDRAW_COMMIT = 33    # the held amount leaves the exchange
    WITHDRAW_RELEASE = 34   # held -> available
    TRANSFER = 35           # between two accounts of one user
    # core admin commands added later
    SET_USER_ORDER_LIMIT = 36   # live orders per user at most

cpdef enum CmdFlag:
    POST_ONLY = 1
    MASS_ALL_USERS = 2

cpdef enum EvKind:
    ACCEPTED = 1
    REJECTED = 2
    TRADE = 3
    CANCELED = 4
    REDUCED = 5
    REPLACED = 6
    TRIGGERED = 7
    # core events (field mapping: engine/wire/events.py, docs/commands.md)
    ASSET_ADDED = 20
    SYMBOL_ADDED = 21
    MIN_NOTIONAL_SET = 22
    USER_ADDED = 23
    FEE_TIER_ADDED = 24
    FEE_TIER_SET = 25
    SYMBOL_HALTED = 26
    SYMBOL_RESUMED = 27
    USER_SUSPENDED = 28
    USER_RESUMED = 29
    DEPOSITED = 31
    WITHDRAW_HELD = 32
    WITHDRAW_COMMITTED = 33
    WITHDRAW_RELEASED = 34
    TRANSFERRED = 35
    USER_ORDER_LIMIT_SET = 36

cpdef enum EvFlag:
    TAKER_DONE = 1      # on TRADE: the taker has no open quantity left
    MAKER_DONE = 2      # on TRADE: the maker has no open quantity left

# One reason table for every layer (exchange-core CommandResultCode).
#   0        OK
#   1..99    cancel reasons (not errors)
#   100..199 book rejects
#   200..299 risk rejects (core)
#   300..399 core / admin / funding rejects
#   400..499 gateway rejects
cpdef enum Reason:
    OK = 0                      # success
    # cancel reasons
    USER_CANCELED = 1           # canceled (or reduced to zero) by its owner
    IOC_REMAINDER = 2           # unfilled remainder of an IOC/FOK limit order
    NO_LIQUIDITY = 3            # market remainder: nothing left within the protection band
    SELF_TRADE = 4              # removed by self-trade prevention
    MASS_CANCELED = 5           # removed by a mass cancel
    BUDGET_EXHAUSTED = 6        # market-by-quote remainder: budget buys less than one lot
    # book rejects
    DUPLICATE_ORDER_ID = 101    # an order with this id is live
    UNKNOWN_ORDER_ID = 102      # no live order with this id
    INVALID_QTY = 103           # zero or negative quantity / budget
    QTY_OFF_LOT = 104           # not a multiple of the symbol's lot step
    QTY_OUT_OF_RANGE = 105      # outside [min_qty_lots, max_qty_lots]
    PRICE_OFF_TICK = 106        # not a multiple of the symbol's tick step
    PRICE_OUT_OF_BAND = 107     # outside [min_price_ticks, max_price_ticks]
    NOTIONAL_OVERFLOW = 108     # price * qty does not fit in int64
    POST_ONLY_WOULD_TAKE = 109  # post-only order would trade on arrival (rejected, not repriced)
    FOK_NOT_FILLABLE = 110      # fill-or-kill order cannot be filled completely
    INVALID_SIDE = 111          # side not BUY/SELL (or SELL on a market-by-quote order)
    INVALID_ORDER_TYPE = 112    # unknown order type
    INVALID_TIF = 113           # time in force not allowed for the order type
    INVALID_STP = 114           # unknown self-trade prevention mode
    BOOK_FULL = 115             # the book holds max_orders live orders
    REDUCE_NOT_SMALLER = 116    # reduce to a quantity not below the open quantity
    STOP_WOULD_TRIGGER = 117    # stop price already reached by the last trade price
    NOT_REPLACEABLE = 118       # stop orders can only be canceled
    REPLACE_NO_CHANGE = 119     # replace with the same price and quantity
    INVALID_FLAGS = 120         # e.g. post-only on a non-limit or non-GTC order
    UNKNOWN_COMMAND = 121       # command kind not known to this layer
    # risk rejects (core)
    UNKNOWN_USER = 201          # no user with this id
    USER_NOT_ACTIVE = 202       # the user is suspended
    UNKNOWN_SYMBOL = 203        # no symbol with this id
    SYMBOL_NOT_TRADING = 204    # the symbol is halted (new orders and replaces rejected)
    INSUFFICIENT_FUNDS = 205    # available balance below the worst-case hold
    NOT_ORDER_OWNER = 206       # the order belongs to another user (no longer produced: order ids are per user)
    BELOW_MIN_NOTIONAL = 207    # order value below the symbol's minimum notional
    INVALID_ORDER_ID = 208      # order id 0 is reserved
    TOO_MANY_ORDERS = 209       # the core holds its maximum number of live orders
    ORDER_ID_TOO_OLD = 210      # order id not above the user's high-water mark and not a remembered duplicate
    USER_ORDER_LIMIT = 211      # the user holds its maximum number of open orders
    # core / admin / funding rejects
    UNKNOWN_ASSET = 301         # no asset with this id
    ASSET_EXISTS = 302          # an asset with this id exists
    SYMBOL_EXISTS = 303         # a symbol with this id exists
    USER_EXISTS = 304           # a user with this id exists
    UNKNOWN_FEE_TIER = 305      # no fee tier with this id
    FEE_TIER_EXISTS = 306       # a fee tier with this id exists
    INVALID_CONFIG = 307        # configuration not exact, out of range or overflow-prone
    INVALID_AMOUNT = 308        # amount zero or negative
    INVALID_ACCOUNT = 309       # account index not 0 (trading) or 1 (funding), or from == to
    AMOUNT_OVERFLOW = 310       # the credit would exceed the asset's supply bound
    UNKNOWN_WITHDRAWAL = 311    # no withdrawal with this id
    WITHDRAWAL_RELEASED = 312   # the withdrawal was released; it cannot be committed
    WITHDRAWAL_COMMITTED = 313  # the withdrawal was committed; it cannot be released
    INVALID_ID = 314            # id 0 or outside the supported range
    ALREADY_IN_STATE = 315      # halt of a halted symbol, suspend of a suspended user, ...
    EXISTS_WITH_DIFFERENT_FIELDS = 316  # id/reference already used by a command with other fields
    REFERENCE_TOO_OLD = 317     # reference below the remembered window: cannot tell a retry from a new one
    # core process (engine/server.py)
    MALFORMED_FRAME = 390       # command message not whole 96-byte records, empty, too large or not one part
    WRONG_SOCKET = 391          # command kind or control request not allowed on this socket; frame not applied
    RATE_LIMITED = 392          # expensive control request over its per-turn budget; retry later
    INVALID_REQUEST = 393       # control request with a missing, mistyped or out-of-range field
