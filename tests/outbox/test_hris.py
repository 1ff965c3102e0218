"""The hris sink against a local server answering as BambooHR's training API (and
as a generic JSON endpoint): records added once, whatever is resent, retried,
refused or paused; and the results and deliver jobs end to end."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from microcred_sync.outbox.deliver import run_deliver
from microcred_sync.outbox.hris import HrisSink
from microcred_sync.outbox.hrisclient import hris_delivery
from microcred_sync.platform.sql import LearnerIdentityRow, SqlPlatform
from microcred_sync.project import load_project
from microcred_sync.results.flow import run_results
from microcred_sync.results.importer import import_rows, read_rows
from microcred_sync.results.records import AwardRecord, award_id
from microcred_sync.settings import Settings
from tests.conftest import ProjectDir

from .conftest import FAST_RETRY, SinkProject
from .hris_server import API_KEY, TOKEN, FakeHris

SINK = "acme-hris"
JOB = "acme-hris-deliver"
DAF, AML = "data-analytics-foundations", "applied-machine-learning"


@pytest.fixture
def hris() -> Iterator[FakeHris]:
    server = FakeHris(employees={"101", "102", "000004"})
    try:
        yield server
    finally:
        server.close()


def _bamboohr_sink(
    project: SinkProject,
    hris: FakeHris,
    sink: dict[str, Any] | None = None,
    **bamboo: Any,
) -> None:
    project.monkeypatch.setenv("ACME_BAMBOOHR_KEY", API_KEY)
    project.add(
        SINK,
        {
            "kind": "hris",
            "partner": "acme",
            "mode": "bamboohr",
            "bamboohr": {
                "company_domain": "acme",
                "api_key_secret": "ACME_BAMBOOHR_KEY",
                "endpoint": f"{hris.url}/api/v1",
                "training_types": {DAF: 7, AML: 8},
                **bamboo,
            },
            "timezone": "Europe/Paris",
            "retry": FAST_RETRY,
            **(sink or {}),
        },
    )


def _json_sink(project: SinkProject, hris: FakeHris) -> None:
    project.monkeypatch.setenv("ACME_HRIS_TOKEN", TOKEN)
    project.add(
        SINK,
        {
            "kind": "hris",
            "partner": "acme",
            "mode": "json_post",
            "employee_id_from": "employee_number",
            "json_post": {
                "url": f"{hris.url}/hris/completions",
                "auth": {"type": "bearer", "token_secret": "ACME_HRIS_TOKEN"},
                "fields": {
                    "employee": {"from": "employee_id"},
                    "course": {"from": "program_title"},
                    "completed": {"from": "completed_on"},
                    "credential": {"from": "credential_id", "when_missing": "null"},
                    "source": {"value": "microcred-sync"},
                },
            },
            "retry": FAST_RETRY,
            "verify_tls": False,
        },
    )


def _award(
    employee: str, program: str = DAF, issued: str = "2026-03-28T23:30:00Z"
) -> tuple[AwardRecord, LearnerIdentityRow]:
    """An award to the learner whose source key (and employee number) is
    ``employee``, and that learner."""
    learner = LearnerIdentityRow(
        id=f"learner-{employee}",
        external_key=employee,
        email=f"person{employee}@example.org",
        employee_number=employee,
    )
    award = AwardRecord(
        id=award_id("acme", learner.id, program),
        partner="acme",
        learner_id=learner.id,
        program=program,
        issued_at=datetime.fromisoformat(issued),
    )
    return award, learner


def _enqueue(
    project: SinkProject, *awards: tuple[AwardRecord, LearnerIdentityRow]
) -> list[str]:
    config = project.project().connectors[SINK]
    assert isinstance(config, HrisSink)
    deliveries = [
        hris_delivery(config, SINK, award, learner, program_title=award.program)
        for award, learner in awards
    ]
    assert project.outbox().enqueue(deliveries) == len(deliveries)
    return [delivery.id for delivery in deliveries]


def _entries(project: SinkProject) -> dict[str, Any]:
    return {entry.id: entry for entry in project.outbox().entries([SINK])}


def test_each_completion_becomes_one_training_record(
    sink_project: SinkProject, hris: FakeHris
) -> None:
    """A record per award, of the program's training type, completed on the
    award's day in Paris (23:30 UTC on the night of the clock change is the 29th
    there); a second run and a second enqueue send nothing."""
    _bamboohr_sink(sink_project, hris)
    ids = _enqueue(
        sink_project,
        _award("101"),
        _award("101", AML),
        _award("102", DAF, issued="2026-03-29T10:00:00+02:00"),
    )

    outcome = sink_project.deliver(JOB)
    assert outcome.exit_code == 0, outcome.error
    assert (outcome.delivered, outcome.already_stored, outcome.dead) == (3, 0, [])
    records = sorted(hris.records_of("101"), key=lambda r: r["type"])
    assert [(r["type"], r["completed"]) for r in records] == [
        ("7", "2026-03-29"),
        ("8", "2026-03-29"),
    ]
    assert records[0]["notes"] == DAF  # the default notes: the program's title
    assert [r["completed"] for r in hris.records_of("102")] == ["2026-03-29"]
    # Each one checked for a copy first: BambooHR's POST is not idempotent.
    assert hris.requests.count(("GET", "/api/v1/training/record/employee/101")) == 2
    assert hris.posts() == 3
    assert all(e.status == "delivered" for e in _entries(sink_project).values())

    before = len(hris.requests)
    assert sink_project.deliver(JOB).delivered == 0
    config = sink_project.project().connectors[SINK]
    assert isinstance(config, HrisSink)
    award, learner = _award("101")
    again = hris_delivery(config, SINK, award, learner, program_title=DAF)
    assert again.id == ids[0]
    assert sink_project.outbox().enqueue([again]) == 0
    assert len(hris.requests) == before


def test_a_lost_answer_is_resent_without_a_second_record(
    sink_project: SinkProject, hris: FakeHris
) -> None:
    """BambooHR stored the record but the connection closed before its answer:
    the retry finds the record and adds none."""
    _bamboohr_sink(sink_project, hris)
    _enqueue(sink_project, _award("101"))
    hris.lose_answer()

    outcome = sink_project.deliver(JOB)
    assert outcome.exit_code == 0, outcome.error
    assert (outcome.delivered, outcome.already_stored, outcome.retried) == (0, 1, 1)
    assert len(hris.records_of("101")) == 1
    assert hris.posts() == 1


def test_a_crash_between_the_post_and_the_mark_creates_no_duplicate(
    sink_project: SinkProject, hris: FakeHris
) -> None:
    """A deliver run killed while BambooHR answers its POST leaves the entry
    pending; the next run finds the record and marks it, adding no second one."""
    _bamboohr_sink(sink_project, hris)
    (ident,) = _enqueue(sink_project, _award("101"))
    hris.hang_after_store()
    env = {**os.environ, "MICROCRED_ROOT": str(sink_project.root)}
    child = subprocess.Popen(
        [sys.executable, "-m", "microcred_sync", "run", JOB],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert hris.stored.wait(60), "the child never posted"
    finally:
        child.kill()
        child.wait(30)
    hris.release()
    assert _entries(sink_project)[ident].status == "pending"
    assert len(hris.records_of("101")) == 1
    # The dead run's claim on the entry runs out (in minutes); let it have.
    with sqlite3.connect(sink_project.root / "var" / "state.db") as db:
        db.execute("UPDATE outbox SET claimed_until = NULL WHERE id = ?", (ident,))

    outcome = sink_project.deliver(JOB)
    assert outcome.exit_code == 0, outcome.error
    assert (outcome.delivered, outcome.already_stored) == (0, 1)
    assert len(hris.records_of("101")) == 1
    assert hris.posts() == 1
    assert _entries(sink_project)[ident].status == "delivered"


def test_a_stalled_answer_times_out_and_the_resend_finds_the_record(
    sink_project: SinkProject, hris: FakeHris
) -> None:
    """HT-03: BambooHR stores the record and then sends nothing; the read timeout
    ends the wait, and the retry finds the record instead of adding a second."""
    _bamboohr_sink(sink_project, hris, {"timeouts": {"connect": 2, "read": 0.5}})
    _enqueue(sink_project, _award("101"))
    hris.hang_after_store()

    outcome = sink_project.deliver(JOB)
    assert outcome.exit_code == 0, outcome.error
    assert (outcome.already_stored, outcome.retried) == (1, 1)
    assert len(hris.records_of("101")) == 1
    entry = next(iter(_entries(sink_project).values()))
    assert entry.status == "delivered"


def test_server_errors_are_retried_then_delivered(
    sink_project: SinkProject, hris: FakeHris
) -> None:
    """500 and 503 are retried with backoff, each attempt recorded; the record
    goes in once."""
    _bamboohr_sink(sink_project, hris)
    (ident,) = _enqueue(sink_project, _award("101"))
    hris.fail(503, method="GET", headers={"Retry-After": "0"})
    hris.fail(500, times=2, method="POST")

    outcome = sink_project.deliver(JOB)
    assert outcome.exit_code == 0, outcome.error
    assert (outcome.delivered, outcome.retried) == (1, 3)
    assert len(hris.records_of("101")) == 1
    entry = _entries(sink_project)[ident]
    assert (entry.status, entry.attempts) == ("delivered", 4)


def test_a_refused_record_is_dead_lettered_with_bamboohrs_reason(
    sink_project: SinkProject, hris: FakeHris
) -> None:
    """A 400 (no such training type) and a 404 (no such employee) dead-letter
    their entries with BambooHR's message; the others go through."""
    _bamboohr_sink(sink_project, hris, training_type=9)
    bad_type, unknown, good = _enqueue(
        sink_project,
        _award("101", "people-leadership"),
        _award("999"),
        _award("102"),
    )

    outcome = sink_project.deliver(JOB)
    assert outcome.exit_code == 0, outcome.error
    assert outcome.delivered == 1
    reasons = {letter.id: letter.reason for letter in outcome.dead}
    assert reasons[bad_type] == (
        "BambooHR refused the record (400): Type must be an existing training type id"
    )
    assert "BambooHR knows no employee 999" in reasons[unknown]
    entries = _entries(sink_project)
    assert entries[bad_type].status == entries[unknown].status == "dead"
    assert entries[bad_type].last_error == reasons[bad_type]
    assert entries[good].status == "delivered"
    assert hris.records_of("101") == []


def test_429_beyond_the_cap_pauses_the_sink_and_leaves_rows_queued(
    sink_project: SinkProject, hris: FakeHris
) -> None:
    """A 429 asking for an hour stops the run at once (HT-01: no hour-long sleep):
    the batch waits an hour, pending; a later run delivers all of it."""
    _bamboohr_sink(sink_project, hris)
    ids = _enqueue(sink_project, _award("101"), _award("102"), _award("000004"))
    hris.fail(429, headers={"Retry-After": "3600"})

    started = datetime.now(UTC)
    outcome = sink_project.deliver(JOB)
    assert outcome.status == "failed"
    assert outcome.error is not None and "3600 s (Retry-After)" in outcome.error
    assert "3 completions wait" in outcome.error
    assert len(hris.requests) == 1  # nothing more after the 429
    entries = _entries(sink_project)
    for ident in ids:
        assert entries[ident].status == "pending"
        assert entries[ident].next_attempt_at >= started + timedelta(minutes=59)
    assert outcome.pending == 3

    assert sink_project.outbox().requeue(SINK) == 3
    later = sink_project.deliver(JOB)
    assert (later.exit_code, later.delivered) == (0, 3)


def test_a_short_retry_after_is_waited_for(
    sink_project: SinkProject, hris: FakeHris
) -> None:
    """429 with ``Retry-After: 1`` (seconds) and then a date in the past: both
    waited out within the run, then the record is added."""
    _bamboohr_sink(sink_project, hris)
    _enqueue(sink_project, _award("101"))
    hris.fail(429, method="POST", headers={"Retry-After": "1"})
    hris.fail(
        503, method="POST", headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
    )

    outcome = sink_project.deliver(JOB)
    assert (outcome.exit_code, outcome.delivered, outcome.retried) == (0, 1, 2)
    assert len(hris.records_of("101")) == 1


def test_a_wrong_api_key_stops_the_run_and_keeps_every_row(
    sink_project: SinkProject, hris: FakeHris
) -> None:
    """401: the run fails saying to check the credentials; nothing is
    dead-lettered, everything waits for the fixed key."""
    _bamboohr_sink(sink_project, hris)
    sink_project.monkeypatch.setenv("ACME_BAMBOOHR_KEY", "not-the-key")
    ids = _enqueue(sink_project, _award("101"), _award("102"))

    outcome = sink_project.deliver(JOB)
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "refused the credentials (401: Invalid API key)" in outcome.error
    assert "not-the-key" not in outcome.error
    assert {_entries(sink_project)[i].status for i in ids} == {"pending"}

    sink_project.monkeypatch.setenv("ACME_BAMBOOHR_KEY", API_KEY)
    assert sink_project.deliver(JOB).delivered == 2


def test_json_post_keys_each_completion_by_its_delivery_id(
    sink_project: SinkProject, hris: FakeHris
) -> None:
    """One body per completion from the named facts, ``Idempotency-Key`` the
    delivery id; a resend after a lost answer gets 409 and counts as delivered;
    a 422 is dead-lettered with the endpoint's message."""
    _json_sink(sink_project, hris)
    (first,) = _enqueue(sink_project, _award("101"))
    nameless = LearnerIdentityRow("learner-x", "x", None, "")
    config = sink_project.project().connectors[SINK]
    assert isinstance(config, HrisSink)
    with pytest.raises(ValueError, match="no employee number"):
        hris_delivery(config, SINK, _award("x")[0], nameless)
    hris.lose_answer()

    outcome = sink_project.deliver(JOB)
    assert outcome.exit_code == 0, outcome.error
    assert (outcome.delivered, outcome.already_stored) == (0, 1)
    assert outcome.warnings == [f"TLS certificate checks are off for sink {SINK}"]
    assert hris.completions == {
        first: {
            "employee": "101",
            "course": DAF,
            "completed": "2026-03-28",  # UTC, the sink's default zone
            "credential": None,
            "source": "microcred-sync",
        }
    }

    hris.fail(422, method="POST", body=b'{"message": "employee is not active"}')
    (late,) = _enqueue(sink_project, _award("102"))
    outcome = sink_project.deliver(JOB)
    assert [(d.id, d.reason) for d in outcome.dead] == [
        (late, "the HRIS refused the record (422): employee is not active")
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bamboohr": {"endpoint": "http://hris.example.org/api/v1"}}, "loopback"),
        ({"bamboohr": {"training_types": {}}}, "training_type"),
        ({"bamboohr": {"notes": "{surname}"}}, "unknown completion fact"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"mode": "json_post"}, "takes a json_post section"),
    ],
)
def test_a_bad_hris_file_is_refused(change: dict[str, Any], message: str) -> None:
    """What the connector file may not say, each with its reason."""
    document: dict[str, Any] = {
        "kind": "hris",
        "partner": "acme",
        "mode": "bamboohr",
        "bamboohr": {
            "company_domain": "acme",
            "api_key_secret": "KEY",
            "training_types": {DAF: 7},
        },
    }
    for name, value in change.items():
        if isinstance(value, dict):
            document[name] = {**document[name], **value}
        else:
            document[name] = value
    with pytest.raises(ValidationError, match=message):
        HrisSink.model_validate(document)


# -- the results and deliver jobs ---------------------------------------------


def _import_award(project_dir: ProjectDir, key: str, program: str) -> None:
    path = project_dir.root / "awards.jsonl"
    line = {"kind": "award", "learner": key, "program": program}
    path.write_text(
        json.dumps({**line, "issued_at": "2026-11-30T23:10:00Z"}) + "\n",
        encoding="utf-8",
    )
    project = load_project(Settings(root=project_dir.root))
    settings = project.settings
    platform = SqlPlatform(settings.database_url(settings.platform_url))
    try:
        report = import_rows(
            read_rows(path),
            "example-corp",
            project.programs_of("example-corp"),
            platform,
        )
    finally:
        platform.close()
    assert not report.rejected, report.rejected


def test_an_award_on_the_platform_becomes_a_record_in_bamboohr(
    project_dir: ProjectDir,
    employees: Callable[[int], list[str]],
    hris: FakeHris,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The example's HRIS jobs: the roster run, an award imported, the results job
    enqueues its completion, the deliver job adds the training record to the
    employee (the roster's source key), completed on the day in Paris."""
    connector = project_dir.root / "connectors" / "example-corp-hris-writeback.yaml"
    document = yaml.safe_load(connector.read_text(encoding="utf-8"))
    document["bamboohr"]["endpoint"] = f"{hris.url}/api/v1"
    connector.write_text(yaml.safe_dump(document), encoding="utf-8")
    monkeypatch.setenv("EXAMPLE_CORP_BAMBOOHR_API_KEY", API_KEY)
    project_dir.write_roster(employees(8))
    assert project_dir.run().status == "done"
    _import_award(project_dir, "000004", DAF)

    project = load_project(Settings(root=project_dir.root))
    results = run_results(project, "example-corp-hris-results")
    assert (results.status, results.awards, results.enqueued) == ("done", 1, 1)
    assert run_results(project, "example-corp-hris-results").enqueued == 0

    outcome = run_deliver(project, "example-corp-hris-writeback")
    assert (outcome.exit_code, outcome.delivered) == (0, 1)
    (record,) = hris.records_of("000004")
    assert (record["type"], record["completed"]) == ("7", "2026-12-01")
    assert record["notes"].startswith("Data Analytics Foundations: credential urn:")


def test_a_sink_that_cannot_take_an_award_holds_back_no_other_sink(
    project_dir: ProjectDir,
    employees: Callable[[int], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An award of a program with no BambooHR training type cannot become a
    training record: that write-back alone is quarantined, naming the sink; the
    award's statement still goes to the job's other sink."""
    root = project_dir.root
    connector = root / "connectors" / "example-corp-hris-writeback.yaml"
    document = yaml.safe_load(connector.read_text(encoding="utf-8"))
    del document["bamboohr"]["training_type"]
    del document["bamboohr"]["training_types"][DAF]
    connector.write_text(yaml.safe_dump(document), encoding="utf-8")
    jobs_path = root / "scheduler" / "jobs.yaml"
    jobs = yaml.safe_load(jobs_path.read_text(encoding="utf-8"))
    for job in jobs["jobs"]:
        if job["id"] == "example-corp-hris-results":
            job["sinks"] = ["example-corp-statements", "example-corp-hris-writeback"]
    jobs_path.write_text(yaml.safe_dump(jobs), encoding="utf-8")
    monkeypatch.setenv("EXAMPLE_CORP_BAMBOOHR_API_KEY", API_KEY)
    project_dir.write_roster(employees(8))
    assert project_dir.run().status == "done"
    _import_award(project_dir, "000004", DAF)

    project = load_project(Settings(root=root))
    outcome = run_results(project, "example-corp-hris-results")
    assert (outcome.awards, outcome.enqueued, outcome.quarantined) == (1, 1, 1)
    store = project_dir.state_store()
    try:
        (row,) = store.quarantined("example-corp-hris-results")
    finally:
        store.close()
    assert row["location"].endswith("for example-corp-hris-writeback"), row
    assert "training type" in row["reason"]
    sinks = project_dir.scalar(
        "state", "SELECT group_concat(DISTINCT sink) FROM outbox"
    )
    assert sinks == "example-corp-statements"
