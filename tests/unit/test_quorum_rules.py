"""QuorumPolicy rules read for people and for the gate: each rule in words, the rules no set of
approvers can meet, keys that parse but must not be trusted, and which edits weaken a policy
(each a gated action, WeakenQuorumPolicy) and which do not."""

from __future__ import annotations

from typing import Any

import pytest

from privatevault.api.v1alpha1.quorumpolicy import QuorumPolicySpec
from privatevault.quorum import rules
from tests import builders
from tests.quorum_keys import ApproverKeys, approver

KEYS = ApproverKeys.generate()
OTHER = ApproverKeys.generate()


def _people(**changes: dict[str, Any]) -> list[dict[str, Any]]:
    base = {
        "alice": {"roles": ["security"], "region": "eu-west-1", "users": ["alice@corp"]},
        "bob": {"roles": ["platform"], "region": "us-east-1"},
        "carol": {"roles": ["platform"], "region": "eu-west-1"},
    }
    out = []
    for name, defaults in base.items():
        fields = defaults | changes.get(name, {})
        keys = fields.pop("keys", KEYS)
        out.append(approver(name, keys, **fields))
    return out


def _rule(**fields: Any) -> dict[str, Any]:
    return builders.rule(
        **{"min_approvals": 2, "required_roles": ["security", "platform"], "min_distinct_regions": 2, "ttl": "1h"}
        | fields
    )


def _spec(
    approvers: list[dict[str, Any]] | None = None, rule_list: list[dict[str, Any]] | None = None
) -> QuorumPolicySpec:
    manifest = builders.quorum_policy("p", approvers=approvers or _people(), rules=rule_list or [_rule()])
    return QuorumPolicySpec.model_validate(manifest["spec"])


BASE = _spec()


def test_a_rule_in_words() -> None:
    assert rules.in_words(BASE.rules[0], BASE.approvers) == (
        "2 of 3; roles security AND platform; 2 distinct regions; no self-approval; any signature; approvals valid 1h"
    )


def test_every_option_in_words() -> None:
    rule = _spec(
        _people(alice={"keys": KEYS}, bob={"keys": KEYS}),
        [
            builders.rule(
                min_approvals=1,
                required_roles=["security"],
                allowed_regions=["eu-west-1"],
                allow_self_approval=True,
                signature_mode="hybrid-required",
            )
        ],
    ).rules[0]
    assert rules.in_words(rule, BASE.approvers) == (
        "1 of 3; role security; regions eu-west-1 only; self-approval allowed; Ed25519 AND ML-DSA-65 signatures;"
        " approvals valid 24h"
    )


def test_a_satisfiable_policy() -> None:
    assert rules.unsatisfiable(BASE) == []
    assert rules.unparsable_keys(BASE) == []


@pytest.mark.parametrize(
    ("case", "people", "rule", "lacking"),
    [
        ("all approvers in one region", _people(bob={"region": "eu-west-1"}), _rule(), "1 more distinct region(s)"),
        (
            "regions not named",
            _people(alice={"region": None}, bob={"region": None}),
            _rule(),
            "1 more distinct region(s)",
        ),
        (
            "the only security approver outside the allowed regions",
            _people(),
            _rule(min_distinct_regions=1, allowed_regions=["us-east-1"]),
            "role security",
        ),
        (
            "hybrid required but the security approver holds one key",
            _people(alice={"keys": ApproverKeys.generate(ml_dsa65=False)}),
            _rule(signature_mode="hybrid-required"),
            "role security",
        ),
    ],
)
def test_unsatisfiable_rules_are_named(
    case: str, people: list[dict[str, Any]], rule: dict[str, Any], lacking: str
) -> None:
    [message] = rules.unsatisfiable(_spec(people, [rule]))
    assert message.startswith("rule DeleteTenant can never be met: with every eligible approver it lacks"), case
    assert lacking in message, case


def test_small_order_and_unparsable_keys_are_named() -> None:
    spec = _spec(
        [
            builders.approver("zero", ed25519="A" * 43 + "="),
            approver("fine", KEYS),
        ],
        [builders.rule(min_approvals=1)],
    )
    [problem] = rules.unparsable_keys(spec)
    assert problem.startswith("approver zero: the Ed25519 public key is a point of small order")


# -- weakenings ------------------------------------------------------------------------------------

WEAKER = [
    ("fewer approvals", None, [_rule(min_approvals=1)], "DeleteTenant: minApprovals 2 -> 1"),
    ("a required role dropped", None, [_rule(required_roles=["security"])], "required roles dropped: platform"),
    ("fewer distinct regions", None, [_rule(min_distinct_regions=1)], "minDistinctRegions 2 -> 1"),
    ("allowed regions lifted", None, None, "more regions allowed"),
    ("more TTL", None, [_rule(ttl="2h")], "ttl 1h -> 2h"),
    ("self-approval allowed", None, [_rule(allow_self_approval=True)], "self-approval allowed"),
    ("the rule removed", None, [builders.rule("CryptoShred", min_approvals=2)], "DeleteTenant: the rule is removed"),
    ("an approver added", [*_people(), approver("dave", OTHER, roles=["security"])], None, "approver dave added"),
    ("a key replaced", _people(bob={"keys": OTHER}), None, "approver bob's keys changed"),
    ("a role gained", _people(carol={"roles": ["platform", "security"]}), None, "approver carol gains roles security"),
    ("a region moved", _people(carol={"region": "us-east-1"}), None, "approver carol moves region"),
    ("a user name dropped", _people(alice={"users": []}), None, "approver alice no longer acts as alice@corp"),
]


@pytest.mark.parametrize(("case", "people", "rule_list", "reason"), WEAKER, ids=[w[0] for w in WEAKER])
def test_weakenings(
    case: str, people: list[dict[str, Any]] | None, rule_list: list[dict[str, Any]] | None, reason: str
) -> None:
    old = BASE
    if case == "allowed regions lifted":
        old = _spec(rule_list=[_rule(allowed_regions=["eu-west-1", "us-east-1"])])
        rule_list = [_rule()]
    weakened, reasons = rules.weakenings(old, _spec(people, rule_list))
    assert [r.action for r in weakened] == ["DeleteTenant"]
    assert any(reason in r for r in reasons), reasons


def test_hybrid_no_longer_required_weakens() -> None:
    old = _spec(rule_list=[_rule(signature_mode="hybrid-required")])
    weakened, reasons = rules.weakenings(old, BASE)
    assert weakened and reasons == ["DeleteTenant: hybrid signatures no longer required"]


STRICTER = [
    ("the same spec", None, None),
    ("more approvals", None, [_rule(min_approvals=3)]),
    ("a shorter TTL", None, [_rule(ttl="30m")]),
    ("hybrid required", None, [_rule(signature_mode="hybrid-required")]),
    ("an approver removed", _people()[:2], [_rule()]),
    ("fewer regions allowed", None, [_rule(allowed_regions=["eu-west-1", "us-east-1"])]),
    ("a rule added", None, [_rule(), builders.rule("CryptoShred")]),
    ("a user name added", _people(bob={"users": ["bob@corp"]}), None),
]


@pytest.mark.parametrize(("case", "people", "rule_list"), STRICTER, ids=[s[0] for s in STRICTER])
def test_stricter_is_not_a_weakening(
    case: str, people: list[dict[str, Any]] | None, rule_list: list[dict[str, Any]] | None
) -> None:
    assert rules.weakenings(BASE, _spec(people, rule_list)) == ([], [])


def test_an_approver_change_weakens_every_rule() -> None:
    old = _spec(rule_list=[_rule(), builders.rule("CryptoShred", min_approvals=2)])
    new = _spec(_people(bob={"keys": OTHER}), [_rule(), builders.rule("CryptoShred", min_approvals=2)])
    weakened, _ = rules.weakenings(old, new)
    assert [r.action for r in weakened] == ["DeleteTenant", "CryptoShred"]
