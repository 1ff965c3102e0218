"""The roster flow with the state store and the platform on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import ProjectDir, employee_row


@pytest.fixture
def on_postgres(
    project_dir: ProjectDir,
    postgres_databases: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> ProjectDir:
    state, platform = postgres_databases
    monkeypatch.setenv("MICROCRED_STATE_URL", state)
    monkeypatch.setenv("MICROCRED_PLATFORM_URL", platform)
    return project_dir


def test_roster_runs_on_postgres_end_to_end(
    on_postgres: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Create, re-run with no write, one update, a held drop and its override."""
    rows = employees(100)
    on_postgres.write_roster(rows)
    first = on_postgres.run()
    assert first.status == "done" and first.stats.counts.by_kind["create"] == 100

    again = on_postgres.run()
    assert again.platform_writes == 0 and again.stats.unchanged == 100

    rows[9] = employee_row(10, title="Staff Analyst")
    on_postgres.write_roster(rows)
    assert on_postgres.run().stats.counts.by_kind["update"] == 1

    on_postgres.write_roster(rows[:85])
    held = on_postgres.run()
    assert held.status == "held" and held.platform_writes == 0
    overridden = on_postgres.run(allow_mass_deprovision=True)
    assert overridden.stats.counts.by_kind["suspend"] == 15


def test_quarantine_and_audit_read_back_on_postgres(
    on_postgres: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Quarantined rows and the audit trail come back from PostgreSQL as written."""
    on_postgres.write_roster([*employees(5), employee_row(6, email="bad@")])
    outcome = on_postgres.run()
    store = on_postgres.state_store()
    try:
        quarantined = store.quarantined("example-corp-roster")
        audit = store.audit("000003")
    finally:
        store.close()
    assert [entry["location"] for entry in quarantined] == ["hris-export.csv:7"]
    assert audit[0]["kind"] == "create" and audit[0]["run_id"] == outcome.run_id


def test_results_flow_and_stacking_on_postgres(
    on_postgres: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Results and an award imported, turned into queued statements, read once; the
    award's completion stacks the next program on the next roster run."""
    from microcred_sync.project import load_project
    from microcred_sync.results.flow import run_results
    from microcred_sync.settings import Settings

    on_postgres.write_roster(employees(8))
    on_postgres.run()
    path = on_postgres.root / "results.csv"
    path.write_text(
        "kind,learner,program,recorded_at,issued_at,success,score_raw,score_max\n"
        "result,000004,data-analytics-foundations,2026-11-30T09:00:00Z,,true,9,10\n"
        "award,000004,data-analytics-foundations,,2026-11-30T10:00:00Z,,,\n",
        encoding="utf-8",
    )
    report = on_postgres.import_results(path, "example-corp")
    assert (report.results, report.awards, report.rejected) == (1, 1, [])
    project = load_project(Settings(root=on_postgres.root))
    first = run_results(project, "example-corp-results")
    assert (first.status, first.enqueued) == ("done", 2)
    assert run_results(project, "example-corp-results").enqueued == 0
    assert on_postgres.run().stats.counts.by_kind["enroll"] == 1
