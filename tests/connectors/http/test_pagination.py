"""Every pagination style reads every record once, and never guesses the end."""

from __future__ import annotations

import pytest

from microcred_sync.errors import ReadIncomplete

from .conftest import QUERY_KEY_AUTH, read_all

KEY_AUTH = {"type": "api_key", "key_secret": "GENERIC_KEY"}


def _ids(records) -> list[str]:
    return [record.fields["id"] for record in records]


EVERY = [f"G{n:05d}" for n in range(1, 251)]


def test_link_header_pages_relative_and_absolute(vendor, connector) -> None:
    """Link: <...>; rel="next", absolute on odd pages, relative on even ones."""
    config = connector(
        "/generic/link",
        auth=KEY_AUTH,
        records="items",
        key="id",
        pagination={"style": "next_link"},
    )
    assert _ids(read_all(config)) == EVERY
    assert len(vendor.calls) == 3


def test_cursor_pages_until_the_cursor_is_null(vendor, connector) -> None:
    """meta.next_cursor is sent back as ?after= until it is null."""
    config = connector(
        "/generic/cursor",
        auth=KEY_AUTH,
        records="data",
        key="id",
        pagination={"style": "cursor", "path": "meta.next_cursor", "param": "after"},
    )
    assert _ids(read_all(config)) == EVERY
    assert [path for _, path in vendor.calls][1] == "/generic/cursor?after=100"


def test_offset_pages_when_the_server_caps_the_limit(vendor, connector) -> None:
    """Asked for 100 a page, the server gives 40: the read goes on to the empty
    page rather than stop at the first short one (SF-01)."""
    vendor.generic_cap = 40
    config = connector(
        "/generic/offset",
        auth=KEY_AUTH,
        records="results",
        key="id",
        pagination={"style": "offset", "limit": 100},
    )
    assert _ids(read_all(config)) == EVERY
    assert len(vendor.calls) == 8  # 7 pages of up to 40, then the empty one


def test_offset_pages_end_at_the_announced_total(vendor, connector) -> None:
    """With total_path the read stops at the total, with no extra request."""
    config = connector(
        "/generic/offset_total",
        auth=KEY_AUTH,
        records="results",
        key="id",
        pagination={"style": "offset", "limit": 100, "total_path": "total"},
    )
    assert _ids(read_all(config)) == EVERY
    assert len(vendor.calls) == 3


def test_page_numbers_up_to_total_pages(vendor, connector) -> None:
    """?page=N&per_page=M from 1 to total_pages; numbers and booleans as text."""
    config = connector(
        "/generic/page",
        auth=QUERY_KEY_AUTH,
        records="users",
        key="id",
        pagination={"style": "page", "size": 60, "total_pages_path": "total_pages"},
    )
    records = read_all(config)
    assert _ids(records) == EVERY and len(vendor.calls) == 5
    assert records[0].fields == {
        "id": "G00001",
        "name": "Person 1",
        "score": "0.25",
        "on": "false",
    }
    assert records[3].fields["score"] == "1"


def test_a_link_back_to_a_page_already_read_fails_the_read(vendor, connector) -> None:
    """A server that links to the same page again ends the read as incomplete."""
    config = connector(
        "/generic/loop",
        auth=KEY_AUTH,
        records="items",
        key="id",
        pagination={"style": "next_link", "path": "next"},
    )
    with pytest.raises(ReadIncomplete, match="already read"):
        read_all(config)
    assert len(vendor.calls) == 2


def test_a_link_to_another_origin_is_not_followed(vendor, connector) -> None:
    """Credentials never go to another host: the read fails instead."""
    config = connector(
        "/generic/elsewhere",
        auth=KEY_AUTH,
        records="items",
        key="id",
        pagination={"style": "next_link", "path": "next"},
    )
    with pytest.raises(ReadIncomplete, match=r"another origin \(https://elsewhere"):
        read_all(config)
    assert len(vendor.calls) == 1


def test_max_pages_stops_a_read_that_does_not_end(vendor, connector) -> None:
    """Past max_pages the read fails rather than run on."""
    config = connector(
        "/generic/cursor",
        auth=KEY_AUTH,
        records="data",
        key="id",
        max_pages=2,
        pagination={"style": "cursor", "path": "meta.next_cursor", "param": "after"},
    )
    with pytest.raises(ReadIncomplete, match=r"max_pages \(2\).*after 200 records"):
        read_all(config)
