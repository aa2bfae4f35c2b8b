"""Event records of the core: field mapping per kind and a decoder.

Every event is one 96-byte ``EV_DTYPE`` record (bursa_wire/layout.py) carrying
the ``seq`` and ``ts_ns`` of the command that produced it.  Book events
(ACCEPTED ... TRIGGERED) are described in docs/book.md; the core fills in:

- on TRADE: ``taker_fee`` and ``maker_fee``, the fees each side paid, in quote
  minor units (floor of notional x ppm / 1e6 each);
- on ACCEPTED, CANCELED, REDUCED and REPLACED (money of the order's hold), named
  ``hold_minor`` and ``hold_delta_minor`` by their views (bytes of ``taker_fee`` and
  ``maker_fee``): the amount the order still holds after the event and the change
  of its hold (positive: more held, negative: released), in minor units of the
  held asset (quote for a BUY, base for a SELL).
  A TRADE with TAKER_DONE / MAKER_DONE releases what that order still held (a
  subscriber that tracks holds from ACCEPTED knows the amount);
- on REJECTED of a trading command: ``user_id`` = the command's user.

Each core event of an admin or funding command, and the hold of the order events, has
a named view (:mod:`engine.wire.views`, ``EV_VIEWS``) that says what each field
carries; together with the trading events they let a subscriber
(clearing) rebuild every balance from the stream alone.  Rejected admin and
funding commands produce no event (only their reply).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.wire.views import EV_VIEWS
from pyx.enums import EvKind

# The core event kinds (admin and funding: 20..49), each with its named view.
CORE_EVENT_KINDS: tuple[EvKind, ...] = tuple(k for k in EV_VIEWS if 20 <= k <= 49)


def decode(ev: np.void) -> dict[str, Any]:
    """One event record as a dict: kinds with a named view (core events, and the hold
    of ACCEPTED / CANCELED / REDUCED / REPLACED) by the view's names, other kinds by the
    record's own field names (integers throughout)."""
    kind = int(ev["kind"])
    try:
        view = EV_VIEWS[EvKind(kind)]
    except (ValueError, KeyError):
        names = ev.dtype.names or ()
        return {"seq": int(ev["seq"]), "ts_ns": int(ev["ts_ns"])} | {n: int(ev[n]) for n in names}
    rec = np.frombuffer(ev.tobytes(), dtype=view.dtype)[0]
    return {n: int(rec[n]) for n in view.dtype.names or ()}
