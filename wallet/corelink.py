"""The wallet's link to the core: funding commands over :class:`bindings.client.CoreClient`.

Credits and holds go to the core's funding endpoint (``fund`` in its ready line;
``cmd`` before the socket split); balance queries to its admin endpoint (the same
endpoint if none is configured).
"""

from __future__ import annotations

from typing import Any

from bindings.client import CoreClient
from engine.wire import commands


class _FundingCommands:
    """The funding commands of :class:`wallet.scanner.FundingCore`, each one command
    record through ``_one`` (the subclass's transport): (status, reason)."""

    def _one(self, rec: Any) -> tuple[int, int]:
        """Apply one command record; its reply's (status, reason)."""
        raise NotImplementedError

    def deposit(
        self, ref: int, user_id: int, asset_id: int, amount: int, account: int
    ) -> tuple[int, int]:
        """DEPOSIT keyed by ``ref``."""
        return self._one(commands.deposit(ref, user_id, asset_id, amount, account=account))

    def withdraw_hold(
        self, wid: int, user_id: int, asset_id: int, amount: int, account: int
    ) -> tuple[int, int]:
        """WITHDRAW_HOLD keyed by ``wid``."""
        return self._one(commands.withdraw_hold(wid, user_id, asset_id, amount, account=account))

    def withdraw_release(self, wid: int) -> tuple[int, int]:
        """WITHDRAW_RELEASE."""
        return self._one(commands.withdraw_release(wid))

    def withdraw_commit(self, wid: int) -> tuple[int, int]:
        """WITHDRAW_COMMIT."""
        return self._one(commands.withdraw_commit(wid))


class CoreFunding(_FundingCommands):
    """Implements :class:`wallet.scanner.FundingCore` against a running core."""

    def __init__(
        self, fund_endpoint: str, admin_endpoint: str = "", timeout_ms: int = 10_000
    ) -> None:
        self.fund = CoreClient(fund_endpoint)
        self.admin = CoreClient(admin_endpoint) if admin_endpoint else self.fund
        self.timeout_ms = timeout_ms

    def close(self) -> None:
        """Close the sockets."""
        self.fund.close()
        if self.admin is not self.fund:
            self.admin.close()

    def _one(self, rec: Any) -> tuple[int, int]:
        try:
            rep = self.fund.one(rec, self.timeout_ms)
        except TimeoutError:
            # A late reply would be mistaken for the next command's: start afresh.
            endpoint = self.fund.endpoint
            same = self.admin is self.fund
            self.fund.close()
            self.fund = CoreClient(endpoint)
            if same:
                self.admin = self.fund
            raise
        return int(rep["status"]), int(rep["reason"])

    def available(self, user_id: int, asset_id: int, account: int) -> int:
        """Available amount of a balance (control ``balance``)."""
        ans = self.admin.control(
            "balance", self.timeout_ms, user_id=user_id, asset_id=asset_id, account=account
        )
        return int(ans["balance"][0])


class InProcessCore(_FundingCommands):
    """:class:`wallet.scanner.FundingCore` over an in-process :class:`engine.core.Core`
    (the real deterministic core without its process; property tests and the demo)."""

    def __init__(self, core: Any) -> None:
        self.core = core

    def _one(self, rec: Any) -> tuple[int, int]:
        _events, replies = self.core.run(rec)
        return int(replies[0]["status"]), int(replies[0]["reason"])

    def available(self, user_id: int, asset_id: int, account: int) -> int:
        """Available amount of a balance."""
        return int(self.core.balance(user_id, asset_id, account)[0])
