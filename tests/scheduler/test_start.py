"""How `microcred-sync schedule` starts: on a new project it makes both databases
itself before any job runs; what it cannot start with ends in one line."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
from sqlalchemy.exc import OperationalError

from tests.scheduler.conftest import (
    ROSTER,
    DaemonProcess,
    SchedulerProject,
    wait_for,
)

pytestmark = pytest.mark.slow

#: Roster jobs of one source, all due at start (they never ran).
JOBS = [f"roster-{number}" for number in range(1, 5)]
RESULTS = {
    "id": "example-corp-results",
    "flow": "results",
    "partner": "example-corp",
    "mapping": "example-corp-hris",
    "sinks": ["example-corp-statements"],
    "schedule": {"interval_minutes": 15},
}


def _schedule_until_it_exits(
    project: SchedulerProject, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``schedule`` run to its end: for a daemon expected to stop at start."""
    return subprocess.run(
        project.command("schedule"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _db_current(project: SchedulerProject) -> str:
    finished = subprocess.run(
        project.command("db", "current"),
        env=project.environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


def test_first_schedule_on_new_sqlite_databases_runs_every_job(
    scheduler_project: SchedulerProject, daemons: Callable[[str], DaemonProcess]
) -> None:
    """No `db upgrade` first: five jobs due at once on two workers all run to
    done, and both databases end at head (no migration raced another)."""
    project = scheduler_project
    project.write_roster(50)
    project.write_settings()
    rosters = [
        {**ROSTER, "id": job, "schedule": {"interval_minutes": 60}} for job in JOBS
    ]
    project.write_jobs(*rosters, RESULTS)
    daemon = daemons("first")

    def all_done() -> bool:
        assert daemon.process is not None
        assert daemon.process.poll() is None, daemon.text()
        try:
            finished = [project.runs(job) for job in JOBS]
        except OperationalError:
            return False  # the daemon has not made the state store yet
        return all(runs and runs[-1].status == "done" for runs in finished)

    wait_for(all_done, 60, "every roster job's first run", step=0.2)
    daemon.wait_serving()
    daemon.stop()
    assert daemon.wait(5) == 0, daemon.text()
    log = daemon.text()
    assert "already exists" not in log and "Traceback" not in log, log
    assert "job example-corp-results could not run" not in log, log
    current = _db_current(project)
    assert "state: at " in current and "platform: at " in current, current
    assert current.count("(head)") == 2, current


def test_a_second_daemon_on_the_same_port_exits_2_naming_the_setting(
    scheduler_project: SchedulerProject, daemons: Callable[[str], DaemonProcess]
) -> None:
    """A second daemon given the first one's port (through the nested variable
    MICROCRED_DAEMON__HTTP_PORT) says which setting to change, exit 2, no trace;
    the first goes on serving."""
    project = scheduler_project
    project.write_roster(10)
    project.write_settings()
    project.write_jobs({**ROSTER, "schedule": {"interval_minutes": 60}})
    first = daemons("first")
    first.wait_serving()
    env = project.environment()
    env["MICROCRED_DAEMON__HTTP_PORT"] = str(first.port)
    second = _schedule_until_it_exits(project, env)
    assert second.returncode == 2, second.stderr
    assert "Traceback" not in second.stderr
    error = second.stderr.strip().splitlines()[-1]
    assert error.startswith("configuration error: daemon.http_port: "), error
    assert f"127.0.0.1:{first.port}" in error
    assert first.get("/healthz")[0] == 200


def test_a_host_this_machine_does_not_have_exits_2_naming_http_host(
    scheduler_project: SchedulerProject,
) -> None:
    """Not a busy port: the message names daemon.http_host and what to set it to."""
    project = scheduler_project
    project.write_roster(10)
    project.write_settings()
    project.write_jobs({**ROSTER, "schedule": {"interval_minutes": 60}})
    env = project.environment()
    env["MICROCRED_DAEMON__HTTP_HOST"] = "192.0.2.1"  # TEST-NET-1: nobody's address
    result = _schedule_until_it_exits(project, env)
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("configuration error: daemon.http_host: "), error
    assert "an address of this machine" in error
