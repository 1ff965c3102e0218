"""A held run applies its creates and updates once; only what it held waits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import ProjectDir, employee_row

#: Each test runs on SQLite and on PostgreSQL (``tests/databases.py``).
pytestmark = pytest.mark.both_databases

#: Learner 4 is in Analytics at level 5: enrolled in data-analytics-foundations.
LEARNER = "000004"


def _renamed(rows: list[str]) -> list[str]:
    """The department Analytics renamed: an update and withdrawals per member."""
    return [row.replace(",Analytics,", ",Analysis,") for row in rows]


def _audit(project_dir: ProjectDir, key: str) -> list[dict[str, Any]]:
    store = project_dir.state_store()
    try:
        return store.audit(key)
    finally:
        store.close()


def _updated_at(project_dir: ProjectDir, key: str) -> object:
    query = "select updated_at from learners where external_key = ?"
    return project_dir.scalar("platform", query, key)


def test_held_withdrawals_wait_while_the_updates_are_applied_once(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A rename holds its withdrawals; re-runs write no update again, and the
    override applies the held withdrawals once."""
    rows = employees(100)
    project_dir.write_roster(rows)
    project_dir.run()
    project_dir.write_roster(_renamed(rows))

    first = project_dir.run()
    assert first.status == "held"
    withdrawals = first.stats.counts.by_kind["withdraw"]
    assert first.stats.counts.by_kind["update"] == 25 and withdrawals > 0
    assert first.platform_writes == 25
    updated_at = _updated_at(project_dir, LEARNER)

    second = project_dir.run()
    assert second.status == "held"
    assert second.stats.counts.by_kind["update"] == 0
    assert second.stats.counts.by_kind["withdraw"] == withdrawals
    assert second.platform_writes == 0
    assert _updated_at(project_dir, LEARNER) == updated_at

    entries = _audit(project_dir, LEARNER)
    updates = [entry for entry in entries if entry["kind"] == "update"]
    assert len(updates) == 1
    assert updates[0]["before"] == {"department": "Analytics"}
    held = [entry for entry in entries if entry["kind"] == "withdraw"]
    assert {entry["state"] for entry in held} == {"held"}
    assert {entry["program"] for entry in held} == {"data-analytics-foundations"}
    assert len(held) == 2

    overridden = project_dir.run(allow_mass_deprovision=True)
    assert overridden.status == "done"
    assert overridden.stats.counts.by_kind["withdraw"] == withdrawals
    assert overridden.stats.counts.by_kind["update"] == 0
    assert overridden.platform_writes == withdrawals
    applied = [
        entry
        for entry in _audit(project_dir, LEARNER)
        if entry["kind"] == "withdraw" and entry["state"] == "applied"
    ]
    assert len(applied) == 1

    again = project_dir.run()
    assert again.status == "done" and again.platform_writes == 0
    assert again.stats.unchanged == 100


def test_a_held_suspension_keeps_the_learner_active_but_not_the_old_fields(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Leavers whose title also changed: the titles are written once, the held
    suspensions are planned again until the override applies them."""
    rows = employees(50)
    project_dir.write_roster(rows)
    project_dir.run()
    for number in range(1, 11):
        rows[number - 1] = employee_row(
            number, status="Terminated", left="30-11-2026", title="Lead"
        )
    project_dir.write_roster(rows)

    first = project_dir.run()
    assert first.status == "held"
    assert first.stats.counts.by_kind["suspend"] == 10
    assert first.stats.counts.by_kind["update"] == 10

    second = project_dir.run()
    assert second.status == "held" and second.platform_writes == 0
    assert second.stats.counts.by_kind == {
        **second.stats.counts.by_kind,
        "suspend": 10,
        "update": 0,
    }
    query = "select count(*) from learners where status = 'active'"
    assert project_dir.scalar("platform", query) == 50

    overridden = project_dir.run(allow_mass_deprovision=True)
    assert overridden.stats.counts.by_kind["suspend"] == 10
    assert overridden.stats.counts.by_kind["update"] == 0
    assert project_dir.scalar("platform", query) == 40
    assert project_dir.run().platform_writes == 0
