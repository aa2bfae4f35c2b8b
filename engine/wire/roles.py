"""The core's command sockets and what each may carry: the trust boundary.

The core binds three command sockets (ROUTER), one per role of the processes
allowed to reach it (docs/architecture.md, "Trust boundary"):

- ``trade``: order entry for the gateway(s): NEW, CANCEL, REDUCE, REPLACE, MASS_CANCEL;
- ``fund``: money in and out for the wallet: DEPOSIT, WITHDRAW_*, TRANSFER;
- ``admin``: operators: assets, symbols, users, fees, halts, and every state query.

A command frame holding a kind not allowed on its socket is rejected whole
(``Reason.WRONG_SOCKET``), nothing in it applied.  Control requests: ``ping`` is
answered on every socket (liveness costs nothing and reveals nothing); every
other control request (status, state hash, conservation, snapshot, balance) only
on ``admin``.  The expensive ones (:data:`EXPENSIVE_CONTROLS`, whole-state walks)
are additionally limited per loop turn (``Reason.RATE_LIMITED``).

This table is the one definition; the server, the clients and the docs use it.
"""

from __future__ import annotations

from pyx.enums import CmdKind

ROLES: tuple[str, ...] = ("trade", "fund", "admin")

ROLE_KINDS: dict[str, frozenset[int]] = {
    "trade": frozenset(
        int(k)
        for k in (CmdKind.NEW, CmdKind.CANCEL, CmdKind.REDUCE, CmdKind.REPLACE, CmdKind.MASS_CANCEL)
    ),
    "fund": frozenset(
        int(k)
        for k in (
            CmdKind.DEPOSIT,
            CmdKind.WITHDRAW_HOLD,
            CmdKind.WITHDRAW_COMMIT,
            CmdKind.WITHDRAW_RELEASE,
            CmdKind.TRANSFER,
        )
    ),
    "admin": frozenset(
        int(k)
        for k in (
            CmdKind.ADD_ASSET,
            CmdKind.ADD_SYMBOL,
            CmdKind.SET_MIN_NOTIONAL,
            CmdKind.ADD_USER,
            CmdKind.ADD_FEE_TIER,
            CmdKind.SET_FEE_TIER,
            CmdKind.HALT_SYMBOL,
            CmdKind.RESUME_SYMBOL,
            CmdKind.SUSPEND_USER,
            CmdKind.RESUME_USER,
            CmdKind.CANCEL_ALL_SYMBOL,
            CmdKind.SET_USER_ORDER_LIMIT,
        )
    ),
}

# Control requests (JSON, not journaled) per socket.
CONTROL_OPS: tuple[str, ...] = (
    "ping",
    "status",
    "state_hash",
    "conservation",
    "snapshot",
    "balance",
)
ROLE_CONTROLS: dict[str, frozenset[str]] = {
    "trade": frozenset({"ping"}),
    "fund": frozenset({"ping"}),
    "admin": frozenset(CONTROL_OPS),
}
# Whole-state walks: at most ``max_expensive_controls`` of them per loop turn.
EXPENSIVE_CONTROLS: frozenset[str] = frozenset({"state_hash", "conservation", "snapshot"})


def role_of(kind: int) -> str:
    """The socket role a command kind belongs to.

    Raises
    ------
    ValueError
        ``kind`` is no known command kind.
    """
    for role, kinds in ROLE_KINDS.items():
        if kind in kinds:
            return role
    raise ValueError(f"command kind {kind} belongs to no socket")
