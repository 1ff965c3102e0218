"""The outbox and a deliver run with the state store on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from microcred_sync.outbox import Outbox
from microcred_sync.state.store import StateStore
from tests.outbox.conftest import SinkProject
from tests.outbox.statements import deliveries, statement

ACTIVITY = "https://courses.example.org/pg"


def test_outbox_on_postgres_end_to_end(
    postgres_databases: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Idempotent enqueue, a failure in place, a dead letter, requeue, and a
    deliver run to a file sink, all on PostgreSQL."""
    state_url, _platform = postgres_databases
    store = StateStore(state_url)
    store.create_schema()
    box = Outbox(store.engine)
    sent = [statement(ACTIVITY, n) for n in range(6)]
    assert box.enqueue(deliveries("acme", "acme-file", sent)) == 6
    assert box.enqueue(deliveries("acme", "acme-file", sent)) == 0
    later = datetime.now(UTC) + timedelta(hours=1)
    box.record_failure("acme-file", [sent[0]["id"]], "the LRS answered 503", later)
    box.dead_letter("acme-file", [sent[1]["id"]], "conflict")
    assert len(box.due("acme-file", 100, partner="acme")) == 4
    assert box.requeue("acme-file") == 2

    project = SinkProject(tmp_path / "project", monkeypatch)
    project.file_sink("acme-file", "acme", "var/acme.jsonl")
    monkeypatch.setenv("MICROCRED_STATE_URL", state_url)
    outcome = project.deliver("acme-file-deliver")

    assert (outcome.status, outcome.delivered, outcome.pending) == ("done", 6, 0)
    assert box.counts(["acme-file"]) == {"pending": 0, "delivered": 6, "dead": 0}
    (entry,) = [e for e in box.entries(["acme-file"]) if e.id == sent[0]["id"]]
    assert entry.attempts == 2 and entry.delivered_at is not None
    assert store.run(outcome.run_id or "").status == "done"
    store.close()
