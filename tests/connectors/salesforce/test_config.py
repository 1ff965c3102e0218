"""Connector files of kind salesforce: what is accepted, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from microcred_sync.connectors.kinds import CONNECTOR_KINDS
from microcred_sync.errors import ConfigError
from microcred_sync.files import validate

PASSWORD = {"type": "password", "username": "u@example.org", "password_secret": "P"}


def _load(**content: Any) -> Any:
    document = {"kind": "salesforce", "partner": "p", "auth": PASSWORD, "roster": {}}
    document.update(content)
    return validate(document, CONNECTOR_KINDS, "connectors/crm.yaml")


@pytest.mark.parametrize(
    ("url", "domain"),
    [
        ("https://login.salesforce.com", "login"),
        ("https://test.salesforce.com/", "test"),
        ("https://acme.my.salesforce.com", "acme.my"),
        ("https://acme--uat.sandbox.my.salesforce.com", "acme--uat.sandbox.my"),
        ("https://127.0.0.1:8443", "127.0.0.1:8443/login"),
    ],
)
def test_login_hosts(url: str, domain: str) -> None:
    """Production, sandbox and My Domain hosts, and the emulator on loopback."""
    assert _load(login_url=url).domain == domain


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            {"login_url": "http://login.salesforce.com"},
            "login_url: the login URL is an https",
        ),
        (
            {"login_url": "https://login.example.com"},
            "login_url: the login host ends with",
        ),
        (
            {"login_url": "https://login.salesforce.com/services"},
            "login_url: the login URL is a host only",
        ),
        (
            {
                "auth": {
                    "type": "client_credentials",
                    "consumer_key_secret": "K",
                    "consumer_secret_secret": "S",
                }
            },
            "client_credentials needs the org's My Domain",
        ),
        (
            {"roster": {"fields": ["Account..Name"]}},
            "roster.fields: .*not a field name",
        ),
        (
            {"roster": {"where": "Email = {email}"}},
            "placeholder 'email' has no entry in values",
        ),
        ({"roster": None}, "give roster .*writeback"),
        (
            {
                "writeback": {
                    "object": "Credential__c",
                    "external_id": "Award_Id__c",
                    "fields": {"X__c": {"from": "award_id", "value": 1}},
                }
            },
            "exactly one of 'from' and 'value'",
        ),
        (
            {
                "writeback": {
                    "object": "Credential__c",
                    "external_id": "Award_Id__c",
                    "fields": {"X__c": {"from": "score"}},
                }
            },
            "unknown award fact 'score'",
        ),
        (
            {
                "writeback": {
                    "object": "Credential__c",
                    "external_id": "Award_Id__c",
                    "contact": {"fields": {"X__c": {"from": "score_raw"}}},
                }
            },
            "writeback.contact.fields: .*unknown Contact fact 'score_raw'",
        ),
        (
            {
                "writeback": {
                    "object": "Credential__c",
                    "external_id": "Award_Id__c",
                    "results": {
                        "object": "Course_Result__c",
                        "external_id": "Result_Id__c",
                        "fields": {"X__c": {"from": "issued_at"}},
                    },
                }
            },
            "writeback.results.fields: .*unknown result fact 'issued_at'",
        ),
        (
            {
                "writeback": {
                    "object": "Credential__c",
                    "external_id": "Award_Id__c",
                    "results": {
                        "object": "Course_Result__c",
                        "external_id": "Result_Id__c",
                        "only": "attempted",
                    },
                }
            },
            "writeback.results.only",
        ),
        (
            {
                "writeback": {
                    "object": "Credential__c",
                    "external_id": "Award_Id__c",
                    "batch_size": 500,
                }
            },
            "batch_size",
        ),
    ],
)
def test_mistakes_are_one_line_naming_file_and_field(
    content: dict[str, Any], problem: str
) -> None:
    """Each mistake is one line: the file, the field, what is wrong."""
    with pytest.raises(
        ConfigError, match=f"^connectors/crm.yaml: .*{problem}"
    ) as caught:
        _load(**content)
    assert "\n" not in str(caught.value)


def test_values_are_quoted_into_the_condition() -> None:
    """Placeholders take values quoted by simple-salesforce's format_soql."""
    roster = _load(
        roster={
            "where": "Email = {email} AND Level__c IN {levels}",
            "values": {"email": "o'neil@example.org", "levels": ["A", "B"]},
        }
    ).roster
    assert (
        roster.condition() == "Email = 'o\\'neil@example.org' AND Level__c IN ('A','B')"
    )
