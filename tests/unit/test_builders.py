"""The test builders make, for every kind, a manifest its model accepts with no uid unless asked;
each option lands in the field it names, ``spec`` overrides verbatim, and no two manifests share data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from privatevault.api.v1alpha1 import (
    API_VERSION,
    KINDS,
    Approval,
    ComplianceFramework,
    EvidenceExport,
    ProtectionPolicy,
    QuorumPolicy,
    Resource,
    Tenant,
)
from tests import builders

BUILDERS: dict[type[Resource], Callable[..., dict[str, Any]]] = {
    Tenant: builders.tenant,
    ProtectionPolicy: builders.protection_policy,
    QuorumPolicy: builders.quorum_policy,
    Approval: builders.approval,
    EvidenceExport: builders.evidence_export,
    ComplianceFramework: builders.compliance_framework,
}


def test_every_kind_has_a_builder() -> None:
    assert set(BUILDERS) == set(KINDS)


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.kind)
def test_defaults_are_valid_and_ready_to_apply(model: type[Resource]) -> None:
    manifest = BUILDERS[model]("x")
    assert (manifest["apiVersion"], manifest["kind"], manifest["metadata"]) == (API_VERSION, model.kind, {"name": "x"})
    assert "status" not in manifest
    parsed = model.model_validate(manifest)
    assert parsed.metadata == {"name": "x"}


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.kind)
def test_unit_metadata_and_status_when_asked(model: type[Resource]) -> None:
    manifest = BUILDERS[model](
        "x", uid="u-1", generation=3, labels={"a": "b"}, annotations={"c": "d"}, status={"observedGeneration": 2}
    )
    parsed = model.model_validate(manifest)
    assert parsed.metadata == {
        "name": "x",
        "uid": "u-1",
        "generation": 3,
        "labels": {"a": "b"},
        "annotations": {"c": "d"},
    }
    assert parsed.status is not None and parsed.status.observed_generation == 2


def test_tenant_options_land_in_their_fields() -> None:
    manifest = builders.tenant(
        "acme",
        owners=[builders.user("alice"), builders.service_account("ci", "tools")],
        region="us-east-1",
        locale="de-DE",
        security_label={"confidentiality": "Secret"},
        namespaces=["acme-a", "acme-b"],
        quota={"pods": 10},
        limits={"defaultRequest": {"cpu": "100m"}},
        network={"allowDns": False},
        protection_policy_ref="pp",
        quorum_policy_ref="qp",
        compliance_framework_refs=["soc2"],
        kms="vault",
        deletion_policy="CryptoShred",
        mcs_level="s0:c1,c2",
    )
    spec = Tenant.model_validate(manifest).spec
    assert [(o.kind, o.name, o.namespace) for o in spec.owners] == [
        ("User", "alice", None),
        ("ServiceAccount", "ci", "tools"),
    ]
    assert (spec.region, spec.locale, spec.security_label.confidentiality) == ("us-east-1", "de-DE", "Secret")
    assert (spec.namespaces, spec.quota.hard, spec.limits.default_request) == (
        ["acme-a", "acme-b"],
        {"pods": 10},
        {"cpu": "100m"},
    )
    assert spec.network.allow_dns is False
    assert (spec.protection_policy_ref, spec.quorum_policy_ref, spec.compliance_framework_refs) == (
        "pp",
        "qp",
        ["soc2"],
    )
    assert (spec.kms.provider, spec.deletion_policy, spec.mcs_level) == ("vault", "CryptoShred", "s0:c1,c2")


def test_tenant_defaults() -> None:
    assert builders.tenant("acme")["spec"] == {
        "owners": [{"kind": "Group", "name": "acme-admins"}],
        "region": "eu-west-1",
    }


def test_protection_policy_options_land_in_their_fields() -> None:
    manifest = builders.protection_policy(
        "p",
        profile="cnsa-2.0",
        kem="ML-KEM-768",
        signature="ML-DSA-65",
        symmetric="ChaCha20-Poly1305",
        rotation_interval="24h",
        retain_versions=5,
        workload_selector={"protect": "yes"},
        selinux_type="container_t",
    )
    spec = ProtectionPolicy.model_validate(manifest).spec
    assert (spec.profile, spec.kem, spec.signature, spec.symmetric) == (
        "cnsa-2.0",
        "ML-KEM-768",
        "ML-DSA-65",
        "ChaCha20-Poly1305",
    )
    assert (spec.rotation_interval, spec.retain_versions, spec.workload_selector, spec.selinux_type) == (
        "24h",
        5,
        {"protect": "yes"},
        "container_t",
    )
    assert builders.protection_policy("p", mode="PQC")["spec"] == {"mode": "PQC"}


ML_DSA_65 = builders.PLACEHOLDER_ML_DSA_65_KEY


def test_quorum_approval_export_and_framework_options() -> None:
    quorum = QuorumPolicy.model_validate(
        builders.quorum_policy(
            "q",
            approvers=[
                builders.approver("a", roles=["sre"], region="eu-west-1", ml_dsa65=ML_DSA_65),
                builders.approver("b", ed25519=None, ml_dsa65=ML_DSA_65),
                builders.approver("c", ml_dsa65=ML_DSA_65),
            ],
            rules=[builders.rule("CryptoShred", min_approvals=2, signature_mode="hybrid-required", ttl="1h")],
        )
    ).spec
    assert [(a.name, a.roles, a.region, a.public_keys.hybrid) for a in quorum.approvers] == [
        ("a", ["sre"], "eu-west-1", True),
        ("b", [], None, False),
        ("c", [], None, True),
    ]
    assert [(r.action, r.min_approvals, r.signature_mode, r.ttl) for r in quorum.rules] == [
        ("CryptoShred", 2, "hybrid-required", "1h")
    ]
    signed = Approval.model_validate(
        builders.approval("a", verb="CryptoShred", target="globex", target_uid="t-1", digest="sha256:" + "f" * 64)
    ).spec
    assert (signed.action.verb, signed.action.kind, signed.action.name, signed.action.uid) == (
        "CryptoShred",
        "Tenant",
        "globex",
        "t-1",
    )
    export = EvidenceExport.model_validate(
        builders.evidence_export("e", tenants=["a", "b"], start="2026-03-01T00:00:00Z", end="2026-04-01T00:00:00Z")
    ).spec
    assert (export.tenants, export.window.from_, export.window.to) == (
        ["a", "b"],
        "2026-03-01T00:00:00Z",
        "2026-04-01T00:00:00Z",
    )
    framework = ComplianceFramework.model_validate(
        builders.compliance_framework(
            "f",
            controls=[
                builders.control(
                    "A.8.24", "Cryptography", checks=[builders.compliance_check("kek-rotated-within", days=90)]
                )
            ],
            tenant_selector={"matchLabels": {"tier": "gold"}},
        )
    ).spec
    assert [(c.id, c.checks[0].name, c.checks[0].params) for c in framework.controls] == [
        ("A.8.24", "kek-rotated-within", {"days": 90})
    ]
    assert framework.tenant_selector.match_labels == {"tier": "gold"}


def test_spec_overrides_verbatim() -> None:
    manifest = builders.protection_policy("p", profile="hybrid-default", spec={"profile": "cnsa-2.0", "mode": None})
    assert manifest["spec"] == {"profile": "cnsa-2.0", "mode": None}
    assert builders.protection_policy("p", spec={})["spec"] == {}


def test_manifests_share_no_data() -> None:
    owners = [builders.user("alice")]
    first = builders.tenant("a", owners=owners)
    owners[0]["name"] = "mallory"
    assert first["spec"]["owners"] == [{"kind": "User", "name": "alice"}]
    second = builders.tenant("b", owners=owners)
    second["spec"]["owners"][0]["name"] = "eve"
    assert owners == [{"kind": "User", "name": "mallory"}]
    spec = {"namespaces": ["x"]}
    made = builders.tenant("c", spec=spec)
    made["spec"]["namespaces"].append("y")
    assert spec == {"namespaces": ["x"]}
