"""SCORM 1.2 and 2004 run-time data to xAPI verbs and results, value by value."""

from __future__ import annotations

from typing import Any

import pytest

from microcred_sync.statements import scorm, vocabulary
from microcred_sync.statements.errors import ScormDataError

from .conftest import adl_examples

P, F, C = vocabulary.PASSED, vocabulary.FAILED, vocabulary.COMPLETED


@pytest.mark.parametrize(
    ("status", "verb", "completion", "success"),
    [
        ("passed", P, True, True),
        ("completed", C, True, None),
        ("failed", F, None, False),
        ("incomplete", None, False, None),
        ("browsed", None, None, None),
        ("not attempted", None, None, None),
    ],
)
def test_scorm12_lesson_status(
    status: str, verb: Any, completion: Any, success: Any
) -> None:
    """Each SCORM 1.2 lesson_status gives its verb, completion and success (SC-02)."""
    outcome = scorm.translate({"cmi.core.lesson_status": status})
    assert (outcome.verb, outcome.completion, outcome.success) == (
        verb,
        completion,
        success,
    )


def test_scorm12_without_status_is_not_attempted() -> None:
    """No lesson_status is the data model's initial value: nothing to report."""
    outcome = scorm.translate({"cmi.core.score.raw": ""})
    assert outcome.verb is None
    assert outcome.to_result() == {}


@pytest.mark.parametrize(
    ("completion_status", "success_status", "verb", "completion", "success"),
    [
        ("completed", "passed", P, True, True),
        ("completed", "failed", F, True, False),
        ("completed", "unknown", C, True, None),
        ("incomplete", "passed", P, False, True),
        ("incomplete", "failed", F, False, False),
        ("incomplete", "unknown", None, False, None),
        ("not attempted", "passed", P, None, True),
        ("not attempted", "failed", F, None, False),
        ("not attempted", "unknown", None, None, None),
        ("unknown", "passed", P, None, True),
        ("unknown", "failed", F, None, False),
        ("unknown", "unknown", None, None, None),
    ],
)
def test_scorm2004_status_combinations(
    completion_status: str,
    success_status: str,
    verb: Any,
    completion: Any,
    success: Any,
) -> None:
    """Each SCORM 2004 completion x success pair gives its verb and result."""
    outcome = scorm.translate(
        {
            "cmi.completion_status": completion_status,
            "cmi.success_status": success_status,
        }
    )
    assert (outcome.verb, outcome.completion, outcome.success) == (
        verb,
        completion,
        success,
    )


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"cmi.core.lesson_status": "Passed"}, "cmi.core.lesson_status"),
        ({"cmi.core.lesson_status": "complete"}, "cmi.core.lesson_status"),
        ({"cmi.core.lesson_status": ""}, "cmi.core.lesson_status"),
        ({"cmi.completion_status": "passed"}, "cmi.completion_status"),
        ({"cmi.success_status": "completed"}, "cmi.success_status"),
    ],
)
def test_unknown_status_is_refused(values: dict[str, str], field: str) -> None:
    """A status outside the vocabulary raises, naming the element and the value."""
    with pytest.raises(ScormDataError) as raised:
        scorm.translate(values)
    assert raised.value.field == field
    assert repr(values[field]) in str(raised.value)


def test_failed_attempt_with_score() -> None:
    """SC-02 (2): failed, 42 of 0..100 -> failed, success false, scaled 0.42, no
    completion (a failed attempt is not shown as done)."""
    outcome = scorm.translate(
        {
            "cmi.core.lesson_status": "failed",
            "cmi.core.score.raw": "42",
            "cmi.core.score.min": "0",
            "cmi.core.score.max": "100",
        }
    )
    assert outcome.verb == F
    assert outcome.to_result() == {
        "success": False,
        "score": {"scaled": 0.42, "raw": 42.0, "min": 0.0, "max": 100.0},
    }


def test_empty_raw_score_is_omitted() -> None:
    """SC-02 (3): passed with raw "" -> passed, no score at all."""
    outcome = scorm.translate(
        {"cmi.core.lesson_status": "passed", "cmi.core.score.raw": ""}
    )
    assert outcome.to_result() == {"success": True, "completion": True}


def test_scaled_above_one_is_refused() -> None:
    """SC-02 (4): SCORM 2004 score.scaled 1.2 is refused, not clamped or sent."""
    with pytest.raises(ScormDataError) as raised:
        scorm.translate(
            {
                "cmi.completion_status": "completed",
                "cmi.success_status": "unknown",
                "cmi.score.scaled": "1.2",
            }
        )
    assert raised.value.field == "cmi.score.scaled"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"cmi.core.score.raw": "120", "cmi.core.score.max": "100"}, "raw"),
        ({"cmi.core.score.raw": "-1", "cmi.core.score.min": "0"}, "raw"),
        ({"cmi.core.score.min": "100", "cmi.core.score.max": "100"}, "min"),
        ({"cmi.core.score.raw": "abc"}, "raw"),
        ({"cmi.core.score.raw": "NaN"}, "raw"),
        ({"cmi.core.score.raw": "1e3"}, "raw"),
        ({"cmi.core.score.max": "inf"}, "max"),
    ],
)
def test_bad_score_is_refused(values: dict[str, str], field: str) -> None:
    """A score outside min..max, an empty range or a non-number raises, named."""
    values = {"cmi.core.lesson_status": "completed", **values}
    with pytest.raises(ScormDataError) as raised:
        scorm.translate(values)
    assert raised.value.field == f"cmi.core.score.{field}"


@pytest.mark.parametrize(
    ("values", "scaled"),
    [
        ({"raw": "7", "min": "0", "max": "10"}, 0.7),
        ({"raw": "7", "max": "10"}, None),
        ({"raw": "7", "min": "5", "max": "10"}, None),
        ({"raw": "-3", "min": "-5", "max": "5"}, None),
        ({"raw": "7"}, None),
    ],
)
def test_scaled_is_computed_only_from_a_range_starting_at_zero(
    values: dict[str, str], scaled: float | None
) -> None:
    """raw/max becomes scaled only when min is 0 and max positive; never invented."""
    data = {f"cmi.core.score.{name}": value for name, value in values.items()}
    outcome = scorm.translate({"cmi.core.lesson_status": "passed", **data})
    assert outcome.score is not None
    assert outcome.score.scaled == scaled
    assert ("scaled" in outcome.to_result()["score"]) is (scaled is not None)


def test_scorm2004_scaled_is_taken_as_given() -> None:
    """SCORM 2004's own scaled score is used as is, next to raw, min and max."""
    outcome = scorm.translate(
        {
            "cmi.success_status": "passed",
            "cmi.score.scaled": "-0.25",
            "cmi.score.raw": "3",
            "cmi.score.min": "-10",
            "cmi.score.max": "10",
        }
    )
    assert outcome.to_result()["score"] == {
        "scaled": -0.25,
        "raw": 3.0,
        "min": -10.0,
        "max": 10.0,
    }


def test_final_values_are_taken_at_finish() -> None:
    """SC-02 (1): raw 94, completed, raw 100, LMSFinish -> completed with raw 100."""
    values = scorm.final_values(
        [
            ("LMSInitialize",),
            ("LMSSetValue", "cmi.core.score.raw", "94"),
            ("LMSSetValue", "cmi.core.lesson_status", "completed"),
            ("LMSCommit",),
            ("LMSSetValue", "cmi.core.score.raw", "100"),
            ("LMSFinish",),
        ]
    )
    outcome = scorm.translate(values)
    assert outcome.verb == C
    assert outcome.to_result() == {"completion": True, "score": {"raw": 100.0}}


@pytest.mark.parametrize(
    "calls",
    [
        [("SetValue", "cmi.success_status", "passed")],
        [("Terminate",), ("SetValue", "cmi.success_status", "failed")],
        [("GetValue", "cmi.success_status"), ("Terminate",)],
    ],
)
def test_unfinished_or_late_calls_are_refused(calls: list[tuple[str, ...]]) -> None:
    """No finish, a set after the finish, or an unknown call raises."""
    with pytest.raises(ScormDataError):
        scorm.final_values(calls)


@pytest.mark.parametrize(
    ("session_time", "duration"),
    [
        ("0002:30:05", "PT2H30M5S"),
        ("02:30:05", "PT2H30M5S"),
        ("00:00:00", "PT0S"),
        ("01:02:03.5", "PT1H2M3.5S"),
        ("00:00:07.25", "PT7.25S"),
        ("9999:59:59.99", "PT9999H59M59.99S"),
        ("00:10:00.00", "PT10M"),
    ],
)
def test_scorm12_session_time(session_time: str, duration: str) -> None:
    """SCORM 1.2 HHHH:MM:SS.SS becomes an ISO 8601 duration."""
    outcome = scorm.translate(
        {"cmi.core.lesson_status": "completed", "cmi.core.session_time": session_time}
    )
    assert outcome.duration == duration


@pytest.mark.parametrize(
    "session_time", ["2:30:05", "00:60:00", "00:00:60", "1:00", "00:00:00.123", "x"]
)
def test_bad_scorm12_session_time_is_refused(session_time: str) -> None:
    """A time that is not a CMITimespan raises, naming session_time."""
    with pytest.raises(ScormDataError) as raised:
        scorm.translate(
            {"cmi.core.lesson_status": "passed", "cmi.core.session_time": session_time}
        )
    assert raised.value.field == "cmi.core.session_time"


@pytest.mark.parametrize(
    ("session_time", "duration"),
    [
        ("PT2H30M5S", "PT2H30M5S"),
        ("PT0H0M0S", "PT0S"),
        ("PT1.234S", "PT1.23S"),
        ("PT0.005S", "PT0S"),
        ("P1DT2H", "P1DT2H"),
        ("P1Y2M3DT4H5M6.7S", "P1Y2M3DT4H5M6.7S"),
        ("PT90M", "PT90M"),
    ],
)
def test_scorm2004_session_time(session_time: str, duration: str) -> None:
    """SCORM 2004 durations are kept, without zero parts, seconds to 0.01."""
    outcome = scorm.translate(
        {"cmi.completion_status": "completed", "cmi.session_time": session_time}
    )
    assert outcome.duration == duration


@pytest.mark.parametrize("session_time", ["PT", "P", "2H", "PT1.5H", "P1W", "-PT1S"])
def test_bad_scorm2004_session_time_is_refused(session_time: str) -> None:
    """A duration outside the timeinterval grammar raises, naming session_time."""
    with pytest.raises(ScormDataError) as raised:
        scorm.translate(
            {"cmi.completion_status": "completed", "cmi.session_time": session_time}
        )
    assert raised.value.field == "cmi.session_time"


def test_mixed_or_missing_data_model_is_refused() -> None:
    """SCORM 1.2 and 2004 names in one result, or none at all, raise."""
    with pytest.raises(ScormDataError, match="mixed"):
        scorm.translate(
            {"cmi.core.lesson_status": "passed", "cmi.success_status": "passed"}
        )
    with pytest.raises(ScormDataError, match="no SCORM"):
        scorm.translate({"lesson_status": "passed"})


def test_verbs_and_types_are_those_of_adl_profile() -> None:
    """Our verbs and activity types are, IRI and display, those of ADL's examples."""
    examples = adl_examples()
    verbs = {example["verb"]["id"]: example["verb"] for example in examples}
    for verb in (P, F, C):
        assert verbs[verb.id] == verb.to_json()
    types = {
        example["object"]["definition"]["type"]
        for example in examples
        if "definition" in example["object"]
    }
    assert vocabulary.LESSON in types
    grouping = {
        activity["definition"]["type"]
        for example in examples
        for activity in example["context"]["contextActivities"].get("grouping", [])
    }
    assert vocabulary.COURSE in grouping


def test_result_matches_adl_terminated_example() -> None:
    """ADL's terminated example (success, completion, scaled 0.95) is what SCORM
    2004 completed + passed + scaled 0.95 gives, and its session-time example's
    duration what 02:30:05 and PT2H30M5S give."""
    examples = adl_examples()
    terminated = next(
        example
        for example in examples
        if example["verb"]["id"].endswith("/terminated")
        and "score" in example.get("result", {})
    )
    outcome = scorm.translate(
        {
            "cmi.completion_status": "completed",
            "cmi.success_status": "passed",
            "cmi.score.scaled": "0.95",
        }
    )
    assert outcome.to_result() == terminated["result"]

    durations = {
        example["result"]["duration"]
        for example in examples
        if "duration" in example.get("result", {})
    }
    assert durations == {"PT2H30M5S"}
    assert scorm.scorm12_duration("02:30:05") in durations
    assert scorm.scorm2004_duration("PT2H30M5S") in durations
