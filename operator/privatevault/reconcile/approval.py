"""Approval reconcile: verify the envelope under the policy in force, say so, and keep it.

The verdict (``Valid``, ``Invalid`` or ``Expired`` with a reason) goes to the status; a valid
Approval is ``Ready``, an invalid or expired one ``Stalled`` (it will never count). Every
Approval seen is appended to the ledger with its DSSE envelope verbatim, valid or not, so an
auditor can re-verify the signatures later from the ledger alone. The gates never trust this
status: they judge the Approvals again under the rules in force when they decide.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from privatevault.api.v1alpha1 import Approval
from privatevault.errors import SpecError
from privatevault.ledger import ResourceRef
from privatevault.quorum import verify
from privatevault.quorum.ballots import Judged
from privatevault.reconcile import quorum, status
from privatevault.reconcile.audit import event
from privatevault.reconcile.ports import LedgerPort

BEGIN_MESSAGE = "verifying the approval's signatures"
RECORD = "record-approval"


def judge(approval: Approval, ledger: LedgerPort, now: datetime) -> Judged:
    state = quorum.policy(ledger, approval.spec.policy)
    return verify(approval, approval.spec.policy, state.in_force.spec if state.in_force else None, now)


def record(approval: Approval, judged: Judged, ledger: LedgerPort, actor: str) -> None:
    action = approval.spec.action
    ledger.append(
        event(
            kind="approval",
            uid=str(approval.metadata["uid"]),
            tenant=action.name if action.kind == "Tenant" else "",
            actor=actor,
            action=RECORD,
            resource=ResourceRef(
                kind="Approval", name=str(approval.metadata["name"]), uid=str(approval.metadata["uid"])
            ),
            change=judged.envelope_digest or "unparsed",
            details={
                "approver": approval.spec.approver,
                "policy": approval.spec.policy,
                "action": action.model_dump(mode="json", by_alias=True),
                "verdictWhenSeen": judged.verdict,
                "reason": judged.reason,
                "envelope": approval.spec.envelope.model_dump(mode="json", by_alias=True),
            },
        )
    )


def facts(judged: Judged) -> dict[str, Any]:
    return {
        "verdict": judged.verdict,
        "reason": judged.reason[:1024],
        "statement_digest": judged.envelope_digest or None,
    }


def reconcile(approval: Approval, *, ledger: LedgerPort, actor: str, now: datetime) -> status.Done:
    judged = judge(approval, ledger, now)
    record(approval, judged, ledger, actor)
    if judged.verdict == "Valid":
        return status.Done(message=judged.reason, facts=facts(judged))
    return status.Done(
        message=judged.reason,
        facts=facts(judged),
        held=SpecError(judged.reason, reason="ApprovalExpired" if judged.verdict == "Expired" else "InvalidApproval"),
    )
