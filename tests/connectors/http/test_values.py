"""JSON values become record text the same way for every API."""

from __future__ import annotations

import pytest

from microcred_sync.connectors.http.session import mask_url, shape_excerpt
from microcred_sync.connectors.http.values import Flattener, odata_text, workday_text


def test_numbers_booleans_nulls_objects_and_lists() -> None:
    fields = Flattener().flatten(
        {
            "id": 417,
            "zip": "00417",
            "score": 2.50,
            "whole": 3.0,
            "big": 12345678901234567890,
            "on": False,
            "gone": None,
            "manager": {"value": "E-05000", "$ref": None},
            "empty": {},
            "groups": ["a", None, 3],
            "roles": [{"id": "R1", "tags": ["x", "y"]}, {"id": "R2"}],
        }
    )
    assert fields == {
        "id": "417",
        "zip": "00417",
        "score": "2.5",
        "whole": "3",
        "big": "12345678901234567890",
        "on": "false",
        "gone": None,
        "manager.value": "E-05000",
        "manager.$ref": None,
        "empty": None,
        "groups": ("a", "3"),
        "roles.id": ("R1", "R2"),
        "roles.tags": ("x", "y"),
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Date(1699920000000)/", "2023-11-14"),
        ("/Date(1700000000000)/", "2023-11-14T22:13:20Z"),
        ("/Date(1700000000000+0000)/", "2023-11-14T22:13:20Z"),
        ("/Date(1700000000123+0060)/", "2023-11-14T22:13:20.123Z"),
        ("/Date(-86400000)/", "1969-12-31"),
        ("Dated text", "Dated text"),
    ],
)
def test_odata_dates(text: str, expected: str) -> None:
    assert odata_text(text) == expected


def test_an_odata_date_that_cannot_be_read_is_a_problem() -> None:
    with pytest.raises(ValueError, match="not an OData"):
        odata_text("/Date(soon)/")


def test_odata_leaves_out_metadata_and_deferred_links() -> None:
    fields = Flattener("odata").flatten(
        {
            "__metadata": {"uri": "x"},
            "userId": "u1",
            "manager": {"__deferred": {"uri": "y"}},
            "empInfo": {"results": [{"personIdExternal": "P1"}]},
        }
    )
    assert fields == {"userId": "u1", "empInfo.personIdExternal": ("P1",)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-03-04-08:00", "2019-03-04"),
        ("2019-03-04Z", "2019-03-04"),
        ("2019-03-04", "2019-03-04"),
        ("2019-03-04T10:00:00.000-08:00", "2019-03-04T18:00:00Z"),
        ("2019-03-04T10:00:00+01:00", "2019-03-04T09:00:00Z"),
        ("00417", "00417"),
        ("1", "1"),
    ],
)
def test_workday_dates(text: str, expected: str) -> None:
    assert workday_text(text) == expected


def test_credential_query_values_are_masked() -> None:
    url = "https://x.example.com/v1?apikey=abc&page=2&client_secret=s&hapikey=k"
    assert mask_url(url, frozenset({"hapikey"})) == (
        "https://x.example.com/v1?apikey=[secure]&page=2&client_secret=[secure]"
        "&hapikey=[secure]"
    )


def test_a_body_excerpt_shows_keys_not_values() -> None:
    body = b'{"employees": [{"id": "7", "workEmail": "dana@example.com", "n": 3}, {"na'
    assert (
        shape_excerpt(body)
        == '{"employees": [{"id": "…", "workEmail": "…", "n": 3}, {"na'
    )
