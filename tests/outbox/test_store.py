"""The outbox table and its API on SQLite and PostgreSQL: idempotent enqueue, one
row per delivery updated in place (ED-01), due and claimed entries, dead letters and
requeue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select

from microcred_sync.outbox import NewDelivery, Outbox
from microcred_sync.outbox.errors import OutboxEntryInvalid
from microcred_sync.state.store import StateStore
from tests.databases import Databases

from .statements import deliveries, statement

pytestmark = pytest.mark.both_databases

ACTIVITY = "https://courses.example.org/c101"


@pytest.fixture
def outbox(databases: Databases) -> Iterator[Outbox]:
    store = StateStore(databases.state_url)
    store.create_schema()
    yield Outbox(store.engine)
    store.close()


def test_create_schema_makes_the_outbox_table(outbox: Outbox) -> None:
    """StateStore.create_schema creates the outbox with the state tables."""
    assert "outbox" in inspect(outbox.engine).get_table_names()


def test_enqueue_twice_is_a_no_op(outbox: Outbox) -> None:
    """The same statements enqueued again (a rerun of the results job) add nothing."""
    entries = deliveries("acme", "acme-lrs", [statement(ACTIVITY, n) for n in range(5)])
    assert outbox.enqueue(entries) == 5
    assert outbox.enqueue(entries) == 0
    assert outbox.enqueue(entries[:2] + entries[:2]) == 0
    assert outbox.counts(["acme-lrs"]) == {"pending": 5, "delivered": 0, "dead": 0}


def test_the_same_statement_may_go_to_two_sinks(outbox: Outbox) -> None:
    """An id is unique per sink, not across sinks."""
    one = [statement(ACTIVITY, 1)]
    assert outbox.enqueue(deliveries("acme", "acme-lrs", one)) == 1
    assert outbox.enqueue(deliveries("acme", "acme-file", one)) == 1


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"id": "not-a-uuid"}, "not a UUID"),
        ({"timestamp": None}, "explicit timestamp"),
        ({"timestamp": "2026-03-29 01:30:00"}, "no time zone offset"),
        ({"timestamp": "yesterday"}, "not an ISO 8601 time"),
    ],
)
def test_undeliverable_entries_are_refused_and_nothing_is_stored(
    outbox: Outbox, change: dict[str, object], problem: str
) -> None:
    """No id, no timestamp or a naive one (XA-03): the whole call stores nothing."""
    good = statement(ACTIVITY, 1)
    bad = {**statement(ACTIVITY, 2), **change}
    if bad["timestamp"] is None:
        del bad["timestamp"]
    entries = [
        NewDelivery(id=good["id"], partner="acme", sink="s", payload=good),
        NewDelivery(id=str(bad["id"]), partner="acme", sink="s", payload=bad),
    ]
    with pytest.raises(OutboxEntryInvalid, match=problem):
        outbox.enqueue(entries)
    assert outbox.counts(["s"])["pending"] == 0


def test_statement_id_must_be_the_entry_id(outbox: Outbox) -> None:
    """An entry whose key is not its statement's id would break idempotency."""
    payload = statement(ACTIVITY, 1)
    entry = NewDelivery(
        id=statement(ACTIVITY, 2)["id"], partner="a", sink="s", payload=payload
    )
    with pytest.raises(OutboxEntryInvalid, match="must be the outbox id"):
        outbox.enqueue([entry])


def test_due_takes_the_partners_entries_in_order(outbox: Outbox) -> None:
    """Oldest first, in enqueue order, one partner only, never another sink's."""
    acme = [statement(ACTIVITY, n) for n in range(6)]
    outbox.enqueue(deliveries("acme", "lrs", acme))
    outbox.enqueue(deliveries("globex", "lrs", [statement(ACTIVITY, 99)]))
    outbox.enqueue(deliveries("acme", "other", [statement(ACTIVITY, 98)]))
    due = outbox.due("lrs", 4, partner="acme")
    assert [entry.id for entry in due] == [s["id"] for s in acme[:4]]
    assert {entry.partner for entry in outbox.due("lrs", 100, partner="globex")} == {
        "globex"
    }


def test_failures_update_one_row_in_place_until_delivered(outbox: Outbox) -> None:
    """ED-01: attempts and the last error accumulate on the same row; a failed
    entry is not due before its next attempt; delivery clears the error."""
    entry = statement(ACTIVITY, 1)
    outbox.enqueue(deliveries("acme", "lrs", [entry]))
    later = datetime.now(UTC) + timedelta(minutes=5)
    outbox.record_failure("lrs", [entry["id"]], "the LRS answered 503", later)
    outbox.record_failure("lrs", [entry["id"]], "the LRS answered 502", later)
    assert outbox.due("lrs", 10) == []
    (row,) = outbox.entries(["lrs"])
    assert (row.status, row.attempts, row.last_error) == (
        "pending",
        2,
        "the LRS answered 502",
    )
    assert outbox.due("lrs", 10, now=later + timedelta(seconds=1))
    outbox.mark_delivered("lrs", [entry["id"]])
    (row,) = outbox.entries(["lrs"])
    assert (row.status, row.attempts, row.last_error) == ("delivered", 3, None)
    assert row.delivered_at is not None


def test_dead_letters_are_kept_with_their_reason_and_can_be_requeued(
    outbox: Outbox,
) -> None:
    """A refused statement is dead, not due; `retry` makes it due again."""
    one, two = statement(ACTIVITY, 1), statement(ACTIVITY, 2)
    outbox.enqueue(deliveries("acme", "lrs", [one, two]))
    outbox.dead_letter("lrs", [one["id"]], "the LRS rejected: verb: Field required")
    assert [e.id for e in outbox.due("lrs", 10)] == [two["id"]]
    (dead,) = outbox.entries(["lrs"], status="dead")
    assert dead.last_error == "the LRS rejected: verb: Field required"
    assert outbox.requeue("lrs", [one["id"]]) == 1
    assert {e.id for e in outbox.due("lrs", 10)} == {one["id"], two["id"]}


def test_requeue_makes_backed_off_entries_due_but_leaves_delivered_alone(
    outbox: Outbox,
) -> None:
    """Requeue touches dead and waiting entries only, and only the partner's."""
    waiting, sent = statement(ACTIVITY, 1), statement(ACTIVITY, 2)
    outbox.enqueue(deliveries("acme", "lrs", [waiting, sent]))
    outbox.record_failure(
        "lrs", [waiting["id"]], "timeout", datetime.now(UTC) + timedelta(hours=1)
    )
    outbox.mark_delivered("lrs", [sent["id"]])
    assert outbox.requeue("lrs", partner="globex") == 0
    assert outbox.requeue("lrs", partner="acme") == 1
    assert [e.id for e in outbox.due("lrs", 10)] == [waiting["id"]]
    assert outbox.counts(["lrs"]) == {"pending": 1, "delivered": 1, "dead": 0}


def test_claims_share_due_entries_between_runs_without_overlap(outbox: Outbox) -> None:
    """Two runs claiming in turn get disjoint entries, oldest first, of their
    partner only; released claims are due again, delivered entries are not."""
    acme = [statement(ACTIVITY, n) for n in range(8)]
    outbox.enqueue(deliveries("acme", "lrs", acme))
    outbox.enqueue(deliveries("globex", "lrs", [statement(ACTIVITY, 99)]))
    first = outbox.claim("lrs", 3, "run-1", partner="acme")
    second = outbox.claim("lrs", 10, "run-2", partner="acme")
    assert [e.id for e in first] == [s["id"] for s in acme[:3]]
    assert [e.id for e in second] == [s["id"] for s in acme[3:]]
    assert outbox.claim("lrs", 10, "run-3", partner="acme") == []
    outbox.mark_delivered("lrs", [e.id for e in first[:2]])
    assert outbox.renew_claims("run-1") == 1
    assert outbox.release_claims("lrs", "run-1") == 1
    assert [e.id for e in outbox.claim("lrs", 10, "run-3")] == [
        acme[2]["id"],
        statement(ACTIVITY, 99)["id"],
    ]


def test_a_silent_deliver_run_is_interrupted_a_live_one_is_not(
    databases: Databases,
) -> None:
    """Deliver runs share their job, so a new one does not end the others; but one
    whose worker stopped beating for longer than a claim lease was killed, and is
    marked interrupted when the next one starts."""
    from microcred_sync.outbox.store import CLAIM_LEASE
    from microcred_sync.state.tables import runs

    store = StateStore(databases.state_url)
    store.create_schema()
    try:
        start = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
        for run_id in ("killed", "alive"):
            store.start_run(
                run_id,
                "acme-deliver",
                "acme",
                "deliver",
                "full",
                start,
                exclusive=False,
                silent_after=CLAIM_LEASE,
            )
            store.update_run(run_id, status="applying")
        later = start + CLAIM_LEASE + timedelta(minutes=1)
        store.beat("alive", later - timedelta(seconds=30))
        store.start_run(
            "next",
            "acme-deliver",
            "acme",
            "deliver",
            "full",
            later,
            exclusive=False,
            silent_after=CLAIM_LEASE,
        )
        with store.engine.connect() as connection:
            status = dict(connection.execute(select(runs.c.id, runs.c.status)).all())
    finally:
        store.close()
    assert status == {"killed": "interrupted", "alive": "applying", "next": "planning"}
