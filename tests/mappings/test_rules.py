"""Enrollment rules in CEL: outcomes, failures, and what a rule is shown."""

from __future__ import annotations

from datetime import date

import pytest

from microcred_sync.errors import RecordRejected
from microcred_sync.mappings.rules import (
    EnrollmentRule,
    RuleSet,
    compile_rule,
    learner_view,
    presence_tested_fields,
    record_view,
    referenced_fields,
)

ANALYTICS = 'learner.department == "Analytics" && int(record.job_level) >= 3'


def rule(source: str, program: str = "data-analytics-foundations") -> EnrollmentRule:
    return EnrollmentRule(program, source)


def test_rule_true_gives_the_program() -> None:
    """A rule that is true for the learner wants its program."""
    wants = rule(ANALYTICS).wants(
        {"job_level": "4"}, {"department": "Analytics"}, "active"
    )
    assert wants is True


def test_rule_false_does_not_give_the_program() -> None:
    """A rule that is false does not want its program."""
    analytics = rule(ANALYTICS)
    assert not analytics.wants(
        {"job_level": "2"}, {"department": "Analytics"}, "active"
    )
    assert not analytics.wants({"job_level": "4"}, {"department": "Sales"}, "active")


def test_rule_error_rejects_naming_the_program() -> None:
    """A rule that fails at run time rejects the record, naming program and error."""
    with pytest.raises(RecordRejected) as caught:
        rule(ANALYTICS).wants(
            {"job_level": "senior"}, {"department": "Analytics"}, "active"
        )
    reason = caught.value.reason
    assert reason.startswith("enrollment rule for data-analytics-foundations: ")
    assert "int" in reason
    assert "\n" not in reason


def test_rule_on_a_missing_field_rejects() -> None:
    """A rule naming a field the record lacks rejects the record."""
    with pytest.raises(RecordRejected, match="no such field: job_level"):
        rule(ANALYTICS).wants({}, {"department": "Analytics"}, "active")


def test_rule_can_test_for_a_missing_field_with_has() -> None:
    """has() lets a rule treat a missing column or left-alone field as false."""
    guarded = rule('has(learner.department) && learner.department == "Analytics"')
    assert not guarded.wants({}, {}, "active")
    assert guarded.wants({}, {"department": "Analytics"}, "active")


def test_rule_giving_a_non_bool_rejects() -> None:
    """A rule that gives text instead of true or false rejects the record."""
    with pytest.raises(RecordRejected, match="gave str, not true or false"):
        rule("record.job_level").wants({"job_level": "4"}, {}, "active")


def test_rule_sees_null_as_null() -> None:
    """An explicit null in the record is CEL null."""
    assert rule("record.manager == null").wants({"manager": None}, {}, "active")


def test_rule_sees_trimmed_record_text() -> None:
    """Record values reach rules trimmed, so int(' 3 ') works."""
    assert rule("int(record.job_level) == 3").wants({"job_level": " 3 "}, {}, "active")


def test_rule_sees_dates_as_iso_text_and_the_status() -> None:
    """Learner dates are ISO 8601 text, and learner.status is the wanted status."""
    source = 'learner.hire_date >= "2024-01-01" && learner.status == "active"'
    hired = {"hire_date": date(2024, 3, 5)}
    assert rule(source).wants({}, hired, "active")
    assert not rule(source).wants({}, hired, "suspended")


def test_rule_using_the_whole_record_map() -> None:
    """Index access and size() see the whole record, not only named fields."""
    assert rule('record["job level"] == "3"').wants({"job level": "3"}, {}, "active")
    assert rule("size(record) == 2").wants({"a": "1", "b": "2"}, {}, "active")
    assert rule('record.exists(k, k == "b")').wants({"a": "", "b": ""}, {}, "active")


def test_remembered_outcomes_follow_the_values() -> None:
    """The same values give the same remembered answer; new values are evaluated."""
    level = rule("int(record.job_level) >= 3")
    answers = [
        level.wants({"job_level": value, "other": str(index)}, {}, "active")
        for index, value in enumerate(["4", "2", "4", "2", "5"])
    ]
    assert answers == [True, False, True, False, True]


def test_rule_set_gives_every_true_program() -> None:
    """A rule set gives the programs of all its true rules, as one frozenset."""
    rules = RuleSet(
        (
            rule(ANALYTICS, "data-analytics-foundations"),
            rule("int(record.job_level) >= 5", "leadership"),
            rule('learner.location == "Lyon"', "lyon-onboarding"),
        )
    )
    learner = {"department": "Analytics", "location": "Paris"}
    assert rules.programs({"job_level": "5"}, learner, "active") == {
        "data-analytics-foundations",
        "leadership",
    }
    assert rules.programs({"job_level": "1"}, learner, "active") == frozenset()


def test_rule_set_failure_is_remembered_and_raised_again() -> None:
    """A failing combination rejects every record that has it."""
    rules = RuleSet((rule("int(record.job_level) >= 3", "leadership"),))
    for _ in range(2):
        with pytest.raises(RecordRejected, match="enrollment rule for leadership"):
            rules.programs({"job_level": "x"}, {}, "active")


@pytest.mark.parametrize(
    ("source", "record", "learner"),
    [
        (ANALYTICS, ("job_level",), ("department",)),
        ("has(record.a) && record.b == record.a", ("a", "b"), ()),
        ('record["job level"] == "3"', None, ()),
        ('"x" in record', None, ()),
        ("record.all(k, k != '')", None, ()),
        ("size(learner) > 0", (), None),
        ('learner.department == "record"', None, ("department",)),
        ('record.team == "learner.departmnt"', ("team",), None),
        ("learner.a == 'it\\'s record.x'", None, ("a",)),
        ('learner.a == r"x\\" && record.b == "y"', ("b",), ("a",)),
    ],
)
def test_referenced_fields_are_conservative(
    source: str, record: tuple[str, ...] | None, learner: tuple[str, ...] | None
) -> None:
    """Only plain name access narrows a map; anything else passes the whole map."""
    assert referenced_fields(source, "record") == record
    assert referenced_fields(source, "learner") == learner


@pytest.mark.parametrize(
    ("source", "tested"),
    [
        ("has(record.grade) && record.grade == 'L5'", {"grade"}),
        ("has( record . grade ) || record.region == 'EU'", {"grade"}),
        ("record.grade == 'L5'", set()),
        ("has(learner.department)", set()),
    ],
)
def test_presence_tested_fields(source: str, tested: set[str]) -> None:
    """Only has(record.<name>) counts as testing for the field."""
    assert presence_tested_fields(source, "record") == tested


def test_compile_errors_are_value_errors() -> None:
    """A rule that does not compile raises ValueError with CEL's message."""
    with pytest.raises(ValueError, match="does not compile"):
        compile_rule("record.job_level >=")


def test_macro_variables_are_not_unknown() -> None:
    """Variables bound by all/exists/map/filter are accepted."""
    compile_rule('[1, 2].map(x, x * 2) == [2, 4] && record.exists(k, k == "a")')


def test_views_leave_out_absent_fields() -> None:
    """A missing column is absent in `record`; a left-alone one is null in `learner`."""
    assert record_view({"a": " 1 ", "b": None}, ("a", "b", "c")) == {
        "a": "1",
        "b": None,
    }
    view = learner_view({"hire_date": date(2024, 3, 5)}, "active", None)
    assert view["hire_date"] == "2024-03-05" and view["status"] == "active"
    assert view["department"] is None
