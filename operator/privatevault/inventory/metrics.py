"""Prometheus metrics for the crypto inventory, as names and samples; the exporter lives elsewhere.

Keeping this free of ``prometheus_client`` keeps it pure and testable: the handler layer owns the
registry and turns these samples into gauges. All are gauges, recomputed from each inventory.

    privatevault_crypto_assets{tenant,algorithm,quantum_vulnerable}
        TLS certificates per algorithm ("RSA", "ECDSA-P256", "ML-DSA-65", "Unparseable", …);
        quantum_vulnerable is "true", "false" or "unknown"
    privatevault_crypto_assets_expired{tenant}
    privatevault_crypto_assets_expiring{tenant}             still valid, < 30 days left
    privatevault_crypto_risk_score_max{tenant}              0 when the tenant has no certificate
    privatevault_crypto_asset_risk_score{tenant,namespace,secret}
    privatevault_crypto_asset_expiration_timestamp_seconds{tenant,namespace,secret}
        notAfter as Unix time, as cert-manager exports it, so alerts choose their own window;
        absent for an unparseable asset

Per-asset series are one per TLS Secret, a cardinality the cluster already carries.
Label values are names and counts, never certificate contents.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from typing import NamedTuple

from privatevault.inventory.report import Inventory

CRYPTO_ASSETS = "privatevault_crypto_assets"
CRYPTO_ASSETS_EXPIRED = "privatevault_crypto_assets_expired"
CRYPTO_ASSETS_EXPIRING = "privatevault_crypto_assets_expiring"
CRYPTO_RISK_SCORE_MAX = "privatevault_crypto_risk_score_max"
CRYPTO_ASSET_RISK_SCORE = "privatevault_crypto_asset_risk_score"
CRYPTO_ASSET_EXPIRATION = "privatevault_crypto_asset_expiration_timestamp_seconds"

METRICS: Mapping[str, str] = {
    CRYPTO_ASSETS: "TLS certificates of the tenant, by public-key algorithm and quantum vulnerability.",
    CRYPTO_ASSETS_EXPIRED: "TLS certificates of the tenant past their notAfter.",
    CRYPTO_ASSETS_EXPIRING: "TLS certificates of the tenant still valid with less than 30 days left.",
    CRYPTO_RISK_SCORE_MAX: "The highest risk score among the tenant's TLS certificates.",
    CRYPTO_ASSET_RISK_SCORE: "Risk score of one TLS certificate: (sensitivity*10 + exposure*5) * lifetime.",
    CRYPTO_ASSET_EXPIRATION: "notAfter of one TLS certificate, in seconds since the Unix epoch.",
}
"""Every metric name with its help text."""


class Sample(NamedTuple):
    name: str
    labels: Mapping[str, str]
    value: float


def samples(inventory: Inventory) -> Iterator[Sample]:
    """The samples of ``inventory``: aggregates first, then one risk and expiry per asset."""
    tenant = inventory.tenant
    by_algorithm = Counter((asset.algorithm, _flag(asset.quantum_vulnerable)) for asset in inventory.assets)
    for (algorithm, vulnerable), count in sorted(by_algorithm.items()):
        yield Sample(CRYPTO_ASSETS, {"tenant": tenant, "algorithm": algorithm, "quantum_vulnerable": vulnerable}, count)
    counts = inventory.counts
    yield Sample(CRYPTO_ASSETS_EXPIRED, {"tenant": tenant}, counts.expired)
    yield Sample(CRYPTO_ASSETS_EXPIRING, {"tenant": tenant}, counts.expiring_within_30_days)
    yield Sample(CRYPTO_RISK_SCORE_MAX, {"tenant": tenant}, inventory.highest_risk)
    for item in inventory.assessments:
        labels = {"tenant": tenant, "namespace": item.asset.namespace, "secret": item.asset.name}
        yield Sample(CRYPTO_ASSET_RISK_SCORE, labels, item.risk)
        if item.asset.not_after is not None:
            yield Sample(CRYPTO_ASSET_EXPIRATION, labels, item.asset.not_after.timestamp())


def _flag(value: bool | None) -> str:
    return "unknown" if value is None else str(value).lower()
