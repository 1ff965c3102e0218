"""Answers that are not what the connector expects fail the read, with the URL
(credentials masked) and a short excerpt; none is ever an empty roster."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from microcred_sync.connectors.http import HttpSource
from microcred_sync.errors import ReadIncomplete, SourceUnavailable

from .conftest import QUERY_KEY_AUTH, read_all
from .vendors import API_KEY, CLIENT_ID, WORKDAY_PATH, WORKDAY_USER, Fault, Person

WORKDAY = {
    "preset": "workday_raas",
    "key": "Employee_ID",
    "auth": {
        "type": "basic",
        "username": WORKDAY_USER,
        "password_secret": "WD_PASSWORD",
    },
}
OAUTH = {
    "type": "oauth_client_credentials",
    "client_id": CLIENT_ID,
    "client_secret_secret": "CLIENT_SECRET",
    "scope": "roster.read",
}


def _oauth(connector) -> dict[str, str]:
    """Client credentials with the vendor server's own token endpoint."""
    return {**OAUTH, "token_url": connector("/oauth/token", records="x", key="x").url}


@pytest.fixture
def people(vendor):
    vendor.people.extend(Person(n) for n in range(1, 4))
    return vendor


def test_429_with_retry_after_is_waited_for_then_read(people, connector) -> None:
    """HT-01: a 429 then a 503 with Retry-After are retried after the wait asked."""
    people.faults.append(Fault("status", WORKDAY_PATH, 429, retry_after="1"))
    people.faults.append(
        Fault("status", WORKDAY_PATH, 503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    )
    started = time.monotonic()
    records = read_all(connector(WORKDAY_PATH, **WORKDAY))
    assert len(records) == 3 and len(people.calls) == 3
    assert time.monotonic() - started >= 1.0


def test_a_retry_after_beyond_the_cap_stops_at_once(people, connector) -> None:
    """A Retry-After of a day is not waited for inside the run."""
    people.faults.append(Fault("status", WORKDAY_PATH, 429, retry_after="86400"))
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"Retry-After 86400 s.*later run"):
        read_all(connector(WORKDAY_PATH, **WORKDAY))
    assert time.monotonic() - started < 2 and len(people.calls) == 1


def test_500_is_retried_then_fails_the_read(people, connector) -> None:
    """Three 500s in a row (max_attempts 3): the read fails with the status."""
    for _ in range(3):
        people.faults.append(Fault("status", WORKDAY_PATH, 500))
    with pytest.raises(SourceUnavailable, match=r"HTTP 500 from GET https://127"):
        read_all(connector(WORKDAY_PATH, **WORKDAY))
    assert len(people.calls) == 3


def test_a_body_cut_short_is_read_again(people, connector) -> None:
    """Fewer bytes than Content-Length: retried, then the whole report is read."""
    people.faults.append(Fault("truncated", WORKDAY_PATH))
    assert len(read_all(connector(WORKDAY_PATH, **WORKDAY))) == 3
    assert len(people.calls) == 2


def test_a_body_cut_short_every_time_fails_the_read(people, connector) -> None:
    for _ in range(3):
        people.faults.append(Fault("truncated", WORKDAY_PATH))
    with pytest.raises(SourceUnavailable, match="cut short"):
        read_all(connector(WORKDAY_PATH, **WORKDAY))


def test_json_that_ends_early_fails_with_its_shape_not_its_data(
    people, connector
) -> None:
    """No Content-Length, the connection closes mid-value: invalid JSON, shown
    with its keys and without the people's values."""
    people.faults.append(Fault("not_json", WORKDAY_PATH))
    with pytest.raises(SourceUnavailable, match="not valid JSON") as caught:
        read_all(connector(WORKDAY_PATH, **WORKDAY))
    message = str(caught.value)
    assert '"Employee_ID": "…"' in message and "00001" not in message
    assert "Gi" not in message.split("cut short?")[1]


def test_an_html_sign_in_page_fails_with_the_masked_url(vendor, connector) -> None:
    """A 200 HTML page (a sign-in page) is no roster; the API key in the query
    is masked in the error."""
    vendor.faults.append(Fault("html", "/generic/page"))
    config = connector(
        "/generic/page",
        auth=QUERY_KEY_AUTH,
        records="users",
        key="id",
        pagination={"style": "page"},
    )
    with pytest.raises(SourceUnavailable, match="HTML page") as caught:
        read_all(config)
    message = str(caught.value)
    assert "api_key=[secure]" in message and API_KEY not in message
    assert "Sign In" in message


def test_an_html_page_labelled_json_is_still_an_html_page(vendor, connector) -> None:
    """The body is looked at, not only the content type: an HTML page sent as
    application/json (white space first) fails as an HTML page, quoted."""
    vendor.faults.append(Fault("html_as_json", "/generic/page"))
    config = connector(
        "/generic/page", records="users", key="id", pagination={"style": "page"}
    )
    with pytest.raises(SourceUnavailable, match="HTML page") as caught:
        read_all(config)
    assert "Session expired" in str(caught.value)


def test_missing_records_path_fails_naming_the_keys(people, connector) -> None:
    """records pointing nowhere: the answer's keys are named, nothing is read."""
    config = connector(WORKDAY_PATH, **{**WORKDAY, "records": "Report_Entries"})
    with pytest.raises(
        SourceUnavailable, match=r"no records at 'Report_Entries'.*Report_Entry"
    ):
        read_all(config)


def test_a_wrong_content_type_fails_the_read(people, connector) -> None:
    """Workday answers XML when format=json is not asked: not taken for JSON."""
    config = connector(WORKDAY_PATH, **{**WORKDAY, "params": {"format": "xml"}})
    with pytest.raises(SourceUnavailable, match="'application/xml' where JSON"):
        read_all(config)


def test_a_failure_after_the_first_page_is_an_incomplete_read(
    vendor, connector
) -> None:
    """Page 2 answers 500 every time: the first page's records were yielded, the
    read says it is incomplete."""
    config = connector(
        "/generic/cursor",
        auth={"type": "api_key", "key_secret": "GENERIC_KEY"},
        records="data",
        key="id",
        pagination={"style": "cursor", "path": "meta.next_cursor", "param": "after"},
    )
    for _ in range(3):
        vendor.faults.append(Fault("status", "/generic/cursor?after=100", 502))
    source = HttpSource("generic", Path("."), config)
    seen = []
    reader = source.read()
    with pytest.raises(ReadIncomplete, match=r"HTTP 502.*after 100 records.*nobody"):
        seen.extend(reader)
    assert len(seen) == 100


def test_a_stalled_answer_times_out(people, connector) -> None:
    """HT-03: headers then nothing: the read timeout ends the read."""
    people.faults.append(Fault("stall", WORKDAY_PATH))
    config = connector(
        WORKDAY_PATH,
        **WORKDAY,
        timeouts={"connect": 1, "read": 0.5},
        retry={"max_attempts": 1},
    )
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=r"no answer .* within 0\.5 s"):
        read_all(config)
    assert time.monotonic() - started < 2.5


def test_oauth_token_is_cached_and_refreshed_once_after_401(vendor, connector) -> None:
    """One token for every page; when the server forgets it (expired), a 401 asks
    for a new one once and the read goes on."""
    config = connector(
        "/generic/oauth",
        auth=_oauth(connector),
        records="items",
        key="id",
        pagination={"style": "next_link"},
    )
    source = HttpSource("oauth", Path("."), config)
    reader = source.read()
    first = [next(reader) for _ in range(100)]
    assert vendor.token_requests == 1
    vendor.tokens.clear()  # every token the server gave has expired
    rest = list(reader)
    assert len(first) + len(rest) == 250
    assert vendor.token_requests == 2
    assert [path for _, path in vendor.calls].count("/oauth/token") == 2


def test_oauth_401_right_after_a_new_token_stops(vendor, connector) -> None:
    """Tokens that live 0 seconds: the second 401 stops the read, no loop."""
    vendor.token_lifetime = -1
    config = connector(
        "/generic/oauth",
        auth=_oauth(connector),
        records="items",
        key="id",
    )
    with pytest.raises(SourceUnavailable, match="401 again with a new token"):
        read_all(config)
    assert vendor.token_requests == 2


def test_a_refused_client_secret_names_the_token_endpoint(
    vendor, connector, monkeypatch
) -> None:
    monkeypatch.setenv("CLIENT_SECRET", "wrong-secret")
    config = connector(
        "/generic/oauth",
        auth=_oauth(connector),
        records="items",
        key="id",
    )
    with pytest.raises(
        SourceUnavailable, match=r"token endpoint .* 401 \(invalid_client\)"
    ) as caught:
        read_all(config)
    assert "wrong-secret" not in str(caught.value)


def test_an_unknown_ca_fails_the_tls_check(people, connector, http_tls) -> None:
    """Verification is on: a certificate from another CA is refused."""
    config = connector(WORKDAY_PATH, **WORKDAY, ca_file=str(http_tls["other_ca"]))
    with pytest.raises(SourceUnavailable, match="could not be verified; set ca_file"):
        read_all(config)


def test_turning_verification_off_warns(people, connector, caplog) -> None:
    config = connector(WORKDAY_PATH, **WORKDAY, verify_tls=False, ca_file=None)
    import urllib3

    with (
        caplog.at_level(logging.WARNING),
        pytest.warns(urllib3.exceptions.InsecureRequestWarning),
    ):
        assert len(read_all(config)) == 3
    assert "TLS certificate verification is OFF" in caplog.text


def test_records_without_a_key_or_not_objects_are_quarantined(
    vendor, connector
) -> None:
    """A bad record carries its problem; the others are read."""
    vendor.people.extend(Person(n) for n in range(1, 3))
    config = connector(WORKDAY_PATH, **{**WORKDAY, "key": "Missing_Column"})
    records = read_all(config)
    assert [r.problem for r in records] == ["no Missing_Column (the record's key)"] * 2
    assert records[0].location == "test-http:page 1 #1"
