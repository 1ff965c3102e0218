"""Several deliver workers on one PostgreSQL state store share the outbox: claims
taken with FOR UPDATE SKIP LOCKED, each statement sent by one worker only."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from microcred_sync.outbox import Outbox, outbox
from microcred_sync.state.store import StateStore
from microcred_sync.state.tables import runs
from tests.databases import Databases
from tests.outbox.conftest import ACME, SinkProject
from tests.outbox.ralph_server import Ralph
from tests.outbox.statements import deliveries, statement

ACTIVITY = "https://courses.example.org/workers"
JOB = "acme-lrs-deliver"
BACKLOG = 10_000
WORKERS = 4


@pytest.fixture
def own_ralph(tmp_path: Path) -> Iterator[Ralph]:
    """A Ralph of this test alone, so that its file holds these statements only."""
    if not Ralph.available():
        if os.environ.get("CI"):
            pytest.fail("Ralph is not installed; scripts/test.sh installs it")
        pytest.skip("Ralph's virtualenv .venv-ralph is missing (run scripts/test.sh)")
    server = Ralph([ACME], base=tmp_path / "ralph")
    server.start()
    yield server
    server.close()


@pytest.mark.slow
def test_four_workers_drain_the_backlog_sending_each_statement_once(
    postgres_databases: tuple[str, str],
    own_ralph: Ralph,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four `microcred-sync run` processes of one deliver job drain 10,000 entries
    into Ralph: every statement is stored once, every entry was claimed by one run,
    and the runs' counts add up to the backlog."""
    state_url, _platform = postgres_databases
    project = SinkProject(tmp_path / "project", monkeypatch)
    project.lrs_sink("acme-lrs", "acme", own_ralph.endpoint, ACME, batch_size=50)
    store = StateStore(state_url)
    store.create_schema()
    sent = [statement(ACTIVITY, n) for n in range(BACKLOG)]
    box = Outbox(store.engine)
    assert box.enqueue(deliveries("acme", "acme-lrs", sent)) == BACKLOG

    env = {**os.environ, "MICROCRED_ROOT": str(project.root)}
    env["MICROCRED_STATE_URL"] = state_url
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "microcred_sync", "run", JOB],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(WORKERS)
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err

    stored = [orjson.loads(line)["id"] for line in own_ralph.stored_lines("acme")]
    assert len(stored) == BACKLOG
    assert set(stored) == {s["id"] for s in sent}
    assert box.counts(["acme-lrs"]) == {"pending": 0, "delivered": BACKLOG, "dead": 0}

    with store.engine.connect() as connection:
        taken = dict(
            connection.execute(
                select(runs.c.id, runs.c.records_read).where(
                    runs.c.job == JOB, runs.c.status == "done"
                )
            ).all()
        )
        claims = Counter(
            connection.execute(select(outbox.c.claimed_by)).scalars().all()
        )
    store.close()
    assert len(taken) == WORKERS and sum(taken.values()) == BACKLOG
    # Each entry was taken by the one run that claimed it, and none was taken twice.
    assert claims == Counter({run: count for run, count in taken.items() if count})
    assert sum(1 for count in taken.values() if count) >= 2


@pytest.mark.both_databases
def test_a_dead_workers_claims_return_once_their_lease_ends(
    databases: Databases,
) -> None:
    """Entries claimed by a run that never settles them are left to it while its
    claim holds, then due for the next run; settled ones never come back."""
    store = StateStore(databases.state_url)
    store.create_schema()
    box = Outbox(store.engine)
    sent = [statement(ACTIVITY, n) for n in range(30)]
    box.enqueue(deliveries("acme", "acme-lrs", sent))
    now = datetime.now(UTC)
    lease = timedelta(minutes=10)

    dead = box.claim("acme-lrs", 20, "run-dead", now=now, lease=lease)
    alive = box.claim("acme-lrs", 20, "run-alive", now=now, lease=lease)
    assert [e.id for e in dead] == [s["id"] for s in sent[:20]]
    assert [e.id for e in alive] == [s["id"] for s in sent[20:]]
    box.mark_delivered("acme-lrs", [e.id for e in alive])
    box.mark_delivered("acme-lrs", [e.id for e in dead[:5]])
    assert box.claim("acme-lrs", 50, "run-next", now=now + lease / 2) == []

    later = now + lease + timedelta(seconds=1)
    returned = box.claim("acme-lrs", 50, "run-next", now=later)
    assert [e.id for e in returned] == [s["id"] for s in sent[5:20]]
    store.close()
