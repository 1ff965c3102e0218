"""Awards written back to the emulated org through the outbox."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

import microcred_sync.outbox  # noqa: F401  (registers the outbox table)
from microcred_sync.connectors.salesforce.config import SalesforceConnector
from microcred_sync.connectors.salesforce.deliveries import (
    contact_delivery,
    writeback_delivery,
)
from microcred_sync.connectors.salesforce.values import write_value
from microcred_sync.connectors.salesforce.writeback import (
    SalesforceWriter,
    WriteResult,
    deliver_batch,
)
from microcred_sync.outbox.store import Outbox
from microcred_sync.partners import Program
from microcred_sync.platform.sql import LearnerIdentityRow
from microcred_sync.results.records import AwardRecord, award_id
from microcred_sync.state.store import StateStore

from . import emulator
from .conftest import connector

pytestmark = pytest.mark.usefixtures("secrets")

SINK = "association-crm"
PARTNER = "example-association"

WRITEBACK = {
    "object": "Credential__c",
    "external_id": "Award_Id__c",
    "fields": {
        "Contact__c": {"from": "contact_id"},
        "Program__c": {"from": "program"},
        "Program_Name__c": {"from": "program_title"},
        "Issued_On__c": {"from": "issued_at"},
        "Issued_At__c": {"from": "issued_at"},
    },
}


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.create_schema()
    return Outbox(store.engine)


def _config(server, tls, **writeback: object) -> SalesforceConnector:
    return connector(server, tls, roster=None, writeback={**WRITEBACK, **writeback})


PROGRAMS = {
    "professional-ethics": Program(
        id="professional-ethics",
        title="Professional Ethics (CE)",
        activity_iri="https://learn.example.org/programs/professional-ethics",
        credits=3,
    )
}


def _awards(
    org: emulator.Org,
    count: int,
    config: SalesforceConnector,
    contacts: list | None = None,
) -> list:
    """``count`` awards of Contacts in the org, as outbox entries; their
    Contacts' states go to ``contacts`` when given."""
    issued = datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    deliveries = []
    for number in range(count):
        contact = org.add(
            "Contact", LastName=f"Member{number}", Membership_Level__c="Fellow"
        )
        learner = LearnerIdentityRow(f"learner-{number}", contact["Id"], None, None)
        award = AwardRecord(
            id=award_id(PARTNER, learner.id, "professional-ethics"),
            partner=PARTNER,
            learner_id=learner.id,
            program="professional-ethics",
            issued_at=issued,
        )
        deliveries.append(
            writeback_delivery(
                config, SINK, award, learner, program_title="Professional Ethics (CE)"
            )
        )
        if contacts is not None:
            contacts.append(contact_delivery(config, SINK, learner, [award], PROGRAMS))
    return deliveries


def _deliver(writer: SalesforceWriter, outbox: Outbox) -> list[WriteResult]:
    """What the deliver flow does: due batches until none is left or a stop."""
    results = []
    while batch := outbox.due(SINK, writer.config.batch_size, partner=PARTNER):
        result = deliver_batch(writer, outbox, SINK, batch)
        results.append(result)
        if result.stopped is not None:
            break
    return results


def test_null_empty_and_unchanged_are_three_things(server, tls_folder) -> None:
    """Left out: not sent; value null: sent as null; value "": sent empty."""
    config = _config(
        server,
        tls_folder,
        fields={
            "Notes__c": {"value": ""},
            "Program_Name__c": {"value": None},
            "Program__c": {"from": "credential_id"},
            "Contact__c": {"from": "credential_id", "when_missing": "clear"},
        },
    )
    learner = LearnerIdentityRow("l-1", "003EM0000000001AAA", None, None)
    award = AwardRecord("a-1", PARTNER, "l-1", "p", datetime(2026, 1, 2, tzinfo=UTC))
    fields = writeback_delivery(config, SINK, award, learner).payload["fields"]
    assert fields == {"Notes__c": "", "Program_Name__c": None, "Contact__c": None}


def test_dates_and_datetimes_are_written_as_their_fields_take_them() -> None:
    """SF-05: date fields get YYYY-MM-DD, datetime fields UTC with Z; no guessing."""
    assert write_value("2024-03-05T09:30:00+01:00", "date") == "2024-03-05"
    assert (
        write_value("2024-03-05T09:30:00+01:00", "datetime") == "2024-03-05T08:30:00Z"
    )
    assert (
        write_value(datetime(2024, 3, 5, 9, 30, tzinfo=UTC), "datetime")
        == "2024-03-05T09:30:00Z"
    )
    assert write_value(date(2024, 3, 5), "date") == "2024-03-05"
    assert write_value("2024-03-05", "date") == "2024-03-05"
    for value, kind in [
        ("2024-03-05", "datetime"),
        ("2024-03-05 09:30:00", "datetime"),
        (datetime(2024, 3, 5, 9, 30), "datetime"),
        (date(2024, 3, 5), "datetime"),
    ]:
        with pytest.raises(ValueError):
            write_value(value, kind)


def test_awards_go_in_batches_of_200_and_a_resend_creates_nothing(
    server, tls_folder, org, outbox
) -> None:
    """450 awards: 3 Collections upserts; their 450 Contacts: 3 Collections
    updates, of at most 200 records each; each record written once."""
    config = _config(
        server,
        tls_folder,
        contact={
            "fields": {
                "Latest_Credential__c": {"from": "program_title"},
                "Latest_Credential_On__c": {"from": "issued_at"},
                "Credits_Earned__c": {"from": "credits_earned"},
            }
        },
    )
    contacts: list = []
    deliveries = _awards(org, 450, config, contacts)
    assert outbox.enqueue(deliveries) == 450
    assert outbox.replace(contacts) == 450
    writer = SalesforceWriter(config, SINK, Path("."), None)
    results = _deliver(writer, outbox)
    assert sum(len(r.delivered) for r in results) == 900
    assert sum(r.created for r in results) == 450
    assert sum(r.contacts for r in results) == 450
    upserts = [
        p
        for m, p in org.calls
        if p.endswith("/composite/sobjects/Credential__c/Award_Id__c")
    ]
    assert len(upserts) == 3
    updates = [p for m, p in org.calls if p.endswith("/composite/sobjects")]
    assert len(updates) == 3
    credential = next(iter(org.records["Credential__c"].values()))
    assert credential["Issued_On__c"] == "2026-11-30"
    assert credential["Issued_At__c"] == "2026-12-01T04:30:00Z"
    contact = org.records["Contact"][credential["Contact__c"]]
    assert contact["Latest_Credential__c"] == "Professional Ethics (CE)"
    assert contact["Latest_Credential_On__c"] == "2026-11-30"
    assert contact["Credits_Earned__c"] == 3.0
    # The same awards enqueued again are not new; sent again, they update.
    assert outbox.enqueue(deliveries) == 0
    outbox.requeue(SINK, [d.id for d in deliveries])
    again = writer.write(outbox.entries([SINK], limit=200))
    assert again.updated == 200 and again.created == 0
    assert len(org.records["Credential__c"]) == 450


def test_a_batch_with_mixed_failures_maps_each_record_to_its_row(
    server, tls_folder, org, outbox
) -> None:
    """A field error is dead-lettered with Salesforce's message; a lock is retried."""
    config = _config(server, tls_folder)
    deliveries = _awards(org, 5, config)
    outbox.enqueue(deliveries)
    bad, locked = deliveries[1], deliveries[3]
    org.faults.fail_records = {
        bad.payload["external_id"]: (
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "Program must be an active program",
            ["Program__c"],
        ),
        locked.payload["external_id"]: (
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record",
            [],
        ),
    }
    (result,) = _deliver(SalesforceWriter(config, SINK, Path("."), None), outbox)
    assert len(result.delivered) == 3
    dead = outbox.entries([SINK], status="dead")
    assert [entry.id for entry in dead] == [bad.id]
    assert dead[0].last_error == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: Program must be an active program"
        " (fields: Program__c)"
    )
    (waiting,) = outbox.entries([SINK], status="pending")
    assert waiting.id == locked.id and "UNABLE_TO_LOCK_ROW" in (
        waiting.last_error or ""
    )
    assert waiting.next_attempt_at > datetime.now(UTC)


def test_the_quota_used_up_mid_write_back_pauses_the_sink(
    server, tls_folder, org, outbox
) -> None:
    """SF-03: REQUEST_LIMIT_EXCEEDED stops the run; the rest stays queued, later."""
    config = _config(server, tls_folder)
    outbox.enqueue(_awards(org, 450, config))
    org.faults.limit_after = 2  # describe, the first batch; then the limit
    results = _deliver(SalesforceWriter(config, SINK, Path("."), None), outbox)
    assert len(results) == 2 and len(results[0].delivered) == 200
    stopped = results[-1].stopped
    assert stopped is not None and "REQUEST_LIMIT_EXCEEDED" in stopped.message
    assert outbox.counts([SINK]) == {"pending": 250, "delivered": 200, "dead": 0}
    # The batch the limit met waits out the pause; the 50 not taken yet are due.
    assert len(outbox.due(SINK, 500)) == 50
    assert len([p for _, p in org.calls if "composite" in p]) == 2


AWKWARD = "award/50% off é ü ß/漢字 #1?x=y&z"


@pytest.mark.parametrize("count", [1, 2], ids=["sobject-upsert", "collections"])
def test_an_external_id_with_every_awkward_character(
    server, tls_folder, org, outbox, count
) -> None:
    """Slashes, percent signs, spaces and non-ASCII reach the org as they are."""
    config = _config(server, tls_folder, external_id_from="program")
    learner = LearnerIdentityRow(
        "l-1", org.add("Contact", LastName="X")["Id"], None, None
    )
    deliveries = [
        writeback_delivery(
            config,
            SINK,
            AwardRecord(
                f"a-{n}",
                PARTNER,
                "l-1",
                AWKWARD + "!" * n,
                datetime(2026, 1, 2, tzinfo=UTC),
            ),
            learner,
        )
        for n in range(count)
    ]
    outbox.enqueue(deliveries)
    writer = SalesforceWriter(config, SINK, Path("."), None)
    first = writer.write(outbox.due(SINK, 10))
    assert first.created == count and not first.dead
    stored = sorted(r["Award_Id__c"] for r in org.records["Credential__c"].values())
    assert stored == sorted(AWKWARD + "!" * n for n in range(count))
    second = writer.write(outbox.entries([SINK]))
    assert second.updated == count and len(org.records["Credential__c"]) == count


def test_a_persistent_401_stops_the_sink_after_one_new_login(
    server, tls_folder, org, outbox
) -> None:
    """No login loop: one new login, then the run stops with the rows queued."""
    config = _config(server, tls_folder)
    outbox.enqueue(_awards(org, 3, config))
    org.faults.reject_sessions = True
    (result,) = _deliver(SalesforceWriter(config, SINK, Path("."), None), outbox)
    assert result.stopped is not None
    assert "again right after a new login" in result.stopped.message
    assert org.logins == 2
    assert outbox.counts([SINK])["pending"] == 3


def test_a_lone_record_refused_is_dead_lettered(
    server, tls_folder, org, outbox
) -> None:
    """A batch of one goes by the sObject upsert resource; its 400 is its own."""
    config = _config(server, tls_folder)
    (delivery,) = _awards(org, 1, config)
    outbox.enqueue([delivery])
    org.faults.fail_records = {
        delivery.payload["external_id"]: (
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [Program__c]",
            ["Program__c"],
        )
    }
    (result,) = _deliver(SalesforceWriter(config, SINK, Path("."), None), outbox)
    assert result.stopped is None and not result.delivered
    (dead,) = outbox.entries([SINK], status="dead")
    assert dead.last_error == (
        "HTTP 400 REQUIRED_FIELD_MISSING: Required fields are missing: [Program__c]"
    )


def test_a_server_error_that_persists_leaves_the_batch_queued(
    server, tls_folder, org, outbox
) -> None:
    """500s beyond the retries stop the run; the batch waits for a later one."""
    config = _config(server, tls_folder)
    outbox.enqueue(_awards(org, 3, config))
    writer = SalesforceWriter(config, SINK, Path("."), None)
    org.faults.server_errors = [(500, None)] * 3  # every attempt of one call
    (result,) = _deliver(writer, outbox)
    assert result.stopped is not None and "HTTP 500 UNKNOWN_EXCEPTION" in str(
        result.stopped
    )
    assert outbox.counts([SINK])["pending"] == 3
    assert outbox.due(SINK, 10) == []


def test_field_types_given_in_the_file_spare_the_describe_call(
    server, tls_folder, org, outbox
) -> None:
    """With every field's type in the connector file, 400 awards cost exactly two
    data calls (the Collections upserts), and values are typed the same."""
    fields = {
        "Contact__c": {"from": "contact_id", "type": "reference"},
        "Issued_On__c": {"from": "issued_at", "type": "date"},
        "Issued_At__c": {"from": "issued_at", "type": "datetime"},
    }
    config = _config(server, tls_folder, fields=fields)
    assert outbox.enqueue(_awards(org, 400, config)) == 400
    org.reset()
    writer = SalesforceWriter(config, SINK, Path("."), None)
    results = _deliver(writer, outbox)
    assert sum(len(r.delivered) for r in results) == 400
    data = [path for _, path in org.calls if "/services/data/" in path]
    assert not any(path.endswith("/describe") for path in data)
    assert len(data) == 2
    credential = next(iter(org.records["Credential__c"].values()))
    assert credential["Issued_On__c"] == "2026-11-30"
    assert credential["Issued_At__c"] == "2026-12-01T04:30:00Z"
