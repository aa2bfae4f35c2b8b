"""Vectorised hot paths of the gateway: many ENTER_ORDERs at once, fast report packing.

A TCP read often holds hundreds of ENTER_ORDER frames.  Instead of one decoded
message object, one dict and one struct pack per order, the run is viewed as one
numpy structured array (the layout of :mod:`bursa_wire.gw_layout`, so nothing is
defined twice): the gateway checks a run that is not all new order by order from it
(``Gateway._check_enters``).  The common case runs in C (:mod:`pyx.gwentry`:
``new_run_top``, ``new_records``, for runs of one order too); :func:`all_new_and_valid`
and :func:`new_records` here are their oracles (tests/gateway/test_enter_path.py).  The
outbound reports the gateway sends most (ACCEPTED, EXECUTED) are packed
positionally; the field order is checked against the layout at import, so a layout
change fails loudly instead of sending wrong bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bursa_wire.gw_layout import BY_NAME, ORDER_POST_ONLY, MsgSpec
from bursa_wire.layout import CMD_DTYPE
from pyx.enums import CmdFlag, CmdKind, Side

ENTER = BY_NAME["ENTER_ORDER"]
ENTER_CODE = ENTER.code[0]
# U-frame body: the message code byte, then the ENTER_ORDER fields (packed).
ENTER_DTYPE = np.dtype([("code", "u1")] + [(f.name, f.code) for f in ENTER.fields])
ENTER_BODY_LEN = ENTER_DTYPE.itemsize
if 1 + ENTER.struct.size != ENTER_BODY_LEN:
    raise RuntimeError("ENTER_ORDER dtype and struct disagree")


def _positional(spec: MsgSpec, names: tuple[str, ...]) -> tuple[bytes, Any]:
    """(code, struct) of ``spec`` after checking its fields are ``names`` in order."""
    if spec.names != names:
        raise RuntimeError(f"{spec.name} layout changed: {spec.names} != {names}")
    return spec.code, spec.struct


ACCEPTED_CODE, ACCEPTED_STRUCT = _positional(
    BY_NAME["ACCEPTED"],
    ("cl_ord_id", "ts_ns", "price_ticks", "qty_lots", "leaves_lots", "symbol_id", "side",
     "ord_type"),
)  # fmt: skip
EXECUTED_CODE, EXECUTED_STRUCT = _positional(
    BY_NAME["EXECUTED"],
    ("cl_ord_id", "ts_ns", "match_id", "price_ticks", "qty_lots", "leaves_lots", "fee_minor",
     "fee_asset_id", "symbol_id", "side", "liquidity"),
)  # fmt: skip


def decode_enters(recs: bytes) -> np.ndarray[Any, np.dtype[np.void]]:
    """ENTER_ORDER U-frame bodies back to back (each :data:`ENTER_BODY_LEN` bytes, as
    :class:`pyx.gwentry.EntryReader` groups a run of them) as records."""
    return np.frombuffer(recs, dtype=ENTER_DTYPE)


def all_new_and_valid(enters: np.ndarray[Any, np.dtype[np.void]], top_cl: int) -> bool:
    """True when every order of the run passes the duplicate and side checks for sure:
    its client ids strictly increase from above ``top_cl`` (the session's highest id so
    far, so none was used before and none twice) and every side is BUY or SELL.
    Otherwise False: the caller checks order by order.  One vectorised test per run,
    no Python per order in the common case (clients number their orders upwards)."""
    cl = enters["cl_ord_id"]
    side = enters["side"]
    return (
        len(cl) > 0
        and int(cl[0]) > top_cl
        and bool((cl[1:] > cl[:-1]).all())
        and bool(((side == int(Side.BUY)) | (side == int(Side.SELL))).all())
    )


def new_records(
    enters: np.ndarray[Any, np.dtype[np.void]], user_id: int, order_ids: np.ndarray[Any, Any]
) -> bytes:
    """The core's NEW records for ``enters`` (one user), with ``order_ids``."""
    return new_records_array(enters, user_id, order_ids).tobytes()


def new_records_array(
    enters: np.ndarray[Any, np.dtype[np.void]], user_id: int, order_ids: np.ndarray[Any, Any]
) -> np.ndarray[Any, np.dtype[np.void]]:
    """:func:`new_records` as a ``CMD_DTYPE`` array: the gateway joins it into its
    turn's frame straight from the array's buffer (no bytes copy in between)."""
    recs = np.zeros(len(enters), dtype=CMD_DTYPE)
    recs["kind"] = int(CmdKind.NEW)
    recs["order_id"] = order_ids
    recs["user_id"] = user_id
    for name in ("symbol_id", "side", "ord_type", "tif", "price_ticks", "qty_lots",
                 "stop_price_ticks", "stp"):  # fmt: skip
        recs[name] = enters[name]
    f = enters["flags"].astype(np.uint8)
    post = np.where(f & ORDER_POST_ONLY, np.uint8(int(CmdFlag.POST_ONLY)), np.uint8(0))
    recs["flags"] = post | (f & np.uint8(0xFF & ~ORDER_POST_ONLY))
    return recs
