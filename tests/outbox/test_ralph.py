"""Delivery to a real Ralph LRS: batches, Ralph's ways with duplicates, refused
statements, partner isolation, and Ralph stopped in the middle of a delivery."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime

import orjson

from microcred_sync.outbox.lrs import read_back
from microcred_sync.outbox.sinks import LrsSink

from .conftest import ACME, GLOBEX, SinkProject
from .fault_proxy import FaultProxy
from .ralph_server import LrsUser, Ralph
from .statements import deliveries, statement, voiding


def _ids(statements: list[dict[str, object]]) -> set[str]:
    return {str(s["id"]) for s in statements}


def test_statements_are_delivered_in_batches_and_read_back(
    sink_project: SinkProject, ralph: Ralph, activity: str
) -> None:
    """25 statements in batches of 10 arrive once; read-back follows `more`."""
    sink_project.lrs_sink("acme-lrs", "acme", ralph.endpoint, ACME, batch_size=10)
    sent = [statement(activity, n) for n in range(25)]
    sink_project.outbox().enqueue(deliveries("acme", "acme-lrs", sent))

    outcome = sink_project.deliver("acme-lrs-deliver")

    assert (outcome.status, outcome.exit_code) == ("done", 0)
    assert (outcome.taken, outcome.delivered, outcome.requests) == (25, 25, 3)
    stored = sink_project.read_back("acme-lrs", activity, limit="7")
    assert len(stored) == 25 and _ids(stored) == _ids(sent)
    assert sink_project.outbox().counts(["acme-lrs"])["delivered"] == 25


def test_timestamps_read_back_as_the_same_instant(
    sink_project: SinkProject, ralph: Ralph, activity: str
) -> None:
    """XA-03: an offset timestamp comes back as the same instant."""
    sink_project.lrs_sink("acme-lrs", "acme", ralph.endpoint, ACME)
    sent = statement(activity, 1, timestamp="2026-03-29T02:30:00.123+02:00")
    sink_project.outbox().enqueue(deliveries("acme", "acme-lrs", [sent]))
    sink_project.deliver("acme-lrs-deliver")
    (stored,) = sink_project.read_back("acme-lrs", activity)
    assert datetime.fromisoformat(stored["timestamp"]) == datetime.fromisoformat(
        "2026-03-29T00:30:00.123Z"
    )


def test_duplicates_count_as_delivered_whatever_ralph_answers(
    sink_project: SinkProject, ralph: Ralph, activity: str
) -> None:
    """A batch Ralph partly holds (200 with only the new ids) and one it holds
    entirely (204, no body) are both delivered; nothing is stored twice."""
    sink_project.lrs_sink("acme-lrs", "acme", ralph.endpoint, ACME, batch_size=10)
    sent = [statement(activity, n) for n in range(10)]
    client = sink_project.client("acme-lrs")
    body = orjson.dumps(sent[:4])
    client.post(body, [s["id"] for s in sent[:4]])
    client.close()
    box = sink_project.outbox()
    box.enqueue(deliveries("acme", "acme-lrs", sent))

    first = sink_project.deliver("acme-lrs-deliver")
    assert (first.delivered, first.already_stored) == (6, 4)

    # `retry` leaves delivered entries alone; a state store restored from a backup
    # taken before the run would not: it sends everything again.
    assert box.requeue("acme-lrs") == 0
    with box.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE outbox SET status = 'pending'")
    again = sink_project.deliver("acme-lrs-deliver")
    assert (again.status, again.delivered, again.already_stored) == ("done", 0, 10)
    assert len(sink_project.read_back("acme-lrs", activity)) == 10


def test_only_the_bad_statements_of_a_batch_are_dead_lettered(
    sink_project: SinkProject, ralph: Ralph, activity: str
) -> None:
    """Ralph refuses a batch holding two invalid statements (422); halving finds
    them, the 18 others arrive, the two are dead with Ralph's reason."""
    sink_project.lrs_sink("acme-lrs", "acme", ralph.endpoint, ACME, batch_size=20)
    sent = [statement(activity, n) for n in range(20)]
    for bad in (sent[3], sent[14]):
        del bad["verb"]
    sink_project.outbox().enqueue(deliveries("acme", "acme-lrs", sent))

    outcome = sink_project.deliver("acme-lrs-deliver")

    assert outcome.status == "done" and outcome.delivered == 18
    assert {d.id for d in outcome.dead} == {sent[3]["id"], sent[14]["id"]}
    assert all(
        d.reason == "the LRS rejected: 0.verb: Field required" for d in outcome.dead
    )
    assert "mailto" not in " ".join(d.reason for d in outcome.dead)
    assert len(sink_project.read_back("acme-lrs", activity)) == 18


def test_a_conflicting_statement_is_dead_lettered_and_reported(
    sink_project: SinkProject, ralph: Ralph, activity: str
) -> None:
    """Another statement already holds one id (409): that one is dead, the rest of
    the batch is delivered."""
    sink_project.lrs_sink("acme-lrs", "acme", ralph.endpoint, ACME)
    sent = [statement(activity, n) for n in range(6)]
    other = {**sent[2], "timestamp": "2026-01-01T00:00:00.000Z"}
    client = sink_project.client("acme-lrs")
    client.post(orjson.dumps([other]), [other["id"]])
    client.close()
    sink_project.outbox().enqueue(deliveries("acme", "acme-lrs", sent))

    outcome = sink_project.deliver("acme-lrs-deliver")

    assert [d.id for d in outcome.dead] == [sent[2]["id"]]
    assert outcome.dead[0].reason.startswith("conflict: Differing statements")
    assert outcome.delivered == 5


def test_two_partners_on_one_lrs_each_read_back_only_their_own(
    sink_project: SinkProject, ralph: Ralph, activity: str
) -> None:
    """Isolation: two partners, one LRS, different credentials; each job sends only
    its partner's statements, and each partner reads back only its own."""
    sink_project.lrs_sink("acme-lrs", "acme", ralph.endpoint, ACME)
    sink_project.lrs_sink("globex-lrs", "globex", ralph.endpoint, GLOBEX)
    acme = [statement(activity, n, email=f"a{n}@acme.example") for n in range(5)]
    globex = [
        statement(activity, 100 + n, email=f"g{n}@globex.example") for n in range(3)
    ]
    box = sink_project.outbox()
    box.enqueue(deliveries("acme", "acme-lrs", acme))
    box.enqueue(deliveries("globex", "globex-lrs", globex))
    # An entry filed under the wrong partner for acme's sink is never sent by it.
    box.enqueue(deliveries("globex", "acme-lrs", [statement(activity, 999)]))

    first = sink_project.deliver("acme-lrs-deliver")
    assert first.delivered == 5 and first.taken == 5
    assert _ids(sink_project.read_back("acme-lrs", activity)) == _ids(acme)
    assert sink_project.read_back("globex-lrs", activity) == []

    second = sink_project.deliver("globex-lrs-deliver")
    assert second.delivered == 3
    assert _ids(sink_project.read_back("globex-lrs", activity)) == _ids(globex)
    assert _ids(sink_project.read_back("acme-lrs", activity)) == _ids(acme)
    assert box.counts(["acme-lrs"], partner="globex")["pending"] == 1


def test_voided_statements_and_their_voiding_are_left_out_of_read_back(
    sink_project: SinkProject, ralph: Ralph, activity: str
) -> None:
    """XA-06: S1 voided by S2; a read-back for reconciliation drops both."""
    sink_project.lrs_sink("acme-lrs", "acme", ralph.endpoint, ACME)
    kept, revoked = statement(activity, 1), statement(activity, 2)
    void = voiding(revoked["id"])
    void["context"] = {"contextActivities": {"other": [{"id": activity}]}}
    sink_project.outbox().enqueue(deliveries("acme", "acme-lrs", [kept, revoked, void]))
    assert sink_project.deliver("acme-lrs-deliver").delivered == 3

    client = sink_project.client("acme-lrs")
    try:
        everything = read_back(client, include_voided=True)
        remaining = read_back(client)
    finally:
        client.close()
    assert {kept["id"], revoked["id"], void["id"]} <= _ids(everything)
    assert kept["id"] in _ids(remaining)
    assert not {revoked["id"], void["id"]} & _ids(remaining)


def test_ralph_stopped_mid_delivery_every_statement_arrives_once(
    sink_project: SinkProject, ralph: Ralph, proxy: FaultProxy, activity: str
) -> None:
    """Ralph is stopped after the second batch and started again: the deliver
    run retries through the outage and every statement is stored exactly once."""
    retry = {"max_attempts": 20, "backoff_base": 0.2, "backoff_max": 1.0}
    sink_project.lrs_sink(
        "acme-lrs", "acme", proxy.endpoint, ACME, batch_size=10, retry=retry
    )
    sent = [statement(activity, n) for n in range(60)]
    sink_project.outbox().enqueue(deliveries("acme", "acme-lrs", sent))
    restarted = threading.Event()

    def outage(number: int) -> None:
        if number == 3 and not restarted.is_set():
            ralph.stop()
            threading.Thread(target=lambda: (ralph.start(), restarted.set())).start()

    proxy.on_request = outage
    outcome = sink_project.deliver("acme-lrs-deliver")

    assert restarted.wait(60)
    assert outcome.status == "done", outcome.error
    assert outcome.retried >= 1 and outcome.delivered + outcome.already_stored == 60
    stored = sink_project.read_back("acme-lrs", activity)
    assert Counter(s["id"] for s in stored) == Counter(s["id"] for s in sent)
    lines = [orjson.loads(line) for line in ralph.stored_lines("acme")]
    mine = Counter(s["id"] for s in lines if s["object"].get("id") == activity)
    assert set(mine.values()) == {1} and len(mine) == 60


def test_wrong_credentials_stop_the_run_without_showing_them(
    sink_project: SinkProject, ralph: Ralph, activity: str
) -> None:
    """Ralph answers 401: the run stops at once, the statements stay pending and
    are not charged an attempt, and the password appears nowhere."""
    wrong = LrsUser(ACME.username, "not-the-password-42", ACME.mbox)
    sink_project.lrs_sink("acme-lrs", "acme", ralph.endpoint, wrong)
    sink_project.outbox().enqueue(
        deliveries("acme", "acme-lrs", [statement(activity, 1)])
    )
    outcome = sink_project.deliver("acme-lrs-deliver")
    assert outcome.status == "failed" and outcome.requests == 1
    assert (
        outcome.error is not None and "refused the credentials (401)" in outcome.error
    )
    assert "not-the-password-42" not in outcome.error
    (entry,) = sink_project.outbox().entries(["acme-lrs"])
    assert (entry.status, entry.attempts) == ("pending", 0)


def test_sink_config_reads_back_what_the_file_says(
    sink_project: SinkProject, ralph: Ralph
) -> None:
    """The sink's defaults: version 1.0.3, TLS verified, timeouts on every call."""
    sink_project.lrs_sink("acme-lrs", "acme", ralph.endpoint, ACME)
    config = sink_project.project().connectors["acme-lrs"]
    assert isinstance(config, LrsSink)
    assert config.xapi_version == "1.0.3" and config.verify_tls
    assert config.timeouts.connect > 0 and config.timeouts.read > 0


def test_tls_checks_turned_off_warn_on_every_run(
    sink_project: SinkProject, ralph: Ralph, activity: str
) -> None:
    """`verify_tls: false` is allowed for one sink, and each run says so."""
    sink_project.lrs_sink("acme-lrs", "acme", ralph.endpoint, ACME, verify_tls=False)
    for _run in range(2):
        outcome = sink_project.deliver("acme-lrs-deliver")
        assert outcome.warnings == ["TLS certificate checks are off for sink acme-lrs"]
