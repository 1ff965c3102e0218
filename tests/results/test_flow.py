"""The results flow end to end: results and awards on the platform become
statements in the outbox, delivered to the example's file sink; awards feed the
next roster run's stacked programs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft201909Validator

from microcred_sync.changes import enrollment_id, learner_id
from microcred_sync.outbox.deliver import run_deliver
from microcred_sync.outbox.store import Outbox
from microcred_sync.project import load_project
from microcred_sync.results.flow import run_results
from microcred_sync.settings import Settings
from tests.conftest import ProjectDir

#: Each test runs on SQLite and on PostgreSQL (``tests/databases.py``).
pytestmark = pytest.mark.both_databases

PARTNER = "example-corp"
DAF = "data-analytics-foundations"
AML = "applied-machine-learning"
KEY = "000004"  # Analytics, level 5
SINK = "example-corp-statements"


def _import(project_dir: ProjectDir, name: str, text: str) -> None:
    path = project_dir.root / name
    path.write_text(text, encoding="utf-8")
    report = project_dir.import_results(path, PARTNER)
    assert not report.rejected, report.rejected


def _results(project_dir: ProjectDir):  # type: ignore[no-untyped-def]
    return run_results(
        load_project(Settings(root=project_dir.root)), "example-corp-results"
    )


def _delivered(
    project_dir: ProjectDir, validated: Callable[[Any], Any]
) -> list[dict[str, object]]:
    """Deliver the example's outbox to its file sink; every statement there passes
    Learning Locker's validator."""
    outcome = run_deliver(
        load_project(Settings(root=project_dir.root)), "example-corp-deliver"
    )
    assert outcome.exit_code == 0
    path = project_dir.root / "var" / "statements" / "example-corp.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [validated(json.loads(line)) for line in lines]


def test_results_and_awards_become_statements_once(
    project_dir: ProjectDir,
    employees: Callable[[int], list[str]],
    validated: Callable[[Any], Any],
) -> None:
    project_dir.write_roster(employees(8))
    assert project_dir.run().status == "done"
    _import(
        project_dir,
        "results.csv",
        "learner,program,recorded_at,cmi.core.lesson_status,cmi.core.score.raw,"
        "cmi.core.score.min,cmi.core.score.max,cmi.core.session_time\n"
        f"{KEY},{DAF},2026-11-30T09:00:00+01:00,passed,88,0,100,0001:30:05.50\n"
        f"{KEY},{DAF},2026-11-29T09:00:00Z,browsed,,,,\n",
    )
    _import(
        project_dir,
        "awards.jsonl",
        json.dumps(
            {
                "kind": "award",
                "learner": KEY,
                "program": DAF,
                "issued_at": "2026-11-30T10:00:00Z",
            }
        )
        + "\n",
    )
    first = _results(project_dir)
    assert first.status == "done"
    assert (first.results, first.awards) == (2, 1)
    # The browsed attempt reports nothing; the pass and the award do.
    assert first.enqueued == 2 and first.quarantined == 0
    assert _results(project_dir).enqueued == 0  # read again, stored once

    statements = _delivered(project_dir, validated)
    assert len(statements) == 2
    passed, earned = sorted(statements, key=lambda s: str(s["timestamp"]))
    registration = enrollment_id(learner_id(PARTNER, KEY), DAF)
    program_iri = f"https://learn.example.org/programs/{DAF}"
    assert passed["actor"] == {
        "objectType": "Agent",
        "mbox": "mailto:person4@example-corp.com",
    }
    assert passed["verb"] == {
        "id": "http://adlnet.gov/expapi/verbs/passed",
        "display": {"en-US": "passed"},
    }
    assert passed["object"]["id"] == program_iri  # type: ignore[index]
    assert passed["timestamp"] == "2026-11-30T08:00:00.000Z"
    assert passed["result"] == {
        "score": {"scaled": 0.88, "raw": 88.0, "min": 0.0, "max": 100.0},
        "success": True,
        "completion": True,
        "duration": "PT1H30M5.5S",
    }
    assert passed["context"]["registration"] == registration  # type: ignore[index]
    assert earned["verb"]["id"] == "http://id.tincanapi.com/verb/earned"  # type: ignore[index]
    assert earned["context"]["registration"] == registration  # type: ignore[index]
    extensions = earned["result"]["extensions"]  # type: ignore[index]
    (credential_ref,) = extensions.values()
    assert _delivered(project_dir, validated) == statements  # nothing sent twice

    # The credential: an Open Badges document under the id the statement carries.
    award_id = award_id_of(KEY, DAF)
    store = project_dir.state_store()
    try:
        document = store.credential(award_id)
    finally:
        store.close()
    assert document is not None
    credential = json.loads(document)
    assert credential["id"] == credential_ref["@id"]
    assert credential["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert credential["validFrom"] == "2026-11-30T10:00:00Z"
    _check_against_ob_schema(credential)

    # The award completed the program: the stacked one follows on the next run.
    stacked = project_dir.run()
    assert stacked.stats.counts.by_kind["enroll"] == 1
    assert stacked.stats.unchanged == 7


def _check_against_ob_schema(credential: dict[str, object]) -> None:
    """The credential the flow issued passes 1EdTech's OB 3.0 schema (fetched by
    scripts/test.sh, see tests/statements)."""
    schema_path = (
        Path(__file__).parents[1]
        / "statements"
        / "schemas"
        / "ob_v3p0_achievementcredential_schema.json"
    )
    if not schema_path.is_file():
        pytest.fail(f"{schema_path.name} is missing; scripts/test.sh fetches it")
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = Draft201909Validator(
        schema, format_checker=Draft201909Validator.FORMAT_CHECKER
    )
    problems = [error.message for error in validator.iter_errors(credential)]
    assert problems == []


def award_id_of(key: str, program: str) -> str:
    from microcred_sync.results.records import award_id

    return award_id(PARTNER, learner_id(PARTNER, key), program)


def test_bad_scorm_data_is_quarantined_and_the_rest_goes(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """The platform itself holds a result whose SCORM data cannot be read (an
    import would have refused it): it is quarantined, the others are sent."""
    project_dir.write_roster(employees(8))
    project_dir.run()
    line = {
        "learner": KEY,
        "program": DAF,
        "recorded_at": "2026-11-30T08:00:00Z",
        "scorm": {"cmi.core.lesson_status": "passed"},
    }
    _import(project_dir, "results.jsonl", json.dumps(line) + "\n")
    connection = project_dir.platform()
    try:
        connection.execute(
            "insert into results (id, partner_id, learner_id, program_id,"
            " activity_iri, recorded_at, scorm, imported_at)"
            " select 'bad-1', partner_id, learner_id, program_id, activity_iri,"
            " recorded_at, ?, imported_at from results",
            (json.dumps({"cmi.core.lesson_status": "aced it"}),),
        )
        connection.commit()
    finally:
        connection.close()
    outcome = _results(project_dir)
    assert outcome.status == "done"
    assert (outcome.results, outcome.enqueued, outcome.quarantined) == (2, 1, 1)
    store = project_dir.state_store()
    try:
        rows = store.quarantined("example-corp-results")
        pending = Outbox(store.engine).counts([SINK], partner=PARTNER)["pending"]
    finally:
        store.close()
    assert [row["location"] for row in rows] == ["result bad-1"]
    assert "lesson_status" in rows[0]["reason"]
    assert pending == 1


def test_an_import_refuses_scorm_data_it_cannot_read(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    project_dir.write_roster(employees(8))
    project_dir.run()
    path = project_dir.root / "results.csv"
    path.write_text(
        "learner,program,recorded_at,cmi.core.lesson_status\n"
        f"{KEY},{DAF},2026-11-30T08:00:00Z,aced it\n",
        encoding="utf-8",
    )
    report = project_dir.import_results(path, PARTNER)
    assert report.results == 0
    ((location, reason),) = report.rejected
    assert location == "results.csv:2"
    assert reason.startswith("scorm: cmi.core.lesson_status")


def test_native_results_give_the_verb_their_outcome_says(
    project_dir: ProjectDir,
    employees: Callable[[int], list[str]],
    validated: Callable[[Any], Any],
) -> None:
    project_dir.write_roster(employees(8))
    project_dir.run()
    _import(
        project_dir,
        "results.csv",
        "learner,program,recorded_at,completion,success,score_raw,score_min,"
        "score_max,duration\n"
        f"{KEY},{DAF},2026-11-30T08:00:00Z,true,false,4,0,10,PT20M\n",
    )
    assert _results(project_dir).enqueued == 1
    (statement,) = _delivered(project_dir, validated)
    assert statement["verb"]["id"] == "http://adlnet.gov/expapi/verbs/failed"  # type: ignore[index]
    assert statement["result"] == {
        "score": {"raw": 4.0, "min": 0.0, "max": 10.0},
        "success": False,
        "completion": True,
        "duration": "PT20M",
    }
