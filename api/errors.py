"""Errors in Binance's shape: an HTTP status plus ``{"code": int, "msg": str}``.

Client libraries (ccxt, python-binance) map the numeric ``code`` to their exception
classes, so every reject of the API is an :class:`ApiError` with Binance's code for
the same situation.  The table of codes used by bursa is in docs/api.md.
"""

from __future__ import annotations

import json

from aiohttp import web

# Binance error codes used by bursa (https://developers.binance.com/docs/binance-spot-api-docs/errors).
UNKNOWN = -1000
DISCONNECTED = -1001
UNAUTHORIZED = -1002
TOO_MANY_REQUESTS = -1003
UNEXPECTED_RESP = -1006
TIMEOUT = -1007
INVALID_MESSAGE = -1013  # filter failure (PRICE_FILTER, LOT_SIZE, NOTIONAL, ...)
UNKNOWN_ORDER_COMPOSITION = -1014
TOO_MANY_ORDERS = -1015
UNSUPPORTED_OPERATION = -1020
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
ILLEGAL_CHARS = -1100
TOO_MANY_PARAMETERS = -1101
MANDATORY_PARAM_EMPTY_OR_MALFORMED = -1102
UNKNOWN_PARAM = -1103
UNREAD_PARAMETERS = -1104
PARAM_EMPTY = -1105
PARAM_NOT_REQUIRED = -1106
BAD_PRECISION = -1111
INVALID_TIF = -1115
INVALID_ORDER_TYPE = -1116
INVALID_SIDE = -1117
EMPTY_NEW_CL_ORD_ID = -1118
BAD_INTERVAL = -1120
BAD_SYMBOL = -1121
INVALID_LISTEN_KEY = -1125
INVALID_PARAMETER = -1130
BAD_RECV_WINDOW = -1131
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FMT = -2014
REJECTED_MBX_KEY = -2015


class ApiError(Exception):
    """A request refused with Binance's ``code`` and ``msg`` and an HTTP status."""

    def __init__(self, http_status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.http_status = http_status
        self.code = code
        self.msg = msg

    def body(self) -> dict[str, int | str]:
        """The JSON body Binance sends for this error."""
        return {"code": self.code, "msg": self.msg}

    def response(self) -> web.Response:
        """An aiohttp response carrying this error."""
        return web.Response(
            status=self.http_status,
            body=json.dumps(self.body()).encode(),
            content_type="application/json",
        )


def bad_request(code: int, msg: str) -> ApiError:
    """HTTP 400 with ``code`` (the status of almost every Binance reject)."""
    return ApiError(400, code, msg)
