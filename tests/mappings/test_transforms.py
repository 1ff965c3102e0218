"""The named transforms, one by one, and their argument checks."""

from __future__ import annotations

from datetime import date

import pytest

from microcred_sync.errors import RecordRejected
from microcred_sync.mappings import transforms
from microcred_sync.mappings.transforms import (
    TRANSFORMS,
    collapse_spaces,
    lower,
    map_value,
    parse_date,
    split_name,
    strip_prefix,
    trim,
    upper,
    zero_pad,
)

FORMATS = ("%d-%m-%Y", "%m/%d/%Y")


def test_trim_removes_surrounding_whitespace() -> None:
    """trim removes spaces, tabs and newlines at both ends only."""
    assert trim(" \tE-04412 \n", None) == "E-04412"
    assert trim("Dana  Okafor", None) == "Dana  Okafor"


def test_lower_and_upper_change_case() -> None:
    """lower and upper change the case of every letter."""
    assert lower("Dana.Okafor@Example.COM", None) == "dana.okafor@example.com"
    assert upper("e-04412", None) == "E-04412"


def test_collapse_spaces_joins_runs_of_whitespace() -> None:
    """collapse_spaces leaves one space between words and none at the ends."""
    assert (
        collapse_spaces("  Senior \t  Data   Analyst ", None) == "Senior Data Analyst"
    )


@pytest.mark.parametrize(
    ("full_name", "given", "family"),
    [
        ("Dana Okafor", "Dana", "Okafor"),
        ("Okafor, Dana", "Dana", "Okafor"),
        ("Brandt,Kai", "Kai", "Brandt"),
        ("Mary Ann van der Berg", "Mary Ann", "van der Berg"),
        ("Ludwig van Beethoven", "Ludwig", "van Beethoven"),
        ("Anna De La Cruz", "Anna", "De La Cruz"),
        ("Van Morrison", "Van", "Morrison"),
        ("Mary Ann Smith", "Mary Ann", "Smith"),
        ("  Dana   Okafor  ", "Dana", "Okafor"),
        ("Dana", "Dana", ""),
        ("van der Berg, Mary Ann", "Mary Ann", "van der Berg"),
    ],
)
def test_split_name_cases(full_name: str, given: str, family: str) -> None:
    """split_name: comma form, last word as family, particles join the family."""
    assert split_name(full_name, "given") == given
    assert split_name(full_name, "family") == family


def test_parse_date_reads_each_configured_format() -> None:
    """parse_date reads %d-%m-%Y and %m/%d/%Y, trying the formats in order."""
    assert parse_date("05-03-2024", FORMATS) == date(2024, 3, 5)
    assert parse_date("03/05/2024", FORMATS) == date(2024, 3, 5)


def test_parse_date_always_reads_iso_8601() -> None:
    """An ISO 8601 date is read even when no format lists it."""
    assert parse_date("2024-03-05", ()) == date(2024, 3, 5)
    assert parse_date("2024-03-05", FORMATS) == date(2024, 3, 5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-29 01:30:00", date(2026, 3, 29)),
        ("2026-03-29T00:30:00.1234567", date(2026, 3, 29)),
        ("2026-03-29T02:30:00+02:00", date(2026, 3, 29)),
        ("2026-03-28T23:30:00Z", date(2026, 3, 28)),
    ],
)
def test_parse_date_takes_the_date_of_a_datetime(text: str, expected: date) -> None:
    """XA-03 inputs: naive, 7-digit fraction and offset datetimes give their date."""
    assert parse_date(text, FORMATS) == expected


@pytest.mark.parametrize("text", ["31-02-2024", "2024/13/01", "next monday", "05-03"])
def test_parse_date_rejects_a_bad_value_naming_the_formats(text: str) -> None:
    """An unparseable date is rejected with the formats tried, not the value."""
    with pytest.raises(RecordRejected) as caught:
        parse_date(text, FORMATS)
    assert "ISO 8601, %d-%m-%Y, %m/%d/%Y" in caught.value.reason
    assert text not in caught.value.reason


def test_map_looks_up_the_casefolded_value() -> None:
    """map finds 'On Leave' under the key 'on leave' (keys are casefolded)."""
    table = transforms.map_arg({"Active": "active", "on leave": "active"})
    assert map_value("ON LEAVE", table) == "active"
    assert map_value("active", table) == "active"


def test_map_rejects_an_unlisted_value() -> None:
    """A value the map does not list is rejected without repeating it."""
    table = transforms.map_arg({"active": "active"})
    with pytest.raises(RecordRejected) as caught:
        map_value("Retired", table)
    assert "Retired" not in caught.value.reason


def test_map_fallback_catches_unlisted_values() -> None:
    """A '*' entry is used for every value the map does not list."""
    table = transforms.map_arg({"terminated": "suspended", "*": "active"})
    assert map_value("Retired", table) == "active"
    assert map_value("Terminated", table) == "suspended"


def test_zero_pad_pads_digits_only() -> None:
    """zero_pad restores lost leading zeros and leaves other ids alone (CSV-04)."""
    assert zero_pad("417", 5) == "00417"
    assert zero_pad("00417", 5) == "00417"
    assert zero_pad("1234567", 5) == "1234567"
    assert zero_pad("E-0001", 8) == "E-0001"


def test_strip_prefix_removes_a_leading_prefix() -> None:
    """strip_prefix removes the prefix if present, case-sensitively."""
    assert strip_prefix("EMP-04412", "EMP-") == "04412"
    assert strip_prefix("emp-04412", "EMP-") == "emp-04412"


@pytest.mark.parametrize(
    ("name", "arg"),
    [
        ("trim", "x"),
        ("split_name", "middle"),
        ("parse_date", "%d-%m"),
        ("parse_date", []),
        ("parse_date", [5]),
        ("map", {}),
        ("map", {True: "active"}),
        ("map", {"a": "x", "A": "y"}),
        ("zero_pad", 0),
        ("zero_pad", "6"),
        ("zero_pad", True),
        ("strip_prefix", ""),
    ],
)
def test_bad_arguments_are_refused(name: str, arg: object) -> None:
    """Each argument checker refuses a wrong argument with a ValueError."""
    with pytest.raises(ValueError):
        TRANSFORMS[name].check_arg(arg)


def test_unknown_transform_names_the_known_ones() -> None:
    """An unknown name is refused, listing the transforms that exist."""
    with pytest.raises(ValueError, match="known: collapse_spaces"):
        transforms.lookup("titlecase")


def test_default_as_a_transform_points_to_on_empty() -> None:
    """'default' is not a transform; the error says to use on_empty: default."""
    with pytest.raises(ValueError, match="on_empty: default"):
        transforms.lookup("default")


def test_only_parse_date_gives_a_date() -> None:
    """parse_date is the one transform whose result is not text."""
    assert {name for name, t in TRANSFORMS.items() if t.gives_date} == {"parse_date"}
