"""The score formula: worked examples and properties (docs/design/compliance.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privatevault.compliance.score import SEVERITY, STATES, Score, of_record, of_states, pooled

control = st.tuples(st.sampled_from(STATES), st.sampled_from(sorted(SEVERITY)), st.integers(0, 100))
controls = st.lists(control, max_size=40)


def test_worked_example() -> None:
    # High (4) pass, Critical (8) fail, Low (1) unknown, Medium n/a, High excepted.
    score = of_states(
        [
            ("pass", "High", 1),
            ("fail", "Critical", 1),
            ("unknown", "Low", 1),
            ("not-applicable", "Medium", 5),
            ("excepted", "High", 3),
        ]
    )
    assert (score.earned, score.possible, score.value) == (4, 13, 30)


def test_nothing_counted_is_no_score_not_100() -> None:
    assert of_states([("not-applicable", "High", 1), ("excepted", "Low", 2)]).value is None
    assert of_states([]).value is None


def test_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown control state"):
        of_states([("passed", "High", 1)])


def test_record_form() -> None:
    record = {
        "a": {"state": "pass", "severity": "Medium", "weight": 2},
        "b": {"state": "fail", "severity": "Low", "weight": 4},
    }
    assert of_record(record) == Score(earned=4, possible=8)


def test_pooled_is_not_a_mean_of_percentages() -> None:
    small_perfect = Score(earned=1, possible=1)
    large_failing = Score(earned=0, possible=99)
    assert pooled([small_perfect, large_failing]).value == 1  # a mean of percentages would say 50


@given(controls)
def test_bounds(cs: list[tuple[str, str, int]]) -> None:
    value = of_states(cs).value
    assert value is None or 0 <= value <= 100


@given(controls)
def test_100_only_when_every_counted_control_passes(cs: list[tuple[str, str, int]]) -> None:
    score = of_states(cs)
    counted_not_passed = [c for c in cs if c[0] in ("fail", "unknown") and c[2] > 0]
    assert (score.value == 100) == (score.possible > 0 and not counted_not_passed)


@given(controls, st.data())
def test_fixing_a_control_never_lowers_the_score(cs: list[tuple[str, str, int]], data: st.DataObject) -> None:
    failing = [i for i, c in enumerate(cs) if c[0] in ("fail", "unknown")]
    if not failing:
        return
    i = data.draw(st.sampled_from(failing))
    fixed = [*cs[:i], ("pass", cs[i][1], cs[i][2]), *cs[i + 1 :]]
    before, after = of_states(cs), of_states(fixed)
    assert after.possible == before.possible
    assert after.earned >= before.earned


@given(controls, control)
def test_not_applicable_and_excepted_leave_the_score_alone(
    cs: list[tuple[str, str, int]], extra: tuple[str, str, int]
) -> None:
    for state in ("not-applicable", "excepted"):
        assert of_states([*cs, (state, extra[1], extra[2])]) == of_states(cs)


@given(controls, control)
def test_unknown_never_counts_as_pass(cs: list[tuple[str, str, int]], extra: tuple[str, str, int]) -> None:
    as_unknown = of_states([*cs, ("unknown", extra[1], extra[2])])
    as_fail = of_states([*cs, ("fail", extra[1], extra[2])])
    assert as_unknown == as_fail


@given(controls, st.sampled_from(STATES), st.sampled_from(sorted(SEVERITY)))
def test_weight_zero_is_inert(cs: list[tuple[str, str, int]], state: str, severity: str) -> None:
    assert of_states([*cs, (state, severity, 0)]) == of_states(cs)


@given(st.lists(controls, max_size=6))
def test_pooled_sums(tenants: list[list[tuple[str, str, int]]]) -> None:
    scores = [of_states(cs) for cs in tenants]
    assert pooled(scores) == of_states([c for cs in tenants for c in cs])
