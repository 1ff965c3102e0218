"""`microcred-sync schedule` as real child processes: replicas, SIGKILL, SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from tests.scheduler.conftest import (
    ROSTER,
    ROSTER_JOB,
    DaemonProcess,
    SchedulerProject,
    metric,
    overlapping,
    wait_for,
)

pytestmark = pytest.mark.slow

#: A replica's line for a slot the other one has (running it, or ran it already).
#: A replica's line for a slot it left to the other: seen held before the run, or
#: lost in the race for the lock (the lock's own words).
SKIPPED = re.compile(
    r"skipped: (another run holds its lock|run \w+ already served"
    r"|another run of \S+ is in progress|a run of \S+ already served)"
)


def _run_in_progress(project: SchedulerProject) -> str | None:
    going = [r for r in project.runs() if r.status in ("planning", "applying")]
    return going[-1].id if going else None


def test_two_replicas_never_overlap_and_one_takes_over_after_sigkill(
    scheduler_project: SchedulerProject,
    daemons: Callable[[str], DaemonProcess],
    postgres_databases: tuple[str, str],
) -> None:
    """Two daemons on one PostgreSQL run a job every 2 s for half a minute: both
    try each run, one runs it. Then the export grows to 20,000 people; the replica
    applying them is killed in the middle of its run, and the other takes the job
    at its next slot and finishes the work, nobody created twice."""
    project = scheduler_project
    project.use_databases(*postgres_databases)
    project.write_roster(4000)
    project.write_settings()
    project.write_jobs({**ROSTER, "schedule": {"interval_seconds": 2}})
    first, second = daemons("first"), daemons("second")
    first.wait_serving()
    second.wait_serving()
    time.sleep(24)

    # SIGKILL the replica whose run is applying the new people, between batches.
    grown_at = datetime.now(UTC)
    project.write_roster(20_000)

    def applying() -> str | None:
        going = [
            r
            for r in project.runs()
            if r.status in ("planning", "applying") and r.started_at > grown_at
        ]
        if not going:
            return None
        batches = project.scalar(
            f"SELECT count(*) FROM applied_batches WHERE run_id = '{going[-1].id}'"
        )
        return going[-1].id if batches >= 2 else None

    running = wait_for(applying, 30, "a run applying the new people", step=0.02)
    # The holder's own lines carry the run id as their context; the other's only
    # name it as the holder.
    mark = f"[run_id={running} "
    victim, survivor = (first, second) if mark in first.text() else (second, first)
    assert mark in victim.text()
    victim.signal(signal.SIGKILL)
    victim.wait(10)
    killed_at = datetime.now(UTC)

    def taken_over() -> bool:
        later = [r for r in project.runs() if r.started_at > killed_at]
        return any(r.status == "done" for r in later)

    wait_for(taken_over, 40, "a run by the survivor after the kill", step=0.2)
    history = project.runs()
    assert overlapping(history) == [], "\n".join(
        f"{r.id} {r.status} {r.started_at} {r.finished_at}" for r in history
    )
    assert {r.id: r.status for r in history}[running] == "interrupted"
    later = [r for r in history if r.started_at > killed_at]
    assert all(f"[run_id={r.id} " in survivor.text() for r in later)
    # Both replicas fired the job at each slot; the lock let one of them run it.
    assert len(SKIPPED.findall(first.text() + second.text())) >= 5
    done = [r for r in history if r.status == "done"]
    assert len(done) >= 10
    platform = postgres_databases[1]
    assert project.scalar("SELECT count(*) FROM learners", platform) == 20_000
    status, body = survivor.get("/metrics")
    assert status == 200
    ran_here = metric(body, "microcred_runs_total", job=ROSTER_JOB, outcome="done")
    assert ran_here == len(re.findall(r"\] run done", survivor.text()))
    read_here = re.findall(r"\] run done: read=(\d+)", survivor.text())
    assert metric(body, "microcred_records_read_total", job=ROSTER_JOB) == sum(
        int(count) for count in read_here
    )
    last = metric(body, "microcred_last_success_timestamp_seconds", job=ROSTER_JOB)
    assert last is not None and abs(time.time() - last) < 10


def test_sigterm_during_a_run_ends_it_after_its_batch(
    scheduler_project: SchedulerProject, daemons: Callable[[str], DaemonProcess]
) -> None:
    """SIGTERM while the first run applies 20,000 learners in batches of 500: the
    daemon exits 0, the run is recorded as stopped with every stored batch applied,
    the lock is free, and `run` then finishes the work without a duplicate."""
    project = scheduler_project
    project.write_roster(20_000)
    project.write_settings()
    project.write_jobs({**ROSTER, "schedule": {"interval_seconds": 3600}})
    daemon = daemons("only")

    def applied_batches() -> int:
        try:
            return int(project.scalar("SELECT count(*) FROM applied_batches"))
        except OperationalError:
            return 0  # the daemon has not created the tables yet

    wait_for(lambda: applied_batches() >= 2, 60, "two applied batches")
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0, daemon.text()

    (stopped,) = project.runs()
    assert stopped.status == "stopped" and stopped.finished_at is not None
    assert project.scalar("SELECT count(*) FROM locks") == 0
    # Nothing half-done: every stored change is covered by an applied batch.
    uncovered = project.scalar(
        "SELECT count(*) FROM changes c WHERE c.state = 'planned' AND NOT EXISTS "
        "(SELECT 1 FROM applied_batches b WHERE b.run_id = c.run_id "
        "AND c.seq BETWEEN b.first_seq AND b.last_seq)"
    )
    assert uncovered == 0
    platform = f"sqlite:///{project.root / 'var' / 'platform.db'}"
    created = project.scalar("SELECT count(*) FROM learners", platform)
    assert 0 < created < 20_000

    finish = subprocess.run(
        project.command("run", ROSTER_JOB),
        env=project.environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finish.returncode == 0, finish.stderr
    assert f"learners created {20_000 - created}," in finish.stdout
    assert project.scalar("SELECT count(*) FROM learners", platform) == 20_000
    assert [r.status for r in project.runs()] == ["stopped", "done"]


def test_two_schedulers_on_one_job_store_both_fire_and_the_lock_runs_one(
    scheduler_project: SchedulerProject, postgres_databases: tuple[str, str]
) -> None:
    """AS-01: two APScheduler processes sharing a SQLAlchemy job store both fire
    the same job in the same slots; the job's lock lets one run per slot and the
    run history shows no overlap."""
    project = scheduler_project
    project.use_databases(*postgres_databases)
    project.write_roster(3000)
    project.write_settings()
    project.write_jobs(ROSTER)
    script = str(Path(__file__).parent / "jobstore_replica.py")
    command = [sys.executable, script, postgres_databases[0], str(project.root)]
    replicas = []
    for _ in range(2):
        replicas.append(
            subprocess.Popen(
                [*command, ROSTER_JOB, "10"],
                env=project.environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        time.sleep(2)  # the first creates the job store's table
    fired: list[list[dict[str, str]]] = []
    for replica in replicas:
        out, err = replica.communicate(timeout=60)
        assert replica.returncode == 0, err
        fired.append([json.loads(line) for line in out.splitlines()])

    by_slot: dict[str, list[str]] = {}
    for events in fired:
        for event in events:
            by_slot.setdefault(event["slot"], []).append(event["status"])
    both = {slot: sorted(s) for slot, s in by_slot.items() if len(s) == 2}
    assert both, f"no slot fired in both processes: {by_slot}"
    assert any(statuses == ["done", "locked"] for statuses in both.values())
    history = project.runs()
    assert overlapping(history) == []
    ran = sum(s.count("done") for s in by_slot.values())
    assert len(history) == ran and all(r.status == "done" for r in history)
