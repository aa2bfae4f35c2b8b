# cython: language_level=3
"""The API's order path in Cython: ``POST /api/v3/order`` head, parameters, exact
decimals and the answer's JSON.

Each function is the compiled twin of a Python function of ``api/`` that stays as
its oracle (tests/api/test_apihttp.py holds each pair to the same results over
random and malformed inputs with hypothesis):

- :func:`parse_head`: ``api.fasthttp.FastHttp.parse_head_py`` (request line and
  headers of a request the fast path answers, else None);
- :func:`request_params`: ``api.auth.request_params_py`` for the usual requests
  (nothing to percent-decode, no duplicate, within the limits); None for anything
  else, which the Python code then answers (its error included): every refusal
  keeps Python's code and message;
- :func:`to_units`: the integer part of ``api.symbols.SymbolSpec.price_to_ticks`` /
  ``qty_to_lots`` (a decimal string on a grid, exactly; None when malformed: the
  Python code raises the -1100/-1102 error);
- :func:`fixed` and :func:`order_text`: ``api.symbols._fixed`` and
  ``api.orders.new_order_text_py`` (the new-order answer, byte for byte
  ``json.dumps`` of its dict);
- :func:`http_answer` and :func:`order_answer`: ``api.fasthttp.http_answer_py`` (an
  answer's bytes, head and body; a new order's 200 answer in one call);
- :func:`new_order_values`: ``api.orders.parse_new_order_py`` for the usual new
  orders (None for anything else: the Python code answers);
- :func:`client_id`: ``api.clientids.ClientIds.of_py`` (a generated clientOrderId);
- :func:`timestamp_ok`: ``api.auth.Authenticator.check_timestamp`` for the
  timestamps it accepts (False for anything else: the Python code answers).

Nothing here imports bursa beyond the standard library (pyx sits below ``api`` in
the layering): limits and grids are arguments; errors are the callers'.
"""

cimport cython
from cpython.object cimport PyObject
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp

import json
import sys

cdef extern from "Python.h":
    PyObject* PyDict_SetDefault(object d, object key, object default) except NULL
    Py_ssize_t PyDict_Size(object d) except -1
    object PyUnicode_DecodeASCII(const char* s, Py_ssize_t size, const char* errors)
    bint PyUnicode_IS_ASCII(object o)
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL

cdef const char* _ROUTE = b"/api/v3/order"
cdef Py_ssize_t _ROUTE_LEN = 13
cdef int64_t _I64_MAX = 9223372036854775807
cdef int64_t _POW10[19]
_POW10[0] = 1
for _i in range(1, 19):
    _POW10[_i] = _POW10[_i - 1] * 10


# ------------------------------------------------------------------ the head


cdef inline bint _ws(unsigned char c) noexcept nogil:
    """``bytes.strip()``'s whitespace (ASCII)."""
    return c == 32 or c == 9 or c == 10 or c == 13 or c == 11 or c == 12


cdef inline unsigned char _lower(unsigned char c) noexcept nogil:
    return c + 32 if 65 <= c <= 90 else c


cdef bint _is_word(const unsigned char* p, Py_ssize_t n, const char* word) noexcept nogil:
    """``p[:n].lower() == word`` (``word`` lower-case ASCII, NUL-terminated)."""
    cdef Py_ssize_t i
    for i in range(n):
        if word[i] == 0 or _lower(p[i]) != <unsigned char>word[i]:
            return False
    return word[n] == 0


cdef Py_ssize_t _find_crlf(const unsigned char* s, Py_ssize_t at, Py_ssize_t n) noexcept nogil:
    """The index of the first ``\\r\\n`` at or after ``at``, else ``n``."""
    while at + 1 < n:
        if s[at] == 13 and s[at + 1] == 10:
            return at
        at += 1
    return n


cdef int _connection(const unsigned char* s, Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """A ``Connection`` value's tokens: -1 one is ``upgrade``, 1 one is ``close``, else 0."""
    cdef Py_ssize_t ta, tb, e
    cdef int close = 0
    while True:
        e = a
        while e < b and s[e] != 44:  # ","
            e += 1
        ta, tb = a, e
        while ta < tb and _ws(s[ta]):
            ta += 1
        while tb > ta and _ws(s[tb - 1]):
            tb -= 1
        if _is_word(s + ta, tb - ta, b"upgrade"):
            return -1
        if _is_word(s + ta, tb - ta, b"close"):
            close = 1
        if e >= b:
            return close
        a = e + 1


def parse_head(bytes head, Py_ssize_t max_body):
    """(query, body length, API key, close after) of a request the fast path answers,
    else None (``api.fasthttp.FastHttp.parse_head_py``, the oracle, says which)."""
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(head)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(head)
    cdef Py_ssize_t eol = _find_crlf(s, 0, n)
    cdef Py_ssize_t i, ta, tb, qa, a, b, colon, va, vb
    cdef int64_t length = -1
    cdef int hosts = 0, conn
    cdef bint close = False
    cdef object key = ""
    # The request line: b"POST " target b" HTTP/1.1", the target without a space.
    if eol < 14 or s[0] != 80 or s[1] != 79 or s[2] != 83 or s[3] != 84 or s[4] != 32:
        return None
    if (s[eol - 9] != 32 or s[eol - 8] != 72 or s[eol - 7] != 84 or s[eol - 6] != 84
            or s[eol - 5] != 80 or s[eol - 4] != 47 or s[eol - 3] != 49 or s[eol - 2] != 46
            or s[eol - 1] != 49):
        return None
    ta, tb = 5, eol - 9
    for i in range(ta, tb):
        if s[i] == 32:
            return None
    if tb - ta < _ROUTE_LEN:
        return None
    for i in range(_ROUTE_LEN):
        if s[ta + i] != <unsigned char>_ROUTE[i]:
            return None
    qa = ta + _ROUTE_LEN
    if qa < tb:
        if s[qa] != 63:  # "?"
            return None
        qa += 1
    for i in range(qa, tb):
        if s[i] == 35 or s[i] >= 128:  # "#", or not ASCII
            return None
    if eol >= n:
        return None  # no header: no Host
    a = eol + 2
    while True:
        b = _find_crlf(s, a, n)
        colon = a
        while colon < b and s[colon] != 58:  # ":"
            colon += 1
        if colon >= b or colon == a or _ws(s[a]) or _ws(s[colon - 1]):
            return None
        va, vb = colon + 1, b
        while va < vb and (s[va] == 32 or s[va] == 9):
            va += 1
        while vb > va and (s[vb - 1] == 32 or s[vb - 1] == 9):
            vb -= 1
        if _is_word(s + a, colon - a, b"content-length"):
            if length >= 0 or vb == va or vb - va > 9:
                return None
            length = 0
            for i in range(va, vb):
                if not 48 <= s[i] <= 57:
                    return None
                length = length * 10 + (s[i] - 48)
        elif _is_word(s + a, colon - a, b"x-mbx-apikey"):
            if key:
                return None
            for i in range(va, vb):
                if s[i] >= 128:
                    return None
            key = PyUnicode_DecodeASCII(<const char*>s + va, vb - va, NULL)
        elif _is_word(s + a, colon - a, b"host"):
            hosts += 1
        elif _is_word(s + a, colon - a, b"connection"):
            conn = _connection(s, va, vb)
            if conn < 0:
                return None
            close = conn == 1
        elif (_is_word(s + a, colon - a, b"transfer-encoding")
                or _is_word(s + a, colon - a, b"expect")
                or _is_word(s + a, colon - a, b"upgrade")):
            return None
        if b >= n:
            break
        a = b + 2
    if length < 0 or length > max_body or hosts != 1:
        return None
    return PyUnicode_DecodeASCII(<const char*>s + qa, tb - qa, NULL), length, key, close


# ------------------------------------------------------------ the parameters


# Parameter names of the order path, made once: a name among them costs no new
# string (nor the hash of one) per request.
_KNOWN = ("symbol", "side", "type", "timeInForce", "quantity", "quoteOrderQty", "price",
          "stopPrice", "newClientOrderId", "newOrderRespType", "selfTradePreventionMode",
          "recvWindow", "timestamp", "signature", "origClientOrderId", "orderId")
cdef list _KNOWN_STR = [sys.intern(k) for k in _KNOWN]
cdef list _KNOWN_BYTES = [k.encode("ascii") for k in _KNOWN]
for _k in _KNOWN_STR:
    hash(_k)
# The same as C arrays (the bytes above keep the text alive): the look-up below costs
# a length compare per name, no list item, reference count or type check.
cdef Py_ssize_t _NKNOWN = len(_KNOWN)
cdef const char* _KNOWN_P[16]
cdef Py_ssize_t _KNOWN_N[16]
cdef PyObject* _KNOWN_O[16]
assert _NKNOWN <= 16
for _i in range(_NKNOWN):
    _KNOWN_P[_i] = PyBytes_AS_STRING(_KNOWN_BYTES[_i])
    _KNOWN_N[_i] = PyBytes_GET_SIZE(_KNOWN_BYTES[_i])
    _KNOWN_O[_i] = <PyObject*>_KNOWN_STR[_i]


cdef object _name(const char* s, Py_ssize_t n):
    """The ``str`` of ``s[:n]`` (ASCII): a made-once one for a known name."""
    cdef Py_ssize_t i
    for i in range(_NKNOWN):
        if _KNOWN_N[i] == n and memcmp(_KNOWN_P[i], s, n) == 0:
            return <object>_KNOWN_O[i]
    return PyUnicode_DecodeASCII(s, n, NULL)


cdef bint _split(const char* s, Py_ssize_t n, dict out, int max_params):
    """Add ``s``'s ``k=v`` items to ``out``; False if one needs decoding or is there
    already, or ``out`` would hold more than ``max_params``."""
    cdef Py_ssize_t a = 0, b, eq, size
    while a < n:
        b = a
        eq = -1
        while b < n and s[b] != 38:  # "&"
            if s[b] == 37 or s[b] == 43:  # "%", "+"
                return False
            if s[b] == 61 and eq < 0:  # "="
                eq = b
            b += 1
        if b > a:
            if eq < 0:
                k = _name(s + a, b - a)
                v = ""
            else:
                k = _name(s + a, eq - a)
                v = PyUnicode_DecodeASCII(s + eq + 1, b - eq - 1, NULL)
            # One look-up: a name already there keeps its first value, the dict does
            # not grow (a duplicate; values may be shared objects, so not by identity).
            size = PyDict_Size(out)
            PyDict_SetDefault(out, k, v)
            if PyDict_Size(out) == size:
                return False
        a = b + 1
    return len(out) <= max_params


cdef str _strip_signature(const char* s, Py_ssize_t n):
    """``s`` without its items starting ``signature=`` (the rest byte for byte)."""
    cdef Py_ssize_t a = 0, b, at = -1
    cdef list keep
    cdef bint dropped = False
    # The usual case: one signature item, the last one: the text before it.
    for b in range(n - 10, -1, -1):
        if memcmp(s + b, b"signature=", 10) == 0:
            at = b
            break
    if at < 0:
        return PyUnicode_DecodeASCII(s, n, NULL)
    if at == 0 or s[at - 1] == 38:
        b = at + 10
        while b < n and s[b] != 38:
            b += 1
        if b == n:
            # No other signature item before it?
            for b in range(0, at - 9):
                if memcmp(s + b, b"signature=", 10) == 0 and (b == 0 or s[b - 1] == 38):
                    break
            else:
                return PyUnicode_DecodeASCII(s, at - 1 if at > 0 else 0, NULL)
    keep = []
    while True:
        b = a
        while b < n and s[b] != 38:
            b += 1
        if b - a >= 10 and memcmp(s + a, b"signature=", 10) == 0:
            dropped = True
        else:
            keep.append(PyUnicode_DecodeASCII(s + a, b - a, NULL))
        if b >= n:
            break
        a = b + 1
    if not dropped:
        return PyUnicode_DecodeASCII(s, n, NULL)
    return "&".join(keep)


def request_params(str query, bytes raw, Py_ssize_t max_payload, int max_params):
    """(parameters, total params string as signed) of a raw query string and body
    when nothing is unusual (``api.auth.request_params_py`` then gives the same);
    None otherwise: the caller runs the Python code, which decodes or refuses."""
    cdef Py_ssize_t qn, bn = PyBytes_GET_SIZE(raw), i
    cdef const char* q
    cdef const char* body = PyBytes_AS_STRING(raw)
    if not PyUnicode_IS_ASCII(query):
        return None
    q = PyUnicode_AsUTF8AndSize(query, &qn)
    if bn > max_payload or qn + bn > max_payload:
        return None
    for i in range(bn):
        if <unsigned char>body[i] >= 128:
            return None
    cdef dict out = {}
    if not _split(q, qn, out, max_params) or not _split(body, bn, out, max_params):
        return None
    return out, _strip_signature(q, qn) + _strip_signature(body, bn)


# ------------------------------------------------------------------ decimals


def to_units(object s, object num, object den, object step, object lo, object hi):
    """A decimal string ``^[0-9]{1,40}(\\.[0-9]{1,40})?$`` as a whole number of units,
    ``s * num / den`` exactly: the units, or -1 when that is not whole, not a
    multiple of ``step`` or outside ``lo..hi`` (Binance's filter failure); None when
    ``s`` is no such string (``api.symbols._decimal_parts`` raises its error)."""
    cdef Py_ssize_t n, i, dot = -1, d
    cdef const char* p
    cdef int64_t v = 0, cnum, cden, scale, units, cstep, clo, chi
    if type(s) is not str or not PyUnicode_IS_ASCII(s):
        return None
    p = PyUnicode_AsUTF8AndSize(s, &n)
    if n == 0:
        return None
    for i in range(n):
        if p[i] == 46:  # "."
            if dot >= 0:
                return None
            dot = i
        elif not 48 <= p[i] <= 57:
            return None
    if dot < 0:
        if n > 40:
            return None
        d = 0
    else:
        d = n - dot - 1
        if dot == 0 or dot > 40 or d == 0 or d > 40:
            return None
    if n - (dot >= 0) <= 18 and d <= 18:
        for i in range(n):
            if i != dot:
                v = v * 10 + (p[i] - 48)
        try:
            cnum, cden, cstep, clo, chi = num, den, step, lo, hi
        except OverflowError:
            pass
        else:
            scale = _POW10[d]
            if 0 < cnum and 0 < cden and cstep > 0 and (v == 0 or cnum <= _I64_MAX // v) \
                    and cden <= _I64_MAX // scale:
                if (v * cnum) % (scale * cden):
                    return -1
                units = (v * cnum) // (scale * cden)
                if units % cstep or not clo <= units <= chi:
                    return -1
                return units
    # Beyond 64 bits: the same with Python integers.
    digits = s if dot < 0 else s[:dot] + s[dot + 1:]
    q, r = divmod(int(digits) * num, (<object>10) ** (<object>d) * den)
    if r or q % step or not lo <= q <= hi:
        return -1
    return q


# ------------------------------------------------------------------ the answer


def fixed(object n, Py_ssize_t decimals):
    """``n / 10**decimals`` with exactly ``decimals`` digits after the point
    (``api.symbols._fixed``)."""
    return _fixed_c(n, decimals)


cdef str _fixed_c(object n, Py_ssize_t decimals):
    """:func:`fixed` for the calls inside this module (no Python call)."""
    cdef int64_t v
    cdef uint64_t u
    cdef char digits[72]
    cdef char out[96]
    cdef int k, nd, at = 0, j
    try:
        v = n
    except OverflowError:
        return _fixed_big(n, decimals)
    if decimals > 60 or decimals < 0:
        return _fixed_big(n, decimals)
    if v < 0:
        out[at] = 45  # "-"
        at += 1
        u = <uint64_t>(-(v + 1)) + 1
    else:
        u = <uint64_t>v
    nd = 0
    while True:
        digits[nd] = <char>(48 + u % 10)
        u //= 10
        nd += 1
        if u == 0:
            break
    # digits[] is reversed; pad with zeros to decimals + 1 digits.
    while nd < decimals + 1:
        digits[nd] = 48
        nd += 1
    for k in range(nd - 1, -1, -1):
        if k == decimals - 1:
            out[at] = 46  # "."
            at += 1
        out[at] = digits[k]
        at += 1
    return PyUnicode_DecodeASCII(out, at, NULL)


cdef str _fixed_big(object n, object decimals):
    sign = "-" if n < 0 else ""
    digits = str(abs(n)).rjust(decimals + 1, "0")
    if decimals == 0:
        return sign + digits
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


cdef dict _QUOTED = {}


def quote_words(words):
    """Words quoted once (the answers' fixed words: sides, types, statuses)."""
    for w in words:
        _QUOTED[w] = f'"{w}"'


cpdef str js(str s):
    """``s`` as a JSON string, as ``json.dumps`` writes it (``api.orders._js``)."""
    cdef Py_ssize_t n, i
    cdef const char* p
    q = _QUOTED.get(s)
    if q is not None:
        return q
    if PyUnicode_IS_ASCII(s):
        p = PyUnicode_AsUTF8AndSize(s, &n)
        for i in range(n):
            if not 32 <= p[i] <= 126 or p[i] == 34 or p[i] == 92:
                break
        else:
            return f'"{s}"'
    return json.dumps(s)


def order_text(tuple grid, o, str resp_type, list fills):
    """``json.dumps`` of the new-order answer (``api.orders.new_order_json``) byte for
    byte; ``grid`` is ``(name as JSON, quote asset as JSON, tick in price units,
    price decimals, lot in quantity units, quantity decimals, quote decimals)``."""
    return _order_text(grid, o, resp_type, fills)


cdef bytes _http_answer(str status, str ctype, object used, str date, str server, bint close,
                        bytes body):
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nX-MBX-USED-WEIGHT-1M: {used}\r\n"
        f"Content-Length: {PyBytes_GET_SIZE(body)}\r\nDate: {date}\r\nServer: {server}\r\n"
    )
    head += "Connection: close\r\n\r\n" if close else "\r\n"
    return head.encode() + body


def http_answer(str status, str ctype, object used, str date, str server, bint close,
                bytes body):
    """The bytes of one answer of ``api.fasthttp`` (``api.fasthttp.http_answer_py``):
    ``status`` as "200 OK", the ``X-MBX-USED-WEIGHT-1M`` value ``used``, the ``Date``
    and ``Server`` values, ``Connection: close`` if ``close``, then ``body``."""
    return _http_answer(status, ctype, used, date, server, close, body)


def order_answer(tuple grid, o, str resp_type, list fills, object used, str date, str server,
                 bint close):
    """The bytes of a new order's 200 answer in one call: :func:`http_answer` of
    "200 OK", ``application/json; charset=utf-8`` and :func:`order_text` (UTF-8)."""
    return _http_answer("200 OK", "application/json; charset=utf-8", used, date, server, close,
                        _order_text(grid, o, resp_type, fills).encode())


cdef str _order_text(tuple grid, o, str resp_type, list fills):
    cdef str name_js = grid[0]
    cdef str asset_js = grid[1]
    tick, pdec, lot, qdec, cdec = grid[2], grid[3], grid[4], grid[5], grid[6]
    head = (
        f'{{"symbol": {name_js}, "orderId": {o.order_id}, "orderListId": -1,'
        f' "clientOrderId": {js(o.client_order_id)}, "transactTime": {o.time_ms}'
    )
    if resp_type == "ACK":
        return head + "}"
    status = o.status
    if status == "PENDING_NEW":
        status = "NEW"
    typ = o.type
    parts = [
        head, ', "price": "', _fixed_c(o.price * tick, pdec), '", "origQty": "',
        _fixed_c(o.qty * lot, qdec), '", "executedQty": "', _fixed_c(o.executed * lot, qdec),
        '", "cummulativeQuoteQty": "', _fixed_c(o.cum_quote, cdec), '", "status": ', js(status),
        ', "timeInForce": ', js(o.tif), ', "type": ', js(typ), ', "side": ', js(o.side),
        f', "workingTime": {o.time_ms}, "selfTradePreventionMode": "NONE"',
    ]
    if typ == "STOP_LOSS" or typ == "STOP_LOSS_LIMIT":
        parts += [', "stopPrice": "', _fixed_c(o.stop * tick, pdec), '"']
    if o.quote_qty:
        parts += [', "origQuoteOrderQty": "', _fixed_c(o.quote_qty, cdec), '"']
    if resp_type == "FULL":
        parts.append(', "fills": [')
        first = True
        for f in fills:
            if not first:
                parts.append(", ")
            first = False
            parts += [
                '{"price": "', _fixed_c(f.price * tick, pdec), '", "qty": "', _fixed_c(f.qty * lot, qdec),
                '", "commission": "', _fixed_c(f.commission, cdec), '", "commissionAsset": ',
                asset_js, f', "tradeId": {f.trade_id}}}',
            ]
        parts.append("]")
    parts.append("}")
    return "".join(parts)


# ------------------------------------------------------------------ the order


cdef bint _client_id_ok(str cl):
    """``^[a-zA-Z0-9_-]{1,36}$`` (``api.orders.CLIENT_ID_RE``)."""
    cdef Py_ssize_t n, i
    cdef const char* p
    cdef unsigned char c
    if not PyUnicode_IS_ASCII(cl):
        return False
    p = PyUnicode_AsUTF8AndSize(cl, &n)
    if n < 1 or n > 36:
        return False
    for i in range(n):
        c = <unsigned char>p[i]
        if not (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c == 95 or c == 45):
            return False
    return True


def new_order_values(dict params, tuple grid, tuple consts):
    """The usual new order (LIMIT, LIMIT_MAKER, MARKET by ``quantity``, every field
    valid) as ``(side, type, timeInForce, clientOrderId, price ticks, quantity lots,
    side code, order type code, tif code, stp code, flags)``, what
    ``api.orders.parse_new_order_py`` gives; None for anything else (another type, a
    missing or refused field), which the Python code then answers, its error included.

    ``grid`` is ``(price grid, quantity grid, price multiplier, minimum notional)``
    (each grid as :func:`to_units` takes it); ``consts`` is ``(BUY, SELL, LIMIT,
    MARKET, POST_ONLY, IOC, {tif name: code}, {stp name: code})``."""
    side_s = params.get("side")
    if side_s == "BUY":
        side = consts[0]
    elif side_s == "SELL":
        side = consts[1]
    else:
        return None
    typ = params.get("type")
    cl = params.get("newClientOrderId") or ""
    if cl and (type(cl) is not str or not _client_id_ok(cl)):
        return None
    stp = (<dict>consts[7]).get(params.get("selfTradePreventionMode", "NONE"))
    if stp is None:
        return None
    flags = 0
    if typ == "LIMIT" or typ == "LIMIT_MAKER":
        if typ == "LIMIT":
            tif_s = params.get("timeInForce") or ""
            tif = (<dict>consts[6]).get(tif_s)
            if tif is None:
                return None
        else:
            tif_s = "GTC"
            tif = (<dict>consts[6])["GTC"]
            flags = consts[4]
        price = to_units(params.get("price"), *grid[0])
        if price is None or price < 0:
            return None
        qty = to_units(params.get("quantity"), *grid[1])
        if qty is None or qty < 0:
            return None
        if price * qty * grid[2] < grid[3]:
            return None
        return side_s, typ, tif_s, cl, price, qty, side, consts[2], tif, stp, flags
    if typ == "MARKET":
        if params.get("quoteOrderQty"):
            return None
        qty = to_units(params.get("quantity"), *grid[1])
        if qty is None or qty < 0:
            return None
        return side_s, typ, "GTC", cl, 0, qty, side, consts[3], consts[5], stp, 0
    return None


cdef const char* _SORTABLE62 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
cdef const char* _B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def client_id(uint64_t order_id, bytes pool, Py_ssize_t at):
    """A generated clientOrderId (``api.clientids.ClientIds.of_py``): the low seven
    base-62 digits of ``order_id`` (ASCII order) then the first 15 characters of the
    URL-safe base64 of ``pool[at:at + 12]``."""
    cdef char out[22]
    cdef const unsigned char* b
    cdef Py_ssize_t i
    cdef uint64_t v = order_id
    cdef unsigned int w
    if at < 0 or at + 12 > PyBytes_GET_SIZE(pool):
        raise ValueError("pool too short")
    for i in range(6, -1, -1):
        out[i] = _SORTABLE62[v % 62]
        v //= 62
    b = <const unsigned char*>PyBytes_AS_STRING(pool) + at
    for i in range(4):  # 3 bytes -> 4 characters; 12 bytes -> 16, the last dropped
        w = (b[3 * i] << 16) | (b[3 * i + 1] << 8) | b[3 * i + 2]
        out[7 + 4 * i] = _B64URL[(w >> 18) & 63]
        out[8 + 4 * i] = _B64URL[(w >> 12) & 63]
        out[9 + 4 * i] = _B64URL[(w >> 6) & 63]
        if i < 3:
            out[10 + 4 * i] = _B64URL[w & 63]
    return PyUnicode_DecodeASCII(out, 22, NULL)


# ------------------------------------------------------------------ the signature


cdef bint _digits(object s, Py_ssize_t most, int64_t* out):
    """``s`` is a str of 1..``most`` ASCII digits (``most`` <= 18): its value."""
    cdef Py_ssize_t n, i
    cdef const char* p
    cdef int64_t v = 0
    if type(s) is not str or not PyUnicode_IS_ASCII(s):
        return False
    p = PyUnicode_AsUTF8AndSize(s, &n)
    if n < 1 or n > most:
        return False
    for i in range(n):
        if not 48 <= p[i] <= 57:
            return False
        v = v * 10 + (p[i] - 48)
    out[0] = v
    return True


def timestamp_ok(object ts_s, object rw_s, int64_t rw_max, int64_t rw_default,
                 int64_t future_ms, int64_t now_ms):
    """True when ``timestamp`` ``ts_s`` (at most 16 digits) is within the
    ``recvWindow`` ``rw_s`` (None: ``rw_default``; at most 10 digits, 1..``rw_max``)
    of ``now_ms`` and less than ``future_ms`` ahead; False otherwise, and the caller
    runs ``api.auth.Authenticator.check_timestamp`` (the oracle), which answers with
    its error."""
    cdef int64_t ts, rw
    if not _digits(ts_s, 16, &ts):
        return False
    if rw_s is None:
        rw = rw_default
    elif not _digits(rw_s, 10, &rw):
        return False
    if rw > rw_max or rw <= 0:
        return False
    return ts < now_ms + future_ms and now_ms - ts <= rw
