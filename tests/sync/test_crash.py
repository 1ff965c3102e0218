"""A run killed between batches is finished by the next run, with no duplicates."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.conftest import ProjectDir, employee_row

JOB = "example-corp-roster"
ROWS = 6000


def _applied(state_db: str) -> int:
    try:
        connection = sqlite3.connect(state_db, timeout=1)
        try:
            row = connection.execute(
                "select count(*) from changes c where c.state = 'applied'"
                " or exists (select 1 from applied_batches b where b.run_id ="
                " c.run_id and c.seq between b.first_seq and b.last_seq"
                " and c.state = 'planned')"
            ).fetchone()
        finally:
            connection.close()
    except sqlite3.OperationalError:
        return 0
    return int(row[0])


def _run(
    project_dir: ProjectDir, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microcred_sync", "run", JOB],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_killed_run_is_completed_by_the_next_without_duplicates(
    project_dir: ProjectDir,
) -> None:
    """SIGKILL mid-apply, then a second run: each learner and enrollment just once."""
    project_dir.write_roster([employee_row(number) for number in range(1, ROWS + 1)])
    env = {
        **os.environ,
        "MICROCRED_ROOT": str(project_dir.root),
        "MICROCRED_BATCH_SIZE": "20",
    }
    state_db = str(project_dir.root / "var" / "state.db")

    victim = subprocess.Popen(
        [sys.executable, "-m", "microcred_sync", "run", JOB],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while (
        _applied(state_db) < 200
        and victim.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    assert victim.poll() is None, "the run ended before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    partial = int(project_dir.scalar("platform", "select count(*) from learners"))  # type: ignore[arg-type]
    assert 0 < partial < ROWS

    finished = _run(project_dir, env)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert project_dir.scalar("platform", "select count(*) from learners") == ROWS
    assert (
        project_dir.scalar(
            "platform", "select count(distinct external_key) from learners"
        )
        == ROWS
    )
    expected = sum(1 for n in range(1, ROWS + 1) if n % 4 == 0 and 1 + n % 7 >= 3)
    query = (
        "select count(*) from enrollments"
        " where program_id = 'data-analytics-foundations'"
    )
    assert project_dir.scalar("platform", query) == expected
    interrupted = project_dir.scalar(
        "state", "select count(*) from runs where status = 'interrupted'"
    )
    assert interrupted == 1

    again = _run(project_dir, env)
    assert again.returncode == 0
    assert "platform writes 0" in again.stdout
