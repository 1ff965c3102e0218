"""The command line as an operator uses it: real processes, exit codes, output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.cli_runner import cli
from tests.conftest import ProjectDir

JOB = "example-corp-roster"


def test_check_accepts_the_committed_files(project_dir: ProjectDir) -> None:
    """`check` on the repository's configuration says ok and exits 0."""
    import yaml

    root = project_dir.root

    def listed(path: str, key: str) -> int:
        document = yaml.safe_load((root / path).read_text(encoding="utf-8"))
        return len(document[key])

    result = cli(project_dir, "check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        f"ok: {listed('config/partners.yaml', 'partners')} partners, "
        f"{listed('config/programs.yaml', 'programs')} programs, "
        f"{len(list((root / 'connectors').glob('*.yaml')))} connectors, "
        f"{len(list((root / 'mappings').glob('*.yaml')))} mappings, "
        f"{listed('scheduler/jobs.yaml', 'jobs')} jobs"
    ), result.stdout


def test_bad_mapping_field_names_file_and_field_and_writes_nothing(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A misspelt transform gives one line naming the file and field, exit 2, no db."""
    project_dir.write_roster(employees(3))
    mapping = project_dir.root / "mappings" / "example-corp-hris.yaml"
    mapping.write_text(
        mapping.read_text(encoding="utf-8").replace(
            "[collapse_spaces]", "[colapse_spaces]"
        ),
        encoding="utf-8",
    )
    for command in (["check"], ["run", JOB]):
        result = cli(project_dir, *command)
        assert result.returncode == 2
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1
        assert "mappings/example-corp-hris.yaml" in message
        assert "job_title" in message and "colapse_spaces" in message
    assert not (project_dir.root / "var").exists()


def test_job_naming_an_unknown_connector_is_a_configuration_error(
    project_dir: ProjectDir,
) -> None:
    """A job whose source has no connector file stops with exit 2 naming both."""
    jobs = project_dir.root / "scheduler" / "jobs.yaml"
    jobs.write_text(
        jobs.read_text(encoding="utf-8").replace(
            "source: example-corp-hris", "source: nowhere"
        ),
        encoding="utf-8",
    )
    result = cli(project_dir, "check")
    assert result.returncode == 2
    assert (
        "scheduler/jobs.yaml" in result.stderr
        and "connectors/nowhere.yaml" in result.stderr
    )


def test_settings_from_environment_override_the_file(
    project_dir: ProjectDir, employees: Callable[[int], list[str]], tmp_path: Path
) -> None:
    """MICROCRED_STATE_URL moves the state store; a bad value is a config error."""
    project_dir.write_roster(employees(3))
    elsewhere = tmp_path / "elsewhere.db"
    result = cli(
        project_dir, "run", JOB, env={"MICROCRED_STATE_URL": f"sqlite:///{elsewhere}"}
    )
    assert result.returncode == 0, result.stderr
    assert elsewhere.exists()
    bad = cli(project_dir, "check", env={"MICROCRED_BATCH_SIZE": "zero"})
    assert bad.returncode == 2 and "batch_size" in bad.stderr


def test_run_then_plan_json_then_status_quarantine_and_audit(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """The operator's loop: run, plan as JSON, status, quarantine list, audit."""
    from tests.conftest import employee_row

    rows = [*employees(8), employee_row(9, email="not-an-email")]
    project_dir.write_roster(rows)
    first = cli(project_dir, "run", JOB)
    assert first.returncode == 0, first.stderr
    assert "learners created 8" in first.stdout and "held no" in first.stdout

    rows[1] = employee_row(2, department="Finance")
    project_dir.write_roster(rows)
    planned = cli(
        project_dir, "plan", JOB, "--output", "json", "--allow-mass-deprovision"
    )
    assert planned.returncode == 0, planned.stderr
    document = json.loads(planned.stdout)
    assert document["job"] == JOB and document["held"] is False
    assert set(document["counts"]) == {
        "create",
        "update",
        "suspend",
        "reactivate",
        "enroll",
        "withdraw",
    }
    assert document["counts"]["update"] == 1
    assert [
        change["key"] for change in document["changes"] if change["kind"] == "update"
    ] == ["000002"]

    status = cli(project_dir, "status")
    assert JOB in status.stdout and "done" in status.stdout

    quarantined = cli(project_dir, "quarantine", "list", JOB)
    assert "hris-export.csv:10" in quarantined.stdout and "email" in quarantined.stdout

    audit = cli(project_dir, "audit", "--learner", "000002", "--output", "json")
    entries = json.loads(audit.stdout)
    assert entries[0]["kind"] == "create"


def test_held_run_exits_3(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A run the guard holds exits with code 3 and says why."""
    rows = employees(40)
    project_dir.write_roster(rows)
    assert cli(project_dir, "run", JOB).returncode == 0
    project_dir.write_roster(rows[:30])
    result = cli(project_dir, "run", JOB)
    assert result.returncode == 3
    assert "held yes" in result.stdout and "--allow-mass-deprovision" in result.stdout


def test_plan_and_status_on_a_fresh_project_write_nothing(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A dry run, status and audit before any run create no database file."""
    project_dir.write_roster(employees(3))
    assert cli(project_dir, "plan", JOB).returncode == 0
    assert "never" in cli(project_dir, "status").stdout
    assert cli(project_dir, "audit", "--learner", "000001").returncode == 0
    assert not (project_dir.root / "var").exists()


def test_status_says_why_a_run_was_held(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """status shows the guard's reason next to a held run."""
    rows = employees(40)
    project_dir.write_roster(rows)
    cli(project_dir, "run", JOB)
    project_dir.write_roster(rows[:30])
    cli(project_dir, "run", JOB)
    status = cli(project_dir, "status").stdout
    assert "held" in status and "10 suspensions planned" in status


def test_unusable_database_is_one_clear_line(
    project_dir: ProjectDir, employees: Callable[[int], list[str]], tmp_path: Path
) -> None:
    """A state store that cannot be opened gives one line and no traceback."""
    project_dir.write_roster(employees(3))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    bad_folder = cli(
        project_dir,
        "run",
        JOB,
        env={"MICROCRED_STATE_URL": f"sqlite:///{blocker}/state.db"},
    )
    assert bad_folder.returncode == 2
    assert "cannot create the folder" in bad_folder.stderr
    a_folder = tmp_path / "a-folder.db"
    a_folder.mkdir()
    unopenable = cli(
        project_dir, "run", JOB, env={"MICROCRED_STATE_URL": f"sqlite:///{a_folder}"}
    )
    assert unopenable.returncode == 1
    assert unopenable.stderr.startswith("database error: unable to open database file")
    for result in (bad_folder, unopenable):
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_not_a_project_folder_is_named(tmp_path: Path) -> None:
    """--root pointing at an empty folder says which folder and what is missing."""
    result = subprocess.run(
        [sys.executable, "-m", "microcred_sync", "--root", str(tmp_path), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert str(tmp_path) in result.stderr and "config/partners.yaml" in result.stderr


def test_results_job_without_a_sink_is_a_configuration_error(
    project_dir: ProjectDir,
) -> None:
    """A results job that would fill no outbox: exit 2, not a traceback."""
    jobs = project_dir.root / "scheduler" / "jobs.yaml"
    jobs.write_text(
        jobs.read_text(encoding="utf-8")
        + "  - id: example-corp-results-nowhere\n    flow: results\n"
        + "    partner: example-corp\n",
        encoding="utf-8",
    )
    for command in (("check",), ("run", "example-corp-results-nowhere")):
        result = cli(project_dir, *command)
        assert result.returncode == 2
        assert re.fullmatch(
            r"configuration error: scheduler/jobs\.yaml: jobs\.\d+: "
            r"a results job needs at least one sink\n",
            result.stderr,
        )


def test_unknown_partner_or_run_is_a_usage_error(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """audit --partner and quarantine list --run name what does not exist, exit 2."""
    project_dir.write_roster(employees(3))
    cli(project_dir, "run", JOB)
    audit = cli(project_dir, "audit", "--learner", "000001", "--partner", "nosuch")
    assert audit.returncode == 2 and "no partner 'nosuch'" in audit.stderr
    listing = cli(project_dir, "quarantine", "list", JOB, "--run", "bogus")
    assert listing.returncode == 2 and "no run 'bogus'" in listing.stderr


def test_plan_only_traces_each_decision_and_audit_says_why(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """`plan --only` traces like `run --only`; the audit table shows the reason."""
    project_dir.write_roster(employees(8))
    planned = cli(project_dir, "plan", "example-corp-roster", "--only", "000004")
    assert planned.returncode == 0
    assert "trace 000004: applied-machine-learning waits for " in planned.stdout
    project_dir.run()
    project_dir.write_roster(employees(7))
    assert project_dir.run(allow_mass_deprovision=True).status == "done"
    audited = cli(project_dir, "audit", "--learner", "000008")
    assert audited.returncode == 0
    assert "suspend: absent from a full read" in audited.stdout


def test_version_and_exit_codes_in_help(project_dir: ProjectDir) -> None:
    version = cli(project_dir, "--version")
    assert version.returncode == 0
    assert re.fullmatch(r"microcred-sync, version \S+\n", version.stdout)
    helped = cli(project_dir, "--help")
    assert "Exit codes: 0 done, 1 failed, 2 configuration error, 3 held" in (
        helped.stdout
    )


def test_a_run_that_finds_its_job_taken_exits_4_and_does_nothing(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """`run` while another run holds the job: one line naming the holder, exit 4
    (not 1: nothing failed, nothing was done), no run recorded; once the lock is
    free the same command runs."""
    from microcred_sync.state.locks import JobLock

    project_dir.write_roster(employees(3))
    store = project_dir.state_store()
    store.create_schema()
    lock = JobLock(store.engine, JOB, "someone-else")
    lock.acquire()
    try:
        taken = cli(project_dir, "run", JOB)
    finally:
        lock.release()
    try:
        assert taken.returncode == 4, taken.stdout + taken.stderr
        assert taken.stdout.startswith(
            f"{JOB}: not run: another run of {JOB} is in progress"
        ), taken.stdout
        assert "run=someone-else" in taken.stdout
        assert "read 0" not in taken.stdout
        assert store.latest_runs() == []
    finally:
        store.close()
    assert cli(project_dir, "run", JOB).returncode == 0
