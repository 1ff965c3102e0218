"""Programs stack: a program that builds on others waits until they are completed,
and rules can test what a learner completed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.conftest import ProjectDir, employee_row

#: Each test runs on SQLite and on PostgreSQL (``tests/databases.py``).
pytestmark = pytest.mark.both_databases

PARTNER = "example-corp"
DAF = "data-analytics-foundations"
AML = "applied-machine-learning"
# Employee 4 is in Analytics at level 5: the rules give both programs, and
# applied-machine-learning builds on data-analytics-foundations.
KEY = "000004"


def _enrolled(project_dir: ProjectDir, key: str) -> list[tuple[str, str]]:
    connection = project_dir.platform()
    try:
        return connection.execute(
            "select e.program_id, e.status from enrollments e join learners l"
            " on l.id = e.learner_id where l.external_key = ? order by 1",
            (key,),
        ).fetchall()
    finally:
        connection.close()


def _completes(project_dir: ProjectDir, key: str, program: str) -> None:
    store = project_dir.state_store()
    try:
        assert store.record_completions(PARTNER, [(key, program, datetime.now(UTC))])
    finally:
        store.close()


def test_stacked_program_waits_for_its_prerequisite_then_follows(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    project_dir.write_roster(employees(8))
    lines: list[str] = []
    first = project_dir.run(trace=lines.append)
    assert first.status == "done"
    assert _enrolled(project_dir, KEY) == [(DAF, "active")]
    assert f"{KEY}: {AML} waits for {DAF}" in lines

    # Unchanged file, nothing completed: nothing to do.
    assert project_dir.run().stats.counts.total() == 0

    _completes(project_dir, KEY, DAF)
    second = project_dir.run()
    assert second.stats.counts.by_kind["enroll"] == 1
    assert second.stats.unchanged == 7  # only the learner who completed is re-planned
    assert (AML, "active") in _enrolled(project_dir, KEY)
    store = project_dir.state_store()
    try:
        audit = [e for e in store.audit(KEY) if e["kind"] == "enroll"]
    finally:
        store.close()
    assert audit[-1]["program"] == AML
    assert audit[-1]["reason"] == f"builds on {DAF}, completed"


def test_a_completed_program_is_never_withdrawn_or_enrolled_again(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    rows = employees(8)
    project_dir.write_roster(rows)
    project_dir.run()
    _completes(project_dir, KEY, DAF)
    # 000004 moves to Finance: no rule gives either program any more.
    rows[3] = employee_row(4, department="Finance")
    project_dir.write_roster(rows)
    outcome = project_dir.run(allow_mass_deprovision=True)
    assert outcome.status == "done"
    assert outcome.stats.counts.by_kind["update"] == 1
    assert outcome.stats.counts.by_kind["withdraw"] == 0
    assert _enrolled(project_dir, KEY) == [(DAF, "active")]
    # Back in Analytics: completed already, so not enrolled a second time; the
    # stacked program follows.
    rows[3] = employee_row(4)
    project_dir.write_roster(rows)
    back = project_dir.run()
    assert back.stats.counts.by_kind["enroll"] == 1
    assert (AML, "active") in _enrolled(project_dir, KEY)


def test_rules_see_what_the_learner_completed(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    mapping = project_dir.root / "mappings" / "example-corp-hris.yaml"
    text = mapping.read_text(encoding="utf-8")
    rule = (
        f"  - program: people-leadership\n    when: '\"{DAF}\" in learner.completed'\n"
    )
    text = text.replace("enrollments:\n", "enrollments:\n" + rule, 1)
    mapping.write_text(text, encoding="utf-8")
    project_dir.write_roster(employees(8))
    project_dir.run()
    assert ("people-leadership", "active") not in _enrolled(project_dir, KEY)
    _completes(project_dir, KEY, DAF)
    project_dir.run()
    assert ("people-leadership", "active") in _enrolled(project_dir, KEY)
