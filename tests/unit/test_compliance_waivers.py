"""Exceptions and attestations: their change digests, their states at the expiry boundary and under
each quorum verdict, and that an active one waives only its control, its tenants, its framework."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import rfc8785

from privatevault.api.v1alpha1.complianceframework import ComplianceFrameworkSpec, ComplianceFrameworkStatus
from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicySpec
from privatevault.compliance import evaluate as ev
from privatevault.compliance import waivers as wv
from privatevault.compliance.facts import ClusterFacts, NamespaceFacts, TenantFacts
from privatevault.errors import SpecError
from privatevault.quorum import Requester, statement
from privatevault.quorum.gate import InForce, hold
from privatevault.quorum.statement import Target
from tests import builders

EXPIRES = "2027-01-01T00:00:00Z"
AT_EXPIRY = datetime(2027, 1, 1, tzinfo=UTC)
BEFORE = AT_EXPIRY - timedelta(seconds=1)
APPROVED = wv.Verdict("Approved", "2/2", "")
PENDING = wv.Verdict("Pending", "1/2", "pvctl approvals create --target ComplianceFramework/soc2 ...")
REFUSED = wv.Verdict("Refused", "0/2", "refused by ann")


def spec(**extra: Any) -> ComplianceFrameworkSpec:
    return ComplianceFrameworkSpec.model_validate(
        {
            "framework": "SOC2",
            "version": "2017",
            "quorumPolicyRef": "two-person",
            "controls": [
                {"id": "NET", "title": "net", "checks": [{"name": "network-default-deny"}]},
                {"id": "TRAIN", "title": "training", "checks": [{"name": "manual"}]},
            ],
            **extra,
        }
    )


EXCEPTION = {"control": "NET", "tenants": ["globex", "acme"], "reason": "migration", "expires": EXPIRES}
ATTESTATION = {"control": "TRAIN", "statement": "all staff trained", "expires": EXPIRES}
SPEC = spec(exceptions=[EXCEPTION], attestations=[ATTESTATION])


def test_change_digests_are_sha256_of_the_canonical_entry() -> None:
    exception, attestation = wv.entries(SPEC)
    wanted = {
        "action": "AddComplianceException",
        "control": "NET",
        "tenants": ["acme", "globex"],
        "reason": "migration",
        "expires": EXPIRES,
    }
    assert exception.change() == wanted
    assert exception.digest == "sha256:" + hashlib.sha256(rfc8785.dumps(wanted)).hexdigest()
    assert attestation.change() == {
        "action": "AttestComplianceControl",
        "control": "TRAIN",
        "statement": "all staff trained",
        "expires": EXPIRES,
    }
    assert attestation.digest == "sha256:" + hashlib.sha256(rfc8785.dumps(attestation.change())).hexdigest()


def test_the_gated_change_binds_the_entry_to_its_framework() -> None:
    exception, _ = wv.entries(SPEC)
    soc2 = Target("ComplianceFramework", "soc2", "uid-1", 3)
    gated = exception.gated(soc2)
    assert (gated.action, gated.target, gated.what) == ("AddComplianceException", soc2, exception.change())
    assert gated.digest == statement.change_digest("AddComplianceException", soc2, exception.change())
    assert gated.digest == exception.gated(replace(soc2, generation=4)).digest  # other edits keep approvals
    assert gated.digest != exception.gated(replace(soc2, name="iso", uid="uid-2")).digest
    assert gated.digest != exception.digest


def test_reordering_tenants_keeps_the_digest_and_any_edit_changes_it() -> None:
    (same,) = wv.entries(spec(exceptions=[EXCEPTION | {"tenants": ["acme", "globex"]}]))
    digest = wv.entries(SPEC)[0].digest
    assert same.digest == digest
    for edit in ({"reason": "other"}, {"expires": "2027-01-02T00:00:00Z"}, {"tenants": ["acme"]}, {"tenants": []}):
        (other,) = wv.entries(spec(exceptions=[EXCEPTION | edit]))
        assert other.digest != digest, edit


@pytest.mark.parametrize(
    ("verdict", "now", "state", "message"),
    [
        (APPROVED, BEFORE, "Active", "active until 2027-01-01T00:00:00Z; 2/2 approvals"),
        (APPROVED, AT_EXPIRY, "Expired", "expired at 2027-01-01T00:00:00Z"),
        (PENDING, BEFORE, "AwaitingQuorum", "awaiting quorum; 1/2 approvals; pvctl approvals create"),
        (PENDING, AT_EXPIRY, "Expired", "expired at"),
        (None, BEFORE, "AwaitingQuorum", "awaiting quorum approval"),
        (REFUSED, BEFORE, "Refused", "refused; 0/2 approvals; refused by ann"),
        (REFUSED, AT_EXPIRY, "Refused", "refused"),
    ],
)
def test_states(verdict: wv.Verdict | None, now: datetime, state: str, message: str) -> None:
    entries = wv.entries(SPEC)
    decided = wv.decide(entries, {e.digest: verdict for e in entries} if verdict else {}, now)
    assert [s.state for s in decided.entries] == [state, state]
    assert all(message in s.message for s in decided.entries)
    active = state == "Active"
    assert (decided.active.exception("NET", "acme") is not None) == active
    assert (decided.active.attestation("TRAIN") is not None) == active
    assert [s.entry.control for s in decided.exceptions] == ["NET"]
    assert [s.entry.control for s in decided.attestations] == ["TRAIN"]
    wire = [s.wire() for s in decided.entries]
    assert [ComplianceFrameworkStatus.model_validate({"exceptions": wire[:1], "attestations": wire[1:]})]
    assert wire[0] == {"control": "NET", "state": state, "message": decided.entries[0].message, "expires": EXPIRES}


def test_a_verdict_for_another_digest_does_nothing() -> None:
    entries = wv.entries(SPEC)
    decided = wv.decide(entries, {"sha256:" + "0" * 64: APPROVED}, BEFORE)
    assert decided.active == wv.NONE
    assert {s.state for s in decided.entries} == {"AwaitingQuorum"}


def facts(name: str) -> TenantFacts:
    return TenantFacts(name=name, namespaces=(NamespaceFacts(name),))


def test_an_exception_leaks_to_no_other_tenant_or_framework() -> None:
    entries = wv.entries(SPEC)
    active = wv.decide(entries, {e.digest: APPROVED for e in entries}, BEFORE).active
    framework = ev.compile_framework(SPEC)
    other = ev.compile_framework(spec())  # the same controls, no exceptions: its own waivers are empty
    other_active = wv.decide(wv.entries(spec()), {e.digest: APPROVED for e in entries}, BEFORE).active
    now = BEFORE
    for name, state in (("acme", "excepted"), ("globex", "excepted"), ("initech", "fail")):
        result = ev.evaluate(framework, facts(name), ClusterFacts(), now, active)
        assert result.states() == {"NET": state, "TRAIN": "pass"}, name
        assert ev.evaluate(other, facts(name), ClusterFacts(), now, other_active).states() == {
            "NET": "fail",
            "TRAIN": "unknown",
        }


def test_an_empty_tenant_list_waives_every_selected_tenant() -> None:
    entries = wv.entries(spec(exceptions=[EXCEPTION | {"tenants": []}]))
    active = wv.decide(entries, {entries[0].digest: APPROVED}, BEFORE).active
    assert active.exception("NET", "anyone") == entries[0].digest
    assert active.exception("TRAIN", "anyone") is None


def test_pending_changes_no_result() -> None:
    entries = wv.entries(SPEC)
    active = wv.decide(entries, {e.digest: PENDING for e in entries}, BEFORE).active
    result = ev.evaluate(ev.compile_framework(SPEC), facts("acme"), ClusterFacts(), BEFORE, active)
    assert result.states() == {"NET": "fail", "TRAIN": "unknown"}


@pytest.mark.parametrize(
    ("text", "problem"), [("tomorrow", "is not an RFC 3339 date-time"), ("2027-01-01T00:00:00", "has no time zone")]
)
def test_expiry_must_be_a_time_with_an_offset(text: str, problem: str) -> None:
    with pytest.raises(SpecError, match=problem):
        wv.entries(spec(exceptions=[EXCEPTION | {"expires": text}]))
    assert wv.parse_time("2027-01-01T01:00:00+01:00") == AT_EXPIRY


def test_a_quorum_decision_becomes_a_verdict() -> None:
    spec_ = QuorumPolicySpec.model_validate(
        builders.quorum_policy(
            "two-person",
            approvers=[builders.approver("ann"), builders.approver("bob")],
            rules=[builders.rule("AddComplianceException", min_approvals=2)],
        )["spec"]
    )
    exception, _ = wv.entries(SPEC)
    change = exception.gated(Target("ComplianceFramework", "soc2", "uid-1", 3))
    held = hold(
        change,
        rules=spec_.rules,
        policy=InForce("two-person", 1, spec_),
        judged=[],
        requester=Requester.of("dave@corp"),
        now=BEFORE,
    )
    pending = wv.verdict(held)
    assert (pending.state, pending.approvals) == ("Pending", "0/2")
    assert "sign with: pvctl approvals create ComplianceFramework/soc2 --action AddComplianceException" in (
        pending.message
    )
    for state, wanted in (("Approved", "Approved"), ("Refused", "Refused"), ("Expired", "Pending")):
        decided = replace(held, decision=replace(held.decision, state=state))
        assert wv.verdict(decided).state == wanted, state
