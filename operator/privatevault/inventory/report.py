"""A tenant's crypto inventory: every TLS certificate it holds, scored, counted and ready to report.

:func:`inventory` is pure: it takes the objects as the Kubernetes API returns them (plain dicts,
camelCase) and an injected ``now``, so the same input always gives the same inventory and tests
need no clock and no cluster. The result feeds three places, each with its own shape:

- :meth:`Inventory.summary`: a few counts and the highest risk, small enough for a Tenant status;
- :meth:`Inventory.ledger_details`: one JSON-safe row per asset for the audit ledger, holding
  facts about certificates and never a certificate body, let alone a key;
- :func:`privatevault.inventory.metrics.samples`: Prometheus samples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from privatevault.inventory.asset import Asset, parse_tls_secret
from privatevault.inventory.exposure import Exposure, exposure
from privatevault.inventory.risk import EXPIRING_WITHIN, lifetime_multiplier, risk_score, sensitivity

#: A value in :meth:`Inventory.ledger_details`: what JSON can carry as it is.
JsonScalar = str | int | float | bool | None


@dataclass(frozen=True)
class Assessment:
    """One asset with what the tenant and its namespace make of it: exposure, urgency and risk."""

    asset: Asset
    exposure: Exposure
    lifetime_multiplier: float
    risk: float
    expired: bool
    expiring: bool
    """Still valid, with less than 30 days left."""


@dataclass(frozen=True)
class Counts:
    total: int
    quantum_vulnerable: int
    expired: int
    expiring_within_30_days: int
    unparseable: int


@dataclass(frozen=True)
class Inventory:
    """A tenant's TLS certificates at ``now``, riskiest first (then by namespace and name)."""

    tenant: str
    confidentiality: str
    now: datetime
    assessments: tuple[Assessment, ...]

    @property
    def assets(self) -> tuple[Asset, ...]:
        return tuple(item.asset for item in self.assessments)

    @property
    def counts(self) -> Counts:
        items = self.assessments
        return Counts(
            total=len(items),
            quantum_vulnerable=sum(item.asset.quantum_vulnerable is True for item in items),
            expired=sum(item.expired for item in items),
            expiring_within_30_days=sum(item.expiring for item in items),
            unparseable=sum(not item.asset.parseable for item in items),
        )

    @property
    def highest_risk(self) -> float:
        """The first asset's risk; 0.0 when there is none (every real score is 10.0 or more)."""
        return self.assessments[0].risk if self.assessments else 0.0

    def summary(self) -> dict[str, int | float]:
        """Counts and the highest risk, camelCase, for the Tenant status."""
        counts = self.counts
        return {
            "total": counts.total,
            "quantumVulnerable": counts.quantum_vulnerable,
            "expired": counts.expired,
            "expiringWithin30Days": counts.expiring_within_30_days,
            "unparseable": counts.unparseable,
            "highestRisk": self.highest_risk,
        }

    def ledger_details(self) -> list[dict[str, JsonScalar]]:
        """One row per asset, in inventory order, for the audit ledger; no certificate bodies."""
        return [
            {
                "namespace": item.asset.namespace,
                "name": item.asset.name,
                "algorithm": item.asset.algorithm,
                "keySize": item.asset.key_size,
                "notAfter": _timestamp(item.asset.not_after),
                "exposure": item.exposure.label,
                "risk": item.risk,
                "quantumVulnerable": item.asset.quantum_vulnerable,
            }
            for item in self.assessments
        ]


def inventory(
    tenant_name: str,
    confidentiality: str,
    secrets: Sequence[Mapping[str, Any]],
    ingresses: Sequence[Mapping[str, Any]],
    services: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
) -> Inventory:
    """The inventory of the ``kubernetes.io/tls`` Secrets among ``secrets``, scored at ``now``.

    ``secrets``, ``ingresses`` and ``services`` are the tenant's, as the API returns them; other
    Secret types are skipped. Raises ``ValueError`` for an unknown ``confidentiality`` or a naive
    ``now``.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (UTC): certificate times are")
    level = sensitivity(confidentiality)
    assessments = []
    for secret in secrets:
        asset = parse_tls_secret(secret)
        if asset is None:
            continue
        reach = exposure(asset.name, asset.namespace, ingresses, services)
        multiplier = lifetime_multiplier(asset.not_after, now)
        expired = asset.not_after is not None and now > asset.not_after
        expiring = asset.not_after is not None and not expired and asset.not_after - now < EXPIRING_WITHIN
        assessments.append(
            Assessment(
                asset=asset,
                exposure=reach,
                lifetime_multiplier=multiplier,
                risk=risk_score(level, reach, multiplier),
                expired=expired,
                expiring=expiring,
            )
        )
    assessments.sort(key=lambda item: (-item.risk, item.asset.namespace, item.asset.name))
    return Inventory(tenant=tenant_name, confidentiality=confidentiality, now=now, assessments=tuple(assessments))


def _timestamp(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None
