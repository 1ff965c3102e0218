"""AS-02: a daemon after downtime runs an overdue job once, not a burst; a run that
overruns its interval makes the daemon skip slots, never stack runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from microcred_sync.project import load_project
from microcred_sync.scheduler.daemon import Daemon
from microcred_sync.settings import DaemonSettings, Settings
from microcred_sync.state.store import StateStore
from tests.scheduler.conftest import (
    ROSTER,
    ROSTER_JOB,
    RunRow,
    SchedulerProject,
    overlapping,
    wait_for,
)


@pytest.fixture
def start_daemon(scheduler_project: SchedulerProject) -> Iterator[object]:
    started: list[Daemon] = []

    def start() -> Daemon:
        settings = Settings(
            root=scheduler_project.root,
            batch_size=500,
            daemon=DaemonSettings(http_port=0, workers=2),
        )
        daemon = Daemon(load_project(settings))
        daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.shutdown(30)


def test_an_overdue_job_runs_once_at_start_not_once_per_missed_slot(
    scheduler_project: SchedulerProject, start_daemon: object
) -> None:
    """Its last run was ten intervals ago: one catch-up run, then the schedule."""
    project = scheduler_project
    project.write_roster(50)
    project.write_jobs({**ROSTER, "schedule": {"interval_seconds": 60}})
    store = StateStore(project.state_url)
    store.create_schema()
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    store.start_run(
        "before-the-downtime", ROSTER_JOB, "example-corp", "roster", "full", long_ago
    )
    store.update_run("before-the-downtime", status="done", finished_at=long_ago)
    store.close()
    start_daemon()  # type: ignore[operator]
    wait_for(
        lambda: len(project.runs()) == 2 and project.runs()[-1].status == "done",
        20,
        "the catch-up run",
    )
    time.sleep(3)
    assert [run.status for run in project.runs()] == ["done", "done"]


def test_a_run_overrunning_its_interval_skips_slots_and_never_stacks(
    scheduler_project: SchedulerProject, start_daemon: object
) -> None:
    """A first run of 20,000 learners on a 1 s interval: the slots during it are
    skipped with a warning, and after it one run per slot follows, no burst."""
    project = scheduler_project
    project.write_roster(20_000)
    project.write_jobs({**ROSTER, "schedule": {"interval_seconds": 1}})
    warnings = _Recorded()
    daemon_logger = logging.getLogger("microcred_sync.scheduler.daemon")
    daemon_logger.addHandler(warnings)
    try:
        start_daemon()  # type: ignore[operator]
        first = _first_finished(project)
        time.sleep(2.5)
    finally:
        daemon_logger.removeHandler(warnings)
    assert first.finished_at is not None
    assert (first.finished_at - first.started_at).total_seconds() > 2
    history = project.runs()
    assert overlapping(history) == []
    skipped = [m for m in warnings.messages if "is still running here" in m]
    assert len(skipped) >= 1
    # After the long run: about one run per second, not the missed slots at once.
    after = [r for r in history[1:] if r.started_at >= first.finished_at]
    assert 1 <= len(after) <= 4


class _Recorded(logging.Handler):
    """Keeps the messages of the daemon's log lines."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _first_finished(project: SchedulerProject) -> RunRow:
    finished = wait_for(
        lambda: [r for r in project.runs() if r.finished_at is not None],
        90,
        "the first run to end",
        step=0.2,
    )
    return finished[0]  # type: ignore[no-any-return]
