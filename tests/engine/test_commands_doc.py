"""docs/commands.md is generated from the code; the C reply struct matches REPLY_DTYPE."""

from __future__ import annotations

from bursa_wire.layout import REPLY_DTYPE
from engine.wire import commands, views
from pyx.core import _reply_layout
from pyx.enums import CmdKind, EvKind
from tools import gen_commands


def test_commands_doc_is_fresh() -> None:
    assert gen_commands.main(["--check"]) == 0


def test_reply_struct_matches_the_layout() -> None:
    size, offsets = _reply_layout()
    assert size == REPLY_DTYPE.itemsize
    fields = REPLY_DTYPE.fields
    assert fields is not None
    assert offsets == {name: spec[1] for name, spec in fields.items()}


def test_every_core_kind_is_documented() -> None:
    core_cmds = {k for k in CmdKind if 20 <= k <= 49}
    assert core_cmds == set(views.CMD_VIEW_FIELDS)
    assert set(CmdKind) == core_cmds | set(commands.COMMAND_FIELDS)
    core_events = {k for k in EvKind if 20 <= k <= 49}
    assert core_events <= set(views.EV_VIEW_FIELDS)
