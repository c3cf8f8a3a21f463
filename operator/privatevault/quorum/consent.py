"""An approver's consent, from the pending action a gated object shows to the Approval to create.

``pvctl approvals create`` and the tests of every tier make Approvals the same way: read one
entry of the object's ``status.pending``, build the :class:`~.statement.Statement` it asks for
(:func:`statement_for`), sign it (``dsse.sign``) and wrap the envelope in an Approval manifest
whose fields repeat what the statement says (:func:`approval_manifest`), as ``ballots.verify``
checks they do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from privatevault.api.v1alpha1 import API_VERSION
from privatevault.api.v1alpha1.pending import PendingAction

from . import dsse
from .statement import Statement, Target

#: How many hex digits of the change digest end an Approval's name.
SHORT_DIGEST: Final = 8
#: The longest object name the API server takes (a DNS subdomain).
MAX_NAME: Final = 253


def statement_for(pending: PendingAction, approver: str, not_after: datetime) -> Statement:
    """The statement approving ``pending`` as ``approver`` until ``not_after`` (whole seconds, UTC)."""
    target = pending.target
    return Statement(
        action=pending.action,
        target=Target(kind=target.kind, name=target.name, uid=target.uid, generation=target.generation),
        change_digest=pending.change_digest,
        approver=approver,
        policy=pending.policy,
        policy_generation=pending.policy_generation,
        not_after=not_after.astimezone(UTC).replace(microsecond=0),
    )


def approval_name(statement: Statement) -> str:
    """``<target>-<action>-<approver>-<short digest>``: one Approval per approver and change.

    A target name too long for that (object names go to 253 characters) is cut, the rest kept.
    """
    short = statement.change_digest.removeprefix("sha256:")[:SHORT_DIGEST]
    tail = f"-{statement.action.lower()}-{statement.approver}-{short}"
    head = statement.target.name[: MAX_NAME - len(tail)].rstrip("-.")
    return head + tail


def approval_manifest(statement: Statement, envelope: dsse.Envelope, *, name: str | None = None) -> dict[str, Any]:
    """The Approval carrying ``envelope`` (a signed ``statement``), named by :func:`approval_name` by default."""
    predicate = statement.to_json()["predicate"]
    return {
        "apiVersion": API_VERSION,
        "kind": "Approval",
        "metadata": {"name": name or approval_name(statement)},
        "spec": {
            "policy": statement.policy,
            "approver": statement.approver,
            "action": {
                "verb": statement.action,
                "kind": statement.target.kind,
                "name": statement.target.name,
                "uid": statement.target.uid,
                "generation": statement.target.generation,
                "digest": statement.change_digest,
            },
            "expires": predicate["notAfter"],
            "envelope": envelope.to_json(),
        },
    }
