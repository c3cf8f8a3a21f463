"""The requester records: which admission requests hold which gated change, their ledger keys, and
the Requester read back from them (table tests; the webhook itself is proven in tests/e2e)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from privatevault.api.v1alpha1.complianceframework import ComplianceFrameworkSpec
from privatevault.compliance import waivers
from privatevault.quorum import Requester, changes
from privatevault.reconcile import requesters
from privatevault.reconcile.requesters import Admission
from tests.unit.fakes import FakeLedger


def obj(
    kind: str, spec: dict[str, Any], *, name: str = "acme", uid: str = "uid-1", generation: int = 1
) -> dict[str, Any]:
    return {
        "apiVersion": "privatevault.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "uid": uid, "generation": generation},
        "spec": spec,
    }


def with_spec(old: dict[str, Any], **changed: Any) -> dict[str, Any]:
    new = copy.deepcopy(old)
    new["spec"].update(changed)
    new["metadata"]["generation"] += 1
    return new


CF = "ComplianceFramework"
TENANT = obj("Tenant", {"region": "eu-west-1", "quorumPolicyRef": "two-of-three", "deletionPolicy": "Retain"})
POLICY = obj("ProtectionPolicy", {"mode": "Hybrid", "quorumPolicyRef": "two-of-three"}, name="hybrid")
QUORUM = obj("QuorumPolicy", {"rules": [{"action": "DeleteTenant", "minApprovals": 2}]}, name="two-of-three")
EXPORT = obj("EvidenceExport", {"tenants": ["acme"]}, name="q3")
CONTROLS = [{"id": "residency", "title": "EU", "checks": [{"name": "data-residency", "params": {"regions": ["eu"]}}]}]
EXCEPTION = {"control": "residency", "reason": "moving", "expires": "2027-01-01T00:00:00Z"}
FRAMEWORK = obj(
    "ComplianceFramework",
    {"framework": "SOC2", "version": "1", "controls": CONTROLS, "quorumPolicyRef": "board"},
    name="soc2",
)
EXCEPTED = with_spec(FRAMEWORK, exceptions=[EXCEPTION])
EXTENDED = with_spec(EXCEPTED, exceptions=[{**EXCEPTION, "expires": "2027-06-01T00:00:00Z"}])


def waiver(o: dict[str, Any], **entry: Any) -> changes.Change:
    """The gated change of the framework's exception ``entry``, as the controller decides it."""
    spec = ComplianceFrameworkSpec.model_validate(o["spec"])
    [found] = [e for e in waivers.entries(spec) if e.expires_text == entry["expires"]]
    return found.gated(changes.target(o))


def annotated(o: dict[str, Any]) -> dict[str, Any]:
    """The same object with only metadata changed (what kopf's own patches look like)."""
    new = copy.deepcopy(o)
    new["metadata"]["annotations"] = {"privatevault.io/last-handled": "x"}
    return new


UNGATED = with_spec(TENANT, quorumPolicyRef=None)
SHREDDING = with_spec(TENANT, deletionPolicy="CryptoShred")
CLASSICAL = with_spec(POLICY, mode="Classical")
REGATED = with_spec(POLICY, quorumPolicyRef="other")
RULELESS = with_spec(QUORUM, rules=[])

PP, QP, new = "ProtectionPolicy", "QuorumPolicy", changes.new_spec


def key(action: str, o: dict[str, Any], token: str, verb: str = "rotate") -> changes.Change:
    return changes.key_request(action, o, f"privatevault.io/{verb}-kek", token)


def annotated_with(o: dict[str, Any], **annotations: str) -> dict[str, Any]:
    found = copy.deepcopy(o)
    found["metadata"]["annotations"] = {f"privatevault.io/{key.replace('_', '-')}": v for key, v in annotations.items()}
    return found


ROTATE = annotated_with(TENANT, rotate_kek="t1")
MOVED = with_spec(TENANT, protectionPolicyRef="classical")
ROTATE_AGAIN = annotated_with(TENANT, rotate_kek="t2", destroy_kek="d1")

HELD = [
    ("tenant delete", "Tenant", "DELETE", TENANT, None, [changes.deletion(TENANT)]),
    ("tenant gate removed", "Tenant", "UPDATE", TENANT, UNGATED, [new("ChangeQuorumGate", UNGATED)]),
    ("tenant to CryptoShred", "Tenant", "UPDATE", TENANT, SHREDDING, [new("ChangeQuorumGate", SHREDDING)]),
    ("tenant protection moved", "Tenant", "UPDATE", TENANT, MOVED, [new("ChangeQuorumGate", MOVED)]),
    ("tenant other spec change", "Tenant", "UPDATE", TENANT, with_spec(TENANT, locale="de-DE"), []),
    ("tenant metadata only", "Tenant", "UPDATE", TENANT, annotated(TENANT), []),
    ("tenant create", "Tenant", "CREATE", None, TENANT, []),
    ("tenant rotate-kek token", "Tenant", "UPDATE", TENANT, ROTATE, [key("RotateKeyOutOfSchedule", ROTATE, "t1")]),
    ("tenant same token", "Tenant", "UPDATE", ROTATE, with_spec(ROTATE, locale="de-DE"), []),
    (
        "tenant new tokens",
        "Tenant",
        "UPDATE",
        ROTATE,
        ROTATE_AGAIN,
        [key("RotateKeyOutOfSchedule", ROTATE_AGAIN, "t2"), key("DestroyKey", ROTATE_AGAIN, "d1", "destroy")],
    ),
    ("policy spec change", PP, "UPDATE", POLICY, CLASSICAL, [new("WeakenProtectionPolicy", CLASSICAL)]),
    (
        "policy gate moved",
        PP,
        "UPDATE",
        POLICY,
        REGATED,
        [new("WeakenProtectionPolicy", REGATED), new("ChangeQuorumGate", REGATED)],
    ),
    ("policy metadata only", PP, "UPDATE", POLICY, annotated(POLICY), []),
    ("policy delete", PP, "DELETE", POLICY, None, [changes.protection_policy_deletion(POLICY)]),
    ("quorum spec change", QP, "UPDATE", QUORUM, RULELESS, [new("WeakenQuorumPolicy", RULELESS)]),
    ("quorum delete", QP, "DELETE", QUORUM, None, [changes.quorum_policy_deletion(QUORUM)]),
    ("quorum metadata only", QP, "UPDATE", QUORUM, annotated(QUORUM), []),
    ("export create", "EvidenceExport", "CREATE", None, EXPORT, [new("CreateEvidenceExport", EXPORT)]),
    ("export update", "EvidenceExport", "UPDATE", EXPORT, annotated(EXPORT), []),
    ("framework exception added", CF, "UPDATE", FRAMEWORK, EXCEPTED, [waiver(EXCEPTED, **EXCEPTION)]),
    (
        "framework exception extended",
        CF,
        "UPDATE",
        EXCEPTED,
        EXTENDED,
        [waiver(EXTENDED, **{**EXCEPTION, "expires": "2027-06-01T00:00:00Z"})],
    ),
    ("framework exception unchanged", CF, "UPDATE", EXCEPTED, annotated(EXCEPTED), []),
    (
        "framework created with one",
        CF,
        "CREATE",
        None,
        EXCEPTED,
        [changes.framework_gate(EXCEPTED), waiver(EXCEPTED, **EXCEPTION)],
    ),
    # Made with an approving policy: it may be one made again under its name with another one.
    ("framework without any", CF, "CREATE", None, FRAMEWORK, [changes.framework_gate(FRAMEWORK)]),
    ("framework without a policy", CF, "CREATE", None, with_spec(FRAMEWORK, quorumPolicyRef=None), []),
    ("approval create", "Approval", "CREATE", None, obj("Approval", {}), []),
]


@pytest.mark.parametrize(
    ("kind", "operation", "old", "new", "expected"), [h[1:] for h in HELD], ids=[h[0] for h in HELD]
)
def test_held_changes(
    kind: str, operation: str, old: dict[str, Any] | None, new: dict[str, Any] | None, expected: list[changes.Change]
) -> None:
    assert requesters.held(kind, operation, old, new) == expected


def test_every_gated_kind_and_operation_can_hold_a_change() -> None:
    kinds = {h[1]: h for h in HELD}
    for kind, operations in requesters.GATED.items():
        assert kind in kinds
        assert any(h[1] == kind and h[2] in operations and h[5] for h in HELD)


def test_the_digest_ignores_the_generation_the_api_server_may_have_bumped() -> None:
    bumped = copy.deepcopy(TENANT)
    bumped["metadata"]["generation"] = 7
    assert changes.deletion(bumped).digest == changes.deletion(TENANT).digest


def delete(user: str, uid: str, *, dry_run: bool = False) -> Admission:
    return Admission(
        uid=uid,
        operation="DELETE",
        kind="Tenant",
        user=user,
        groups=("system:authenticated", "devs"),
        old=TENANT,
        dry_run=dry_run,
    )


def test_one_record_per_request_keyed_by_the_change_and_the_request() -> None:
    (event,) = requesters.events(delete("alice", "req-1"))
    digest = changes.deletion(TENANT).digest
    assert event.idempotency_key == f"tenant/uid-1/request-gated-action/{digest}/req-1"
    assert event.idempotency_key.startswith(requesters.prefix(changes.deletion(TENANT)))
    assert (event.actor, event.action, event.tenant) == ("admission-webhook", "request-gated-action", "acme")
    assert event.details == {
        "user": "alice",
        "groups": ["devs", "system:authenticated"],
        "operation": "DELETE",
        "action": "DeleteTenant",
        "changeDigest": digest,
    }
    assert (event.resource.kind, event.resource.name, event.resource.uid) == ("Tenant", "acme", "uid-1")


def test_records_of_other_kinds_name_no_tenant() -> None:
    (event,) = requesters.events(Admission(uid="r", operation="DELETE", kind="QuorumPolicy", user="bob", old=QUORUM))
    assert event.tenant == ""
    assert event.idempotency_key.startswith("quorumpolicy/uid-1/request-gated-action/")


def test_a_dry_run_is_not_recorded() -> None:
    assert requesters.events(delete("alice", "req-1", dry_run=True)) == []


def test_the_requester_is_everyone_recorded_for_the_change_and_no_one_else() -> None:
    ledger = FakeLedger()
    for request in (delete("alice", "req-1"), delete("alice", "req-2"), delete("bob", "req-3")):
        for event in requesters.events(request):
            ledger.append(event)
    ledger.append(requesters.events(delete("alice", "req-1"))[0])  # a retried request: the same record
    other = with_spec(TENANT, quorumPolicyRef=None)
    for event in requesters.events(
        Admission(uid="req-4", operation="UPDATE", kind="Tenant", user="mallory", old=TENANT, new=other)
    ):
        ledger.append(event)
    assert len(ledger.records) == 4
    assert requesters.requester(ledger, changes.deletion(TENANT)) == Requester.of("alice", "bob")
    assert requesters.requester(ledger, changes.new_spec("ChangeQuorumGate", other)) == Requester.of("mallory")


def test_no_record_means_an_unknown_requester() -> None:
    assert requesters.requester_from([]) == Requester.unknown()
    assert requesters.requester(FakeLedger(), changes.deletion(TENANT)) == Requester.unknown()
