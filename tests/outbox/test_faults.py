"""Delivery through a fault proxy in front of Ralph: throttling with Retry-After
(HT-01), size limits, resets, slow and stalled answers (HT-03). Deliveries
finish, and each statement is stored exactly once."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from microcred_sync.outbox import Outbox

from .conftest import ACME, SinkProject
from .fault_proxy import FaultProxy
from .ralph_server import Ralph
from .statements import deliveries, statement


def _enqueue(
    project: SinkProject, activity: str, count: int
) -> list[dict[str, object]]:
    sent = [statement(activity, n) for n in range(count)]
    project.outbox().enqueue(deliveries("acme", "acme-lrs", sent))
    return sent


def _stored_once(
    project: SinkProject, activity: str, sent: list[dict[str, object]]
) -> None:
    stored = Counter(s["id"] for s in project.read_back("acme-lrs", activity))
    assert stored == Counter(s["id"] for s in sent)


def test_retry_after_seconds_and_http_date_are_honoured(
    sink_project: SinkProject, proxy: FaultProxy, activity: str
) -> None:
    """429 with `Retry-After: 1`, then 503 with an HTTP-date: both are waited out
    (not hammered), each attempt is recorded, the batch then arrives once."""
    sink_project.lrs_sink("acme-lrs", "acme", proxy.endpoint, ACME)
    sent = _enqueue(sink_project, activity, 5)
    proxy.reset("429:1", "503:date:2")

    started = time.monotonic()
    outcome = sink_project.deliver("acme-lrs-deliver")

    assert time.monotonic() - started >= 1.9
    assert (outcome.status, outcome.retried, outcome.requests) == ("done", 2, 3)
    assert {e.attempts for e in sink_project.outbox().entries(["acme-lrs"])} == {3}
    _stored_once(sink_project, activity, sent)


def test_retry_after_beyond_the_cap_stops_the_run_and_reschedules(
    sink_project: SinkProject, proxy: FaultProxy, activity: str
) -> None:
    """`Retry-After: 86400` is not slept on: the run ends failed at once, the
    statements stay pending for later (never dead), and `retry` sends them."""
    sink_project.lrs_sink("acme-lrs", "acme", proxy.endpoint, ACME)
    sent = _enqueue(sink_project, activity, 5)
    proxy.reset("429:86400")

    started = time.monotonic()
    outcome = sink_project.deliver("acme-lrs-deliver")

    assert time.monotonic() - started < 2
    assert (outcome.status, outcome.exit_code, outcome.pending) == ("failed", 1, 5)
    assert outcome.error is not None and "Retry-After" in outcome.error
    box: Outbox = sink_project.outbox()
    entries = box.entries(["acme-lrs"])
    assert {e.status for e in entries} == {"pending"}
    soonest = min(e.next_attempt_at for e in entries)
    assert soonest > datetime.now(UTC) + timedelta(minutes=30)
    assert soonest < datetime.now(UTC) + timedelta(hours=1, minutes=1)
    assert box.due("acme-lrs", 10) == []

    assert box.requeue("acme-lrs") == 5
    assert sink_project.deliver("acme-lrs-deliver").delivered == 5
    _stored_once(sink_project, activity, sent)


def test_a_request_too_large_is_split_until_it_fits(
    sink_project: SinkProject, proxy: FaultProxy, activity: str
) -> None:
    """413 for bodies over the limit: the batch is halved until each part fits."""
    sink_project.lrs_sink("acme-lrs", "acme", proxy.endpoint, ACME, batch_size=40)
    sent = _enqueue(sink_project, activity, 40)
    proxy.reset()
    proxy.max_body = 4000

    outcome = sink_project.deliver("acme-lrs-deliver")

    assert outcome.status == "done" and outcome.delivered == 40 and not outcome.dead
    assert "413" in proxy.seen or outcome.requests > 1
    _stored_once(sink_project, activity, sent)


def test_one_statement_too_large_alone_is_dead_lettered(
    sink_project: SinkProject, proxy: FaultProxy, activity: str
) -> None:
    """A statement larger than the limit by itself cannot go: dead, with why."""
    sink_project.lrs_sink("acme-lrs", "acme", proxy.endpoint, ACME, batch_size=8)
    sent = [statement(activity, n) for n in range(8)]
    sent[5]["result"] = {"response": "x" * 5000}
    sink_project.outbox().enqueue(deliveries("acme", "acme-lrs", sent))
    proxy.reset()
    proxy.max_body = 4000

    outcome = sink_project.deliver("acme-lrs-deliver")

    assert [d.id for d in outcome.dead] == [sent[5]["id"]]
    assert "larger than the LRS takes" in outcome.dead[0].reason
    assert outcome.delivered == 7


def test_connection_resets_before_and_after_the_lrs_stored_a_batch(
    sink_project: SinkProject, proxy: FaultProxy, activity: str
) -> None:
    """A reset before forwarding, and one after Ralph stored the batch (the
    answer is lost): resends are recognised as stored, nothing is doubled."""
    sink_project.lrs_sink("acme-lrs", "acme", proxy.endpoint, ACME, batch_size=10)
    sent = _enqueue(sink_project, activity, 30)
    proxy.reset("reset", "reset-after", "pass", "reset-after", "pass", "pass")

    outcome = sink_project.deliver("acme-lrs-deliver")

    assert outcome.status == "done", outcome.error
    assert outcome.retried == 3
    assert outcome.delivered + outcome.already_stored == 30
    assert outcome.already_stored == 20
    _stored_once(sink_project, activity, sent)


def test_an_answer_slower_than_the_read_timeout_is_retried(
    sink_project: SinkProject, proxy: FaultProxy, activity: str
) -> None:
    """HT-03: Ralph stored the batch but the answer came after the read timeout;
    the retry finds it stored."""
    sink_project.lrs_sink(
        "acme-lrs", "acme", proxy.endpoint, ACME, timeouts={"connect": 2, "read": 0.5}
    )
    sent = _enqueue(sink_project, activity, 5)
    proxy.reset("delay:1.5")

    outcome = sink_project.deliver("acme-lrs-deliver")

    assert outcome.status == "done" and outcome.retried == 1
    assert outcome.already_stored == 5
    _stored_once(sink_project, activity, sent)


def test_a_stalled_answer_ends_the_run_failed_and_releases_the_job(
    sink_project: SinkProject, proxy: FaultProxy, activity: str
) -> None:
    """HT-03: headers, then no body. Every call times out, the run ends failed
    with the reason, the statements stay pending with their attempts, the job's
    lock is released, and the run is recorded."""
    retry = {"max_attempts": 2, "backoff_base": 0.05, "backoff_max": 0.1}
    sink_project.lrs_sink(
        "acme-lrs",
        "acme",
        proxy.endpoint,
        ACME,
        timeouts={"connect": 1, "read": 0.3},
        retry=retry,
    )
    _enqueue(sink_project, activity, 3)
    proxy.reset(every="stall:1.5")

    started = time.monotonic()
    outcome = sink_project.deliver("acme-lrs-deliver")

    assert time.monotonic() - started < 5
    assert outcome.status == "failed"
    assert (
        outcome.error is not None
        and "no answer from the LRS within 0.3 s" in outcome.error
    )
    entries = sink_project.outbox().entries(["acme-lrs"])
    assert {(e.status, e.attempts) for e in entries} == {("pending", 2)}
    assert entries[0].last_error is not None and "0.3 s" in entries[0].last_error
    store = sink_project.store()
    assert outcome.run_id is not None
    run = store.run(outcome.run_id)
    assert run.status == "failed" and run.error == outcome.error
    # The lock is free: a second run starts (and is refused by the LRS only).
    proxy.reset()
    store.close()
    sink_project.outbox().requeue("acme-lrs")
    assert sink_project.deliver("acme-lrs-deliver").status == "done"


def test_the_run_deadline_stops_a_slow_delivery(
    sink_project: SinkProject, proxy: FaultProxy, activity: str
) -> None:
    """A run has an overall deadline: slow answers do not keep it going; what is
    not sent waits for the next run."""
    sink_project.lrs_sink(
        "acme-lrs", "acme", proxy.endpoint, ACME, batch_size=2, deadline_seconds=1
    )
    sent = _enqueue(sink_project, activity, 12)
    proxy.reset(every="delay:0.4")

    outcome = sink_project.deliver("acme-lrs-deliver")

    assert outcome.status == "failed" and outcome.error is not None
    assert "deadline" in outcome.error
    assert 0 < outcome.delivered < 12 and outcome.pending == 12 - outcome.delivered
    proxy.reset()
    assert sink_project.deliver("acme-lrs-deliver").status == "done"
    _stored_once(sink_project, activity, sent)


def test_a_storm_of_faults_still_stores_each_statement_once(
    sink_project: SinkProject, proxy: FaultProxy, ralph: Ralph, activity: str
) -> None:
    """Throttling, outages, resets and delays mixed over 100 statements."""
    sink_project.lrs_sink(
        "acme-lrs",
        "acme",
        proxy.endpoint,
        ACME,
        batch_size=10,
        timeouts={"connect": 2, "read": 1},
        retry={"max_attempts": 10, "backoff_base": 0.02, "backoff_max": 0.1},
    )
    sent = _enqueue(sink_project, activity, 100)
    proxy.reset(
        "503:0",
        "pass",
        "reset-after",
        "429:0",
        "pass",
        "reset",
        "delay:1.2",
        "pass",
        "503",
        "reset-after",
        "pass",
        "413",
        "pass",
        "pass",
        "reset",
    )

    outcome = sink_project.deliver("acme-lrs-deliver")

    assert outcome.status == "done", outcome.error
    assert outcome.delivered + outcome.already_stored == 100 and not outcome.dead
    _stored_once(sink_project, activity, sent)
