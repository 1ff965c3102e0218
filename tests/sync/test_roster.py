"""The roster flow end to end on the `sql` platform and the SQLite state store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import ProjectDir, employee_row

#: Each test runs on SQLite and on PostgreSQL (``tests/databases.py``).
pytestmark = pytest.mark.both_databases

JOB = "example-corp-roster"


def learner_count(project_dir: ProjectDir, status: str | None = None) -> int:
    if status is None:
        return int(project_dir.scalar("platform", "select count(*) from learners"))  # type: ignore[arg-type]
    query = "select count(*) from learners where status = ?"
    return int(project_dir.scalar("platform", query, status))  # type: ignore[arg-type]


def test_first_run_creates_learners_and_enrollments(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A first full read creates every learner and the enrollments the rules give."""
    project_dir.write_roster(employees(40))
    outcome = project_dir.run()
    assert outcome.status == "done"
    assert outcome.stats.counts.by_kind["create"] == 40
    assert learner_count(project_dir) == 40
    # Analytics at level >= 3: numbers n with n % 4 == 0 and 1 + n % 7 >= 3.
    expected = sum(1 for n in range(1, 41) if n % 4 == 0 and 1 + n % 7 >= 3)
    query = (
        "select count(*) from enrollments"
        " where program_id = 'data-analytics-foundations'"
    )
    assert project_dir.scalar("platform", query) == expected


def test_second_run_on_same_file_makes_no_platform_write(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Re-running on an unchanged export changes nothing and writes nothing."""
    project_dir.write_roster(employees(30))
    project_dir.run()
    outcome = project_dir.run()
    assert outcome.stats.counts.total() == 0
    assert outcome.platform_writes == 0
    assert outcome.stats.unchanged == 30


def test_one_edited_row_gives_exactly_that_update(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Changing one employee's job title updates only that learner's field."""
    rows = employees(30)
    project_dir.write_roster(rows)
    project_dir.run()
    rows[4] = employee_row(5, title="Principal Analyst")
    project_dir.write_roster(rows)
    outcome = project_dir.run()
    assert outcome.stats.counts.by_kind == {
        "create": 0,
        "update": 1,
        "suspend": 0,
        "reactivate": 0,
        "enroll": 0,
        "withdraw": 0,
    }
    update = next(c for c in outcome_changes(project_dir) if c[0] == "update")
    assert update[1] == "000005"
    assert '"job_title":"Principal Analyst"' in update[2]


def outcome_changes(project_dir: ProjectDir) -> list[tuple[str, str, str]]:
    connection = project_dir.state()
    try:
        rows = connection.execute(
            "select kind, source_key, after from changes c join runs r"
            " on r.id = c.run_id where c.state = 'applied'"
            " or exists (select 1 from applied_batches b where b.run_id = c.run_id"
            " and c.seq between b.first_seq and b.last_seq and c.state = 'planned')"
            " order by r.started_at, c.seq"
        ).fetchall()
    finally:
        connection.close()
    return [(kind, key, after or "") for kind, key, after in rows]


def test_email_change_keeps_the_same_learner(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A changed email updates the learner keyed by employee number; no new learner."""
    rows = employees(10)
    project_dir.write_roster(rows)
    project_dir.run()
    before = project_dir.scalar(
        "platform", "select id from learners where external_key='000003'"
    )
    rows[2] = employee_row(3, email="New.Address@Example-Corp.com")
    project_dir.write_roster(rows)
    outcome = project_dir.run()
    assert outcome.stats.counts.by_kind["update"] == 1
    assert learner_count(project_dir) == 10
    after = project_dir.scalar(
        "platform",
        "select id from learners where email_norm='new.address@example-corp.com'",
    )
    assert after == before


def test_dropping_more_than_the_share_is_held_then_overridden(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Dropping 15% of rows holds all suspensions; the override applies them."""
    rows = employees(100)
    project_dir.write_roster(rows)
    project_dir.run()
    _record_result(project_dir, "000090")
    project_dir.write_roster(rows[:85])

    held = project_dir.run()
    assert held.status == "held" and held.exit_code == 3
    assert "15 suspensions planned" in (held.held_reason or "")
    assert learner_count(project_dir, "suspended") == 0

    overridden = project_dir.run(allow_mass_deprovision=True)
    assert overridden.status == "done"
    assert overridden.stats.counts.by_kind["suspend"] == 15
    assert learner_count(project_dir, "suspended") == 15
    assert project_dir.scalar("platform", "select count(*) from results") == 1
    assert learner_count(project_dir) == 100


def _record_result(project_dir: ProjectDir, key: str) -> None:
    connection = project_dir.platform()
    try:
        learner, partner = connection.execute(
            "select id, partner_id from learners where external_key = ?", (key,)
        ).fetchone()
        connection.execute(
            "insert into results (id, partner_id, learner_id, program_id,"
            " activity_iri, recorded_at, completion, imported_at)"
            " values ('r1', ?, ?, 'data-analytics-foundations',"
            " 'https://learn.example.org/a', '2026-11-01 10:00:00', true,"
            " '2026-11-01 10:05:00')",
            (partner, learner),
        )
        connection.commit()
    finally:
        connection.close()


def test_drop_spread_over_runs_is_caught_by_the_rolling_window(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Two drops of 6% each in one day exceed 10% together: the second is held."""
    rows = employees(100)
    project_dir.write_roster(rows)
    project_dir.run()
    project_dir.write_roster(rows[:94])
    assert project_dir.run().status == "done"
    project_dir.write_roster(rows[:88])
    second = project_dir.run()
    assert second.status == "held"
    assert "6 applied in the last 24 h" in (second.held_reason or "")


def test_empty_roster_is_held_and_suspends_nobody(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A header-only export holds the run instead of suspending everyone."""
    project_dir.write_roster(employees(20))
    project_dir.run()
    project_dir.write_roster([])
    outcome = project_dir.run(allow_mass_deprovision=True)
    assert outcome.status == "held"
    assert outcome.held_reason == "the source returned no records"
    assert learner_count(project_dir, "active") == 20


def test_truncated_read_applies_creates_but_holds_suspensions(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A file cut inside a quoted field creates who was read and suspends nobody."""
    project_dir.write_roster(employees(20))
    project_dir.run()
    rows = [*employees(25)[:5], employee_row(99, title='"Analyst, cut off')]
    project_dir.write_roster(rows)
    outcome = project_dir.run(allow_mass_deprovision=True)
    assert outcome.status == "held"
    assert "ended early" in (outcome.held_reason or "")
    assert learner_count(project_dir, "suspended") == 0


def test_bad_rows_are_quarantined_and_the_run_goes_on(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """No key, bad email, bad date, duplicate key and a taken email are quarantined."""
    rows = [
        *employees(10),
        employee_row(11, id=""),
        employee_row(12, email="dana.okafor@"),
        employee_row(13, hired="31-31-2020"),
        employee_row(3, email="other@example-corp.com"),
        employee_row(14, email="PERSON1@example-corp.com"),
    ]
    project_dir.write_roster(rows)
    outcome = project_dir.run()
    assert outcome.status == "done"
    assert outcome.stats.quarantined == 5
    assert learner_count(project_dir) == 10
    connection = project_dir.state()
    try:
        found = connection.execute(
            "select location, source_key, reason from quarantine order by id"
        ).fetchall()
    finally:
        connection.close()
    assert sorted(location for location, _, _ in found) == [
        "hris-export.csv:12",
        "hris-export.csv:13",
        "hris-export.csv:14",
        "hris-export.csv:15",
        "hris-export.csv:16",
    ]
    reasons = " | ".join(reason for _, _, reason in found)
    assert "no source key" in reasons and "email" in reasons and "duplicate" in reasons
    taken = next(reason for location, _, reason in found if location.endswith(":16"))
    assert taken == "email already belongs to another learner"


def test_inactive_learner_is_suspended_and_reactivated_with_enrollments(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Terminated suspends, then withdraws; back to active re-enrolls per the rules."""
    rows = employees(12)
    project_dir.write_roster(rows)
    project_dir.run()
    rows[3] = employee_row(4, status="Terminated", left="30-11-2026")
    project_dir.write_roster(rows)
    suspended = project_dir.run()
    assert suspended.stats.counts.by_kind["suspend"] == 1
    assert learner_count(project_dir, "suspended") == 1
    _age_suspension(project_dir, "000004", days=31)
    # One of five enrollments is more than the guard's 10%: confirm it. (Their
    # rules give 000004 applied-machine-learning too, but it builds on
    # data-analytics-foundations, which 000004 has not completed.)
    withdrawn = project_dir.run(allow_mass_deprovision=True)
    assert withdrawn.stats.counts.by_kind["withdraw"] == 1
    rows[3] = employee_row(4)
    project_dir.write_roster(rows)
    back = project_dir.run()
    assert back.stats.counts.by_kind["reactivate"] == 1
    assert back.stats.counts.by_kind["enroll"] == 1
    query = (
        "select e.status from enrollments e join learners l on l.id = e.learner_id"
        " where l.external_key = '000004'"
    )
    connection = project_dir.platform()
    try:
        statuses = [row[0] for row in connection.execute(query)]
    finally:
        connection.close()
    assert statuses == ["active"]
    assert learner_count(project_dir, "active") == 12


def test_leaver_never_provisioned_is_not_created(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A terminated employee seen for the first time gets no learner."""
    project_dir.write_roster(
        [*employees(5), employee_row(6, status="Terminated", left="01-10-2026")]
    )
    outcome = project_dir.run()
    assert outcome.stats.skipped_inactive == 1
    assert learner_count(project_dir) == 5


def test_enrollments_are_reconciled_when_a_rule_changes(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A mapping whose rule changes enrolls and withdraws on an unchanged file."""
    project_dir.write_roster(employees(20))
    project_dir.run()
    mapping = project_dir.root / "mappings" / "example-corp-hris.yaml"
    text = mapping.read_text(encoding="utf-8")
    mapping.write_text(
        text.replace(
            'learner.department in ["Sales", "Customer Success"]',
            'learner.department == "Finance"',
        ),
        encoding="utf-8",
    )
    held = project_dir.run()
    assert held.status == "held" and "withdrawals planned" in (held.held_reason or "")
    outcome = project_dir.run(allow_mass_deprovision=True)
    sales = sum(1 for n in range(1, 21) if n % 4 == 2)
    finance = sum(1 for n in range(1, 21) if n % 4 == 3)
    # Enrollments went ahead in the held run; the withdrawals waited for the flag.
    assert held.stats.counts.by_kind["enroll"] == finance
    assert outcome.stats.counts.by_kind["withdraw"] == sales
    assert outcome.stats.counts.by_kind["enroll"] == 0
    withdrawn = project_dir.scalar(
        "platform", "select count(*) from enrollments where status = 'withdrawn'"
    )
    assert withdrawn == sales


def test_withdraw_policy_withdraws_after_the_configured_days(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Suspended over 30 days: open enrollments withdrawn, completed ones stay."""
    rows = employees(20)
    project_dir.write_roster(rows)
    project_dir.run()
    # 000020 completes data-analytics-foundations; the stacked program follows.
    _complete(project_dir, "000020", "data-analytics-foundations")
    assert project_dir.run().stats.counts.by_kind["enroll"] == 1
    project_dir.write_roster(rows[:19])
    project_dir.run()
    assert project_dir.run().stats.counts.by_kind["withdraw"] == 0
    _age_suspension(project_dir, "000020", days=31)
    outcome = project_dir.run(allow_mass_deprovision=True)
    assert outcome.stats.counts.by_kind["withdraw"] == 1
    query = (
        "select e.program_id, e.status from enrollments e join learners l"
        " on l.id = e.learner_id where l.external_key = '000020' order by e.program_id"
    )
    connection = project_dir.platform()
    try:
        statuses = connection.execute(query).fetchall()
    finally:
        connection.close()
    assert statuses == [
        ("applied-machine-learning", "withdrawn"),
        ("data-analytics-foundations", "completed"),
    ]
    assert learner_count(project_dir, "suspended") == 1


def _complete(project_dir: ProjectDir, key: str, program: str) -> None:
    """What the results flow does with an award: the enrollment is completed on
    the platform, and the state store remembers it for the rules."""
    connection = project_dir.platform()
    try:
        connection.execute(
            "update enrollments set status = 'completed' where program_id = ? and"
            " learner_id = (select id from learners where external_key = ?)",
            (program, key),
        )
        connection.commit()
    finally:
        connection.close()
    store = project_dir.state_store()
    try:
        store.record_completions("example-corp", [(key, program, datetime.now(UTC))])
    finally:
        store.close()


def _age_suspension(project_dir: ProjectDir, key: str, days: int) -> None:
    connection = project_dir.state()
    try:
        moment = (datetime.now(UTC) - timedelta(days=days)).strftime(
            "%Y-%m-%d %H:%M:%S.%f"
        )
        connection.execute(
            "update snapshots set suspended_at = ? where source_key = ?", (moment, key)
        )
        connection.commit()
    finally:
        connection.close()


def test_only_mode_provisions_the_named_keys_and_traces(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """--only creates just the named learners, suspends nobody, and explains itself."""
    project_dir.write_roster(employees(10))
    lines: list[str] = []
    outcome = project_dir.run(only=frozenset({"000002", "000008"}), trace=lines.append)
    assert outcome.stats.counts.by_kind["create"] == 2
    assert learner_count(project_dir) == 2
    assert any(line.startswith("000008: create") for line in lines)
    assert not any(line.startswith("000003") for line in lines)


def test_dry_run_writes_nothing_to_the_platform(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """plan lists the changes a run would make and leaves the platform untouched."""
    project_dir.write_roster(employees(10))
    outcome = project_dir.run(dry_run=True)
    assert outcome.status == "planned"
    assert outcome.stats.counts.by_kind["create"] == 10
    assert not (project_dir.root / "var" / "platform.db").exists() or (
        _tables(project_dir) == set()
    )


def _tables(project_dir: ProjectDir) -> set[str]:
    connection = sqlite3.connect(project_dir.root / "var" / "platform.db")
    try:
        return {row[0] for row in connection.execute("select name from sqlite_master")}
    finally:
        connection.close()


def test_audit_records_fields_before_and_after(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Every applied change is readable back with run, kind and fields."""

    rows = employees(5)
    project_dir.write_roster(rows)
    first = project_dir.run()
    rows[0] = employee_row(1, department="Finance")
    project_dir.write_roster(rows)
    project_dir.run()
    store = project_dir.state_store()
    entries = store.audit("000001")
    store.close()
    kinds = [entry["kind"] for entry in entries]
    assert kinds[0] == "create" and entries[0]["run_id"] == first.run_id
    update = next(entry for entry in entries if entry["kind"] == "update")
    assert update["before"] == {"department": "Engineering"}
    assert update["after"] == {"department": "Finance"}
    assert all(entry["partner"] == "example-corp" for entry in entries)


def test_missing_source_fails_the_run(project_dir: ProjectDir) -> None:
    """No export in the inbox fails the run (exit 1), naming the pattern."""
    outcome = project_dir.run()
    assert outcome.status == "failed" and outcome.exit_code == 1
    assert "inbox/*.csv" in (outcome.error or "")


def test_malformed_row_of_a_known_learner_does_not_suspend_them(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A row with an extra cell is quarantined with its key; its learner stays."""
    rows = employees(10)
    project_dir.write_roster(rows)
    project_dir.run()
    rows[6] = employee_row(7) + ",extra cell"
    project_dir.write_roster(rows)
    outcome = project_dir.run()
    assert outcome.stats.quarantined == 1
    assert outcome.stats.counts.by_kind["suspend"] == 0
    assert learner_count(project_dir, "active") == 10
    quarantined = project_dir.scalar("state", "select source_key from quarantine")
    assert quarantined == "000007"


def test_only_mode_traces_the_mapping_even_when_unchanged(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """--only looks at the named keys afresh and explains each rule's outcome."""
    project_dir.write_roster([*employees(10), employee_row(11, id="")])
    project_dir.run()
    lines: list[str] = []
    outcome = project_dir.run(only=frozenset({"000008"}), trace=lines.append)
    assert outcome.stats.counts.total() == 0
    assert outcome.stats.quarantined == 0
    assert any("data-analytics-foundations" in line for line in lines)
    assert all(line.startswith("000008") for line in lines)


def test_second_run_of_the_same_job_waits_for_the_lock(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """While a live run holds the job's lock, another run fails and changes nothing."""
    from microcred_sync.state.locks import JobLock

    project_dir.write_roster(employees(5))
    project_dir.run()
    store = project_dir.state_store()
    lock = JobLock(store.engine, JOB, "someone-else")
    lock.acquire()
    try:
        blocked = project_dir.run()
    finally:
        lock.release()
        store.close()
    assert blocked.status == "failed"
    assert "another run of example-corp-roster is in progress" in (blocked.error or "")
    assert project_dir.run().status == "done"


@pytest.mark.sqlite_only("a lease row; an advisory lock ends with its session")
def test_lock_of_a_killed_process_on_this_host_is_taken_over(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A lock left by a process that no longer exists does not block the next run."""
    from microcred_sync.state.locks import JobLock

    project_dir.write_roster(employees(5))
    project_dir.run()
    store = project_dir.state_store()
    lock = JobLock(store.engine, JOB, "dead-run")
    lock.pid = 2**22 + 12345  # no such process
    lock.acquire()
    store.close()
    assert project_dir.run().status == "done"


def test_missing_key_column_fails_the_read_before_any_change(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A mapping whose source key is not a column fails the run; nobody is touched."""
    project_dir.write_roster(employees(20))
    project_dir.run()
    mapping = project_dir.root / "mappings" / "example-corp-hris.yaml"
    text = mapping.read_text(encoding="utf-8")
    mapping.write_text(
        text.replace("source_key: employee_id", "source_key: employe_id"),
        encoding="utf-8",
    )
    outcome = project_dir.run(allow_mass_deprovision=True)
    assert outcome.status == "failed"
    assert "employe_id" in (outcome.error or "")
    assert learner_count(project_dir, "active") == 20


def test_mostly_quarantined_read_is_held_even_with_the_override(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """When most rows are bad (a broken export), nobody is suspended, ever."""
    rows = employees(20)
    project_dir.write_roster(rows)
    project_dir.run()
    broken = [employee_row(n, email="broken") for n in range(1, 15)]
    project_dir.write_roster(broken)
    outcome = project_dir.run(allow_mass_deprovision=True)
    assert outcome.status == "held"
    assert "14 of 14 records were quarantined" in (outcome.held_reason or "")
    assert learner_count(project_dir, "active") == 20


def test_unknown_only_key_is_reported(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """--only with a key the source does not have says so in the trace."""
    project_dir.write_roster(employees(3))
    lines: list[str] = []
    project_dir.run(only=frozenset({"999999"}), trace=lines.append)
    assert "999999: not found in the source" in lines


def test_remembered_leaver_is_created_when_active_again(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A leaver skipped once is skipped cheaply next time, and created on rehire."""
    leaver = employee_row(6, status="Terminated", left="01-10-2026")
    project_dir.write_roster([*employees(5), leaver])
    project_dir.run()
    again = project_dir.run()
    assert again.stats.unchanged == 6 and again.platform_writes == 0
    project_dir.write_roster([*employees(5), employee_row(6)])
    rehired = project_dir.run()
    assert rehired.stats.counts.by_kind["create"] == 1
    assert learner_count(project_dir, "active") == 6
