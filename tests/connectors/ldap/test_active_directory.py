"""The ldap source and the roster flow against a real Samba Active Directory DC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ldap3 import MODIFY_DELETE, MODIFY_REPLACE

from microcred_sync.connectors.ldap import LdapConnector
from microcred_sync.connectors.ldap.dn import canonical_dn
from microcred_sync.connectors.ldap.groups import GroupQuery, read_membership
from microcred_sync.connectors.ldap.session import Endpoint, Session, make_tls

from . import ad_directory as ad
from .conftest import DirectoryProject

SECRET = "EXAMPLE_AD_PASSWORD"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET, ad.ADMIN_PASSWORD)


def _connector(samba: Any, **config: Any) -> dict[str, Any]:
    return {
        "kind": "ldap",
        "partner": "example-directory",
        "directory": "active_directory",
        "servers": [samba.url],
        # user@domain: a simple bind by user principal name.
        "bind_dn": ad.ADMIN_UPN,
        "password_secret": SECRET,
        "base_dns": [ad.STAFF],
        "attributes": ["sAMAccountName", "mail", "displayName", "userAccountControl"],
        "groups": {"base_dns": [ad.GROUPS]},
        **config,
    }


def _records(samba: Any, **config: Any) -> dict[str, Any]:
    """The records by sAMAccountName."""
    connector = LdapConnector.model_validate(_connector(samba, **config))
    source = connector.open_source("test", Path("."))
    return {str(record.fields["sAMAccountName"]): record for record in source.read()}


AD_MAPPING = {
    "source_key": "objectGUID",
    "fields": {
        "email": {"from": "mail"},
        "display_name": {"from": "displayName"},
        "status": {
            "from": "account_status",
            "transforms": [{"map": {"active": "active", "*": "suspended"}}],
        },
    },
    "enrollments": [
        {
            "program": "data-analytics-foundations",
            "when": f'in_group(record.groups, "cn=all staff,{ad.GROUPS.lower()}")',
        },
        {
            "program": "customer-conversations",
            "when": 'in_group(record.groups, "Data Team")',
        },
    ],
}


def test_people_are_read_with_guid_status_and_nested_groups(samba: Any) -> None:
    """Users only (no contact); GUIDs in canonical form; UAC bit 0x2 and a past
    accountExpires make an account inactive (LD-07); in-chain nesting counts."""
    records = _records(samba)
    assert len(records) == ad.USERS + 1
    assert all(
        str(record.fields["objectGUID"]).startswith("{") for record in records.values()
    )
    status = {name: record.fields["account_status"] for name, record in records.items()}
    assert status["u020"] == "disabled"  # 546
    assert status["u007"] == "disabled"  # 66082
    assert status["u009"] == "active"  # 66080: DONT_EXPIRE_PASSWORD only
    assert status["u003"] == "expired"  # accountExpires in 2020
    assert status["u001"] == "active"  # 544
    all_staff = canonical_dn(f"CN=All Staff,{ad.GROUPS}")
    data_team = canonical_dn(f"CN=Data Team,{ad.GROUPS}")
    # u010 is in Data Team, inside Analytics, inside All Staff.
    assert {all_staff, data_team} <= set(records["u010"].fields["groups"])
    assert all_staff in records["dokafor"].fields["groups"]
    assert all_staff not in records["u002"].fields["groups"]


def test_expanded_groups_with_ranges_read_every_member(samba: Any) -> None:
    """member;range=0-99 asked explicitly: all 250 members of Big Group arrive."""
    endpoint = Endpoint(
        "test", "example-directory", False, make_tls(True, None), ad.ADMIN_UPN,
        None, 5, 30, False,
    )  # fmt: skip
    from pydantic import SecretStr

    endpoint = Endpoint(
        **{**endpoint.__dict__, "password": SecretStr(ad.ADMIN_PASSWORD)}
    )
    session = Session.open(endpoint, [samba.url])
    try:
        query = GroupQuery(
            (ad.GROUPS,), "(objectClass=group)", (ad.STAFF,),
            "(&(objectCategory=person)(objectClass=user))", "subtree", 500, 100,
            "uSNChanged",
        )  # fmt: skip
        membership = read_membership(session, query, in_chain=False)
    finally:
        session.close()
    big = canonical_dn(f"CN=Big Group,{ad.GROUPS}")
    members = [dn for dn, groups in membership.direct.items() if big in groups]
    assert len(members) == ad.USERS
    # Expanded by hand, nesting gives the same answer as the in-chain rule.
    groups = membership.groups_of(ad.user_dn(10), None)
    assert canonical_dn(f"CN=All Staff,{ad.GROUPS}") in groups


@pytest.fixture
def scratch_ou(samba: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """An OU of the test's own with 30 users and a group of them all."""
    connection = samba.admin()
    unit = f"OU=Scratch {request.node.name[-30:]},{ad.DOMAIN_DN}"
    connection.add(unit, ["top", "organizationalUnit"])
    people = [f"CN=Scratch {n},{unit}" for n in range(1, 31)]
    for number, dn in enumerate(people, start=1):
        ad.add_user(
            connection,
            dn,
            500 + number,
            sAMAccountName=f"s{request.node.name[-6:]}{number}",
            userAccountControl=str(ad.UAC_ACTIVE),
        )
    team = f"CN=Scratch Team {request.node.name[-20:]},{unit}"
    connection.add(
        team, ["top", "group"], {"sAMAccountName": f"st{request.node.name[-10:]}"}
    )
    from ldap3 import MODIFY_ADD

    connection.modify(team, {"member": [(MODIFY_ADD, people)]})
    yield unit
    connection.search(unit, "(objectClass=*)", attributes=["1.1"])
    found = sorted(
        (e["dn"] for e in connection.response if e.get("type") == "searchResEntry"),
        key=len,
        reverse=True,
    )
    for dn in found:
        connection.delete(dn)
    connection.unbind()


def test_usn_delta_rename_disable_and_group_removal(
    directory_project: DirectoryProject, samba: Any, scratch_ou: str
) -> None:
    """uSNChanged deltas read only what changed; a rename keeps the learner; a
    disabled account is suspended; a full read withdraws who left the group."""
    mapping = {
        **AD_MAPPING,
        "enrollments": [
            {
                "program": "customer-conversations",
                "when": 'in_group(record.groups, "Scratch Team test_usn_delta_rename")',
            },
        ],
    }
    team_name = (
        f"Scratch Team {'test_usn_delta_rename_disable_and_group_removal'[-20:]}"
    )
    mapping["enrollments"] = [
        {
            "program": "customer-conversations",
            "when": f'in_group(record.groups, "{team_name}")',
        }
    ]
    connector = _connector(
        samba,
        base_dns=[scratch_ou],
        groups={"base_dns": [scratch_ou]},
        incremental={"full_read_every_hours": 24},
    )
    # The example's OpenLDAP filter gives way to the Active Directory default.
    connector["filter"] = None
    directory_project.configure(mapping=mapping, **connector)
    first = directory_project.run()
    assert first.status == "done", first.error or first.held_reason
    assert first.stats.counts.by_kind["create"] == 30
    assert first.stats.counts.by_kind["enroll"] == 30
    assert directory_project.run().stats.read == 0

    connection = samba.admin()
    try:
        connection.modify_dn(f"CN=Scratch 1,{scratch_ou}", "CN=Scratch One")
        connection.modify(
            f"CN=Scratch One,{scratch_ou}",
            {"displayName": [(MODIFY_REPLACE, ["Scratch One"])]},
        )
        connection.modify(
            f"CN=Scratch 2,{scratch_ou}",
            {"userAccountControl": [(MODIFY_REPLACE, [str(ad.UAC_DISABLED)])]},
        )
    finally:
        connection.unbind()
    delta = directory_project.run()
    counts = delta.stats.counts.by_kind
    assert delta.stats.read == 2
    assert counts["create"] == 0 and counts["update"] == 1 and counts["suspend"] == 1

    connection = samba.admin()
    try:
        team = f"CN={team_name},{scratch_ou}"
        connection.modify(
            team, {"member": [(MODIFY_DELETE, [f"CN=Scratch 3,{scratch_ou}"])]}
        )
    finally:
        connection.unbind()
    connector["incremental"] = {"full_read_every_hours": 1e-9}
    directory_project.configure(mapping=mapping, **connector)
    full = directory_project.run()
    assert full.stats.counts.by_kind["withdraw"] == 1
    assert full.stats.counts.by_kind["suspend"] == 0


def test_search_from_the_domain_root_refuses_unfollowed_referrals(samba: Any) -> None:
    """AD answers a search of the whole domain with continuation references; not
    followed, they end the read instead of passing for a whole roster."""
    from microcred_sync.errors import ReadIncomplete

    with pytest.raises(ReadIncomplete, match="continuation reference"):
        _records(samba, base_dns=[ad.DOMAIN_DN], groups=None)
