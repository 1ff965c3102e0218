"""Which runs' quarantine `quarantine list JOB` shows by default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from microcred_sync.state.store import StateStore
from tests.databases import Databases

pytestmark = pytest.mark.both_databases

START = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _run(store: StateStore, run_id: str, mode: str, hours: int, bad: str) -> None:
    store.start_run(
        run_id, "job", "acme", "roster", mode, START + timedelta(hours=hours)
    )
    store.update_run(run_id, status="done")
    store.record_quarantine(
        [
            {
                "run_id": run_id,
                "job": "job",
                "partner": "acme",
                "location": f"{bad}:2",
                "source_key": None,
                "reason": "no source key",
                "created_at": START,
            }
        ]
    )


def test_latest_full_read_and_the_delta_reads_since(databases: Databases) -> None:
    store = StateStore(databases.state_url)
    store.create_schema()
    try:
        _run(store, "a" * 32, "full", 0, "old-full")
        _run(store, "b" * 32, "full", 1, "full")
        _run(store, "c" * 32, "delta", 2, "delta")
        _run(store, "d" * 32, "only", 3, "only")
        shown = {entry["location"] for entry in store.quarantined("job")}
        assert shown == {"full:2", "delta:2"}
        assert [e["location"] for e in store.quarantined("job", "d" * 32)] == ["only:2"]
    finally:
        store.close()


def test_a_job_that_never_read_in_full_shows_its_delta_reads(
    databases: Databases,
) -> None:
    store = StateStore(databases.state_url)
    store.create_schema()
    try:
        _run(store, "c" * 32, "delta", 2, "first")
        _run(store, "e" * 32, "delta", 3, "second")
        shown = {entry["location"] for entry in store.quarantined("job")}
        assert shown == {"first:2", "second:2"}
    finally:
        store.close()
