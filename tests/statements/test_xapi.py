"""xAPI statements for results, awards and revocations; every one validated by
Learning Locker's validator (see conftest)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from microcred_sync.statements import scorm, vocabulary, xapi
from microcred_sync.statements.errors import ScormDataError, StatementInputError

NOW = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
DONE = datetime(2026, 3, 29, 0, 30, 0, 123456, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")

CORP = xapi.StatementContext(
    partner="example-corp", identity="mbox", platform="microcred-sync", language="en"
)
ASSOC = xapi.StatementContext(
    partner="example-assoc",
    identity="account",
    platform="microcred-sync",
    language="en-GB",
    home_page="https://members.example-assoc.org/",
)
DANA = xapi.LearnerIdentity(
    learner_id="5b1f4f0e-0000-5000-8000-000000000001",
    email="Dana.Okafor@Example.com",
    number="E-01077",
)
LESSON = xapi.ActivityRef(
    "https://courses.example.org/data-analytics/sql-basics",
    "SQL basics",
    vocabulary.LESSON,
)
PROGRAM = xapi.ActivityRef(
    "https://programs.example.org/data-analytics-foundations",
    "Data Analytics Foundations",
    vocabulary.COURSE,
    description="Foundations of data analysis for analysts",
)
BADGE = xapi.ActivityRef(
    "https://programs.example.org/data-analytics-foundations/achievement",
    "Data Analytics Foundations",
    vocabulary.BADGE,
)
ENROLLMENT = "0b9f6a52-3c1e-5d7a-9a43-1f2e3d4c5b6a"


def fact(**changes: Any) -> xapi.ResultFact:
    """A passed SCORM 1.2 attempt of Dana's, with score and time."""
    outcome = scorm.translate(
        {
            "cmi.core.lesson_status": "passed",
            "cmi.core.score.raw": "88",
            "cmi.core.score.min": "0",
            "cmi.core.score.max": "100",
            "cmi.core.session_time": "0001:15:30",
        }
    )
    base = xapi.ResultFact(
        result_id="r-0001",
        learner=DANA,
        activity=LESSON,
        program=PROGRAM,
        enrollment_id=ENROLLMENT,
        happened_at=DONE,
        outcome=outcome,
    )
    return dataclasses.replace(base, **changes)


def award(**changes: Any) -> xapi.AwardFact:
    base = xapi.AwardFact(
        award_id="a-0001",
        learner=DANA,
        program=PROGRAM,
        enrollment_id=ENROLLMENT,
        issued_at=DONE,
        achievement=BADGE,
        credential_id="urn:uuid:6f1c7d2e-2b54-5c3a-8f9e-0a1b2c3d4e5f",
    )
    return dataclasses.replace(base, **changes)


def test_result_statement_carries_what_the_partner_needs() -> None:
    """A result statement: id, one-identifier actor, verb, activity, result,
    registration, program grouping, platform, language, UTC timestamp, no version."""
    statement = xapi.result_statement(CORP, fact(), now=NOW)
    assert uuid.UUID(statement["id"]).version == 5
    assert statement["actor"] == {
        "objectType": "Agent",
        "mbox": "mailto:dana.okafor@example.com",
    }
    assert statement["verb"] == vocabulary.PASSED.to_json()
    assert statement["object"] == {
        "objectType": "Activity",
        "id": LESSON.iri,
        "definition": {"name": {"en": "SQL basics"}, "type": vocabulary.LESSON},
    }
    assert statement["result"] == {
        "success": True,
        "completion": True,
        "score": {"scaled": 0.88, "raw": 88.0, "min": 0.0, "max": 100.0},
        "duration": "PT1H15M30S",
    }
    assert statement["context"] == {
        "registration": ENROLLMENT,
        "platform": "microcred-sync",
        "language": "en",
        "contextActivities": {
            "grouping": [
                {
                    "objectType": "Activity",
                    "id": PROGRAM.iri,
                    "definition": {
                        "name": {"en": "Data Analytics Foundations"},
                        "description": {
                            "en": "Foundations of data analysis for analysts"
                        },
                        "type": vocabulary.COURSE,
                    },
                }
            ]
        },
    }
    assert statement["timestamp"] == "2026-03-29T00:30:00.123Z"
    assert "version" not in statement


def test_account_identity_never_carries_the_email() -> None:
    """XA-02: account mode -> only account{homePage, number}, no mbox, no name."""
    statement = xapi.result_statement(ASSOC, fact(), now=NOW)
    assert statement["actor"] == {
        "objectType": "Agent",
        "account": {
            "homePage": "https://members.example-assoc.org/",
            "name": "E-01077",
        },
    }
    assert "okafor" not in json.dumps(statement).lower()


@pytest.mark.parametrize("identity", ["mbox,account", "both", "openid", ""])
def test_partner_identity_must_be_exactly_one(identity: str) -> None:
    """XA-02: a mapping wanting mbox and account (or anything else) is refused."""
    with pytest.raises(StatementInputError) as raised:
        xapi.StatementContext(
            partner="example-corp",
            identity=identity,
            platform="microcred-sync",
            home_page="https://corp.example.com/",
        )
    assert raised.value.field == "identity"


def test_account_identity_needs_a_home_page() -> None:
    """An account identity without the partner's homePage is refused at setup."""
    with pytest.raises(StatementInputError) as raised:
        xapi.StatementContext(partner="p", identity="account", platform="x")
    assert raised.value.field == "home_page"


@pytest.mark.parametrize(
    ("context", "learner", "field"),
    [
        (CORP, dataclasses.replace(DANA, email=None), "email"),
        (CORP, dataclasses.replace(DANA, email="dana okafor at example"), "email"),
        (ASSOC, dataclasses.replace(DANA, number="  "), "number"),
    ],
)
def test_learner_without_the_identifier_is_reported(
    context: xapi.StatementContext, learner: xapi.LearnerIdentity, field: str
) -> None:
    """ED-01 (E2): a learner the partner cannot be told about raises, naming the
    field and the learner's id, never the email."""
    with pytest.raises(StatementInputError) as raised:
        xapi.result_statement(context, fact(learner=learner), now=NOW)
    assert raised.value.field == field
    assert raised.value.context["learner"] == DANA.learner_id
    assert "okafor" not in str(raised.value).lower()


def test_same_fact_gives_the_same_statement() -> None:
    """ED-01: a resend or backfill builds the identical statement, id included."""
    first = xapi.result_statement(CORP, fact(), now=NOW)
    again = xapi.result_statement(CORP, fact(), now=NOW + timedelta(days=30))
    assert first == again


def test_statement_id_depends_on_partner_fact_and_verb() -> None:
    """Another partner, result or verb gives another id; the same ones the same."""
    base = xapi.result_statement(CORP, fact(), now=NOW)["id"]
    other_partner = dataclasses.replace(CORP, partner="example-other")
    failed = fact(outcome=scorm.translate({"cmi.core.lesson_status": "failed"}))
    ids = {
        base,
        xapi.result_statement(other_partner, fact(), now=NOW)["id"],
        xapi.result_statement(CORP, fact(result_id="r-0002"), now=NOW)["id"],
        xapi.result_statement(CORP, failed, now=NOW)["id"],
    }
    assert len(ids) == 4
    assert base == xapi.statement_id("example-corp", "r-0001", vocabulary.PASSED)


def test_outcome_with_nothing_to_report_builds_no_statement() -> None:
    """An incomplete attempt has no verb: no statement is built, it says why."""
    incomplete = scorm.translate({"cmi.core.lesson_status": "incomplete"})
    with pytest.raises(StatementInputError) as raised:
        xapi.result_statement(CORP, fact(outcome=incomplete), now=NOW)
    assert raised.value.field == "outcome"


def test_statement_about_the_program_has_no_grouping() -> None:
    """A result on the program itself does not group the program under itself."""
    statement = xapi.result_statement(CORP, fact(activity=PROGRAM), now=NOW)
    assert "contextActivities" not in statement["context"]


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2026-03-29 01:30:00", PARIS, "2026-03-29T00:30:00.000Z"),
        ("2026-03-29T00:30:00.1234567", UTC, "2026-03-29T00:30:00.123Z"),
        ("2026-03-29T02:30:00+02:00", None, "2026-03-29T00:30:00.000Z"),
        ("2026-03-29T00:30:00.999999Z", None, "2026-03-29T00:30:00.999Z"),
    ],
)
def test_timestamps_are_utc_with_milliseconds(
    text: str, zone: Any, expected: str
) -> None:
    """XA-03: naive values take the source's zone; output is RFC 3339 UTC, ms."""
    assert xapi.timestamp(xapi.to_utc(text, zone), now=NOW) == expected


def test_instants_compare_equal_whatever_their_form() -> None:
    """XA-03: the same instant with another offset or precision is the same time."""
    assert xapi.to_utc("2026-03-29T02:30:00+02:00") == xapi.to_utc(
        "2026-03-29T00:30:00.000Z"
    )


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("2026-03-29T00:30:00.1234567", None),
        ("2026-03-29 02:30:00", PARIS),
        ("2026-10-25 02:30:00", PARIS),
        ("29/03/2026 01:30", PARIS),
    ],
)
def test_unplaceable_times_are_refused(text: str, zone: Any) -> None:
    """XA-03: no offset and no zone, a wall time the DST change skips or repeats,
    or no ISO 8601 at all: refused, never guessed."""
    with pytest.raises(StatementInputError) as raised:
        xapi.to_utc(text, zone)
    assert raised.value.field == "timestamp"


def test_naive_or_future_timestamp_is_refused() -> None:
    """A statement is never sent with a naive time, nor one after now."""
    with pytest.raises(StatementInputError, match="UTC offset"):
        xapi.result_statement(CORP, fact(happened_at=datetime(2026, 3, 29)), now=NOW)
    with pytest.raises(StatementInputError, match="future"):
        xapi.result_statement(
            CORP, fact(happened_at=NOW + timedelta(seconds=1)), now=NOW
        )


def test_award_statement_carries_the_credential() -> None:
    """The award statement: the partner's award verb, the achievement as a badge
    activity, completion, and the credential id in result.extensions."""
    statement = xapi.award_statement(CORP, award(), now=NOW)
    assert statement["verb"] == vocabulary.EARNED.to_json()
    assert statement["object"]["id"] == BADGE.iri
    assert statement["object"]["definition"]["type"] == vocabulary.BADGE
    grouping = statement["context"]["contextActivities"]["grouping"]
    assert [activity["id"] for activity in grouping] == [PROGRAM.iri]
    assert statement["result"] == {
        "completion": True,
        "extensions": {
            vocabulary.CREDENTIAL_EXTENSION: {
                "@id": "urn:uuid:6f1c7d2e-2b54-5c3a-8f9e-0a1b2c3d4e5f"
            }
        },
    }
    assert statement["context"]["registration"] == ENROLLMENT


def test_award_verb_is_configurable() -> None:
    """A partner whose LRS expects the Open Badges verb gets it, with its own id."""
    badges = dataclasses.replace(CORP, award_verb=vocabulary.EARNED_OPEN_BADGES)
    statement = xapi.award_statement(badges, award(), now=NOW)
    assert statement["verb"]["id"] == vocabulary.EARNED_OPEN_BADGES.id
    assert statement["id"] != xapi.award_statement(CORP, award(), now=NOW)["id"]


def test_award_with_a_bad_credential_id_is_refused() -> None:
    """A credential id that is not an IRI is refused before anything is sent."""
    with pytest.raises(StatementInputError) as raised:
        xapi.award_statement(CORP, award(credential_id="cred 42"), now=NOW)
    assert raised.value.field == "credential_id"


def test_voiding_statement_references_the_original() -> None:
    """XA-06: revoking sends a voided statement whose object is a StatementRef to
    the original's id; the same revocation always has the same id."""
    original = xapi.award_statement(CORP, award(), now=NOW)
    voiding = xapi.voiding_statement(CORP, original["id"], DANA, NOW, now=NOW)
    assert voiding["verb"]["id"] == "http://adlnet.gov/expapi/verbs/voided"
    assert voiding["object"] == {"objectType": "StatementRef", "id": original["id"]}
    assert voiding["actor"] == original["actor"]
    assert voiding == xapi.voiding_statement(CORP, original["id"], DANA, NOW, now=NOW)
    assert voiding["id"] != original["id"]


def test_read_back_drops_voided_statements_and_their_voiding() -> None:
    """XA-06: S1 completed, S2 voids S1, S3 another: a read-back counts only S3,
    unless voided ones are asked for."""
    s1 = xapi.result_statement(CORP, fact(), now=NOW)
    s2 = xapi.voiding_statement(CORP, s1["id"], DANA, NOW, now=NOW)
    s3 = xapi.result_statement(CORP, fact(result_id="r-0003"), now=NOW)
    assert xapi.drop_voided([s1, s2, s3]) == [s3]
    assert xapi.drop_voided([s1, s2, s3], keep_voided=True) == [s1, s2, s3]


def test_more_links_are_resolved_and_end() -> None:
    """XA-05: relative and absolute ``more`` resolve against the endpoint; an empty
    one or a repeated one ends paging."""
    endpoint = "https://lrs.example.org/xapi/"
    visited: set[str] = set()
    assert (
        xapi.next_page(endpoint, "/xapi/statements?cursor=abc", visited)
        == "https://lrs.example.org/xapi/statements?cursor=abc"
    )
    absolute = "https://lrs.example.org/xapi/statements?cursor=def"
    assert xapi.next_page(endpoint, absolute, visited) == absolute
    assert xapi.next_page(endpoint, "", visited) is None
    assert xapi.next_page(endpoint, None, visited) is None
    assert xapi.next_page(endpoint, absolute, visited) is None


def test_xapi_2_0_changes_only_the_version_header() -> None:
    """xAPI 2.0: the same statement body (no version, UTC offset always written),
    and the 2.0.0 version header."""
    v2 = dataclasses.replace(CORP, version=xapi.XapiVersion.V2_0_0)
    assert xapi.result_statement(v2, fact(), now=NOW) == xapi.result_statement(
        CORP, fact(), now=NOW
    )
    assert v2.version.header == {"X-Experience-API-Version": "2.0.0"}
    assert CORP.version.header == {"X-Experience-API-Version": "1.0.3"}


@pytest.mark.parametrize("language", ["en_GB", "", "e", "en-", "ninechars"])
def test_bad_language_tag_is_refused(language: str) -> None:
    """The context language must be an RFC 5646 tag, as LRSs check."""
    with pytest.raises(StatementInputError) as raised:
        xapi.StatementContext(
            partner="p", identity="mbox", platform="x", language=language
        )
    assert raised.value.field == "language"


def test_native_result_follows_the_same_rules() -> None:
    """A result without SCORM data (the platform's own outcome) gets its verb by the
    same rule, and its duration is checked and written the same way."""
    outcome = scorm.native_outcome(
        completion=True,
        success=None,
        score=scorm.Score(raw=18, min=0, max=20),
        duration="PT0H12M3.456S",
    )
    statement = xapi.result_statement(CORP, fact(outcome=outcome), now=NOW)
    assert statement["verb"] == vocabulary.COMPLETED.to_json()
    assert statement["result"] == {
        "completion": True,
        "score": {"raw": 18, "min": 0, "max": 20},
        "duration": "PT12M3.46S",
    }
    with pytest.raises(ScormDataError) as raised:
        scorm.native_outcome(completion=True, duration="12 minutes")
    assert raised.value.field == "duration"
    with pytest.raises(ScormDataError):
        scorm.Score(raw=21, min=0, max=20)
