"""The requester webhook end to end: the operator serves it over TLS and registers it with the real
API server; a delete by alice (impersonated), a gate moved, a key rotation asked for by annotation,
a QuorumPolicy deleted and an EvidenceExport created each leave one ledger record naming the
requester and the digest of the exact change, computed from the object as read before; a dry run
leaves none; with the requester known, a rule needs its minimum and the requester's own approval
does not count; and with the webhook's port closed the API server still accepts a delete
(failurePolicy Ignore)."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from privatevault.api.v1alpha1.complianceframework import ComplianceFrameworkSpec
from privatevault.compliance import waivers
from privatevault.ledger.store import Ledger
from privatevault.quorum import Requester, changes
from privatevault.reconcile import requesters
from privatevault.testbench.ports import free_port
from tests import builders
from tests.e2e.test_quorum import pending_of, waiting
from tests.kstatus import kstatus
from tests.quorum_keys import ApproverKeys, approver, signed_approval
from tests.support import Kubectl, Operator, eventually, wait_for_condition

ROTATE = changes.KEY_REQUESTS[0].annotation

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

ADMIN = "privatevault-admin"  # the bench's admin certificate's common name
RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-privatevault-editor}
rules:
- apiGroups: [privatevault.io]
  resources: [tenants, protectionpolicies, quorumpolicies, evidenceexports, complianceframeworks]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-privatevault-editors}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-privatevault-editor}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}
"""


@pytest.fixture
def configuration() -> str:
    """The ValidatingWebhookConfiguration of this test's operator: its own, not the demo's."""
    return f"requesters-{uuid.uuid4().hex[:8]}.privatevault.io"


@pytest.fixture
def webhook_operator(
    kubectl: Kubectl, operator_dsn_file: Path, tmp_path: Path, configuration: str
) -> Iterator[Operator]:
    """An operator serving the webhook on a free port, under a configuration of its own."""
    kubectl.apply(RBAC)
    running = Operator(
        tmp_path,
        kubectl.kubeconfig,
        operator_dsn_file,
        PRIVATEVAULT_WEBHOOK_ENABLED="true",
        PRIVATEVAULT_WEBHOOK_PORT=str(free_port()),
        PRIVATEVAULT_WEBHOOK_CONFIGURATION=configuration,
        PRIVATEVAULT_STATE_DIR=str(tmp_path / "state"),
    ).start()
    yield running
    running.stop()
    # kopf manages a (here empty) mutating configuration of the same name beside the validating one.
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        kubectl.run("delete", kind, configuration, "--ignore-not-found")


def requests_of(ledger: Ledger, change: changes.Change) -> list[dict[str, Any]]:
    return [json.loads(record.canonical) for record in ledger.find(requesters.prefix(change))]


def webhook_in_force(kubectl: Kubectl, ledger: Ledger) -> None:
    """Create EvidenceExports until the API server calls the webhook for one (it picks up a new
    configuration within moments); each probe is deleted again."""

    def probed() -> bool:
        name = f"e2e-probe-{uuid.uuid4().hex[:8]}"
        kubectl.run("create", "-f", "-", stdin=json.dumps(builders.evidence_export(name)))
        probe = kubectl.get("evidenceexport", name)
        kubectl.run("delete", "evidenceexport", name, "--wait=false")
        assert probe is not None
        return requesters.requester(ledger, changes.new_spec("CreateEvidenceExport", probe)).known

    eventually(probed, timeout=60, what="the webhook to record an EvidenceExport's creation")


def registered(kubectl: Kubectl, configuration: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        config = kubectl.get("validatingwebhookconfiguration", configuration)
        return config if config and config.get("webhooks") else None

    config: dict[str, Any] = eventually(found, timeout=60, what="the ValidatingWebhookConfiguration")
    return config


def before_delete(kubectl: Kubectl) -> dict[str, Any]:
    found = kubectl.get("tenant", "e2e-requested")
    assert found is not None
    return found


def test_the_webhook_records_who_asked_for_each_gated_change(
    kubectl: Kubectl, webhook_operator: Operator, ledger: Ledger, configuration: str
) -> None:
    config = registered(kubectl, configuration)
    for hook in config["webhooks"]:
        assert (hook["failurePolicy"], hook["sideEffects"]) == ("Ignore", "NoneOnDryRun")
        assert hook["clientConfig"]["url"].startswith("https://127.0.0.1:")
        assert hook["clientConfig"]["caBundle"]
    written = [json.loads(record.canonical) for record in ledger.records()]
    (registration,) = [body for body in written if body["action"] == "register-admission-webhook"]
    assert config["webhooks"][0]["clientConfig"]["url"].startswith(registration["details"]["url"] + "/requester-")
    kubectl.apply(builders.tenant("e2e-requested"))
    wait_for_condition(kubectl, "tenant", "e2e-requested", "Ready", current=True)
    webhook_in_force(kubectl, ledger)

    kubectl.run("patch", "tenant", "e2e-requested", "--type=merge", "-p", '{"spec":{"deletionPolicy":"CryptoShred"}}')
    shredding = changes.new_spec("ChangeQuorumGate", before_delete(kubectl))
    assert requesters.requester(ledger, shredding) == Requester.of(ADMIN)
    kubectl.run("annotate", "tenant", "e2e-requested", f"{ROTATE}=token-1", "--as", "alice")
    rotation = changes.key_request("RotateKeyOutOfSchedule", before_delete(kubectl), ROTATE, "token-1")
    assert requesters.requester(ledger, rotation) == Requester.of("alice")

    before = before_delete(kubectl)
    deletion = changes.deletion(before)
    kubectl.run("delete", "tenant", "e2e-requested", "--as", "alice", "--dry-run=server")
    assert kubectl.get("tenant", "e2e-requested") is not None
    kubectl.run("delete", "tenant", "e2e-requested", "--as", "alice", "--as-group", "auditors", "--wait=false")
    eventually(lambda: requests_of(ledger, deletion), timeout=30, what="the requester record of the delete")
    (record,) = requests_of(ledger, deletion)  # one: the dry run left none
    assert record["details"] == {
        "user": "alice",
        "groups": ["auditors", "system:authenticated"],
        "operation": "DELETE",
        "action": "DeleteTenant",
        "changeDigest": deletion.digest,
    }
    assert record["tenant"] == "e2e-requested"
    assert record["resource"]["uid"] == before["metadata"]["uid"]
    assert requesters.requester(ledger, deletion) == Requester.of("alice")
    eventually(lambda: kubectl.get("tenant", "e2e-requested") is None, timeout=60, what="the tenant to go")

    kubectl.apply(builders.quorum_policy("e2e-requested-quorum"))
    policy = kubectl.get("quorumpolicy", "e2e-requested-quorum")
    assert policy is not None
    kubectl.run("delete", "quorumpolicy", "e2e-requested-quorum", "--as", "bob")
    assert requesters.requester(ledger, changes.quorum_policy_deletion(policy)) == Requester.of("bob")

    kubectl.run("create", "--as", "alice", "-f", "-", stdin=json.dumps(builders.evidence_export("e2e-requested")))
    export = kubectl.get("evidenceexport", "e2e-requested")
    assert export is not None
    created = changes.new_spec("CreateEvidenceExport", export)
    assert requesters.requester(ledger, created) == Requester.of("alice")
    kubectl.run("delete", "evidenceexport", "e2e-requested")

    exception = {"control": "CC6.1", "reason": "moving", "expires": "2099-01-01T00:00:00Z"}
    framework = builders.compliance_framework(
        "e2e-requested", quorum_policy_ref="e2e-requested-quorum", exceptions=[exception]
    )
    kubectl.run("create", "--as", "alice", "-f", "-", stdin=json.dumps(framework))
    stored = kubectl.get("complianceframework", "e2e-requested")
    assert stored is not None
    [entry] = waivers.entries(ComplianceFrameworkSpec.model_validate(stored["spec"]))
    assert requesters.requester(ledger, entry.gated(changes.target(stored))) == Requester.of("alice")
    kubectl.run("delete", "complianceframework", "e2e-requested")


def test_a_closed_webhook_port_lets_requests_through(
    kubectl: Kubectl, webhook_operator: Operator, ledger: Ledger, configuration: str
) -> None:
    kubectl.apply(builders.tenant("e2e-unheard"))
    wait_for_condition(kubectl, "tenant", "e2e-unheard", "Ready", current=True)
    config = registered(kubectl, configuration)
    webhook_in_force(kubectl, ledger)
    before = kubectl.get("tenant", "e2e-unheard")
    assert before is not None

    # Killed, the operator cannot take its webhooks out of the configuration: the URL stays, its port closed.
    webhook_operator.process.stop_signal = signal.SIGKILL
    webhook_operator.stop()
    assert registered(kubectl, configuration)["webhooks"] == config["webhooks"]
    started = time.monotonic()
    done = kubectl.run("delete", "tenant", "e2e-unheard", "--as", "alice", "--wait=false", check=False)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    after = kubectl.get("tenant", "e2e-unheard")
    assert after is not None and after["metadata"].get("deletionTimestamp")  # held by the finalizer, not refused
    assert requesters.requester(ledger, changes.deletion(before)) == Requester.unknown()
    kubectl.run("patch", "tenant", "e2e-unheard", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')


def test_a_known_requester_cannot_approve_alone(kubectl: Kubectl, webhook_operator: Operator, ledger: Ledger) -> None:
    """With the webhook, the requester is known: the rule needs its minimum (not one more), and the
    requester's own approval does not count; the held Tenant reads InProgress to kstatus."""
    people = {name: ApproverKeys.generate() for name in ("alice", "bob")}
    approvers = [
        approver("alice", people["alice"], roles=["security"], region="eu-west-1", users=["alice"]),
        approver("bob", people["bob"], roles=["platform"], region="us-east-1", users=["bob"]),
    ]
    qp, name = f"e2e-self-{uuid.uuid4().hex[:6]}", f"e2e-self-{uuid.uuid4().hex[:6]}"
    kubectl.apply(builders.quorum_policy(qp, approvers=approvers, rules=[builders.rule("DeleteTenant")]))
    wait_for_condition(kubectl, "quorumpolicy", qp, "Ready", current=True)
    kubectl.apply(builders.tenant(name, quorum_policy_ref=qp))
    uid = wait_for_condition(kubectl, "tenant", name, "Ready", current=True)["metadata"]["uid"]
    webhook_in_force(kubectl, ledger)

    # A held spec change reads InProgress to kstatus (Flux waits); undone, the tenant is Ready again.
    shred = '{"spec":{"deletionPolicy":"CryptoShred"}}'
    kubectl.run("patch", "tenant", name, "--as", "alice", "--type=merge", "-p", shred)
    moved = pending_of(kubectl, "tenant", name, "ChangeQuorumGate")
    assert (moved["approvals"], moved["requester"]) == ("0/1", "alice")
    held = waiting(kubectl, "tenant", name, "0/1 approvals")
    assert kstatus(kubectl.get("tenant", name) or {}) == ("InProgress", held["message"])
    kubectl.run("patch", "tenant", name, "--type=merge", "-p", '{"spec":{"deletionPolicy":"Retain"}}')
    wait_for_condition(kubectl, "tenant", name, "Ready", current=True)

    kubectl.run("delete", "tenant", name, "--as", "alice", "--wait=false")
    pending = pending_of(kubectl, "tenant", name, "DeleteTenant")
    assert (pending["approvals"], pending["requester"]) == ("0/1", "alice")
    waiting(kubectl, "tenant", name, "0/1 approvals")
    # kstatus reads any object with a deletionTimestamp as Terminating, whatever its conditions say.
    assert kstatus(kubectl.get("tenant", name) or {})[0] == "Terminating"

    own = signed_approval(None, pending, "alice", people["alice"])
    kubectl.apply(own)
    wait_for_condition(kubectl, "approval", own["metadata"]["name"], "Ready")
    time.sleep(3)  # the Approval reconciles its target at once: give it the time to (wrongly) let it go
    assert kubectl.get("tenant", name) is not None
    waiting(kubectl, "tenant", name, "0/1 approvals")

    kubectl.apply(signed_approval(None, pending, "bob", people["bob"]))
    eventually(lambda: kubectl.get("tenant", name) is None, timeout=90, what=f"tenant {name} deleted")
    (decision,) = [json.loads(r.canonical) for r in ledger.find(f"tenant/{uid}/quorum-decision/")]
    assert decision["details"]["requester"] == "alice"
    assert [a["approver"] for a in decision["details"]["approvals"]] == ["bob"]
