"""`results import`: results and awards a content player exported, into the platform."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from microcred_sync.changes import learner_id
from microcred_sync.cli import main
from microcred_sync.platform.sql import SqlPlatform
from microcred_sync.results.importer import import_rows, read_rows
from tests.conftest import ProjectDir

#: Each test runs on SQLite and on PostgreSQL (``tests/databases.py``).
pytestmark = pytest.mark.both_databases

PARTNER = "example-corp"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# Employee 4 is in Analytics at level 5: enrolled in data-analytics-foundations.
ENROLLED = "000004"
DAF = "data-analytics-foundations"


def _provisioned(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    project_dir.write_roster(employees(10))
    assert project_dir.run().status == "done"


def _import(project_dir: ProjectDir, path: Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        [
            "--root",
            str(project_dir.root),
            "results",
            "import",
            str(path),
            "--partner",
            PARTNER,
        ],
    )
    return result.exit_code, result.stdout, result.stderr


def test_csv_results_and_scorm_columns_are_stored_once(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    _provisioned(project_dir, employees)
    path = project_dir.root / "results.csv"
    path.write_text(
        "learner,program,recorded_at,completion,success,score_raw,score_max,"
        "cmi.core.lesson_status\n"
        f"{ENROLLED},{DAF},2026-11-30T09:15:00+01:00,true,true,88,100,passed\n",
        encoding="utf-8",
    )
    assert _import(project_dir, path)[0] == 0
    code, stdout, _ = _import(project_dir, path)
    assert code == 0
    assert "imported 0 results" in stdout and "1 already there" in stdout
    connection = project_dir.platform()
    try:
        row = connection.execute(
            "select learner_id, program_id, recorded_at, completion, success,"
            " score_raw,"
            " score_max, scorm, activity_iri from results"
        ).fetchall()
    finally:
        connection.close()
    assert len(row) == 1
    learner, program, recorded, completion, success, raw, top, scorm, activity = row[0]
    assert learner == learner_id(PARTNER, ENROLLED) and program == DAF
    # Stored in UTC: SQLite gives the text back, PostgreSQL a time with its zone.
    if isinstance(recorded, str):
        assert recorded.startswith("2026-11-30 08:15:00")
    else:
        assert recorded == datetime(2026, 11, 30, 8, 15, tzinfo=UTC)
    assert (completion, success, raw, top) == (1, 1, 88.0, 100.0)
    assert json.loads(scorm) == {"cmi.core.lesson_status": "passed"}
    assert activity == f"https://learn.example.org/programs/{DAF}"


def test_bad_rows_are_rejected_with_line_and_reason_and_the_rest_imported(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    _provisioned(project_dir, employees)
    path = project_dir.root / "results.jsonl"
    good = {"learner": ENROLLED, "program": DAF, "recorded_at": "2026-11-30T08:00:00Z"}
    lines = [
        good,
        {**good, "recorded_at": "2026-11-30T08:00:00"},
        {**good, "learner": "999999"},
        {**good, "learner": "000002"},  # in Sales: not enrolled in the program
        {**good, "score_raw": 120, "score_max": 100},
        {**good, "program": "no-such-program"},
        {**good, "recorded_at": "2030-01-01T00:00:00Z"},
        {**good, "scorm": {"core.lesson_status": "passed"}},
        {**good, "duration": "90 minutes"},
        {**good, "activity": "https://learn.example.org/" + "a" * 500},
        {**good, "duration": "PT" + "1" * 50 + "S"},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    path.write_text(text, encoding="utf-8")
    code, stdout, stderr = _import(project_dir, path)
    assert code == 1
    assert "imported 1 results" in stdout and "11 rejected" in stdout
    assert stderr.splitlines() == [
        "rejected results.jsonl:2: recorded_at: needs a UTC offset (Z or +01:00)",
        "rejected results.jsonl:3: learner: not a learner of the partner",
        "rejected results.jsonl:4: program: the learner is not enrolled in "
        "data-analytics-foundations",
        "rejected results.jsonl:5: score_raw: above score_max",
        "rejected results.jsonl:6: program: 'no-such-program' is not offered to "
        "example-corp",
        "rejected results.jsonl:7: recorded_at: in the future",
        "rejected results.jsonl:8: scorm: 'core.lesson_status' is not a cmi.* name",
        "rejected results.jsonl:9: duration: not an ISO 8601 duration (PT1H30M)",
        "rejected results.jsonl:10: activity: longer than 500 characters",
        "rejected results.jsonl:11: duration: longer than 40 characters",
        "rejected results.jsonl:12: not JSON (invalid literal, expected 'null')",
    ]
    assert project_dir.scalar("platform", "select count(*) from results") == 1


def test_an_award_completes_the_enrollment_and_is_kept_once(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    _provisioned(project_dir, employees)
    path = project_dir.root / "awards.csv"
    path.write_text(
        f"kind,learner,program,issued_at\naward,{ENROLLED},{DAF},2026-11-30T10:00:00Z\n",
        encoding="utf-8",
    )
    assert _import(project_dir, path)[0] == 0
    assert _import(project_dir, path)[0] == 0
    assert project_dir.scalar("platform", "select count(*) from awards") == 1
    status = project_dir.scalar(
        "platform",
        "select status from enrollments where learner_id = ? and program_id = ?",
        learner_id(PARTNER, ENROLLED),
        DAF,
    )
    assert status == "completed"


def test_pages_of_results_follow_when_they_were_stored(tmp_path: Path) -> None:
    """The results flow reads in pages by (stored at, id) and misses none."""
    from microcred_sync.partners import Partner, Program

    platform = SqlPlatform(f"sqlite:///{tmp_path / 'platform.db'}")
    platform.create_schema()
    program = Program(id="p", title="P", activity_iri="https://x.example/p")
    platform.ensure_catalog(Partner(id="acme", name="Acme"), [program])
    ident = learner_id("acme", "1")
    connection = sqlite3.connect(tmp_path / "platform.db")
    connection.execute(
        "insert into learners (id, partner_id, external_key, status, created_at,"
        " updated_at) values (?, 'acme', '1', 'active', '2026-01-01', '2026-01-01')",
        (ident,),
    )
    connection.execute(
        "insert into enrollments values (?, 'acme', ?, 'p', 'active',"
        " '2026-01-01', '2026-01-01')",
        ("e1", ident),
    )
    connection.commit()
    csv_path = tmp_path / "r.csv"
    csv_path.write_text(
        "learner,program,recorded_at\n"
        + "".join(f"1,p,2026-11-01T10:{minute:02d}:00Z\n" for minute in range(25)),
        encoding="utf-8",
    )
    report = import_rows(read_rows(csv_path), "acme", {"p": program}, platform, NOW)
    assert report.results == 25
    seen: list[str] = []
    after = (datetime(1970, 1, 1, tzinfo=UTC), "")
    while page := platform.results_after("acme", after, 10):
        seen += [result.id for result in page]
        last = page[-1]
        assert last.imported_at is not None
        after = (last.imported_at, last.id)
    assert len(seen) == len(set(seen)) == 25
    platform.close()


def test_a_semicolon_export_with_a_bom_is_read(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    _provisioned(project_dir, employees)
    path = project_dir.root / "results.csv"
    text = "learner;program;recorded_at;success\n"
    text += f"{ENROLLED};{DAF};2026-11-30T08:00:00Z;true\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    code, stdout, stderr = _import(project_dir, path)
    assert (code, stderr) == (0, "")
    assert "imported 1 results" in stdout
