"""The example group's roster jobs, run end to end against the vendor server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from tests.conftest import ProjectDir

from . import vendors
from .vendors import Person


def _point(project: ProjectDir, name: str, server, tls, **changes) -> None:
    """Point connectors/<name>.yaml at the server (its path kept)."""
    path = project.root / "connectors" / f"{name}.yaml"
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    url = content["url"]
    rest = url[url.index("/", len("https://")) :]
    content.update(url=server.base_url + rest, ca_file=str(tls["ca"]), **changes)
    path.write_text(yaml.safe_dump(content), encoding="utf-8")


@pytest.fixture
def group(project_dir, http_server, http_tls, vendor, monkeypatch) -> ProjectDir:
    monkeypatch.setenv("EXAMPLE_GROUP_SF_PASSWORD", vendors.SF_PASSWORD)
    monkeypatch.setenv("EXAMPLE_GROUP_WORKDAY_PASSWORD", vendors.WORKDAY_PASSWORD)
    monkeypatch.setenv("EXAMPLE_GROUP_BAMBOOHR_API_KEY", vendors.BAMBOO_KEY)
    auth = {
        "type": "basic",
        "username": vendors.SF_USER,
        "password_secret": "EXAMPLE_GROUP_SF_PASSWORD",
    }
    _point(
        project_dir, "example-group-successfactors", http_server, http_tls, auth=auth
    )
    _point(project_dir, "example-group-workday", http_server, http_tls)
    return project_dir


def _status(project: ProjectDir, key: str) -> str:
    return str(
        project.scalar(
            "state", "select status from snapshots where source_key = ?", key
        )
    )


def test_successfactors_job_provisions_then_reads_only_the_changes(
    group, vendor
) -> None:
    """A full read over three pages provisions active users and enrolls by
    department; the next run is a delta read that suspends the user made inactive
    and touches nobody else."""
    march = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    departments = ["Analytics", "Engineering", "Sales"]
    vendor.people.extend(
        Person(
            n,
            department=departments[n % 3],
            active=n != 7,
            modified=march + timedelta(hours=n),
        )
        for n in range(1, 31)
    )
    vendor.sf_page_size = 12
    first = group.run("example-group-successfactors-roster")
    assert first.status == "done", first.error
    assert first.stats.read == 30
    assert _status(group, "00003") == "active" and _status(group, "00007") != "active"
    programs = group.scalar(
        "state", "select programs from snapshots where source_key = ?", "00003"
    )
    # Analytics: the foundations (machine learning stacks on them).
    assert yaml.safe_load(str(programs)) == ["data-analytics-foundations"]

    vendor.people[3].active = False  # 00004 leaves
    vendor.people[3].modified = march + timedelta(days=2)
    vendor.calls.clear()
    second = group.run("example-group-successfactors-roster")
    assert second.status == "done", second.error
    # 00004, and 00030 again: the newest before, within the 5 minutes' overlap.
    assert second.stats.read == 2
    assert "lastModifiedDateTime+gt+datetimeoffset" in vendor.calls[0][1]
    assert _status(group, "00004") == "suspended"
    assert _status(group, "00005") == "active"


def test_workday_job_fails_on_a_sign_in_page_and_suspends_nobody(group, vendor) -> None:
    """A first run provisions the report; a second that meets an HTML sign-in page
    fails, naming it, and leaves every learner as it was."""
    vendor.people.extend(Person(n) for n in range(1, 11))
    first = group.run("example-group-workday-roster")
    assert first.status == "done", first.error
    assert first.stats.read == 10
    vendor.faults.append(vendors.Fault("html", vendors.WORKDAY_PATH))
    second = group.run("example-group-workday-roster")
    assert second.status == "failed" and "HTML page" in (second.error or "")
    assert {_status(group, f"{n:05d}") for n in range(1, 11)} == {"active"}
