"""Helpers of the chart tests: the helm binary (built once from its Go module), rendering the
chart, and the metric names a PromQL expression reads."""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .support import REPO

CHART = REPO / "charts" / "privatevault"
BUILD_HELM = REPO / "tools" / "build-helm.sh"
#: Values that turn on every optional template (the Vault address is required with Vault).
EVERYTHING = {
    "vault.enabled": "true",
    "vault.address": "https://openbao.openbao.svc:8200",
    "vault.caSecret.name": "openbao-ca",
    "webhook.enabled": "true",
    "metrics.serviceMonitor.enabled": "true",
    "metrics.prometheusRule.enabled": "true",
    "metrics.dashboard.enabled": "true",
}


@cache
def helm_binary() -> Path:
    """helm, built by tools/build-helm.sh first when the cache lacks it."""
    done = subprocess.run([str(BUILD_HELM), "--print"], capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise AssertionError(f"tools/build-helm.sh failed:\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


def helm(*args: str, kubeconfig: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env_args = ["--kubeconfig", str(kubeconfig)] if kubeconfig is not None else []
    done = subprocess.run(
        [str(helm_binary()), *args, *env_args], capture_output=True, text=True, check=False, timeout=300
    )
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stderr}")
    return done


def set_args(values: dict[str, str]) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def render(values: dict[str, str] | None = None, *, namespace: str = "privatevault", release: str = "pv") -> list[Any]:
    """The chart's objects as ``helm template`` renders them (hooks included, CRDs not)."""
    done = helm("template", release, str(CHART), "--namespace", namespace, *set_args(values or {}))
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(objects: list[Any], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj.get("kind") == kind]


#: What the operator exports (operator/privatevault/metrics.py, inventory/metrics.py); the e2e
#: test of the chart checks this list against a live scrape of a running operator.
EXPORTED = {
    "privatevault_ledger_integrity_ok",
    "privatevault_ledger_checkpoints_refused_total",
    "privatevault_ledger_checkpoint_size",
    "privatevault_ledger_witness_ok",
    "privatevault_ledger_witness_failures_total",
    "privatevault_ledger_witness_cosigned_size",
    "privatevault_quorum_bypassed_total",
    "privatevault_quorum_decisions_total",
    "privatevault_objects",
    "privatevault_objects_stalled",
    "privatevault_crypto_assets",
    "privatevault_crypto_assets_expired",
    "privatevault_crypto_assets_expiring",
    "privatevault_crypto_risk_score_max",
    "privatevault_crypto_asset_risk_score",
    "privatevault_crypto_asset_expiration_timestamp_seconds",
    "privatevault_ledger_last_verified_timestamp_seconds",
    "privatevault_ledger_witness_cosignatures",
    "privatevault_approval_expiry_timestamp_seconds",
    "privatevault_compliance_score",
    "privatevault_compliance_failing_controls",
    "privatevault_compliance_framework_score",
}


# -- PromQL: the metric names an expression reads ---------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "inf", "nan"})


def metric_names(expr: str) -> set[str]:
    """The metric names in ``expr``: identifiers that are not functions, keywords, label names
    (inside ``{}`` or a grouping) or durations; Grafana's ``$variables`` are left out."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\$\w+", " ", text)
    names = set()
    for found in _NAME.finditer(text):
        name, rest = found.group(), text[found.end() :].lstrip()
        if rest.startswith("(") or name.lower() in _KEYWORDS:
            continue
        if found.start() > 0 and (text[found.start() - 1].isdigit() or text[found.start() - 1] == "."):
            continue  # the exponent or unit of a number
        names.add(name)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every metric name in a /metrics answer: the samples' and, for counters, the ``_total`` ones."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(f"{name}_total" if kind == "counter" and not name.endswith("_total") else name)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names
