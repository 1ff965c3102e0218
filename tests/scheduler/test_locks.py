"""Job locks: PostgreSQL advisory locks on a connection of their own, SQLite leases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text, update

from microcred_sync.sqlutil import make_engine
from microcred_sync.state.locks import (
    APPLICATION,
    JobLock,
    JobLocked,
    LockLost,
    advisory_key,
    slot,
)
from microcred_sync.state.store import StateStore
from microcred_sync.state.tables import locks

JOB = "example-corp-roster"


@pytest.fixture
def postgres_engines(postgres_databases: tuple[str, str]) -> Iterator[list[Engine]]:
    """Two engines on one state database, as two replicas would have."""
    engines = [make_engine(postgres_databases[0]) for _ in range(2)]
    yield engines
    for engine in engines:
        engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: object) -> Iterator[Engine]:
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    store.create_schema()
    yield store.engine
    store.close()


def _advisory_holders(engine: Engine, job: str) -> list[str]:
    key = advisory_key(job) & 0xFFFF_FFFF_FFFF_FFFF
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a"
                    " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
                    " AND l.classid::bigint = :high AND l.objid::bigint = :low"
                ),
                {"high": key >> 32, "low": key & 0xFFFF_FFFF},
            ).scalars()
        )


def test_advisory_lock_is_exclusive_across_replicas_and_names_its_holder(
    postgres_engines: list[Engine],
) -> None:
    """While one replica holds a job, another is refused with the holder's run id;
    once released, the other takes it."""
    first = JobLock(postgres_engines[0], JOB, "run-one")
    first.acquire()
    with pytest.raises(JobLocked) as refused:
        JobLock(postgres_engines[1], JOB, "run-two").acquire()
    assert refused.value.context["run"] == "run-one"
    other_job = JobLock(postgres_engines[1], "another-job", "run-three")
    other_job.acquire()
    other_job.release()
    first.release()
    second = JobLock(postgres_engines[1], JOB, "run-two")
    second.acquire()
    second.release()


def test_advisory_lock_is_held_by_its_own_session_never_a_pooled_one(
    postgres_engines: list[Engine],
) -> None:
    """The lock lives on a session outside the pool: released, no pooled connection
    is left holding it, so the same engine's next run takes it again at once."""
    engine = postgres_engines[0]
    lock = JobLock(engine, JOB, "run-one")
    lock.acquire()
    assert _advisory_holders(engine, JOB) == [APPLICATION + "run-one"]
    lock.renew()
    lock.release()
    assert _advisory_holders(engine, JOB) == []
    # Every pooled connection checked out again holds no lock of ours.
    with engine.connect() as connection:
        mine = connection.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()"
            )
        ).scalar_one()
    assert mine == 0
    again = JobLock(postgres_engines[1], JOB, "run-two")
    again.acquire()
    again.release()


def test_a_dead_session_frees_the_job_and_its_run_learns_it_on_renew(
    postgres_engines: list[Engine],
) -> None:
    """A lock session that ends (a replica killed, a connection cut) frees the job
    for another replica; the run that held it gets LockLost at its next renewal."""
    holder = JobLock(postgres_engines[0], JOB, "run-one")
    holder.acquire()
    with postgres_engines[1].connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": APPLICATION + "run-one"},
        )
        connection.commit()
    taker = JobLock(postgres_engines[1], JOB, "run-two")
    taker.acquire()
    with pytest.raises(LockLost):
        holder.renew()
    holder.release()  # already gone: nothing to do, nothing raised
    assert _advisory_holders(postgres_engines[1], JOB) == [APPLICATION + "run-two"]
    taker.release()


def test_an_expired_lease_taken_over_is_lost_on_renew(sqlite_engine: Engine) -> None:
    """On SQLite, a lease left to expire goes to the next run; the old holder's next
    renewal raises LockLost and its release leaves the new holder's lease alone."""
    old = JobLock(sqlite_engine, JOB, "run-one")
    old.acquire()
    with pytest.raises(JobLocked):
        JobLock(sqlite_engine, JOB, "run-two").acquire()
    with sqlite_engine.begin() as connection:
        connection.execute(
            update(locks).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    new = JobLock(sqlite_engine, JOB, "run-two")
    new.acquire()
    with pytest.raises(LockLost):
        old.renew()
    old.release()
    new.renew()
    new.release()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    """A migrated state store, on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{request.getfixturevalue('tmp_path')}/state.db"
    else:
        url = request.getfixturevalue("postgres_databases")[0]
    store = StateStore(url)
    store.create_schema()
    yield store
    store.close()


def test_a_slot_another_replica_already_ran_is_refused(store: StateStore) -> None:
    """Inside ``slot``, a lock taken after a run of the job started in the slot is
    given back: the slot is not run twice, one run after the other."""
    engine = store.engine
    fired = datetime.now(UTC)
    store.start_run("served", JOB, "example-corp", "roster", "full", fired)
    with slot(JOB, fired - timedelta(seconds=1)), pytest.raises(JobLocked) as refused:
        JobLock(engine, JOB, "late").acquire()
    assert refused.value.context["run"] == "served"
    # The refused lock was given back, and a slot that nobody ran is run.
    with slot(JOB, fired + timedelta(seconds=1)):
        lock = JobLock(engine, JOB, "next")
        lock.acquire()
    lock.release()


def test_taken_sees_what_acquire_would_refuse_and_takes_nothing(
    store: StateStore, request: pytest.FixtureRequest
) -> None:
    """The daemon's look before a run: ``taken`` is true exactly when ``acquire``
    would raise JobLocked (held by a live run, or its slot served), and looking
    leaves the job free for the next ``acquire``."""
    other = make_engine(store.engine.url.render_as_string(hide_password=False))
    request.addfinalizer(other.dispose)

    assert not JobLock(other, JOB, "").taken()
    holder = JobLock(store.engine, JOB, "holder")
    holder.acquire()
    assert JobLock(other, JOB, "").taken()
    assert not JobLock(other, "another-job", "").taken()
    holder.release()
    assert not JobLock(other, JOB, "").taken()
    # Looking took nothing: the job is still free to take.
    looked = JobLock(other, JOB, "after-look")
    looked.acquire()
    looked.release()

    fired = datetime.now(UTC)
    store.start_run("served", JOB, "example-corp", "roster", "full", fired)
    with slot(JOB, fired - timedelta(seconds=1)):
        assert JobLock(other, JOB, "").taken()
    with slot(JOB, fired + timedelta(seconds=1)):
        assert not JobLock(other, JOB, "").taken()


def test_a_run_for_a_few_keys_serves_no_slot_and_is_not_the_jobs_last(
    store: StateStore,
) -> None:
    """`run JOB --only KEY` by an operator, just before a slot: the scheduled run
    of the slot still runs, and the job's last run (what `status` shows and the
    daemon's first slot counts from) stays its last whole run."""
    fired = datetime.now(UTC)
    store.start_run("one-person", JOB, "example-corp", "roster", "only", fired)
    with slot(JOB, fired - timedelta(seconds=1)):
        assert JobLock(store.engine, JOB, "").taken() is None
        lock = JobLock(store.engine, JOB, "scheduled")
        lock.acquire()
    lock.release()
    assert store.latest_runs() == []

    store.start_run(
        "whole", JOB, "example-corp", "roster", "full", fired + timedelta(seconds=1)
    )
    store.start_run(
        "one-more", JOB, "example-corp", "roster", "only", fired + timedelta(seconds=2)
    )
    assert [run.id for run in store.latest_runs()] == ["whole"]
