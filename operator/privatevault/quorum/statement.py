"""What an approver signs: an in-toto Statement v1 naming one exact change to one object.

The change is named by its digest: SHA-256 over the RFC 8785 bytes of :func:`change`, which
holds the action, the target (kind, name, uid) and what the action makes of it (the spec it
deletes, the spec it lets into force). The statement adds the target's generation, the approver,
the policy and an expiry. An approval is therefore bound to the object (uid: a tenant made again
under the same name is another object), to the exact change (a different spec is another digest)
and to the generation it was held at; all three are checked before it counts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from privatevault.ledger.event import canonical

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE: Final = "https://privatevault.io/approval/v1"


class StatementError(ValueError):
    """A payload that is not one of our approval statements, or one missing a field."""


@dataclass(frozen=True)
class Target:
    kind: str
    name: str
    uid: str
    generation: int


def change(action: str, target: Target, what: Mapping[str, Any]) -> dict[str, Any]:
    """The document whose digest names a change: the action, the object, and what it becomes."""
    return {
        "action": action,
        "target": {"kind": target.kind, "name": target.name, "uid": target.uid},
        "change": dict(what),
    }


def change_digest(action: str, target: Target, what: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(change(action, target, what))).hexdigest()


@dataclass(frozen=True)
class Statement:
    action: str
    target: Target
    change_digest: str
    approver: str
    policy: str
    policy_generation: int
    not_after: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [
                {
                    "name": f"privatevault.io/{self.target.kind}/{self.target.name}",
                    "digest": {"sha256": self.change_digest.removeprefix("sha256:")},
                }
            ],
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "action": self.action,
                "target": {
                    "kind": self.target.kind,
                    "name": self.target.name,
                    "uid": self.target.uid,
                    "generation": self.target.generation,
                },
                "changeDigest": self.change_digest,
                "approver": self.approver,
                "policy": {"name": self.policy, "generation": self.policy_generation},
                "notAfter": _rfc3339(self.not_after),
            },
        }

    def payload(self) -> bytes:
        """The bytes signed (through the DSSE PAE): RFC 8785 JSON, so every signer writes the same."""
        return canonical(self.to_json())


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise StatementError(f"{text!r} is not an RFC 3339 time") from exc
    if moment.tzinfo is None:
        raise StatementError(f"{text!r} has no time zone")
    return moment


def _field(document: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise StatementError(f"the statement's {where}{name} is missing or not a {kind.__name__}")
    return value


def parse(payload: bytes) -> Statement:
    """The statement in ``payload``; raises ``StatementError`` naming what is wrong."""
    try:
        document = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StatementError("the payload is not JSON") from exc
    if not isinstance(document, dict):
        raise StatementError("the payload is not a JSON object")
    if document.get("_type") != STATEMENT_TYPE:
        raise StatementError(f"the payload is not an in-toto Statement v1 (_type {document.get('_type')!r})")
    if document.get("predicateType") != PREDICATE_TYPE:
        raise StatementError(f"the predicateType is {document.get('predicateType')!r}, not {PREDICATE_TYPE}")
    predicate = _field(document, "predicate", dict, "")
    target = _field(predicate, "target", dict, "predicate.")
    policy = _field(predicate, "policy", dict, "predicate.")
    statement = Statement(
        action=_field(predicate, "action", str, "predicate."),
        target=Target(
            kind=_field(target, "kind", str, "target."),
            name=_field(target, "name", str, "target."),
            uid=_field(target, "uid", str, "target."),
            generation=_field(target, "generation", int, "target."),
        ),
        change_digest=_field(predicate, "changeDigest", str, "predicate."),
        approver=_field(predicate, "approver", str, "predicate."),
        policy=_field(policy, "name", str, "policy."),
        policy_generation=_field(policy, "generation", int, "policy."),
        not_after=parse_time(_field(predicate, "notAfter", str, "predicate.")),
    )
    subjects = document.get("subject")
    expected = statement.to_json()["subject"]
    if subjects != expected:
        raise StatementError("the statement's subject does not name the target with the change digest")
    return statement
