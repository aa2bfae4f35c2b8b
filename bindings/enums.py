"""Public Python API of the shared enums (wire values; see pyx/enums.pxd)."""

from pyx.enums import CmdFlag, CmdKind, EvFlag, EvKind, OrdType, Reason, Side, Stp, Tif

__all__ = ["CmdFlag", "CmdKind", "EvFlag", "EvKind", "OrdType", "Reason", "Side", "Stp", "Tif"]
