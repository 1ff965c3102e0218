"""The learner's Contact as one outbox entry per learner, replaced by the newest
state: credits earned and the latest credential, right whatever order awards
are delivered in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

import microcred_sync.outbox  # noqa: F401  (registers the outbox table)
from microcred_sync.changes import learner_id
from microcred_sync.connectors.salesforce import SalesforceConnector
from microcred_sync.connectors.salesforce.deliveries import (
    contact_delivery,
    contact_facts,
    contact_writeback_id,
    writeback_id,
)
from microcred_sync.connectors.salesforce.writeback import (
    SalesforceWriter,
    deliver_batch,
)
from microcred_sync.outbox.deliver import run_deliver
from microcred_sync.outbox.store import Outbox
from microcred_sync.partners import Program
from microcred_sync.platform.sql import LearnerIdentityRow
from microcred_sync.project import load_project
from microcred_sync.results.flow import run_results
from microcred_sync.results.records import AwardRecord, award_id
from microcred_sync.settings import Settings
from microcred_sync.state.store import StateStore
from tests.conftest import ProjectDir

from .conftest import connector

PARTNER = "example-association"
SINK = "association-crm"
ORG = "example-association"

CONTACT_FIELDS = {
    "Latest_Credential__c": {"from": "program_title"},
    "Latest_Credential_On__c": {"from": "issued_at"},
    "Credits_Earned__c": {"from": "credits_earned"},
}


def _program(ident: str, title: str, credits: float | None) -> Program:
    return Program(
        id=ident,
        title=title,
        activity_iri=f"https://learn.example.org/programs/{ident}",
        credits=credits,
    )


PROGRAMS = {
    "member-essentials": _program("member-essentials", "Member Essentials", 1),
    "professional-ethics": _program(
        "professional-ethics", "Professional Ethics (CE)", 3
    ),
    "orientation": _program("orientation", "Orientation", None),
}


def _award(program: str, day: int, learner: str = "l-1") -> AwardRecord:
    return AwardRecord(
        award_id(PARTNER, learner, program),
        PARTNER,
        learner,
        program,
        datetime(2026, 11, day, 9, 0, tzinfo=UTC),
    )


def test_the_state_is_the_latest_award_and_the_credits_of_all() -> None:
    """Latest by issue date whatever order the awards are given in; credits of
    every award added up, a program without credits adding none, one no longer
    offered not counted at all."""
    learner = LearnerIdentityRow("l-1", "003EM0000000001AAA", None, None)
    awards = [
        _award("professional-ethics", 20),
        _award("member-essentials", 10),
        _award("orientation", 5),
        _award("retired-program", 28),
    ]
    facts = contact_facts(PARTNER, learner, reversed(awards), PROGRAMS)
    assert facts is not None
    assert facts["credits_earned"] == 4.0
    assert facts["awards_earned"] == 3
    assert facts["program_title"] == "Professional Ethics (CE)"
    assert facts["issued_at"] == "2026-11-20T09:00:00+00:00"
    assert facts["contact_id"] == "003EM0000000001AAA"
    assert contact_facts(PARTNER, learner, [_award("retired-program", 1)], {}) is None


def _contact_connector(server, tls_folder) -> SalesforceConnector:
    """A write-back of awards that also sets the learner's Contact."""
    return connector(
        server,
        tls_folder,
        roster=None,
        writeback={
            "object": "Credential__c",
            "external_id": "Award_Id__c",
            "contact": {"fields": CONTACT_FIELDS},
        },
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.create_schema()
    return Outbox(store.engine)


def test_replace_keeps_the_latest_state_whatever_became_of_the_last(
    server, tls_folder, outbox
) -> None:
    """New: stored; the same again: nothing; another one: pending again with it,
    delivered or dead before; a wait after a failure is kept."""
    config = _contact_connector(server, tls_folder)
    learner = LearnerIdentityRow("l-1", "003EM0000000001AAA", None, None)
    first = contact_delivery(
        config, SINK, learner, [_award("member-essentials", 1)], PROGRAMS
    )
    both = [_award("member-essentials", 1), _award("professional-ethics", 2)]
    second = contact_delivery(config, SINK, learner, both, PROGRAMS)
    assert first is not None and second is not None and first.id == second.id
    assert first.id == contact_writeback_id(PARTNER, SINK, "l-1")

    assert outbox.replace([first]) == 1
    assert outbox.replace([first]) == 0
    outbox.mark_delivered(SINK, [first.id])
    assert outbox.replace([second]) == 1
    (entry,) = outbox.entries([SINK])
    assert (entry.status, entry.delivered_at) == ("pending", None)
    assert orjson.loads(entry.payload)["fields"]["Credits_Earned__c"] == 4.0

    outbox.dead_letter(SINK, [first.id], "STRING_TOO_LONG: too long")
    assert outbox.replace([first]) == 1
    (entry,) = outbox.entries([SINK])
    assert (entry.status, entry.last_error) == ("pending", None)
    assert orjson.loads(entry.payload)["fields"]["Credits_Earned__c"] == 1.0

    later = datetime.now(UTC) + timedelta(minutes=30)
    outbox.record_failure(SINK, [first.id], "UNABLE_TO_LOCK_ROW", later)
    assert outbox.replace([second]) == 1
    (entry,) = outbox.entries([SINK])
    assert entry.next_attempt_at >= later - timedelta(seconds=1)
    assert outbox.due(SINK, 10) == []


def test_a_state_replaced_while_it_was_on_the_wire_stays_pending(
    server, tls_folder, org, outbox, secrets
) -> None:
    """The batch sent the older state; the newer one, stored meanwhile, is not
    marked delivered with it and goes out next."""
    config = _contact_connector(server, tls_folder)
    contact = org.add("Contact", LastName="Member")
    learner = LearnerIdentityRow("l-1", contact["Id"], None, None)
    older = [_award("member-essentials", 1)]
    newer = [*older, _award("professional-ethics", 2)]
    outbox.replace([contact_delivery(config, SINK, learner, older, PROGRAMS)])
    writer = SalesforceWriter(config, SINK, Path("."), None)

    batch = outbox.due(SINK, 200)
    outbox.replace([contact_delivery(config, SINK, learner, newer, PROGRAMS)])
    result = deliver_batch(writer, outbox, SINK, batch)
    assert result.delivered == [batch[0].id] and result.contacts == 1
    assert org.records["Contact"][contact["Id"]]["Credits_Earned__c"] == 1.0
    (entry,) = outbox.entries([SINK])
    assert entry.status == "pending" and entry.attempts == 0

    again = deliver_batch(writer, outbox, SINK, outbox.due(SINK, 200))
    assert again.contacts == 1
    stored = org.records["Contact"][contact["Id"]]
    assert stored["Credits_Earned__c"] == 4.0
    assert stored["Latest_Credential__c"] == "Professional Ethics (CE)"
    assert outbox.counts([SINK]) == {"pending": 0, "delivered": 1, "dead": 0}


def test_a_refused_state_is_dead_only_if_no_newer_one_came(
    server, tls_folder, org, outbox, secrets
) -> None:
    """A field error dead-letters the state that met it; a state stored since
    stays pending."""
    config = _contact_connector(server, tls_folder)
    refused, replaced = (org.add("Contact", LastName=f"M{n}") for n in range(2))
    learners = [
        LearnerIdentityRow(f"l-{n}", contact["Id"], None, None)
        for n, contact in enumerate((refused, replaced))
    ]
    awards = [[_award("member-essentials", 1, learner.id)] for learner in learners]
    outbox.replace(
        [
            contact_delivery(config, SINK, learner, given, PROGRAMS)
            for learner, given in zip(learners, awards, strict=True)
        ]
    )
    org.faults.fail_records = {
        contact["Id"]: (
            "STRING_TOO_LONG",
            "Latest Credential: data value too large",
            [],
        )
        for contact in (refused, replaced)
    }
    writer = SalesforceWriter(config, SINK, Path("."), None)
    batch = outbox.due(SINK, 200)
    newer = [*awards[1], _award("professional-ethics", 2, "l-1")]
    outbox.replace([contact_delivery(config, SINK, learners[1], newer, PROGRAMS)])
    result = deliver_batch(writer, outbox, SINK, batch)
    assert len(result.dead) == 2
    (dead,) = outbox.entries([SINK], status="dead")
    assert dead.id == contact_writeback_id(PARTNER, SINK, "l-0")
    assert dead.last_error == (
        "STRING_TOO_LONG: Latest Credential: data value too large"
    )
    (pending,) = outbox.entries([SINK], status="pending")
    assert pending.id == contact_writeback_id(PARTNER, SINK, "l-1")


# -- through the example's jobs ----------------------------------------------------


def _import_award(project_dir: ProjectDir, member: str, program: str, at: str) -> None:
    path = project_dir.root / "awards.csv"
    path.write_text(
        f"kind,learner,program,issued_at\naward,{member},{program},{at}\n",
        encoding="utf-8",
    )
    report = project_dir.import_results(path, PARTNER)
    assert (report.awards, report.rejected) == (1, [])


@pytest.mark.both_databases
def test_an_award_retried_after_a_newer_one_never_sets_the_contact_back(
    association, org
) -> None:
    """Two awards; the first's Credential__c upsert fails and is retried after the
    second was delivered: the Contact ends with the credits of both and the
    second, latest credential, and resending everything changes none of it."""
    member = org.add(
        "Contact",
        FirstName="Ada",
        LastName="Member",
        Email="ada@example-association.org",
        Member_Number__c="M00001",
        Membership_Level__c="Fellow",
        Membership_Status__c="Active",
        Account={"Name": "Example Employer"},
    )
    assert association.run("example-association-roster").status == "done"
    project = load_project(Settings(root=association.root))
    learner = learner_id(PARTNER, member["Id"])
    first = award_id(PARTNER, learner, "member-essentials")

    # The first award: its upsert meets a locked row (retried), its Contact
    # state (1 credit) goes through.
    _import_award(association, member["Id"], "member-essentials", "2026-11-02T09:00Z")
    assert run_results(project, "example-association-results").enqueued == 2
    org.faults.fail_records = {
        first: ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access", [])
    }
    delivered = run_deliver(project, "example-association-writeback")
    assert (delivered.delivered, delivered.retried) == (1, 1)
    contact = org.records["Contact"][member["Id"]]
    assert contact["Credits_Earned__c"] == 1.0
    assert contact["Latest_Credential__c"] == "Member Essentials"

    # The second award replaces the Contact's state, delivered with it.
    _import_award(association, member["Id"], "professional-ethics", "2026-11-20T09:00Z")
    assert run_results(project, "example-association-results").enqueued == 2
    delivered = run_deliver(project, "example-association-writeback")
    assert delivered.delivered == 2

    # Then the first award's retry, once its wait is over.
    org.faults.fail_records = {}
    store = association.state_store()
    try:
        outbox = Outbox(store.engine)
        assert outbox.requeue(ORG, [writeback_id(PARTNER, ORG, first)]) == 1
        assert run_deliver(project, "example-association-writeback").delivered == 1
        assert {r["Award_Id__c"] for r in org.records["Credential__c"].values()} == {
            first,
            award_id(PARTNER, learner, "professional-ethics"),
        }
        contact = org.records["Contact"][member["Id"]]
        assert contact["Credits_Earned__c"] == 4.0
        assert contact["Latest_Credential__c"] == "Professional Ethics (CE)"
        assert contact["Latest_Credential_On__c"] == "2026-11-20"

        # A results run reading the same awards again, and the first award's
        # write-back sent once more, leave the Contact where it is.
        assert run_results(project, "example-association-results").enqueued == 0
        resent = [
            e
            for e in outbox.entries([ORG])
            if e.id == writeback_id(PARTNER, ORG, first)
        ]
        writer = SalesforceWriter(project.connectors[ORG], ORG, association.root, None)
        try:
            assert deliver_batch(writer, outbox, ORG, resent).updated == 1
        finally:
            writer.close()
    finally:
        store.close()
    contact = org.records["Contact"][member["Id"]]
    assert contact["Credits_Earned__c"] == 4.0
    assert contact["Latest_Credential__c"] == "Professional Ethics (CE)"
