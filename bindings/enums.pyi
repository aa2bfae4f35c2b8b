"""Stubs of bindings.enums: the compiled enums (IntEnum), re-exported."""

from pyx.enums import CmdFlag as CmdFlag
from pyx.enums import CmdKind as CmdKind
from pyx.enums import EvFlag as EvFlag
from pyx.enums import EvKind as EvKind
from pyx.enums import OrdType as OrdType
from pyx.enums import Reason as Reason
from pyx.enums import Side as Side
from pyx.enums import Stp as Stp
from pyx.enums import Tif as Tif

__all__ = ["CmdFlag", "CmdKind", "EvFlag", "EvKind", "OrdType", "Reason", "Side", "Stp", "Tif"]
