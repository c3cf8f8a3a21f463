"""The shipped policies (``policies/``): every file is an object of our API that the models and the
generated CRD schemas accept, every check a framework names exists with valid params, names and
control ids are unique, and the presets keep the promises their comments make (the quorum presets
can be met but approve nothing until their placeholder keys are replaced; the protection presets
pass or fail the CNSA 2.0 check as they say; the quorum presets meet the frameworks' quorum checks)."""

from __future__ import annotations

import copy
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from privatevault.api.v1alpha1 import (
    API_VERSION,
    GROUP,
    ComplianceFramework,
    ProtectionPolicy,
    QuorumPolicy,
    Resource,
)
from privatevault.api.v1alpha1.common import DNS_LABEL
from privatevault.compliance.checks import CNSA2, LIBRARY, compile_check
from privatevault.compliance.facts import ClusterFacts, PolicyFacts, QuorumRuleFacts, TenantFacts
from privatevault.quorum import rules
from privatevault.quorum.dsse import small_order
from tests.support import REPO

POLICIES = REPO / "policies"
FILES = sorted(POLICIES.rglob("*.yaml"))
MODELS: dict[str, type[Resource]] = {m.kind: m for m in (ComplianceFramework, ProtectionPolicy, QuorumPolicy)}
#: Where each kind's files live.
FOLDERS = {
    "ComplianceFramework": "frameworks",
    "ProtectionPolicy": "protectionpolicies",
    "QuorumPolicy": "quorumpolicies",
}
#: The start of every placeholder ML-DSA-65 key (base64 text; nobody holds its private key).
ML_DSA_PLACEHOLDER = "PLACEHOLDER+REPLACE+WITH+YOUR+ML+DSA+65"
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def load(path: Path) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(docs) == 1, f"{path.relative_to(REPO)}: one object per file"
    return dict(docs[0])


def objects(kind: str) -> list[tuple[Path, Any]]:
    return [(p, MODELS[kind].model_validate(load(p))) for p in FILES if load(p)["kind"] == kind]


def cases(kind: str) -> list[Any]:
    return [pytest.param(path, obj, id=path.stem) for path, obj in objects(kind)]


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_every_folder_has_files() -> None:
    kinds = Counter(load(p)["kind"] for p in FILES)
    assert kinds["ComplianceFramework"] >= 6 and kinds["ProtectionPolicy"] >= 3 and kinds["QuorumPolicy"] >= 3


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_the_file_is_an_object_of_our_api_in_its_folder(path: Path) -> None:
    obj = load(path)
    assert obj["apiVersion"] == API_VERSION
    assert obj["kind"] in MODELS, f"{rel(path)}: {obj['kind']} is not a kind of policies/"
    assert path.parent.name == FOLDERS[obj["kind"]]
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}, "no status, no stray top-level fields"
    MODELS[obj["kind"]].model_validate(obj)


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` refusing fields it does not list: the API server would prune them without a word."""
    out = copy.deepcopy(schema)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(out)
    return out


def crd_schema(model: type[Resource]) -> dict[str, Any]:
    crd = yaml.safe_load((REPO / "crds" / f"{GROUP}_{model.plural}.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["served"]]
    return strict(version["schema"]["openAPIV3Schema"])


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_the_generated_crd_schema_accepts_the_file_without_pruning(path: Path) -> None:
    obj = load(path)
    jsonschema.validate(obj, crd_schema(MODELS[obj["kind"]]))


def test_the_strict_schema_refuses_what_the_api_server_would_prune() -> None:
    (path, _), *_ = objects("ComplianceFramework")
    obj = load(path)
    obj["spec"]["controls"][0]["description"] = "not a field of a control"
    with pytest.raises(jsonschema.ValidationError, match="description"):
        jsonschema.validate(obj, crd_schema(ComplianceFramework))


@pytest.mark.parametrize("path", FILES, ids=rel)
def test_the_file_is_named_after_the_object_and_the_name_can_be_referenced(path: Path) -> None:
    """Tenants and frameworks name policies in *PolicyRef fields, which take DNS labels (no dots)."""
    name = load(path)["metadata"]["name"]
    assert path.stem == name
    assert re.fullmatch(DNS_LABEL, name) and len(name) <= 63, f"{name}: a *PolicyRef could not name it"


def test_no_two_files_share_a_name() -> None:
    names = Counter(load(p)["metadata"]["name"] for p in FILES)
    assert [n for n, count in names.items() if count > 1] == []


@pytest.mark.parametrize(("path", "framework"), cases("ComplianceFramework"))
def test_every_check_exists_with_valid_params(path: Path, framework: ComplianceFramework) -> None:
    ids = [c.id for c in framework.spec.controls]
    assert len(set(ids)) == len(ids), f"{rel(path)}: control ids repeat"
    for control in framework.spec.controls:
        for check in control.checks:
            assert check.name in LIBRARY
            compile_check(control.id, check)  # raises SpecError InvalidCheckParams, as the controller would


@pytest.mark.parametrize("path", [p for p in FILES if p.parent.name == "frameworks"], ids=rel)
def test_a_comment_says_why_above_every_control(path: Path) -> None:
    lines = path.read_text().splitlines()
    bare = [
        line.strip()
        for i, line in enumerate(lines)
        if line.lstrip().startswith("- id:") and not lines[i - 1].lstrip().startswith("#")
    ]
    assert bare == [], f"{rel(path)}: controls without a comment on why their checks evidence them"


@pytest.mark.parametrize(("path", "framework"), cases("ComplianceFramework"))
def test_manual_checks_stand_alone(path: Path, framework: ComplianceFramework) -> None:
    """A control is manual (attested) when its only check is ``manual``; mixed with automatic checks it
    would stay unknown for ever, since an attestation makes only a manual control pass."""
    for control in framework.spec.controls:
        names = [c.name for c in control.checks]
        assert "manual" not in names or names == ["manual"], f"{rel(path)} {control.id}: {names}"


@pytest.mark.parametrize(("path", "framework"), cases("ComplianceFramework"))
def test_each_framework_is_mostly_checked_automatically(path: Path, framework: ComplianceFramework) -> None:
    """Manual controls are unknown until attested and count as not passed: a few, not the bulk."""
    manual = [c.id for c in framework.spec.controls if c.checks[0].name == "manual"]
    assert len(manual) <= max(1, len(framework.spec.controls) // 4), f"{rel(path)}: {manual}"
    assert all(c.weight > 0 for c in framework.spec.controls), "a control of weight 0 would count for nothing"


def test_the_frameworks_ship_without_exceptions_or_attestations() -> None:
    for _, framework in objects("ComplianceFramework"):
        assert framework.spec.exceptions == [] and framework.spec.attestations == []


# -- the quorum presets --------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "policy"), cases("QuorumPolicy"))
def test_the_quorum_preset_can_be_met_once_keys_are_real(path: Path, policy: QuorumPolicy) -> None:
    assert rules.unsatisfiable(policy.spec) == []


@pytest.mark.parametrize(("path", "policy"), cases("QuorumPolicy"))
def test_every_key_of_a_quorum_preset_is_a_placeholder_the_operator_refuses(path: Path, policy: QuorumPolicy) -> None:
    """As shipped, a preset is Stalled and approves nothing: each Ed25519 key is of small order (no
    signature under it counts), and each ML-DSA-65 key is marked and has no known private key."""
    problems = rules.unparsable_keys(policy.spec)
    for approver in policy.spec.approvers:
        keys = approver.public_keys
        assert keys.ed25519 is not None, f"{approver.name}: the Ed25519 placeholder keeps the preset Stalled"
        assert small_order(rules.public_keys(approver)["Ed25519"])
        assert any(p.startswith(f"approver {approver.name}: ") and "placeholder" in p for p in problems)
        assert keys.ml_dsa65 is None or keys.ml_dsa65.startswith(ML_DSA_PLACEHOLDER)


def quorum_facts(policy: QuorumPolicy) -> TenantFacts:
    """A tenant under ``policy``: the rules' approvals and distinct required roles, as the facts keep them."""
    rules_in_force = tuple(
        QuorumRuleFacts(r.action, r.min_approvals, frozenset(r.required_roles)) for r in policy.spec.rules
    )
    return TenantFacts(name="t", quorum_policy=str(policy.metadata["name"]), quorum_rules=rules_in_force)


def quorum_checks() -> list[tuple[str, str, Any]]:
    return [
        (str(f.metadata["name"]), control.id, check)
        for _, f in objects("ComplianceFramework")
        for control in f.spec.controls
        for check in control.checks
        if check.name == "deletion-quorum"
    ]


@pytest.mark.parametrize(("path", "policy"), cases("QuorumPolicy"))
def test_every_quorum_preset_meets_every_frameworks_quorum_check(path: Path, policy: QuorumPolicy) -> None:
    checks = quorum_checks()
    assert len(checks) >= 4
    for framework, control, check in checks:
        finding = compile_check(control, check)(quorum_facts(policy), ClusterFacts(), NOW)
        assert finding.outcome == "pass", f"{framework} {control}: {finding.reason}"


def test_the_readme_counts_each_frameworks_controls() -> None:
    """The table in policies/README.md: `file` ... | controls (manual) |."""
    readme = (POLICIES / "README.md").read_text()
    for path, framework in objects("ComplianceFramework"):
        controls = framework.spec.controls
        manual = sum(c.checks[0].name == "manual" for c in controls)
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{path.name}` |"))
        assert row.endswith(f"| {len(controls)} ({manual}) |"), row


# -- the protection presets ----------------------------------------------------------------------


def policy_facts(policy: ProtectionPolicy) -> PolicyFacts:
    spec, profile = policy.spec, policy.spec.effective_profile
    algorithms = {spec.kem or profile.kem, spec.signature or profile.signature, spec.symmetric or profile.symmetric}
    return PolicyFacts(str(policy.metadata["name"]), spec.effective_mode, frozenset(algorithms), ready=True)


@pytest.mark.parametrize(("name", "cnsa2"), [("cnsa2", "pass"), ("hybrid-default", "fail"), ("pqc-strict", "fail")])
def test_the_protection_presets_pass_the_cnsa2_check_as_documented(name: str, cnsa2: str) -> None:
    (policy,) = [p for _, p in objects("ProtectionPolicy") if p.metadata["name"] == name]
    assert policy.spec.effective_mode in ("PQC", "Hybrid"), "every preset is quantum-safe"
    facts = TenantFacts(name="t", protection=policy_facts(policy))
    check = LIBRARY["cnsa2-algorithms"]
    assert check.run(check.params.model_validate({}), facts, ClusterFacts(), NOW).outcome == cnsa2
    assert (policy_facts(policy).algorithms == CNSA2) is (cnsa2 == "pass")
