"""Each preset against the server answering as its vendor documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from microcred_sync.connectors.base import SourceContext
from microcred_sync.connectors.http import HttpSource

from .conftest import read_all
from .vendors import BAMBOO_ROOT, SF_PATH, SF_USER, WORKDAY_PATH, WORKDAY_USER, Person

WORKDAY_AUTH = {
    "type": "basic",
    "username": WORKDAY_USER,
    "password_secret": "WD_PASSWORD",
}
BAMBOO_AUTH = {"type": "basic", "username_secret": "BAMBOO_KEY"}
SF_AUTH = {"type": "basic", "username": SF_USER, "password_secret": "SF_PASSWORD"}


def test_workday_report_entries_read_with_references_dates_and_lists(
    vendor, connector
) -> None:
    """Report_Entry rows: references as dotted fields, dates with a zone as dates,
    times in UTC, multi-instance references as tuples, numbers as text."""
    vendor.people.extend([Person(1), Person(2, department="Sales", active=False)])
    config = connector(
        WORKDAY_PATH, preset="workday_raas", auth=WORKDAY_AUTH, key="Employee_ID"
    )
    first, second = read_all(config)
    assert first.location == "test-http:00001" and first.problem is None
    assert first.fields["Employee_ID"] == "00001"
    assert first.fields["Supervisory_Organization.descriptor"] == "Analytics"
    assert first.fields["Supervisory_Organization.id"] == "SUP-ANA"
    assert first.fields["Hire_Date"] == "2019-01-02"  # sent as 2019-01-02-08:00
    assert second.fields["Hire_Date"] == "2019-01-03"  # sent without a zone
    assert first.fields["Last_Updated"] == "2026-03-01T09:00:00Z"
    assert first.fields["Worker_Groups.descriptor"] == ("Learners", "Site 1")
    assert first.fields["FTE"] == "1" and Person(4).workday()["FTE"] == 0.5
    assert second.fields["Active"] == "0"
    assert vendor.calls == [("GET", f"{WORKDAY_PATH}?format=json")]


def test_workday_refuses_a_wrong_password_without_an_empty_roster(
    vendor, connector, monkeypatch
) -> None:
    """A 401 fails the read, naming auth; it is never read as no employees."""
    import pytest

    from microcred_sync.errors import SourceUnavailable

    monkeypatch.setenv("WD_PASSWORD", "wrong")
    vendor.people.append(Person(1))
    config = connector(
        WORKDAY_PATH, preset="workday_raas", auth=WORKDAY_AUTH, key="Employee_ID"
    )
    with pytest.raises(SourceUnavailable, match=r"HTTP 401 .*check auth") as caught:
        read_all(config)
    assert "wrong" not in str(caught.value)


def test_bamboohr_directory_with_the_api_key_as_user(vendor, connector) -> None:
    """The directory's employees, keyed by id, read with the key and password x."""
    vendor.people.extend([Person(1), Person(2), Person(3, active=False)])
    config = connector(
        f"{BAMBOO_ROOT}employees/directory", preset="bamboohr", auth=BAMBOO_AUTH
    )
    records = read_all(config)
    assert [r.fields["id"] for r in records] == ["1", "2"]
    assert records[0].fields["workEmail"] == "person1@example-group.com"


def test_bamboohr_custom_report_posts_the_fields(vendor, connector) -> None:
    """A custom report is a POST of the listed fields, format=JSON."""
    vendor.people.extend([Person(1), Person(2, active=False)])
    config = connector(
        f"{BAMBOO_ROOT}reports/custom",
        preset="bamboohr",
        auth=BAMBOO_AUTH,
        fields=["firstName", "workEmail", "status"],
    )
    records = read_all(config)
    assert vendor.calls == [("POST", f"{BAMBOO_ROOT}reports/custom?format=JSON")]
    assert vendor.bodies[0]["fields"] == ["firstName", "workEmail", "status"]
    assert [r.fields["status"] for r in records] == ["Active", "Inactive"]
    assert set(records[0].fields) == {"id", "firstName", "workEmail", "status"}


def test_bamboohr_delta_reads_the_changed_employees_only(
    vendor, connector, tmp_path: Path
) -> None:
    """After a full read, a delta read asks employees/changed since the cursor,
    each changed employee's fields, and reads a deleted one as Deleted."""
    march = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    vendor.people.extend(Person(n, modified=march) for n in range(1, 6))
    config = connector(
        f"{BAMBOO_ROOT}reports/custom",
        preset="bamboohr",
        auth=BAMBOO_AUTH,
        fields=["firstName", "department", "status"],
        incremental={"full_read_every_hours": 24, "overlap_seconds": 0},
    )
    context = SourceContext(state_url=f"sqlite:///{tmp_path / 'state.db'}")
    full = HttpSource("bamboo", Path("."), config)
    full.attach(context)
    assert full.full and len(list(full.read())) == 5
    full.commit()

    later = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    vendor.people[1].department, vendor.people[1].modified = "Sales", later
    vendor.deleted["4"] = later
    vendor.calls.clear()
    delta = HttpSource("bamboo", Path("."), config)
    delta.attach(context)
    assert not delta.full
    records = list(delta.read())
    assert {r.fields["id"]: r.fields.get("status") for r in records} == {
        "2": "Active",
        "4": "Deleted",
    }
    assert records[0].fields["department"] == "Sales"
    paths = [path for _, path in vendor.calls]
    assert paths[0].startswith(f"{BAMBOO_ROOT}employees/changed?since=")
    assert paths[1:] == [
        f"{BAMBOO_ROOT}employees/2?fields=firstName%2Cdepartment%2Cstatus"
    ]
    delta.commit()


def test_successfactors_pages_through_next_and_reads_odata_dates(
    vendor, connector
) -> None:
    """$select and $filter are sent, d.__next is followed to the end, /Date()/
    values become dates and UTC times, __metadata and deferred links left out."""
    vendor.people.extend(Person(n, active=n % 5 != 0) for n in range(1, 26))
    vendor.sf_page_size = 10
    config = connector(
        SF_PATH,
        preset="successfactors",
        auth=SF_AUTH,
        key="userId",
        fields=["firstName", "status", "hireDate"],
        filter="status in 't','f'",
    )
    records = read_all(config)
    assert len(records) == 25 and len(vendor.calls) == 3
    first = records[0].fields
    assert first == {
        "userId": "00001",
        "firstName": "Given1",
        "status": "t",
        "hireDate": "2019-01-02",
        "lastModifiedDateTime": "2026-03-01T09:00:00Z",
    }
    query = vendor.calls[0][1]
    assert (
        "%24select=firstName%2Cstatus%2ChireDate%2CuserId%2ClastModifiedDateTime"
        in query
    )
    assert "%24filter=status+in+%27t%27%2C%27f%27" in query
    assert "%24skiptoken=10" in vendor.calls[1][1]


def test_successfactors_delta_filters_on_last_modified(
    vendor, connector, tmp_path: Path
) -> None:
    """A delta read adds lastModifiedDateTime gt datetimeoffset'<cursor>' to the
    file's $filter; the cursor is the newest lastModifiedDateTime read, less the
    overlap (so the boundary's user is read again)."""
    march = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    vendor.people.extend(
        Person(n, modified=march + timedelta(minutes=n)) for n in range(1, 8)
    )
    config = connector(
        SF_PATH,
        preset="successfactors",
        auth=SF_AUTH,
        key="userId",
        filter="status in 't','f'",
        incremental={"full_read_every_hours": 24, "overlap_seconds": 60},
    )
    context = SourceContext(state_url=f"sqlite:///{tmp_path / 'state.db'}")
    full = HttpSource("sf", Path("."), config)
    full.attach(context)
    assert len(list(full.read())) == 7
    full.commit()

    vendor.people[2].modified = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    vendor.people[5].active = False
    vendor.people[5].modified = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    vendor.calls.clear()
    delta = HttpSource("sf", Path("."), config)
    delta.attach(context)
    records = list(delta.read())
    assert [(r.fields["userId"], r.fields["status"]) for r in records] == [
        ("00003", "t"),
        ("00006", "f"),
        ("00007", "t"),
    ]
    assert (
        "%28status+in+%27t%27%2C%27f%27%29+and+lastModifiedDateTime+gt+"
        "datetimeoffset%272026-03-01T09%3A06%3A00Z%27" in vendor.calls[0][1]
    )
    delta.commit()
    again = HttpSource("sf", Path("."), config)
    again.attach(context)
    vendor.calls.clear()
    assert [r.fields["userId"] for r in again.read()] == ["00006"]
    assert "2026-03-02T09%3A29%3A00Z" in vendor.calls[0][1]
