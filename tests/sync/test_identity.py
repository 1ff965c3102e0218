"""Identity and blank-cell cases from the field (ID-02, CSV-06), end to end."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from microcred_sync.changes import Change, learner_id
from microcred_sync.platform.sql import SqlPlatform
from tests.conftest import ProjectDir, employee_row

#: Each test runs on SQLite and on PostgreSQL (``tests/databases.py``).
pytestmark = pytest.mark.both_databases

JOB = "example-corp-roster"


def test_case_only_email_change_is_an_update_not_a_create(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """ID-02: `Dana.Okafor@Example.COM` for a known learner updates the display form."""
    rows = employees(5)
    rows[0] = employee_row(1, email="dana.okafor@example.com")
    project_dir.write_roster(rows)
    project_dir.run()
    rows[0] = employee_row(1, email="Dana.Okafor@Example.COM")
    project_dir.write_roster(rows)
    outcome = project_dir.run()
    assert outcome.stats.counts.by_kind["create"] == 0
    assert outcome.stats.counts.by_kind["update"] == 1
    stored = project_dir.scalar(
        "platform", "select email from learners where external_key = '000001'"
    )
    assert stored == "Dana.Okafor@Example.COM"
    assert project_dir.scalar("platform", "select count(*) from learners") == 5


def test_case_variant_of_another_learners_email_is_quarantined(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """ID-02: a new key with another learner's email in other case is never merged."""
    rows = employees(3)
    rows[0] = employee_row(1, email="dana.okafor@example.com")
    project_dir.write_roster(rows)
    project_dir.run()
    project_dir.write_roster([*rows, employee_row(9, email="DANA.OKAFOR@example.com")])
    outcome = project_dir.run()
    assert outcome.stats.quarantined == 1
    assert project_dir.scalar("platform", "select count(*) from learners") == 3


def test_blank_cell_does_not_overwrite_a_known_value(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """CSV-06: a blank job title leaves the stored title alone (on_empty: leave)."""
    rows = employees(3)
    project_dir.write_roster(rows)
    project_dir.run()
    rows[1] = employee_row(2, title="")
    project_dir.write_roster(rows)
    outcome = project_dir.run()
    assert outcome.stats.counts.by_kind["update"] == 0
    title = project_dir.scalar(
        "platform", "select job_title from learners where external_key = '000002'"
    )
    assert title == "Analyst"


def test_blank_cell_clears_where_the_mapping_says_so(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A blank manager id clears the manager (on_empty: clear in the example)."""
    rows = employees(3)
    rows[2] = employee_row(3, manager="000001")
    project_dir.write_roster(rows)
    project_dir.run()
    rows[2] = employee_row(3, manager="")
    project_dir.write_roster(rows)
    outcome = project_dir.run()
    assert outcome.stats.counts.by_kind["update"] == 1
    manager = project_dir.scalar(
        "platform", "select manager_key from learners where external_key = '000003'"
    )
    assert manager is None


def test_trimmed_key_matches_the_same_learner(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """CSV-06: ` 000002 ` with spaces is the same learner as `000002`."""
    rows = employees(3)
    project_dir.write_roster(rows)
    project_dir.run()
    rows[1] = employee_row(2, id=" 000002 ")
    project_dir.write_roster(rows)
    outcome = project_dir.run()
    assert outcome.stats.counts.total() == 0


def test_duplicate_keys_reject_the_read_when_the_mapping_says_so(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """CSV-06 policy `reject_read`: a duplicate key fails the run, naming the row."""
    mapping = project_dir.root / "mappings" / "example-corp-hris.yaml"
    text = mapping.read_text(encoding="utf-8")
    mapping.write_text(
        text.replace("duplicates: keep_first", "duplicates: reject_read"), "utf-8"
    )
    project_dir.write_roster(
        [*employees(3), employee_row(2, email="x@example-corp.com")]
    )
    outcome = project_dir.run()
    assert outcome.status == "failed"
    assert "hris-export.csv:5" in (outcome.error or "")
    assert "000002" in (outcome.error or "")


def test_platform_apply_is_idempotent(tmp_path: Path) -> None:
    """Applying the same batch twice leaves one learner and one enrollment."""
    from microcred_sync.partners import Partner, Program

    platform = SqlPlatform(f"sqlite:///{tmp_path / 'platform.db'}")
    platform.create_schema()
    program = Program(id="p1", title="P1", activity_iri="https://learn.example.org/p1")
    platform.ensure_catalog(Partner(id="acme", name="Acme"), [program])
    ident = learner_id("acme", "E-1")
    batch = [
        Change("create", "E-1", ident, after={"email": "a@example.com"}),
        Change("enroll", "E-1", ident, program="p1"),
    ]
    platform.apply("acme", batch)
    platform.apply("acme", batch)
    with platform.engine.connect() as connection:
        learners = connection.exec_driver_sql("select count(*) from learners")
        assert learners.scalar_one() == 1
        enrollments = connection.exec_driver_sql("select count(*) from enrollments")
        assert enrollments.scalar_one() == 1
    platform.close()


def test_run_logs_carry_run_context_and_no_personal_data(
    project_dir: ProjectDir,
    employees: Callable[[int], list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Log lines name the run and stable keys, never an email or a name."""
    project_dir.write_roster([*employees(5), employee_row(6, email="bad@")])
    with caplog.at_level(logging.DEBUG, logger="microcred_sync"):
        outcome = project_dir.run()
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert not re.search(r"[\w.]+@[\w-]+\.\w+", text)
    assert "Given1" not in text and "Family1" not in text
    lifecycle = [r for r in caplog.records if r.name == "microcred_sync.sync.roster"]
    assert lifecycle and all(
        getattr(r, "run_id", None) == outcome.run_id for r in lifecycle
    )


@pytest.mark.sqlite_only("2,500 rows in batches of 7: the planner's logic, not SQL")
def test_email_taken_earlier_in_the_read_is_caught_across_batches(
    project_dir: ProjectDir,
    employees: Callable[[int], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With tiny batches, an email reused 2,500 rows later is still quarantined."""
    monkeypatch.setenv("MICROCRED_BATCH_SIZE", "7")
    rows = employees(2500)
    rows.append(employee_row(2501, email="PERSON3@example-corp.com"))
    rows.append(employee_row(2502, email="person2500@Example-Corp.com"))
    project_dir.write_roster(rows)
    outcome = project_dir.run()
    assert outcome.stats.quarantined == 2
    assert project_dir.scalar("platform", "select count(*) from learners") == 2500


def test_key_in_another_unicode_form_is_the_same_learner(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """`J-José` written NFC, then NFD: unchanged, nobody suspended."""
    nfc, nfd = "J-Jos\u00e9", "J-Jose\u0301"
    rows = employees(12)
    project_dir.write_roster([*rows, employee_row(13, id=nfc)])
    project_dir.run()
    project_dir.write_roster([*rows, employee_row(13, id=nfd)])
    outcome = project_dir.run()
    assert outcome.stats.counts.total() == 0
    assert outcome.stats.quarantined == 0


def test_email_in_another_unicode_form_is_the_same_address(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """`zoé@` in NFC and in NFD are one address: the second record is quarantined."""
    rows = [
        *employees(3),
        employee_row(4, email="zo\u00e9@example-corp.com"),
        employee_row(5, email="zoe\u0301@example-corp.com"),
    ]
    project_dir.write_roster(rows)
    outcome = project_dir.run()
    assert outcome.stats.quarantined == 1
    assert project_dir.scalar("platform", "select count(*) from learners") == 4


def test_text_longer_than_the_platform_holds_is_quarantined(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A 5,000-character first name is rejected with the field named, not cut."""
    project_dir.write_roster([*employees(3), employee_row(4, first="x" * 5000)])
    outcome = project_dir.run()
    assert outcome.stats.quarantined == 1
    reason = project_dir.scalar("state", "select reason from quarantine")
    assert reason == "given_name: longer than 200 characters"


def test_two_sources_of_one_partner_never_take_each_others_learners(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """A key another connector provisioned is quarantined, not updated or suspended."""
    connectors = project_dir.root / "connectors"
    text = (connectors / "example-corp-hris.yaml").read_text(encoding="utf-8")
    (connectors / "example-corp-contractors.yaml").write_text(
        text.replace("inbox/*.csv", "contractors/*.csv"), encoding="utf-8"
    )
    jobs = project_dir.root / "scheduler" / "jobs.yaml"
    jobs.write_text(
        jobs.read_text(encoding="utf-8")
        + "  - id: example-corp-contractors\n    flow: roster\n"
        + "    partner: example-corp\n    source: example-corp-contractors\n"
        + "    mapping: example-corp-hris\n",
        encoding="utf-8",
    )
    project_dir.write_roster(employees(20))
    project_dir.run()
    (project_dir.root / "contractors").mkdir()
    contractors = project_dir.root / "contractors" / "c.csv"
    project_dir.write_roster(
        [employee_row(1, email="c1@example-corp.com"), employee_row(900)], "c.csv"
    )
    (project_dir.inbox / "c.csv").rename(contractors)
    outcome = project_dir.run("example-corp-contractors")
    assert outcome.stats.quarantined == 1
    assert outcome.stats.counts.by_kind["create"] == 1
    project_dir.write_roster([employee_row(900)], "c.csv")
    (project_dir.inbox / "c.csv").replace(contractors)
    again = project_dir.run("example-corp-contractors")
    assert again.stats.counts.by_kind["suspend"] == 0
    email = project_dir.scalar(
        "platform", "select email from learners where external_key = '000001'"
    )
    assert email == "person1@example-corp.com"
    assert project_dir.run().stats.counts.total() == 0


@pytest.mark.parametrize("leaver_first", [True, False])
def test_email_of_a_never_provisioned_leaver_belongs_to_nobody(
    project_dir: ProjectDir,
    employees: Callable[[int], list[str]],
    leaver_first: bool,
) -> None:
    """An active row sharing its email with a leaver never created is created,
    whichever comes first; the re-run plans the same and writes nothing."""
    shared = "shared.address@example-corp.com"
    leaver = employee_row(7, email=shared, status="Terminated", left="01-10-2026")
    joiner = employee_row(8, email=shared)
    pair = [leaver, joiner] if leaver_first else [joiner, leaver]
    project_dir.write_roster([*employees(5), *pair])

    first = project_dir.run()
    assert first.status == "done" and first.stats.quarantined == 0
    assert first.stats.counts.by_kind["create"] == 6
    second = project_dir.run()
    assert second.stats.quarantined == 0 and second.platform_writes == 0
    assert second.stats.counts.total() == 0
    owner = project_dir.scalar(
        "platform", "select external_key from learners where email_norm = ?", shared
    )
    assert owner == "000008"


def test_two_active_rows_sharing_an_email_quarantine_the_later_on_every_run(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """Both would exist: the later is quarantined on the first run and again on
    the re-run, which writes nothing."""
    shared = "shared.address@example-corp.com"
    project_dir.write_roster(
        [*employees(5), employee_row(7, email=shared), employee_row(8, email=shared)]
    )
    runs = [project_dir.run(), project_dir.run()]
    store = project_dir.state_store()
    try:
        keys = [
            [entry["key"] for entry in store.quarantined(JOB, run.run_id)]
            for run in runs
        ]
    finally:
        store.close()
    assert keys == [["000008"], ["000008"]]
    assert runs[1].platform_writes == 0


def test_a_key_longer_than_a_key_may_be_is_quarantined_and_the_run_goes_on(
    project_dir: ProjectDir, employees: Callable[[int], list[str]]
) -> None:
    """The quarantine keeps the record's place and the start of its key (marked as
    cut); the rest of the roster is provisioned."""
    long_key = "9" * 300
    project_dir.write_roster([*employees(3), employee_row(4, id=long_key)])
    outcome = project_dir.run()
    assert outcome.status == "done"
    assert outcome.stats.quarantined == 1
    assert project_dir.scalar("platform", "select count(*) from learners") == 3
    reason = project_dir.scalar("state", "select reason from quarantine")
    assert reason == "source key longer than 255 characters"
    kept = str(project_dir.scalar("state", "select source_key from quarantine"))
    assert len(kept) == 255
    assert kept == "9" * 254 + "…"
