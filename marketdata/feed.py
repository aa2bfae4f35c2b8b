"""The feed state machine: core event frames in, public feed messages out (sans-IO).

:class:`Feed` turns the core's events into L3, L2, trade, BBO, candle and status
messages and numbers them per (channel, symbol).  Its output is a deterministic
function of the core's event stream alone (no clock, no randomness, no
dependence on how events were cut into frames): the same events from seq 1
always give the same messages with the same sequence numbers, which is what lets
a restarted process continue the numbering without a checkpoint
(docs/marketdata.md, "Sequence numbers and time").

Per core command: L3 and trade messages as the events come, then one L2 message
per changed level, one BBO if the top changed and the candles of symbols that
traded.  Incoming orders are held as the *pending taker* while they match and
appear on the book (L3_ADD or L3_REPLACE) only once they rest.

The implementation is the Cython module :mod:`pyx.mdfeed` (the hot path: event
records read in place, messages written through packed C structs); the
pure-Python original is kept as the test oracle (tests/marketdata/reffeed.py,
compared byte for byte by tests/marketdata/test_differential.py).
"""

from __future__ import annotations

from pyx.mdfeed import REPLAY_WINDOW_DEFAULT, Feed, group_parts

__all__ = ["REPLAY_WINDOW_DEFAULT", "Feed", "group_parts"]
