"""The per-tenant crypto inventory: which TLS keys a tenant holds, how exposed, how urgent (issue 5).

Pure functions over objects as the Kubernetes API returns them (plain camelCase dicts): the
caller lists the tenant's Secrets, Ingresses and Services and passes ``now``; nothing here talks
to the cluster, reads a clock, or reads ``tls.key``.

    parse_tls_secret(secret)             Asset | None        the leaf certificate of a TLS Secret
    exposure(name, namespace, ing, svc)  Exposure            NONE 0 · NODE_PORT 1 · LOAD_BALANCER 2 · INGRESS 3
    sensitivity(confidentiality)         Sensitivity         Public 1 … Secret 5
    lifetime_multiplier(not_after, now)  float               expired 3.0 … long-lived 1.2
    risk_score(s, e, m)                  float               (s * 10 + e * 5) * m, one decimal
    inventory(tenant, conf, …, now=)    Inventory           .summary(), .ledger_details(), .counts
    samples(inventory)                   Iterator[Sample]    Prometheus samples (names in ``metrics``)

The modules explain their scales: :mod:`.exposure`, :mod:`.risk`, :mod:`.metrics`.
"""

from privatevault.inventory.algorithm import KeyAlgorithm, key_algorithm, signature_algorithm
from privatevault.inventory.asset import TLS_SECRET_TYPE, UNPARSEABLE, Asset, parse_tls_secret
from privatevault.inventory.exposure import Exposure, exposure
from privatevault.inventory.metrics import METRICS, Sample, samples
from privatevault.inventory.report import Assessment, Counts, Inventory, inventory
from privatevault.inventory.risk import Sensitivity, lifetime_multiplier, risk_score, sensitivity

__all__ = [
    "METRICS",
    "TLS_SECRET_TYPE",
    "UNPARSEABLE",
    "Assessment",
    "Asset",
    "Counts",
    "Exposure",
    "Inventory",
    "KeyAlgorithm",
    "Sample",
    "Sensitivity",
    "exposure",
    "inventory",
    "key_algorithm",
    "lifetime_multiplier",
    "parse_tls_secret",
    "risk_score",
    "samples",
    "sensitivity",
    "signature_algorithm",
]
