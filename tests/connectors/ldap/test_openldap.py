"""The ldap source and the roster flow against a real OpenLDAP (slapd)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE

from microcred_sync.changes import learner_id
from microcred_sync.connectors.ldap import LdapConnector
from microcred_sync.connectors.ldap.dn import canonical_dn

from .conftest import DirectoryProject, example_directory

PEOPLE, GROUPS = example_directory.PEOPLE, example_directory.GROUPS
SUFFIX = example_directory.SUFFIX
READER = {
    "bind_dn": example_directory.READER_DN,
    "password_secret": "EXAMPLE_DIRECTORY_PASSWORD",
}


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader's password, by the secret name the connectors use."""
    monkeypatch.setenv("EXAMPLE_DIRECTORY_PASSWORD", example_directory.PASSWORD)


def _servers(openldap: Any) -> dict[str, Any]:
    return {"servers": [openldap.url]}


def _records(openldap: Any, **config: Any) -> list[Any]:
    """Every record a source with ``config`` reads, straight from the source."""
    content = {
        "kind": "ldap",
        "partner": "example-directory",
        "servers": [openldap.url],
        **READER,
        "base_dns": [PEOPLE],
        **config,
    }
    source = LdapConnector.model_validate(content).open_source("test", Path("."))
    return list(source.read())


@pytest.fixture
def scratch(ldap_admin: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """An OU of the test's own under the suffix, with 40 people and a group of all
    of them; removed afterwards."""
    unit = f"ou=scratch-{request.node.name[-40:]},{SUFFIX}"
    unit = unit.replace("[", "-").replace("]", "")
    ldap_admin.add(unit, ["organizationalUnit"])
    people = [f"uid=s{n:03d},{unit}" for n in range(1, 41)]
    for number, dn in enumerate(people, start=1):
        ldap_admin.add(
            dn,
            ["inetOrgPerson"],
            {
                "cn": f"Scratch {number}",
                "sn": f"Scratch{number}",
                "givenName": "Scratch",
                "mail": f"scratch{number}@scratch.example.org",
                "employeeNumber": f"S{number:03d}",
                "employeeType": "active",
                "departmentNumber": "Sales",
            },
        )
    ldap_admin.add(f"cn=scratch-team,{unit}", ["groupOfNames"], {"member": people})
    yield unit
    ldap_admin.search(unit, "(objectClass=*)", attributes=["1.1"])
    found = sorted(
        (entry["dn"] for entry in ldap_admin.response), key=len, reverse=True
    )
    for dn in found:
        ldap_admin.delete(dn)


def _scratch_mapping(unit: str) -> dict[str, Any]:
    return {
        "source_key": "entryUUID",
        "fields": {
            "email": {"from": "mail"},
            "display_name": {"from": "cn"},
            "employee_number": {"from": "employeeNumber"},
            "status": {
                "from": "employeeType",
                "transforms": [{"map": {"disabled": "suspended", "*": "active"}}],
            },
        },
        "enrollments": [
            {
                "program": "customer-conversations",
                "when": f'in_group(record.groups, "CN=Scratch-Team,{unit.upper()}")',
            }
        ],
    }


def _configure_scratch(
    project: DirectoryProject, openldap: Any, unit: str, **connector: Any
) -> None:
    project.configure(
        mapping=_scratch_mapping(unit),
        **_servers(openldap),
        base_dns=[unit],
        filter="(objectClass=inetOrgPerson)",
        groups={"base_dns": [unit]},
        **connector,
    )


def _uuid(ldap_admin: Any, dn: str) -> str:
    ldap_admin.search(
        dn, "(objectClass=*)", search_scope="BASE", attributes=["entryUUID"]
    )
    return str(ldap_admin.response[0]["attributes"]["entryUUID"])


# -- a whole directory ------------------------------------------------------------


def test_full_read_of_5000_people_enrolls_by_nested_groups(
    directory_project: DirectoryProject, openldap: Any
) -> None:
    """Every person is read through paging; nested and cyclic groups count."""
    directory_project.configure(**_servers(openldap), incremental=None)
    outcome = directory_project.run()
    assert outcome.status == "done", outcome.error
    assert outcome.stats.read == 5001
    assert outcome.stats.counts.by_kind["create"] == 4800
    assert outcome.stats.skipped_inactive == 201
    # p00010 is in data-team, inside analytics: nested membership counts.
    # p00003 is in loop-b, inside loop-a (which is inside loop-b), inside all-staff.
    programs = {}
    for number in (10, 11, 12, 3, 13):
        dn = example_directory.person_dn(number)
        found = _records(
            openldap, base_dns=[dn], scope="subtree", groups={"base_dns": [GROUPS]}
        )
        key = str(found[0].fields["entryUUID"])
        programs[number] = directory_project.snapshot(key)
    assert programs[10] == ("active", ["data-analytics-foundations"])
    # p00011 is in Finance and in analytics, inside all-staff.
    assert programs[11] == (
        "active",
        ["data-analytics-foundations", "people-leadership"],
    )
    assert programs[12] == ("active", ["customer-conversations"])
    assert programs[3] == ("active", ["people-leadership"])
    assert programs[13] == ("active", [])


def test_ordinary_bind_hits_the_size_limit_and_suspends_nobody(
    directory_project: DirectoryProject, openldap: Any
) -> None:
    """OpenLDAP caps a paged search at 500 for an ordinary bind: the read fails,
    naming server, base and limit, and nobody is suspended."""
    directory_project.configure(**_servers(openldap), incremental=None)
    assert directory_project.run().status == "done"
    directory_project.configure(
        **_servers(openldap), incremental=None, bind_dn=example_directory.person_dn(1)
    )
    outcome = directory_project.run()
    assert outcome.status in ("held", "failed")
    assert outcome.stats.counts.by_kind["suspend"] == 0
    assert outcome.platform_writes == 0
    reason = outcome.held_reason or outcome.error or ""
    assert openldap.url in reason and PEOPLE in reason
    assert "size limit" in reason and "page size 500" in reason


def test_dn_with_escaped_comma_and_accents_reads_and_matches(openldap: Any) -> None:
    """Okafor's DN (``\\,``, parentheses, É) is read and its groups resolved."""
    team = f"ou=Équipe Réseau,{PEOPLE}"
    (record,) = _records(
        openldap,
        base_dns=[team],
        attributes=["cn", "mail"],
        groups={"base_dns": [GROUPS]},
    )
    assert record.fields["cn"] == "Okafor, Dana (Lyon)"
    # The server spells the DN its own way (\\2C); as a name it is the same.
    assert canonical_dn(str(record.fields["dn"])) == canonical_dn(
        example_directory.OKAFOR_DN
    )
    groups = record.fields["groups"]
    assert f"cn=analytics,{GROUPS}" in groups and f"cn=all-staff,{GROUPS}" in groups
    assert record.location == f"test:{record.fields['entryUUID']}"


def test_filter_values_are_escaped(openldap: Any) -> None:
    """A value with ``*`` and parentheses in a filter matches itself only (LD-04)."""
    from ldap3.utils.conv import escape_filter_chars

    wanted = escape_filter_chars("Okafor, Dana (Lyon)")
    assert len(_records(openldap, filter=f"(cn={wanted})")) == 1
    assert _records(openldap, filter=f"(cn={escape_filter_chars('Okafor*')})") == []


# -- changes between runs -----------------------------------------------------------


def test_rename_disable_leave_group_and_delete_between_full_reads(
    directory_project: DirectoryProject, openldap: Any, ldap_admin: Any, scratch: str
) -> None:
    """Each change gives the plan a user expects; a rename keeps the learner."""
    _configure_scratch(directory_project, openldap, scratch, incremental=None)
    first = directory_project.run()
    assert first.stats.counts.by_kind["create"] == 40
    assert first.stats.counts.by_kind["enroll"] == 40

    renamed, disabled = f"uid=s001,{scratch}", f"uid=s002,{scratch}"
    left, deleted = f"uid=s003,{scratch}", f"uid=s004,{scratch}"
    renamed_key = _uuid(ldap_admin, renamed)
    ldap_admin.add(f"ou=moved,{scratch}", ["organizationalUnit"])
    ldap_admin.modify_dn(renamed, "uid=s001", new_superior=f"ou=moved,{scratch}")
    # Without the refint overlay the group keeps the old DN; fix it as it would.
    ldap_admin.modify(
        f"cn=scratch-team,{scratch}",
        {
            "member": [
                (MODIFY_DELETE, [renamed]),
                (MODIFY_ADD, [f"uid=s001,ou=moved,{scratch}"]),
            ]
        },
    )
    ldap_admin.modify(
        f"uid=s001,ou=moved,{scratch}", {"cn": [(MODIFY_REPLACE, ["Scratch Renamed"])]}
    )
    ldap_admin.modify(disabled, {"employeeType": [(MODIFY_REPLACE, ["disabled"])]})
    ldap_admin.modify(
        f"cn=scratch-team,{scratch}", {"member": [(MODIFY_DELETE, [left])]}
    )
    second = directory_project.run()
    counts = second.stats.counts.by_kind
    assert second.status == "done", second.held_reason or second.error
    assert counts["create"] == 0 and counts["update"] == 1
    assert counts["suspend"] == 1 and counts["withdraw"] == 1
    ident = learner_id("example-directory", renamed_key)
    updates = [c for c in second.changes if c.kind == "update"]
    assert directory_project.snapshot(renamed_key) == (
        "active",
        ["customer-conversations"],
    )
    assert not updates or updates[0].learner_id == ident

    ldap_admin.delete(deleted)
    third = directory_project.run()
    assert third.stats.counts.by_kind["suspend"] == 1
    assert third.stats.absent == 1


def test_delta_reads_only_changes_and_never_suspends_the_absent(
    directory_project: DirectoryProject, openldap: Any, ldap_admin: Any, scratch: str
) -> None:
    """After a full read, a delta read gets the changed entries and the members of
    a changed group; a deleted person waits for the next full read."""
    _configure_scratch(
        directory_project, openldap, scratch, incremental={"full_read_every_hours": 24}
    )
    assert directory_project.run().stats.read == 40
    assert directory_project.run().stats.read == 0

    ldap_admin.modify(f"uid=s005,{scratch}", {"cn": [(MODIFY_REPLACE, ["New Name"])]})
    ldap_admin.modify(
        f"uid=s006,{scratch}", {"employeeType": [(MODIFY_REPLACE, ["disabled"])]}
    )
    ldap_admin.delete(f"uid=s007,{scratch}")
    delta = directory_project.run()
    assert delta.status == "done"
    assert delta.stats.read == 2
    assert delta.stats.counts.by_kind["update"] == 1
    assert delta.stats.counts.by_kind["suspend"] == 1  # disabled, not absent
    assert delta.stats.absent == 0

    # A group change reaches its members although their entries did not change.
    ldap_admin.add(
        f"cn=second-team,{scratch}",
        ["groupOfNames"],
        {"member": [f"uid=s008,{scratch}"]},
    )
    ldap_admin.modify(
        f"cn=scratch-team,{scratch}",
        {"member": [(MODIFY_ADD, [f"cn=second-team,{scratch}"])]},
    )
    assert directory_project.run().stats.read == 39

    # A full read, once due, finds the deletion.
    _configure_scratch(
        directory_project,
        openldap,
        scratch,
        incremental={"full_read_every_hours": 1e-9},
    )
    full = directory_project.run()
    assert full.stats.absent == 1 and full.stats.read == 39


def test_a_failed_run_keeps_the_old_cursor(
    directory_project: DirectoryProject, openldap: Any, ldap_admin: Any, scratch: str
) -> None:
    """A dry run (plan) saves no cursor: the next run still reads the change."""
    _configure_scratch(
        directory_project, openldap, scratch, incremental={"full_read_every_hours": 24}
    )
    directory_project.run()
    ldap_admin.modify(f"uid=s009,{scratch}", {"cn": [(MODIFY_REPLACE, ["Again"])]})
    assert directory_project.run(dry_run=True).stats.read == 1
    assert directory_project.run().stats.read == 1
    assert directory_project.run().stats.read == 0


# -- TLS ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["start_tls", "ldaps"])
def test_tls_with_the_ca_bundle_is_verified(
    openldap: Any, tls_files: dict[str, Any], how: str
) -> None:
    """StartTLS and ldaps work with the CA bundle, verification on by default."""
    url = openldap.url if how == "start_tls" else openldap.ldaps_url
    found = _records(
        openldap,
        servers=[url],
        start_tls=how == "start_tls",
        ca_file=str(tls_files["ca"]),
        base_dns=[f"ou=Équipe Réseau,{PEOPLE}"],
    )
    assert len(found) == 1


def test_tls_with_another_ca_is_refused(
    openldap: Any, tls_files: dict[str, Any]
) -> None:
    """A certificate the CA bundle did not sign ends the read before any record."""
    from microcred_sync.errors import SourceUnavailable

    with pytest.raises(SourceUnavailable, match=openldap.ldaps_url):
        _records(
            openldap,
            servers=[openldap.ldaps_url],
            ca_file=str(tls_files["other_ca"]),
            base_dns=[f"ou=Équipe Réseau,{PEOPLE}"],
        )


def test_tls_verification_off_warns(
    openldap: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Turning verification off works for that connector, with a warning."""
    with caplog.at_level(logging.WARNING):
        found = _records(
            openldap,
            servers=[openldap.ldaps_url],
            verify_tls=False,
            base_dns=[f"ou=Équipe Réseau,{PEOPLE}"],
        )
    assert len(found) == 1
    assert "verification is OFF" in caplog.text


def test_a_search_base_that_does_not_exist_fails_the_run(
    directory_project: DirectoryProject, openldap: Any
) -> None:
    """A wrong base_dns is a wrong connector file: the run fails saying so (exit
    1), rather than being held as if the directory had been cut short."""
    directory_project.configure(**_servers(openldap), incremental=None)
    assert directory_project.run().status == "done"
    directory_project.configure(
        **_servers(openldap), incremental=None, base_dns=[f"ou=nowhere,{SUFFIX}"]
    )
    outcome = directory_project.run()
    assert outcome.status == "failed"
    assert outcome.stats.counts.by_kind["suspend"] == 0
    assert "does not exist" in (outcome.error or "")
    assert "base_dns" in (outcome.error or "")
