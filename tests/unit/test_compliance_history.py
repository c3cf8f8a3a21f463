"""The fold of compliance-state records: states at a time, and every broken link, changed entry or
score named by its seq (docs/design/compliance.md, "Ledger history")."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privatevault.compliance.history import fold, select
from privatevault.compliance.score import SEVERITY, STATES
from tests.compliance_history import control, records

A = {"ac-1": control("pass"), "ac-2": control("fail", "Critical")}
B = {"ac-1": control("pass"), "ac-2": control("pass", "Critical")}


def only_problem(rs: list[dict[str, Any]]) -> str:
    history = fold(rs)
    assert len(history.problems) == 1, history.problems
    return str(history.problems[0])


def test_states_per_framework_and_tenant() -> None:
    rs = records([("acme", A, 1), ("globex", B, 1), ("acme", B, 1)])
    history = fold(rs)
    assert history.ok
    latest = history.latest()
    assert latest["uid-baseline", "acme"].seq == 3
    assert latest["uid-baseline", "acme"].score == 100
    assert latest["uid-baseline", "globex"].seq == 2
    assert [s.seq for s in history.timelines["uid-baseline", "acme"]] == [1, 3]
    # ac-2 is Critical (8): 4 of 12 before, all after.
    assert history.timelines["uid-baseline", "acme"][0].score == 33
    assert history.timelines["uid-baseline", "acme"][0].failing() == ["ac-2"]


def test_state_at_a_time_is_the_last_record_at_or_before_it() -> None:
    rs = records([("acme", A, 1), ("acme", B, 1)], first_seq=10)
    history = fold(rs)
    assert history.at(datetime(2026, 11, 30, 10, 0, 9, tzinfo=UTC)) == {}
    assert history.at(datetime(2026, 11, 30, 10, 0, 10, tzinfo=UTC))["uid-baseline", "acme"].seq == 10
    assert history.at(datetime(2026, 11, 30, 10, 0, 11, tzinfo=UTC))["uid-baseline", "acme"].seq == 11
    assert history.at(datetime(2027, 1, 1, tzinfo=UTC))["uid-baseline", "acme"].seq == 11


def test_a_changed_score_is_named() -> None:
    rs = records([("acme", A, 1), ("acme", B, 1)])
    rs[1]["details"]["score"] = 99
    assert only_problem(rs) == (
        "compliance-state record 2: score 99 (12/12) does not recompute from its controls: they give 100 (12/12)"
    )


def test_a_broken_previous_link_is_named() -> None:
    rs = records([("acme", A, 1), ("acme", A | {"ac-1": control("fail")}, 1), ("acme", B, 1)])
    rs[2]["details"]["previous"] = 1
    assert "names 1 as its previous record, but the previous record of framework baseline and tenant acme is 2" in (
        only_problem(rs)
    )


def test_a_state_change_not_listed_in_changed_is_named() -> None:
    rs = records([("acme", A, 1), ("acme", B, 1)])
    rs[1]["details"]["changed"] = []
    assert "control ac-2 went from fail to pass, but changed does not list it" in only_problem(rs)


def test_a_wrong_from_is_named() -> None:
    rs = records([("acme", A, 1), ("acme", B, 1)])
    rs[1]["details"]["changed"][0]["from"] = "unknown"
    assert "changed says control ac-2 was 'unknown', but the previous record has it 'fail'" in only_problem(rs)


def test_controls_appear_and_disappear_only_with_a_new_generation() -> None:
    grown = A | {"ac-3": control("pass", "Low")}
    shrunk = {"ac-1": control("pass")}
    assert fold(records([("acme", A, 1), ("acme", grown, 2), ("acme", shrunk, 3)])).ok
    problem = only_problem(records([("acme", A, 1), ("acme", grown, 1)]))
    assert "control ac-3 is added without a new generation (1)" in problem
    problem = only_problem(records([("acme", A, 1), ("acme", shrunk, 1)]))
    assert "control ac-2 is removed without a new generation (1)" in problem


def test_a_new_generation_may_reweigh_but_not_silently_add() -> None:
    heavier = {"ac-1": control("pass", "Critical", 3), "ac-2": control("fail", "Critical")}
    assert fold(records([("acme", A, 1), ("acme", heavier, 2)])).ok
    assert "severity or weight changed without a new generation" in only_problem(
        records([("acme", A, 1), ("acme", heavier, 1)])
    )
    rs = records([("acme", A, 1), ("acme", A | {"ac-3": control("pass")}, 2)])
    rs[1]["details"]["changed"] = []
    assert "control ac-3 is added, but changed does not list it" in only_problem(rs)


def test_the_first_record_lists_its_controls_from_null() -> None:
    rs = records([("acme", A, 1)])
    rs[0]["details"]["changed"].pop()
    assert "control ac-2 is added, but changed does not list it" in only_problem(rs)


def test_a_link_to_a_record_not_given_is_named_unless_it_is_a_start() -> None:
    rs = records([("acme", A, 1), ("acme", B, 1)])[1:]
    assert "follows record 1, which is not among the records given" in only_problem(rs)
    assert fold(rs, starts={2}).ok


def test_one_bad_record_is_one_problem() -> None:
    rs = records([("acme", A, 1), ("acme", B, 1), ("acme", A, 1)])
    rs[1]["details"]["controls"]["ac-1"]["state"] = "passed"
    history = fold(rs)
    # Record 3 follows record 2, which did not verify: it is checked against record 1 and named too.
    assert [p.seq for p in history.problems] == [2, 3]
    assert "control ac-1 has state 'passed'" in str(history.problems[0])


def test_a_new_start_lists_every_control_from_null() -> None:
    # A tenant deselected and selected again: recorded from scratch, previous null.
    rs = records([("acme", A, 1), ("acme", B, 1)])
    restarted = records([("acme", B, 1)], first_seq=2)
    assert fold([rs[0], *restarted]).ok
    rs[1]["details"]["previous"] = None
    assert "changed says control ac-2 was 'fail', but the previous record has it None" in only_problem(rs)


def test_not_a_compliance_record() -> None:
    rs = records([("acme", A, 1)])
    rs[0]["action"] = "tenant-created"
    assert "is a 'tenant-created' record, not compliance-state" in only_problem(rs)
    assert select(rs) == []


# Properties: random histories fold back to their states; any single mutation is caught.

controls_strategy = st.dictionaries(
    st.sampled_from(["ac-1", "ac-2", "ac-3", "au-2", "sc-8"]),
    st.builds(control, st.sampled_from(STATES), st.sampled_from(sorted(SEVERITY)), st.integers(0, 5)),
    min_size=1,
)
steps_strategy = st.lists(st.tuples(st.sampled_from(["acme", "globex"]), controls_strategy), min_size=1, max_size=12)


def _with_generations(steps: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any], int]]:
    # Each step is a spec change (a new generation): controls may come, go and be reweighed.
    return [(tenant, controls, n + 1) for n, (tenant, controls) in enumerate(steps)]


@given(steps_strategy)
def test_random_histories_fold_back_to_their_states(steps: list[tuple[str, dict[str, Any]]]) -> None:
    rs = records(_with_generations(steps))
    history = fold(rs)
    assert history.ok, history.problems
    for tenant in {t for t, _ in steps}:
        expected = [c for t, c in steps if t == tenant]
        assert [dict(s.controls) for s in history.timelines["uid-baseline", tenant]] == expected


def _mutations(rs: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    out = []
    for n, record in enumerate(rs):
        d = record["details"]

        def mutated(change: Any, n: int = n) -> list[dict[str, Any]]:
            copied = copy.deepcopy(rs)
            change(copied[n]["details"])
            return copied

        for name in ("earned", "possible"):
            out.append((f"{n}.{name}", mutated(lambda d, name=name: d.__setitem__(name, d[name] + 1))))
        out.append((f"{n}.score", mutated(lambda d: d.__setitem__("score", 101 if d["score"] is None else -1))))
        out.append((f"{n}.previous", mutated(lambda d: d.__setitem__("previous", (d["previous"] or 0) + 1000))))
        for cid, c in d["controls"].items():
            other = next(s for s in STATES if s != c["state"])
            out.append((f"{n}.{cid}.state", mutated(lambda d, cid=cid, s=other: d["controls"][cid].update(state=s))))
        for k, _ in enumerate(d["changed"]):
            out.append((f"{n}.changed.{k}.dropped", mutated(lambda d, k=k: d["changed"].pop(k))))
            out.append((f"{n}.changed.{k}.to", mutated(lambda d, k=k: d["changed"][k].update(to="excepted"))))
    return out


@settings(max_examples=60, deadline=None)
@given(steps_strategy)
def test_any_single_mutation_is_caught(steps: list[tuple[str, dict[str, Any]]]) -> None:
    rs = records(_with_generations(steps))
    for name, mutated in _mutations(rs):
        if mutated == rs:
            continue  # e.g. a "to" set to what it was
        assert not fold(mutated).ok, name


def test_the_mutations_are_not_vacuous() -> None:
    rs = records([("acme", A, 1), ("acme", B, 2)])
    assert len(_mutations(rs)) > 10


@pytest.mark.parametrize("field", ["seq", "generation"])
def test_bad_types_are_named(field: str) -> None:
    rs = records([("acme", A, 1)])
    if field == "seq":
        rs[0]["seq"] = "1"
    else:
        rs[0]["details"]["generation"] = None
    assert "not an integer" in only_problem(rs)
