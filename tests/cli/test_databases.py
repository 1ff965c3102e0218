"""What the command line says about the databases it cannot use as they are: a
new PostgreSQL database without the schema, a URL that does not connect."""

from __future__ import annotations

import socket
from collections.abc import Callable

from sqlalchemy import create_engine, inspect

from tests.cli_runner import cli
from tests.conftest import ProjectDir

JOB = "example-corp-roster"


def _refused_url() -> str:
    """A PostgreSQL URL, password included, on a port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql+psycopg://microcred:s3cr3t-pw@127.0.0.1:{port}/microcred"


def test_reading_commands_on_a_new_postgres_database_say_it_has_no_schema(
    project_dir: ProjectDir,
    employees: Callable[[int], list[str]],
    empty_postgres_database: str,
) -> None:
    """status, audit and a dry run before `db upgrade` on PostgreSQL answer as on
    SQLite before any run (nothing run yet, exit 0), say to run `db upgrade`,
    and create nothing."""
    project_dir.write_roster(employees(3))
    env = {
        "MICROCRED_STATE_URL": empty_postgres_database,
        "MICROCRED_PLATFORM_URL": empty_postgres_database,
    }
    status = cli(project_dir, "status", env=env)
    assert status.returncode == 0, status.stderr
    assert "never" in status.stdout
    assert "has no schema yet" in status.stderr
    assert "microcred-sync db upgrade" in status.stderr
    audit = cli(project_dir, "audit", "--learner", "000001", env=env)
    assert audit.returncode == 0, audit.stderr
    assert "no changes recorded for 000001" in audit.stdout
    plan = cli(project_dir, "plan", JOB, env=env)
    assert plan.returncode == 0, plan.stderr
    for result in (status, audit, plan):
        assert "does not exist" not in result.stderr
        assert "Traceback" not in result.stderr
    engine = create_engine(empty_postgres_database)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_a_database_that_does_not_connect_is_named_by_its_setting(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A state_url, then a platform_url, on which nothing answers: one line
    naming that setting alone, exit 1, the password never shown."""
    project_dir.write_roster(employees(3))
    refused = _refused_url()
    state = cli(project_dir, "run", JOB, env={"MICROCRED_STATE_URL": refused})
    platform = cli(project_dir, "run", JOB, env={"MICROCRED_PLATFORM_URL": refused})
    for result, setting, other in (
        (state, "state_url", "platform_url"),
        (platform, "platform_url", "state_url"),
    ):
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("database error: ")
        assert f"check the {setting} setting" in lines[0]
        assert other not in lines[0]
        assert "s3cr3t-pw" not in result.stderr + result.stdout
