# cython: language_level=3
"""The usual signed request checked in one C call (``api.auth.Authenticator``'s base).

:meth:`Signer.signed_key` accepts a request whose key is cached and fresh, known,
not revoked, allowed from the peer, allowed to trade when ``trade``, an HMAC key
with its secret, whose timestamp :func:`pyx.apihttp.timestamp_ok` accepts and whose
HMAC-SHA256 matches: one call instead of the Python frames ``signed_key``,
``_key_secret``, ``lookup`` and ``_verify``.  Anything else (a cache miss, an
Ed25519 key, any refusal) is ``signed_key_py``'s, the subclass's Python method and
this one's oracle (``tests/api/test_auth_units.py`` holds the two to the same keys
and errors with hypothesis): every refusal keeps Python's code and message.

Nothing here imports bursa beyond ``pyx`` (pyx sits below ``api``): the key type,
cache lifetime and timestamp limits are arguments.
"""

cimport cython

import time
from _operator import _compare_digest

from pyx.apihttp import timestamp_ok

cdef object _monotonic = time.monotonic
cdef object _time_ns = time.time_ns


cdef class Signer:
    """The key cache (``_cache``: api key -> (monotonic time, key or None, HMAC
    secret)) and the HMAC objects keyed with each secret (``_macs``) the subclass
    fills; :meth:`signed_key` reads them."""

    cdef public dict _cache
    cdef public dict _macs
    cdef public object recv_window_max_ms
    cdef double ttl_s
    cdef str hmac_type
    cdef object rw_default_ms
    cdef object future_ms

    def __init__(self, recv_window_max_ms, double ttl_s, str hmac_type, rw_default_ms,
                 future_ms):
        self._cache = {}
        self._macs = {}
        self.recv_window_max_ms = recv_window_max_ms
        self.ttl_s = ttl_s
        self.hmac_type = hmac_type
        self.rw_default_ms = rw_default_ms
        self.future_ms = future_ms

    def signed_key(self, header, peer, dict params, payload, bint trade=False):
        """The key of a SIGNED request (``api.auth``'s module docstring); anything
        but the usual accepted request is ``signed_key_py``'s (it raises)."""
        hit = self._cache.get(header)
        if hit is None or _monotonic() - (<tuple>hit)[0] >= self.ttl_s:
            return self.signed_key_py(header, peer, params, payload, trade)
        key = (<tuple>hit)[1]
        secret = (<tuple>hit)[2]
        if (key is None or not secret or key.revoked or key.key_type != self.hmac_type
                or (trade and not key.can_trade)):
            return self.signed_key_py(header, peer, params, payload, trade)
        ips = key.allow_ips
        if ips and peer not in ips:
            return self.signed_key_py(header, peer, params, payload, trade)
        if not timestamp_ok(params.get("timestamp"), params.get("recvWindow"),
                            self.recv_window_max_ms, self.rw_default_ms, self.future_ms,
                            _time_ns() // 1_000_000):
            return self.signed_key_py(header, peer, params, payload, trade)
        sig = params.get("signature")
        proto = self._macs.get(secret)
        if not sig or proto is None or type(payload) is not str or type(sig) is not str:
            return self.signed_key_py(header, peer, params, payload, trade)
        mac = proto.copy()
        mac.update((<str>payload).encode())
        if not _compare_digest(mac.hexdigest(), (<str>sig).lower()):
            return self.signed_key_py(header, peer, params, payload, trade)
        return key
