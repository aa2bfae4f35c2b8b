"""Withdrawal risk scoring: documented rules, each adding its weight; the sum capped at 100.

0-30 is approved automatically, 31-70 goes to the manual review queue, 71-100 is
rejected. docs/wallet.md lists the rules; :data:`WEIGHTS` are their defaults.
The inputs (:class:`Facts`) are gathered from the wallet's store by
:mod:`wallet.withdrawals`; this module only scores, so it is easy to test.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AUTO_MAX = 30
REVIEW_MAX = 70

WEIGHTS: dict[str, int] = {
    "blacklisted": 100,  # the destination is on the blacklist
    "over_tier_limit": 100,  # the user's KYC tier 24-hour limit would be exceeded
    "whitelist_pending": 40,  # whitelisted less than whitelist_delay ago
    "not_whitelisted": 20,  # the address is not in the user's address book
    "first_to_address": 15,  # no earlier withdrawal of this user went there
    "security_change": 40,  # API key created/revoked, password/2FA changed recently
    "velocity": 30,  # more than max_per_hour withdrawals in the last hour
    "amount_large": 35,  # amount >= large
    "amount_medium": 15,  # medium <= amount < large
}


@dataclass(frozen=True)
class Rules:
    """Thresholds of the rules (amounts in the asset's core minor units).

    ``tier_limits[t]`` is the 24-hour limit of KYC tier ``t`` (a missing tier: 0,
    nothing may be withdrawn); ``medium``/``large`` are the amount tiers.
    """

    tier_limits: dict[int, int] = field(default_factory=lambda: {0: 0, 1: 10**7, 2: 10**9})
    medium: int = 10**6
    large: int = 10**8
    whitelist_delay_ns: int = 24 * 3600 * 10**9
    security_window_ns: int = 48 * 3600 * 10**9
    max_per_hour: int = 3
    # The gateway's API key database (``api_keys``), read-only: a key created or
    # revoked within ``security_window_ns`` counts as a security change ("": not read).
    gateway_db: str = ""
    weights: dict[str, int] = field(default_factory=lambda: dict(WEIGHTS))


@dataclass(frozen=True)
class Facts:
    """What the scorer needs to know about one withdrawal request."""

    amount: int
    kyc_tier: int
    withdrawn_24h: int  # this user's other live withdrawals of the asset in 24h
    count_1h: int  # this user's withdrawals (any asset) in the last hour
    blacklisted: bool
    whitelisted_ns: int | None  # when the address entered the user's book (None: not in it)
    paid_before: bool  # an earlier withdrawal of this user paid this address
    last_security_change_ns: int | None
    now_ns: int


def score(f: Facts, rules: Rules) -> tuple[int, list[str]]:
    """(score 0..100, the rules that fired)."""
    fired: list[str] = []
    if f.blacklisted:
        fired.append("blacklisted")
    if f.withdrawn_24h + f.amount > rules.tier_limits.get(f.kyc_tier, 0):
        fired.append("over_tier_limit")
    if f.whitelisted_ns is None:
        fired.append("not_whitelisted")
    elif f.now_ns - f.whitelisted_ns < rules.whitelist_delay_ns:
        fired.append("whitelist_pending")
    if not f.paid_before:
        fired.append("first_to_address")
    if (
        f.last_security_change_ns is not None
        and f.now_ns - f.last_security_change_ns < rules.security_window_ns
    ):
        fired.append("security_change")
    if f.count_1h >= rules.max_per_hour:
        fired.append("velocity")
    if f.amount >= rules.large:
        fired.append("amount_large")
    elif f.amount >= rules.medium:
        fired.append("amount_medium")
    return min(100, sum(rules.weights.get(r, 0) for r in fired)), fired


def decision(value: int) -> str:
    """ "approve" (0-30), "review" (31-70) or "reject" (71-100)."""
    if value <= AUTO_MAX:
        return "approve"
    if value <= REVIEW_MAX:
        return "review"
    return "reject"
