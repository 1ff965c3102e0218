"""`microcred-sync status`: each job's last run, outcome and next run, and the
outbox backlog of each sink, as a table and as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from microcred_sync.scheduler.jobs import Schedule
from microcred_sync.scheduler.triggers import crontab_weekdays, next_run
from tests.conftest import ProjectDir

from .test_alerts import _queue_statements, cli

JOB = "example-corp-roster"
SINK = "example-corp-statements"


def test_status_shows_next_run_and_outbox_backlog(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """After a roster and a results run, status lists the runs, when each job runs
    next by its schedule, and the sink's pending statements with the oldest's age."""
    _queue_statements(project_dir)
    before = datetime.now(UTC)
    result = cli(project_dir, "status", "--output", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    jobs = {entry["job"]: entry for entry in document["jobs"]}
    roster = jobs[JOB]
    assert roster["last_run"]["status"] == "done"
    # "30 2 * * *" in Europe/Paris: the next 02:30 there, within a day.
    upcoming = datetime.fromisoformat(roster["next_run"])
    assert before < upcoming <= before + timedelta(days=1)
    paris = upcoming.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert (paris.hour, paris.minute) == (2, 30)
    # Every 15 minutes, at the steps every replica's trigger fires at.
    results = jobs["example-corp-results"]
    assert results["last_run"]["status"] == "done"
    step = datetime.fromisoformat(results["next_run"])
    assert before < step <= before + timedelta(minutes=15)
    assert step.minute % 15 == 0 and step.second == 0
    # A job that never ran is due now.
    assert jobs["example-corp-deliver"]["last_run"] is None
    never = datetime.fromisoformat(jobs["example-corp-deliver"]["next_run"])
    assert abs((never - before).total_seconds()) < 60
    backlog = {entry["sink"]: entry for entry in document["outbox"]}
    assert backlog[SINK]["pending"] == 2
    assert 0 <= backlog[SINK]["oldest_pending_age_seconds"] < 120

    table = cli(project_dir, "status")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    header = lines[0].split("\t")
    assert "next run" in header
    row = next(line.split("\t") for line in lines if line.startswith(JOB + "\t"))
    assert row[header.index("next run")].endswith(("CET", "CEST"))
    sink_header = next(i for i, line in enumerate(lines) if line.startswith("sink\t"))
    sink_row = next(
        line.split("\t") for line in lines[sink_header:] if line.startswith(SINK)
    )
    assert sink_row[1] == "2" and sink_row[3] == "0 min"


def test_status_after_delivery_shows_an_empty_backlog(project_dir: ProjectDir) -> None:
    """Once the deliver job sent the statements, the sink has 0 pending."""
    _queue_statements(project_dir)
    assert cli(project_dir, "run", "example-corp-deliver").returncode == 0
    document = json.loads(cli(project_dir, "status", "--output", "json").stdout)
    [sink] = [entry for entry in document["outbox"] if entry["sink"] == SINK]
    assert sink["pending"] == 0 and sink["oldest_pending_at"] is None


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("*/2", "sun,tue,thu,sat"),
        ("0-2", "sun,mon,tue"),
        ("mon-fri", "mon-fri"),
    ],
)
def test_crontab_weekdays_count_from_sunday(field: str, days: str) -> None:
    """A crontab weekday means what crontab says, not APScheduler 3's Monday = 0."""
    assert crontab_weekdays(field) == days


def test_a_sunday_cron_job_next_runs_on_sunday() -> None:
    """ "0 6 * * 0" on a Saturday runs next on Sunday at 06:00 in its zone."""
    saturday = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    schedule = Schedule(cron="0 6 * * 0", timezone="America/New_York")
    upcoming = next_run(schedule, saturday)
    assert upcoming is not None
    assert upcoming.isoformat() == "2026-12-06T06:00:00-05:00"


def test_an_interval_job_is_due_once_its_interval_has_passed() -> None:
    """Run 20 minutes ago on a 15-minute interval: due now; run 5 minutes ago: at
    the next quarter hour."""
    now = datetime(2026, 12, 5, 12, 7, tzinfo=UTC)
    schedule = Schedule(interval_minutes=15)
    assert next_run(schedule, now, now - timedelta(minutes=20)) == now
    assert next_run(schedule, now, None) == now
    upcoming = next_run(schedule, now, now - timedelta(minutes=5))
    assert upcoming == datetime(2026, 12, 5, 12, 15, tzinfo=UTC)


def test_status_tells_a_killed_run_from_a_running_one(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A run left `planning` by a killed process: while another process holds the
    job's lock it is running; once nothing holds it, status says it is abandoned
    (the next run records it interrupted) instead of showing it as going on."""
    from microcred_sync.state.locks import JobLock

    project_dir.write_roster(employees(2))
    project_dir.run()
    store = project_dir.state_store()
    try:
        started = datetime.now(UTC)
        store.start_run("killed-run", JOB, "example-corp", "roster", "full", started)
        lock = JobLock(store.engine, JOB, "killed-run")
        lock.acquire()
        try:
            held = json.loads(cli(project_dir, "status", "--output", "json").stdout)
        finally:
            lock.release()
        gone = cli(project_dir, "status", "--output", "json")
        table = cli(project_dir, "status")
    finally:
        store.close()

    def last(document: dict[str, Any]) -> dict[str, Any]:
        return next(e for e in document["jobs"] if e["job"] == JOB)["last_run"]

    assert last(held)["run_id"] == "killed-run"
    assert (last(held)["status"], last(held)["abandoned"]) == ("planning", False)
    assert (last(json.loads(gone.stdout))["abandoned"]) is True
    row = next(line for line in table.stdout.splitlines() if line.startswith(JOB))
    assert "planning (abandoned)" in row
    assert "the next run records it interrupted" in row
    # And so it does.
    project_dir.run()
    check = project_dir.state_store()
    try:
        assert check.run("killed-run").status == "interrupted"
    finally:
        check.close()
