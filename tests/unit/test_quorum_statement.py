"""The signed statement: an in-toto Statement v1 that round-trips through its canonical bytes,
names the change by a digest that depends on the change and not on how it is written, and is
refused with the field named when anything is missing or wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from privatevault.quorum import changes
from privatevault.quorum.statement import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    Statement,
    StatementError,
    Target,
    change_digest,
    parse,
)
from tests import builders

TARGET = Target(kind="Tenant", name="acme", uid="uid-acme", generation=3)
STATEMENT = Statement(
    action="DeleteTenant",
    target=TARGET,
    change_digest=change_digest("DeleteTenant", TARGET, {"delete": {"region": "eu-west-1"}}),
    approver="alice",
    policy="two-person",
    policy_generation=2,
    not_after=datetime(2030, 1, 1, 12, 0, tzinfo=UTC),
)


def test_round_trip() -> None:
    assert parse(STATEMENT.payload()) == STATEMENT


def test_the_payload_is_an_in_toto_statement() -> None:
    document = json.loads(STATEMENT.payload())
    assert document["_type"] == STATEMENT_TYPE
    assert document["predicateType"] == PREDICATE_TYPE
    assert document["subject"] == [
        {"name": "privatevault.io/Tenant/acme", "digest": {"sha256": STATEMENT.change_digest.removeprefix("sha256:")}}
    ]
    assert document["predicate"]["notAfter"] == "2030-01-01T12:00:00Z"
    assert document["predicate"]["policy"] == {"name": "two-person", "generation": 2}
    # RFC 8785: sorted keys, no spaces, so every signer writes the same bytes.
    assert STATEMENT.payload() == json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def test_the_digest_names_the_change_not_its_spelling() -> None:
    one = change_digest("DeleteTenant", TARGET, {"delete": {"a": 1, "b": [1, 2]}})
    assert one == change_digest("DeleteTenant", TARGET, {"delete": {"b": [1, 2], "a": 1}})
    assert one.startswith("sha256:") and len(one) == 71
    assert one != change_digest("DeleteTenant", TARGET, {"delete": {"a": 2, "b": [1, 2]}})
    assert one != change_digest("CryptoShred", TARGET, {"delete": {"a": 1, "b": [1, 2]}})
    other = Target(kind="Tenant", name="acme", uid="uid-acme-2", generation=3)
    assert one != change_digest("DeleteTenant", other, {"delete": {"a": 1, "b": [1, 2]}})


def test_gated_changes_bind_the_spec() -> None:
    tenant = builders.tenant("acme", uid="u1", generation=4, deletion_policy="CryptoShred")
    deletion = changes.deletion(tenant)
    assert deletion.target == Target(kind="Tenant", name="acme", uid="u1", generation=4)
    assert deletion.digest == change_digest("DeleteTenant", deletion.target, {"delete": tenant["spec"]})
    spec = changes.new_spec("ChangeQuorumGate", tenant)
    assert spec.digest != deletion.digest
    assert changes.gate_fields({}) == {"quorumPolicyRef": None, "deletionPolicy": "Retain", "protectionPolicyRef": None}


def _document(**predicate: Any) -> dict[str, Any]:
    document = STATEMENT.to_json()
    document["predicate"] |= predicate
    return document


def _without(path: tuple[str, ...]) -> dict[str, Any]:
    document = STATEMENT.to_json()
    where = document
    for key in path[:-1]:
        where = where[key]
    del where[path[-1]]
    return document


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "the payload is not JSON"),
        (b"\xff\xfe", "the payload is not JSON"),
        (b"[1]", "not a JSON object"),
        (json.dumps(STATEMENT.to_json() | {"_type": "https://in-toto.io/Statement/v0.1"}).encode(), "_type"),
        (
            json.dumps(STATEMENT.to_json() | {"predicateType": "https://slsa.dev/provenance/v1"}).encode(),
            "predicateType",
        ),
        (json.dumps(_without(("predicate",))).encode(), "predicate is missing"),
        (json.dumps(_without(("predicate", "target", "uid"))).encode(), "target.uid is missing"),
        (json.dumps(_without(("predicate", "changeDigest"))).encode(), "predicate.changeDigest is missing"),
        (json.dumps(_without(("predicate", "policy", "generation"))).encode(), "policy.generation is missing"),
        (json.dumps(_document(approver=7)).encode(), "predicate.approver is missing or not a str"),
        (
            json.dumps(_document(target=dict(STATEMENT.to_json()["predicate"]["target"], generation=True))).encode(),
            "target.generation is missing or not a int",
        ),
        (json.dumps(_document(notAfter="tomorrow")).encode(), "'tomorrow' is not an RFC 3339 time"),
        (json.dumps(_document(notAfter="2030-01-01T00:00:00")).encode(), "has no time zone"),
        (json.dumps(STATEMENT.to_json() | {"subject": []}).encode(), "subject does not name the target"),
        (json.dumps(_document(changeDigest="sha256:" + "00" * 32)).encode(), "subject does not name the target"),
    ],
)
def test_parse_errors_are_named(payload: bytes, message: str) -> None:
    with pytest.raises(StatementError, match=message):
        parse(payload)
