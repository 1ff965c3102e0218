"""Chosen results written back as records of their own object, keyed by the
result's id, through the same outbox and sObject Collections batches as awards."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import microcred_sync.outbox  # noqa: F401  (registers the outbox table)
from microcred_sync.changes import learner_id
from microcred_sync.connectors.salesforce.deliveries import (
    contact_delivery,
    result_writeback_delivery,
    writeback_delivery,
)
from microcred_sync.connectors.salesforce.writeback import (
    SalesforceWriter,
    deliver_batch,
)
from microcred_sync.errors import ConfigError
from microcred_sync.outbox.deliver import run_deliver
from microcred_sync.outbox.store import Outbox
from microcred_sync.partners import Program
from microcred_sync.platform.sql import LearnerIdentityRow
from microcred_sync.project import load_project
from microcred_sync.results.flow import run_results
from microcred_sync.results.records import AwardRecord, ResultRecord, result_id
from microcred_sync.settings import Settings
from microcred_sync.state.store import StateStore
from microcred_sync.statements.scorm import Outcome, Score
from microcred_sync.statements.vocabulary import COMPLETED, PASSED

from .conftest import connector

PARTNER = "example-association"
SINK = "association-crm"
ORG = "example-association"
ETHICS = "professional-ethics"
ETHICS_IRI = "https://learn.example.org/programs/professional-ethics"

RESULTS = {
    "object": "Course_Result__c",
    "external_id": "Result_Id__c",
    "fields": {
        "Contact__c": {"from": "contact_id"},
        "Completed__c": {"from": "completion"},
        "Score__c": {"from": "score_scaled"},
        "Recorded_At__c": {"from": "recorded_at", "type": "datetime"},
    },
}


def _config(server, tls, **results: Any) -> Any:
    return connector(
        server,
        tls,
        roster=None,
        writeback={
            "object": "Credential__c",
            "external_id": "Award_Id__c",
            "fields": {"Contact__c": {"from": "contact_id"}},
            "contact": {"fields": {"Credits_Earned__c": {"from": "credits_earned"}}},
            "results": {**RESULTS, **results},
        },
    )


def _result(number: int, program: str = ETHICS) -> ResultRecord:
    moment = datetime(2026, 11, 30, 9, number, tzinfo=UTC)
    return ResultRecord(
        result_id(PARTNER, "l-1", program, ETHICS_IRI, moment),
        PARTNER,
        "l-1",
        program,
        ETHICS_IRI,
        moment,
        completion=True,
    )


def test_which_results_are_chosen(server, tls_folder) -> None:
    """Programs listed only; completed (or passed), passed, or every result that
    reports something; a result that reports nothing never."""
    learner = LearnerIdentityRow("l-1", "003EM0000000001AAA", None, None)
    done = Outcome(COMPLETED, completion=True)
    passed = Outcome(PASSED, completion=None, success=True)
    failed = Outcome(COMPLETED, completion=True, success=False)
    nothing = Outcome(None)

    def chosen(outcome: Outcome, program: str = ETHICS, **results: Any) -> bool:
        config = _config(server, tls_folder, **results)
        found = result_writeback_delivery(
            config, SINK, _result(1, program), learner, outcome
        )
        return found is not None

    assert chosen(done) and chosen(passed) and chosen(failed)
    assert not chosen(nothing)
    assert chosen(done, programs=[ETHICS])
    assert not chosen(done, "member-essentials", programs=[ETHICS])
    assert chosen(passed, only="passed") and not chosen(failed, only="passed")
    assert not chosen(done, only="passed")
    assert chosen(Outcome(COMPLETED, completion=False), only="reported")
    assert not chosen(Outcome(COMPLETED, completion=False))
    assert not chosen(nothing, only="reported")


def test_null_empty_and_unchanged_are_three_things_for_results(
    server, tls_folder
) -> None:
    """A missing score is left unchanged, or cleared when asked; fixed null and
    empty values are sent as they are."""
    fields = {
        "Score__c": {"from": "score_scaled"},
        "Passed__c": {"from": "success", "when_missing": "clear"},
        "Program__c": {"value": ""},
        "Activity__c": {"value": None},
        "Completed__c": {"from": "completion"},
    }
    config = _config(server, tls_folder, fields=fields)
    learner = LearnerIdentityRow("l-1", "003EM0000000001AAA", None, None)
    outcome = Outcome(COMPLETED, completion=True)
    delivery = result_writeback_delivery(config, SINK, _result(1), learner, outcome)
    assert delivery is not None
    assert delivery.payload["fields"] == {
        "Passed__c": None,
        "Program__c": "",
        "Activity__c": None,
        "Completed__c": True,
    }
    assert delivery.payload["external_id"] == _result(1).id
    scored = Outcome(COMPLETED, completion=True, score=Score(scaled=0.5))
    again = result_writeback_delivery(config, SINK, _result(1), learner, scored)
    assert again is not None and again.payload["fields"]["Score__c"] == 0.5
    assert again.id == delivery.id


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.create_schema()
    return Outbox(store.engine)


@pytest.mark.usefixtures("secrets")
def test_one_batch_of_awards_results_and_contacts_is_one_call_per_kind(
    server, tls_folder, org, outbox
) -> None:
    """Awards upserted in one Collections call, results in another (their own
    object), Contacts updated in a third; a lone result goes by the sObject
    upsert resource; every row delivered."""
    config = _config(server, tls_folder)
    programs = {
        ETHICS: Program(id=ETHICS, title="Ethics", activity_iri=ETHICS_IRI, credits=3)
    }
    contacts = [org.add("Contact", LastName=f"M{n}") for n in range(3)]
    learners = [
        LearnerIdentityRow(f"l-{n}", contact["Id"], None, None)
        for n, contact in enumerate(contacts)
    ]
    awards = [
        AwardRecord(f"award-{n}", PARTNER, learner.id, ETHICS, _result(n).recorded_at)
        for n, learner in enumerate(learners)
    ]
    outcome = Outcome(COMPLETED, completion=True, score=Score(scaled=0.75))
    results = [
        result_writeback_delivery(config, SINK, _result(n), learners[0], outcome)
        for n in range(2)
    ]
    outbox.enqueue(
        [
            writeback_delivery(config, SINK, a, lr)
            for a, lr in zip(awards, learners, strict=True)
        ]
    )
    outbox.enqueue([r for r in results if r is not None])
    outbox.replace(
        [
            contact_delivery(config, SINK, learner, [award], programs)
            for award, learner in zip(awards, learners, strict=True)
        ]
    )
    org.reset()
    writer = SalesforceWriter(config, SINK, Path("."), None)
    result = deliver_batch(writer, outbox, SINK, outbox.due(SINK, 200))
    assert len(result.delivered) == 8 and result.contacts == 3
    writes = [path for method, path in org.calls if method == "PATCH"]
    assert [path.rsplit("/v59.0/", 1)[1] for path in writes] == [
        "composite/sobjects/Credential__c/Award_Id__c",
        "composite/sobjects/Course_Result__c/Result_Id__c",
        "composite/sobjects",
    ]
    stored = {r["Result_Id__c"]: r for r in org.records["Course_Result__c"].values()}
    assert set(stored) == {_result(0).id, _result(1).id}
    first = stored[_result(0).id]
    assert first["Completed__c"] is True and first["Score__c"] == 0.75
    assert first["Recorded_At__c"] == "2026-11-30T09:00:00Z"
    assert first["Contact__c"] == contacts[0]["Id"]
    assert org.records["Contact"][contacts[2]["Id"]]["Credits_Earned__c"] == 3.0

    # One result alone in its batch: the sObject upsert resource, 201 then 204.
    lone = result_writeback_delivery(config, SINK, _result(9), learners[0], outcome)
    assert lone is not None
    outbox.enqueue([lone])
    org.reset()
    created = deliver_batch(writer, outbox, SINK, outbox.due(SINK, 200))
    assert created.created == 1 and created.delivered == [lone.id]
    ((_, path),) = [call for call in org.calls if call[0] == "PATCH"]
    assert (
        f"/sobjects/Course_Result__c/Result_Id__c/{lone.payload['external_id']}" in path
    )
    assert writer.write(outbox.entries([SINK])[-1:]).updated == 1


# -- through the example's jobs ----------------------------------------------------


def test_a_results_program_not_offered_is_refused(association) -> None:
    """The connector file names the file, the field and the unknown program."""
    path = association.root / "connectors" / "example-association.yaml"
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    content["writeback"]["results"]["programs"] = ["no-such-program"]
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=r"^connectors/example-association.yaml: writeback.results.programs: "
        r"program 'no-such-program' is not offered",
    ):
        load_project(Settings(root=association.root))


def test_the_example_writes_back_completed_ce_results_once(association, org) -> None:
    """The example's results job queues the completed results of the CE program
    only (SCORM data translated), the deliver job upserts them by result id;
    reading them again queues nothing."""
    member = org.add(
        "Contact",
        LastName="Member",
        Email="ada@example-association.org",
        Membership_Level__c="Fellow",
        Membership_Status__c="Active",
    )
    assert association.run("example-association-roster").status == "done"
    key = member["Id"]
    path = association.root / "results.csv"
    path.write_text(
        "learner,program,recorded_at,completion,success,score_scaled\n"
        f"{key},{ETHICS},2026-11-30T10:00:00+01:00,true,true,0.9\n"
        f"{key},{ETHICS},2026-11-30T11:00:00+01:00,false,,\n"
        f"{key},member-essentials,2026-11-30T12:00:00+01:00,true,,\n",
        encoding="utf-8",
    )
    scorm = association.root / "scorm.csv"
    scorm.write_text(
        "learner,program,recorded_at,cmi.core.lesson_status,cmi.core.score.raw,"
        "cmi.core.score.max\n"
        f"{key},{ETHICS},2026-11-30T13:00:00Z,passed,80,100\n",
        encoding="utf-8",
    )
    for source in (path, scorm):
        assert association.import_results(source, PARTNER).rejected == []
    project = load_project(Settings(root=association.root))

    queued = run_results(project, "example-association-results")
    assert (queued.status, queued.results, queued.enqueued) == ("done", 4, 2)
    delivered = run_deliver(project, "example-association-writeback")
    assert (delivered.status, delivered.delivered) == ("done", 2), delivered.error
    learner = learner_id(PARTNER, key)
    first = result_id(
        PARTNER, learner, ETHICS, ETHICS_IRI, datetime(2026, 11, 30, 9, tzinfo=UTC)
    )
    stored = {r["Result_Id__c"]: r for r in org.records["Course_Result__c"].values()}
    assert len(stored) == 2 and first in stored
    expected = {
        "Result_Id__c": first,
        "Contact__c": key,
        "Program__c": ETHICS,
        "Activity__c": ETHICS_IRI,
        "Completed__c": True,
        "Passed__c": True,
        "Score__c": 0.9,
        "Recorded_At__c": "2026-11-30T09:00:00Z",
    }
    assert {name: stored[first].get(name) for name in expected} == expected
    (translated,) = [r for r in stored.values() if r["Result_Id__c"] != first]
    # SCORM 1.2 has no scaled score: the field is left as it is, not cleared.
    assert translated["Passed__c"] is True and translated["Completed__c"] is True
    assert "Score__c" not in translated
    assert run_results(project, "example-association-results").enqueued == 0
    assert run_deliver(project, "example-association-writeback").taken == 0
