"""Structured logs of real runs: one event per line, run id, job and partner on
every line of a run (the connectors' lines too), plain text by default."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.cli_runner import cli
from tests.conftest import ProjectDir

JOB = "example-corp-roster"


def test_json_logs_put_the_run_on_every_line_of_a_run(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """With log_format json, stderr is one JSON object per line; every line of the
    run, the CSV connector's and the planner's included, names run, job, partner."""
    rows = employees(20)
    rows[3] = rows[3].replace("person4@example-corp.com", "not-an-email")
    project_dir.write_roster(rows)
    result = cli(
        project_dir,
        "run",
        JOB,
        env={"MICROCRED_LOG_FORMAT": "json", "MICROCRED_LOG_LEVEL": "DEBUG"},
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(events) >= 3
    run_ids = {event.get("run_id") for event in events}
    assert len(run_ids) == 1 and None not in run_ids
    assert {event["job"] for event in events} == {JOB}
    assert {event["partner"] for event in events} == {"example-corp"}
    loggers = {event["logger"] for event in events}
    # Lines from modules that log with a plain module logger carry the run too.
    assert any(not name.startswith("microcred_sync.sync.roster") for name in loggers)
    assert any("quarantined" in event["message"] for event in events)
    assert all(event["level"] in ("DEBUG", "INFO", "WARNING") for event in events)


def test_plain_text_is_the_default(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Without settings, log lines are plain text with the run in brackets."""
    project_dir.write_roster(employees(3))
    result = cli(project_dir, "run", JOB)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line]
    assert lines and not lines[0].startswith("{")
    assert all(f"job={JOB} partner=example-corp]" in line for line in lines)
    assert all("[run_id=" in line for line in lines)
