"""The generated CRDs are structural, carry the declared CEL rules, and match the committed files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from privatevault.api import crdgen
from privatevault.api.v1alpha1 import KINDS, Resource

REPO = Path(__file__).resolve().parents[2]


def _nodes(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema node below ``schema`` with its path."""
    out: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(schema, dict):
        return out
    out.append((path, schema))
    for name, child in schema.get("properties", {}).items():
        out += _nodes(child, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        out += _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        out += _nodes(schema["additionalProperties"], f"{path}{{}}")
    return out


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.kind)
def test_schema_is_structural(model: type[Resource]) -> None:
    schema = crdgen.schema_of(model)
    for path, node in _nodes(schema):
        assert "$ref" not in node and "$defs" not in node, path
        assert "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        if node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields"):
            continue
        assert "type" in node, f"{model.kind}{path} has no type"
        assert not any(b == {"type": "null"} for b in node.get("anyOf", [])), path
        if "properties" in node:
            assert "additionalProperties" not in node, path


def test_every_required_field_is_a_property() -> None:
    for model in KINDS:
        for path, node in _nodes(crdgen.schema_of(model)):
            missing = set(node.get("required", [])) - set(node.get("properties", {}))
            assert not missing, f"{model.kind}{path} requires {missing} but does not declare them"


def test_free_form_only_where_declared() -> None:
    preserved = [
        (model.kind, path)
        for model in KINDS
        for path, node in _nodes(crdgen.schema_of(model))
        if node.get("x-kubernetes-preserve-unknown-fields")
    ]
    assert preserved == [("ComplianceFramework", ".spec.controls[].checks[].params")]


def test_optional_fields_are_nullable_without_null_default() -> None:
    spec = crdgen.schema_of(KINDS[0])["properties"]["spec"]["properties"]
    assert spec["mcsLevel"]["nullable"] is True
    assert "default" not in spec["mcsLevel"]
    assert spec["mcsLevel"]["type"] == "string"
    assert spec["deletionPolicy"]["default"] == "Retain"


@pytest.mark.parametrize(
    ("kind", "path", "needle"),
    [
        ("Tenant", ".spec.region", "self == oldSelf"),
        ("ProtectionPolicy", ".spec", "X25519"),
        ("QuorumPolicy", ".spec", "r.minApprovals <= size(self.approvers)"),
        ("EvidenceExport", ".spec.window", "timestamp(self.from) < timestamp(self.to)"),
        ("Approval", ".spec", "self == oldSelf"),
        ("Tenant", "", "size(self.metadata.name) <= 63"),
        ("Tenant", ".spec.mcsLevel", "< 1024"),
        ("Tenant", ".spec.quota.hard", "quantity(self[k]).isInteger()"),
        ("Tenant", ".spec.quota.hard{}", "isQuantity(self)"),
        ("Tenant", ".spec.limits", "isGreaterThan"),
        ("Tenant", ".spec.network.allowEgressCidrs[]", "isCIDR(self)"),
        ("ProtectionPolicy", ".spec.selinuxType", "'container_t'"),
        ("ProtectionPolicy", ".spec.workloadSelector", "self.all(k"),
        ("QuorumPolicy", ".spec", "role in a.roles"),
        ("QuorumPolicy", ".spec.approvers[].publicKeys", "has(self.ed25519) || has(self.mlDsa65)"),
        ("EvidenceExport", ".spec.destination", "has(self.claimName)"),
        ("ComplianceFramework", ".spec", "c.id == e.control"),
    ],
)
def test_cel_rules_are_generated(kind: str, path: str, needle: str) -> None:
    model = next(m for m in KINDS if m.kind == kind)
    nodes = dict(_nodes(crdgen.schema_of(model)))
    rules = nodes[path].get("x-kubernetes-validations", [])
    assert any(needle in rule["rule"] and rule["message"] for rule in rules), rules


def test_object_rules_sit_at_the_root_and_kinds_without_them_have_none() -> None:
    for model in KINDS:
        schema = crdgen.schema_of(model)
        assert schema.get("x-kubernetes-validations", []) == list(model.rules)
        for path, node in _nodes(schema)[1:]:
            for rule in node.get("x-kubernetes-validations", []):
                assert "metadata" not in rule["rule"], f"{model.kind}{path}: only a root rule can read metadata"


def test_print_columns_show_readiness() -> None:
    for model in KINDS:
        columns = crdgen.crd_of(model)["spec"]["versions"][0]["additionalPrinterColumns"]
        assert [c["name"] for c in columns[:2]] == ["Ready", "Reason"]
        assert columns[-1]["name"] == "Age"


def test_committed_crds_match_the_models() -> None:
    assert crdgen.drift(REPO / "crds") == []


def test_drift_is_detected(tmp_path: Path) -> None:
    crdgen.write(tmp_path)
    target = tmp_path / crdgen.file_name(KINDS[0])
    target.write_text(target.read_text().replace("eu-west-1", "eu-west-2"))
    (tmp_path / "privatevault.io_leftovers.yaml").write_text("kind: Stale\n")
    assert crdgen.drift(tmp_path) == sorted([target.name, "privatevault.io_leftovers.yaml"])


@pytest.mark.parametrize("model", KINDS, ids=lambda m: m.kind)
def test_a_new_objects_status_reads_not_observed_yet(model: type[Resource]) -> None:
    status = crdgen.schema_of(model)["properties"]["status"]
    assert status["default"] == {"observedGeneration": 0}  # never a generation: kstatus InProgress
