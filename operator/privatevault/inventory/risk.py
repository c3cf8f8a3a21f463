"""The risk score of one certificate: how much is at stake, how visible it is, how urgent it is.

    risk = (sensitivity * 10 + exposure * 5) * lifetime_multiplier, rounded to one decimal

**Sensitivity** comes from the tenant's ``securityLabel.confidentiality``, one step per level:

    Public 1 · Internal 2 · Confidential 3 · Restricted 4 · Secret 5

Its weight, 10, is twice exposure's, 5, so the data behind a certificate matters most: full
exposure (Ingress, +15) lifts an asset one and a half levels, never two.

**Exposure** (0-3) is :class:`privatevault.inventory.exposure.Exposure`.

**Lifetime multiplier**, from the time left until ``notAfter`` at an injected ``now``; each band
includes its lower bound and excludes its upper one:

    expired (now > notAfter)   3.0   clients already fail, or someone turned verification off
    [0, 30 days)               2.0   cert-manager renews a 90-day certificate with 30 days left: renewal failed
    [30, 90 days)              1.5   renewal due within a typical 90-day certificate's life
    [90, 398 days)             1.0   an ordinary, routinely renewed certificate
    398 days or more           1.2   long-lived: see below
    unknown (unparseable)      1.0   nothing to go by; such assets are counted apart instead

``notAfter`` is inclusive (RFC 5280 §4.1.2.5), so a certificate is still valid at that very
second. 398 days is the longest a public CA may issue for (CA/Browser Forum, since 2020), so more
time left than that means a private, hand-made certificate. Such long-lived keys are rotated
rarely and are still in service when a quantum computer may exist; where the key does RSA key
transport (TLS ≤ 1.2) recorded traffic decrypts with it — harvest now, decrypt later. They score
above ordinary certificates, though well below ones about to expire.

The result is a float rounded to one decimal. The multipliers 1.5 and 1.2 make halves and
fifths, so one decimal shows every score exactly; rounding keeps binary floating-point noise out
of status and ledger should a weight or band ever change.
Scores run from 10.0 (Public, unexposed, ordinary) to 195.0 (Secret, Ingress, expired).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import IntEnum


class Sensitivity(IntEnum):
    """The tenant's confidentiality level as a number (see the module docstring)."""

    PUBLIC = 1
    INTERNAL = 2
    CONFIDENTIAL = 3
    RESTRICTED = 4
    SECRET = 5


SENSITIVITY_WEIGHT = 10
EXPOSURE_WEIGHT = 5

EXPIRED = 3.0
LONG_LIVED = 1.2
UNKNOWN_LIFETIME = 1.0
#: Less time left than this counts as "expiring" in the inventory, too.
EXPIRING_WITHIN = timedelta(days=30)
#: (upper bound of time left, multiplier), in increasing order; beyond the last: LONG_LIVED.
LIFETIME_BANDS: tuple[tuple[timedelta, float], ...] = (
    (EXPIRING_WITHIN, 2.0),
    (timedelta(days=90), 1.5),
    (timedelta(days=398), 1.0),
)

_BY_CONFIDENTIALITY = {level.name.title(): level for level in Sensitivity}


def sensitivity(confidentiality: str) -> Sensitivity:
    """The sensitivity of a ``securityLabel.confidentiality`` value ("Public" … "Secret")."""
    try:
        return _BY_CONFIDENTIALITY[confidentiality]
    except KeyError:
        allowed = ", ".join(_BY_CONFIDENTIALITY)
        raise ValueError(f"unknown confidentiality {confidentiality!r}: expected one of {allowed}") from None


def lifetime_multiplier(not_after: datetime | None, now: datetime) -> float:
    """The multiplier for the time left until ``not_after`` at ``now`` (both timezone-aware)."""
    if not_after is None:
        return UNKNOWN_LIFETIME
    left = not_after - now
    if left < timedelta(0):
        return EXPIRED
    return next((multiplier for bound, multiplier in LIFETIME_BANDS if left < bound), LONG_LIVED)


def risk_score(sensitivity: int, exposure: int, multiplier: float) -> float:
    """``(sensitivity * 10 + exposure * 5) * multiplier``, rounded to one decimal."""
    return round((sensitivity * SENSITIVITY_WEIGHT + exposure * EXPOSURE_WEIGHT) * multiplier, 1)
