"""The example association's jobs, roster and write-back, run against the emulator."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

import microcred_sync.outbox  # noqa: F401  (registers the outbox table)
from microcred_sync.connectors.salesforce.deliveries import (
    contact_delivery,
    writeback_delivery,
)
from microcred_sync.outbox.deliver import run_deliver
from microcred_sync.outbox.store import Outbox
from microcred_sync.platform.sql import LearnerIdentityRow
from microcred_sync.project import load_project
from microcred_sync.results.records import AwardRecord
from microcred_sync.settings import Settings
from tests.cli_runner import cli
from tests.conftest import ProjectDir

from . import emulator

JOB = "example-association-roster"


def _snapshot(project: ProjectDir, key: str) -> tuple[str, list[str]] | None:
    connection = project.state()
    try:
        row = connection.execute(
            "select status, programs from snapshots where source_key = ?", (key,)
        ).fetchone()
    finally:
        connection.close()
    return None if row is None else (row[0], yaml.safe_load(row[1]))


def test_members_are_enrolled_by_level_and_deletions_suspend(association, org) -> None:
    """A full read provisions active members by level; a delta read suspends the
    Contact deleted since, and nobody else for being absent."""
    members: list[dict[str, Any]] = []
    for number, (level, status) in enumerate(
        [
            ("Fellow", "Active"),
            ("Professional", "Active"),
            ("Student", "Active"),
            ("Associate", "Lapsed"),
            ("Fellow", "Active"),
        ]
        * 4
    ):
        members.append(
            org.add(
                "Contact",
                FirstName=f"Given{number}",
                LastName=f"Family{number}",
                Email=f"member{number}@example-association.org",
                Member_Number__c=f"M{number:05d}",
                Membership_Level__c=level,
                Membership_Status__c=status,
                Account={"Name": "Example Employer"},
            )
        )
    first = association.run(JOB)
    assert first.status == "done", first.error
    fellow, student = members[0]["Id"], members[2]["Id"]
    assert _snapshot(association, fellow) == (
        "active",
        ["member-essentials", "people-leadership", "professional-ethics"],
    )
    assert _snapshot(association, student) == ("active", ["member-essentials"])

    # The first member is deleted, the student becomes a Fellow.
    org.delete("Contact", fellow)
    org.update("Contact", student, Membership_Level__c="Fellow")
    org.reset()
    second = association.run(JOB)
    assert second.status == "done", second.error
    queries = [path for _, path in org.calls if "/query" in path]
    assert queries and all("/queryAll" in path for path in queries)
    assert second.stats.read < len(members)
    assert _snapshot(association, fellow)[0] == "suspended"
    assert _snapshot(association, student)[1] == [
        "member-essentials",
        "people-leadership",
        "professional-ethics",
    ]
    assert all(
        _snapshot(association, m["Id"])[0] == "active"
        for m in members[1:]
        if m["Membership_Status__c"] == "Active"
    )


def _snapshots(project: ProjectDir) -> dict[str, tuple[str, str]]:
    connection = project.state()
    try:
        rows = connection.execute(
            "select source_key, status, programs from snapshots"
        ).fetchall()
    finally:
        connection.close()
    return {row[0]: (row[1], row[2]) for row in rows}


def test_a_bulk_read_survives_an_expired_session_and_stops_on_a_rejected_one(
    association, org
) -> None:
    """Full Bulk reads: a session expired between result pages costs one login and
    the same page again, every member read once; one rejected after the new login
    holds the run, nobody suspended."""
    path = association.root / "connectors" / "example-association.yaml"
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    content["roster"].pop("incremental")
    content["roster"].update(bulk_above=10, bulk_page_size=20, bulk_poll_seconds=0.01)
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    emulator.seed_members(org, 50)

    first = association.run(JOB)
    assert first.status == "done", first.error
    before = _snapshots(association)
    assert set(before) == set(org.records["Contact"])
    # An active member of the second page, the one fetched again, lapses.
    second_page = list(org.records["Contact"])[20:40]
    lapsing = next(key for key in second_page if before[key][0] == "active")
    # Calls before the second result page (describes, count, job, polls, page 1).
    upto = next(i for i, (_, at) in enumerate(org.calls) if at.endswith("/results"))

    org.update("Contact", lapsing, Membership_Status__c="Lapsed")
    org.reset()
    org.faults.expire_after = upto + 1
    resumed = association.run(JOB)
    assert resumed.status == "done", resumed.error
    assert org.logins == 2
    assert len([at for _, at in org.calls if at.endswith("/results")]) == 4
    assert resumed.stats.read == 50
    # Suspended once, the one platform write; nobody else absent or changed.
    assert (resumed.stats.absent, resumed.platform_writes) == (0, 1)
    after = _snapshots(association)
    assert after.pop(lapsing)[0] == "suspended"
    assert after == {key: state for key, state in before.items() if key != lapsing}
    before = _snapshots(association)

    org.reset()
    org.faults.reject_after = upto + 1
    stopped = association.run(JOB)
    assert stopped.status == "held"
    assert "again right after a new login" in (stopped.held_reason or "")
    assert org.logins == 2
    assert (stopped.stats.absent, stopped.platform_writes) == (0, 0)
    assert _snapshots(association) == before


def test_the_connector_file_is_checked_field_by_field(association) -> None:
    """A bad connector file: one line naming the file, the field and the problem."""
    path = association.root / "connectors" / "example-association.yaml"
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    content["roster"]["where"] = "LastName = {name}"
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    with pytest.raises(
        Exception, match=r"connectors/example-association.yaml: roster: .*name"
    ):
        load_project(Settings(root=association.root))


@pytest.mark.slow
def test_the_example_job_runs_from_the_command_line(association, org) -> None:
    """As the README says: plan, run, and a second run that is a delta read."""
    emulator.seed_members(org, 40)
    plan = cli(association, "plan", JOB)
    assert plan.returncode == 0, plan.stderr
    first = cli(association, "run", JOB)
    assert first.returncode == 0, first.stderr
    assert "read 40," in first.stdout and "learners created 27" in first.stdout
    assert "inactive in the source 13" in first.stdout
    second = cli(association, "run", JOB)
    assert second.returncode == 0, second.stderr
    assert "delta read of" in second.stderr and "platform writes 0" in second.stdout


def test_the_write_back_job_delivers_the_outbox_to_the_org(association, org) -> None:
    """The example deliver job sends enqueued write-backs to the org, once."""
    project = load_project(Settings(root=association.root))
    config = project.connectors["example-association"]
    programs = project.programs_of("example-association")
    contacts = [org.add("Contact", LastName=f"M{n}") for n in range(3)]
    deliveries, states = [], []
    for n, contact in enumerate(contacts):
        award = AwardRecord(
            f"award-{n}",
            "example-association",
            f"l{n}",
            "member-essentials",
            datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
        )
        learner = LearnerIdentityRow(f"l{n}", contact["Id"], None, None)
        deliveries.append(
            writeback_delivery(
                config,
                "example-association",
                award,
                learner,
                program_title="Member Essentials",
            )
        )
        states.append(
            contact_delivery(config, "example-association", learner, [award], programs)
        )
    store = association.state_store()
    store.create_schema()
    Outbox(store.engine).enqueue(deliveries)
    Outbox(store.engine).replace(states)
    store.close()
    outcome = run_deliver(project, "example-association-writeback")
    assert outcome.status == "done", outcome.error
    assert outcome.delivered == 6 and outcome.pending == 0
    assert {r["Award_Id__c"] for r in org.records["Credential__c"].values()} == {
        "award-0",
        "award-1",
        "award-2",
    }
    first = org.records["Contact"][contacts[0]["Id"]]
    assert first["Latest_Credential__c"] == "Member Essentials"
    assert first["Credits_Earned__c"] == 1.0
    again = run_deliver(project, "example-association-writeback")
    assert again.status == "done" and again.taken == 0


def test_an_award_goes_back_to_the_members_org_through_the_results_flow(
    association, org
) -> None:
    """Roster from the org, an award on the platform, the results job queues its
    write-back, the deliver job upserts it: once, keyed by the award's id."""
    from microcred_sync.changes import learner_id
    from microcred_sync.results.flow import run_results
    from microcred_sync.results.records import award_id

    member = org.add(
        "Contact",
        FirstName="Ada",
        LastName="Member",
        Email="ada@example-association.org",
        Member_Number__c="M00001",
        Membership_Level__c="Fellow",
        Membership_Status__c="Active",
        Account={"Name": "Example Employer"},
    )
    assert association.run(JOB).status == "done"
    path = association.root / "awards.csv"
    path.write_text(
        "kind,learner,program,issued_at\n"
        f"award,{member['Id']},member-essentials,2026-11-30T09:00:00Z\n",
        encoding="utf-8",
    )
    report = association.import_results(path, "example-association")
    assert (report.awards, report.rejected) == (1, [])
    project = load_project(Settings(root=association.root))

    queued = run_results(project, "example-association-results")
    # The award's Credential__c, and the member's Contact state.
    assert (queued.status, queued.enqueued, queued.quarantined) == ("done", 2, 0)
    assert run_results(project, "example-association-results").enqueued == 0
    delivered = run_deliver(project, "example-association-writeback")
    assert delivered.status == "done", delivered.error
    expected = award_id(
        "example-association",
        learner_id("example-association", member["Id"]),
        "member-essentials",
    )
    records = list(org.records["Credential__c"].values())
    assert [record["Award_Id__c"] for record in records] == [expected]
    assert records[0]["Contact__c"] == member["Id"]
    assert run_deliver(project, "example-association-writeback").taken == 0
