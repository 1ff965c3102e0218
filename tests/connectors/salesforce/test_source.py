"""The salesforce source against the emulator: pages, values, logins, failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from microcred_sync.connectors.base import Record
from microcred_sync.connectors.salesforce import SalesforceSource
from microcred_sync.errors import ConfigError, ReadIncomplete, SourceUnavailable

from . import emulator
from .conftest import connector

pytestmark = pytest.mark.usefixtures("secrets")


def _read(source: SalesforceSource) -> list[Record]:
    return list(source.read())


def _source(
    server: emulator.EmulatorServer, tls: dict[str, Path], **overrides: object
) -> SalesforceSource:
    return SalesforceSource("members", Path("."), connector(server, tls, **overrides))


def test_pages_of_1000_are_followed_to_done(server, tls_folder, org) -> None:
    """SF-01: 2,500 Contacts in pages of 1,000 are all read; relations flattened."""
    emulator.seed_members(org, 2500)
    org.faults.page_size = 1000
    records = _read(_source(server, tls_folder))
    assert len(records) == 2500
    assert len({record.fields["Id"] for record in records}) == 2500
    first = records[0].fields
    assert first["Account.Name"] == "Example Employer 2"
    assert records[9].fields["Account.Name"] is None
    queries = [path for method, path in org.calls if "/query" in path]
    assert len(queries) == 3


def test_a_page_without_its_link_ends_the_read_incomplete(
    server, tls_folder, org
) -> None:
    """SF-01 variant: done false and no nextRecordsUrl is an incomplete read."""
    emulator.seed_members(org, 500)
    org.faults.page_size = 200
    org.faults.drop_link_on_page = 2
    with pytest.raises(ReadIncomplete, match="no nextRecordsUrl after 400 of 500"):
        _read(_source(server, tls_folder))


def test_values_are_typed_as_describe_says(server, tls_folder, org) -> None:
    """SF-05: datetimes in UTC with Z, dates as sent, lists, numbers, nulls."""
    org.add(
        "Contact",
        LastName="Typed",
        Membership_Level__c="Fellow",
        Join_Date__c="2024-03-05",
        Renewed_At__c="2024-03-05T09:30:00.000+0100",
        Interests__c="ethics;audit",
        CE_Credits__c=12.0,
        Email=None,
    )
    fields = [
        "LastName",
        "Email",
        "Join_Date__c",
        "Renewed_At__c",
        "Interests__c",
        "CE_Credits__c",
    ]
    (record,) = _read(_source(server, tls_folder, roster={"fields": fields}))
    assert record.fields["Renewed_At__c"] == "2024-03-05T08:30:00Z"
    assert record.fields["Join_Date__c"] == "2024-03-05"
    assert record.fields["Interests__c"] == ("ethics", "audit")
    assert record.fields["CE_Credits__c"] == "12"
    assert record.fields["Email"] is None
    assert record.fields["SystemModstamp"].endswith("Z")


def test_bulk_and_rest_reads_give_the_same_records(server, tls_folder, org) -> None:
    """Above bulk_above, a Bulk API 2.0 job (CSV pages by locator) reads the same."""
    emulator.seed_members(org, 450)
    org.add(
        "Contact",
        LastName="Dated",
        Membership_Level__c="Fellow",
        Renewed_At__c="2024-03-05T09:30:00.000+0100",
        CE_Credits__c=2.5,
    )
    fields = [
        "FirstName",
        "LastName",
        "Email",
        "Account.Name",
        "Renewed_At__c",
        "CE_Credits__c",
        "Membership_Level__c",
    ]
    rest = _read(_source(server, tls_folder, roster={"fields": fields}))
    org.reset()
    bulk = _read(
        _source(
            server,
            tls_folder,
            roster={
                "fields": fields,
                "bulk_above": 100,
                "bulk_page_size": 200,
                "bulk_poll_seconds": 0.01,
            },
        )
    )
    assert [r.fields for r in bulk] == [r.fields for r in rest]
    assert any("/jobs/query" in path for _, path in org.calls)
    results = [path for _, path in org.calls if path.endswith("/results")]
    assert len(results) == 3


def test_values_in_the_condition_are_quoted(server, tls_folder, org) -> None:
    """A value with a quote and a backslash reaches SOQL escaped, not as syntax."""
    org.add("Contact", LastName="O'Brien \\ Sons", Membership_Level__c="Fellow")
    org.add("Contact", LastName="Other", Membership_Level__c="Fellow")
    roster = {"where": "LastName = {name}", "values": {"name": "O'Brien \\ Sons"}}
    records = _read(_source(server, tls_folder, roster=roster))
    assert [r.fields["LastName"] for r in records] == ["O'Brien \\ Sons"]


def test_a_malformed_query_says_so(server, tls_folder, org) -> None:
    """400 MALFORMED_QUERY stops the read before any record, naming the code."""
    roster = {"where": "Membership_Level__c == 'x'"}
    with pytest.raises(SourceUnavailable, match="MALFORMED_QUERY"):
        _read(_source(server, tls_folder, roster=roster))


def test_a_session_that_expires_between_pages_logs_in_once_more(
    server, tls_folder, org
) -> None:
    """SF-02: the 4th call gets INVALID_SESSION_ID; one new login, the page again."""
    emulator.seed_members(org, 500)
    org.faults.page_size = 200
    org.faults.expire_after = 3
    records = _read(_source(server, tls_folder))
    assert len(records) == 500
    assert org.logins == 2


def test_a_persistent_401_stops_after_one_new_login(server, tls_folder, org) -> None:
    """A 401 after the new login stops the run: no login loop, no RecursionError."""
    emulator.seed_members(org, 10)
    org.faults.reject_sessions = True
    with pytest.raises(SourceUnavailable, match="again right after a new login"):
        _read(_source(server, tls_folder))
    assert org.logins == 2


@pytest.mark.parametrize(
    "auth",
    [
        {
            "type": "jwt",
            "username": emulator.USERNAME,
            "consumer_key_secret": "SF_CONSUMER_KEY",
            "private_key_secret": "SF_PRIVATE_KEY",
        },
        {
            "type": "client_credentials",
            "consumer_key_secret": "SF_CONSUMER_KEY",
            "consumer_secret_secret": "SF_CONSUMER_SECRET",
        },
    ],
    ids=["jwt-bearer", "client-credentials"],
)
def test_oauth_logins(server, tls_folder, org, auth) -> None:
    """JWT bearer and client credentials log in through the token endpoint."""
    emulator.seed_members(org, 5)
    assert len(_read(_source(server, tls_folder, auth=auth))) == 5
    assert org.logins == 1


def test_a_refused_login_names_no_secret(server, tls_folder, org, monkeypatch) -> None:
    """A wrong password: one line saying the login was refused, no password in it."""
    monkeypatch.setenv("SF_PASSWORD", "wrong-password-1234")
    with pytest.raises(
        SourceUnavailable, match="login refused \\(INVALID_LOGIN"
    ) as caught:
        _read(_source(server, tls_folder))
    assert "wrong-password-1234" not in str(caught.value)
    assert emulator.SECURITY_TOKEN not in str(caught.value)


def test_a_missing_secret_is_a_config_error(
    server, tls_folder, org, monkeypatch
) -> None:
    """A secret the connector names but nobody set: a ConfigError naming it."""
    monkeypatch.delenv("SF_TOKEN")
    with pytest.raises(ConfigError, match="secret SF_TOKEN is not set"):
        _read(_source(server, tls_folder))


def test_5xx_answers_are_retried(server, tls_folder, org) -> None:
    """HT-01: a 503 with a short Retry-After, then a 500, then the answer."""
    emulator.seed_members(org, 5)
    org.faults.server_errors = [(503, "0"), (500, None)]
    assert len(_read(_source(server, tls_folder))) == 5


def test_a_retry_after_beyond_the_cap_is_not_waited_for(
    server, tls_folder, org
) -> None:
    """HT-01: Retry-After 86400 stops the read at once, saying so."""
    emulator.seed_members(org, 5)
    org.faults.server_errors = [(503, "86400")]
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="Retry-After 86400"):
        _read(_source(server, tls_folder))
    assert time.monotonic() - started < 2


def test_a_stalled_answer_times_out(server, tls_folder, org) -> None:
    """HT-03: headers then silence: the read fails within its timeouts."""
    emulator.seed_members(org, 5)
    org.faults.stall_next = 1.5
    overrides = {"timeouts": {"connect": 1, "read": 0.3}, "retry": {"max_attempts": 1}}
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"no answer within 0\.3 s"):
        _read(_source(server, tls_folder, **overrides))
    assert time.monotonic() - started < 1.5


def test_the_ca_file_is_used_whatever_requests_ca_bundle_says(
    server, tls_folder, org, monkeypatch
) -> None:
    """REQUESTS_CA_BUNDLE naming another CA does not override the connector's."""
    emulator.seed_members(org, 3)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_folder["other_ca"]))
    assert len(_read(_source(server, tls_folder))) == 3


def test_an_unknown_certificate_is_refused(server, tls_folder, org) -> None:
    """TLS is verified by default: the test CA is not trusted without ca_file."""
    with pytest.raises(
        SourceUnavailable, match="TLS certificate could not be verified"
    ):
        _read(_source(server, tls_folder, ca_file=str(tls_folder["other_ca"])))


def test_the_api_share_stops_the_read(server, tls_folder, org) -> None:
    """SF-03: past max_api_share of the org's requests, the read stops."""
    emulator.seed_members(org, 500)
    org.faults.page_size = 200
    org.api_total, org.api_used = 100, 91
    try:
        with pytest.raises(ReadIncomplete, match="used 95 of its 100 daily API"):
            _read(_source(server, tls_folder, max_api_share=0.95))
    finally:
        org.api_total = 1_000_000


def test_a_retry_after_date_beyond_the_cap_is_not_waited_for(
    server, tls_folder, org
) -> None:
    """HT-01: the HTTP-date form of Retry-After is read too."""
    emulator.seed_members(org, 5)
    org.faults.server_errors = [(503, "Wed, 21 Oct 2099 07:28:00 GMT")]
    with pytest.raises(SourceUnavailable, match="Retry-After"):
        _read(_source(server, tls_folder))


def test_no_secret_or_session_id_reaches_the_logs(
    server, tls_folder, org, caplog
) -> None:
    """Passwords, tokens and session ids stay out of every log line, DEBUG too."""
    emulator.seed_members(org, 500)
    org.faults.page_size = 200
    org.faults.expire_after = 2
    with caplog.at_level(logging.DEBUG):
        assert len(_read(_source(server, tls_folder))) == 500
    text = caplog.text
    assert text
    for secret in (emulator.PASSWORD, emulator.SECURITY_TOKEN, *org.tokens):
        assert secret not in text
    assert "member1@example-association.org" not in text


_BULK = {"bulk_above": 100, "bulk_page_size": 200, "bulk_poll_seconds": 0.01}


def _read_then(
    source: SalesforceSource, after_first: Callable[[], None]
) -> list[Record]:
    """Read, calling ``after_first`` once the first record (page 1) is in."""
    records = []
    for record in source.read():
        records.append(record)
        if len(records) == 1:
            after_first()
    return records


def test_a_session_that_expires_between_bulk_pages_fetches_the_same_page_again(
    server, tls_folder, org
) -> None:
    """SF-02 on Bulk: one new login, the same job, page 2 again by its locator;
    every Contact read once."""
    emulator.seed_members(org, 450)

    def expire() -> None:
        org.faults.expire_after = 0  # the next call, page 2's, meets a dead session

    records = _read_then(_source(server, tls_folder, roster=_BULK), expire)
    assert sorted(r.fields["Id"] for r in records) == sorted(org.records["Contact"])
    assert org.logins == 2
    assert [m for m, path in org.calls if path.endswith("/jobs/query")] == ["POST"]
    results = [path for _, path in org.calls if path.endswith("/results")]
    assert len(results) == 4  # three pages, page 2 twice


def test_a_session_rejected_again_between_bulk_pages_fails_the_read(
    server, tls_folder, org
) -> None:
    """A 401 right after the new login stops the Bulk read: incomplete, the clear
    message, no login loop."""
    emulator.seed_members(org, 450)

    def reject() -> None:
        org.faults.reject_sessions = True

    with pytest.raises(
        ReadIncomplete, match=r"again right after a new login.*after 200 records"
    ):
        _read_then(_source(server, tls_folder, roster=_BULK), reject)
    assert org.logins == 2


@pytest.mark.parametrize("state", ["Failed", "Aborted"])
def test_a_bulk_job_that_fails_fails_the_read(server, tls_folder, org, state) -> None:
    """A Bulk job that ends Failed or Aborted is a failed read, never an empty one."""
    emulator.seed_members(org, 150)
    org.faults.bulk_job_state = state
    with pytest.raises(SourceUnavailable, match=f"Bulk API job failed.*{state}"):
        _read(_source(server, tls_folder, roster=_BULK))
