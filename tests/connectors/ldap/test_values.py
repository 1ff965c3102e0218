"""Directory values as record text: the LD-03 vectors, file times, generalized time."""

from __future__ import annotations

import pytest
from ldap3.utils.conv import escape_bytes

from microcred_sync.connectors.ldap.values import (
    converter_for,
    filetime_text,
    generalized_time_text,
    guid_bytes,
    guid_text,
    plain_text,
    sid_text,
)

# LD-03: the bytes of an objectGUID and the string other tools show for it.
GUID_BYTES = bytes.fromhex("d67b3f7d0e823f4085ea1c913ab7a15e")
GUID_TEXT = "{7d3f7bd6-820e-403f-85ea-1c913ab7a15e}"


def test_guid_reads_the_first_three_fields_little_endian() -> None:
    """LD-03: the known vector decodes to the string AD tools show."""
    assert guid_text(GUID_BYTES) == GUID_TEXT
    assert converter_for("objectGUID")(GUID_BYTES) == GUID_TEXT


def test_guid_round_trips_into_a_filter_value() -> None:
    """LD-03: the canonical string goes back to the stored bytes for a filter."""
    assert guid_bytes(GUID_TEXT) == GUID_BYTES
    assert escape_bytes(guid_bytes(GUID_TEXT)).startswith("\\d6\\7b\\3f\\7d")


def test_sid_sub_authorities_are_unsigned() -> None:
    """LD-03: the sub-authority bytes F2 E5 1A 91 read as an unsigned
    little-endian number (0x911AE5F2), never as a negative one."""
    sub_authorities = [21, 0x12345678, 0x911AE5F2, 1104]
    raw = bytes([1, len(sub_authorities)]) + (5).to_bytes(6, "big")
    raw += b"".join(value.to_bytes(4, "little") for value in sub_authorities)
    assert raw[16:20] == bytes([0xF2, 0xE5, 0x1A, 0x91])
    assert sid_text(raw) == "S-1-5-21-305419896-2434459122-1104"


def test_sid_of_the_wrong_length_is_refused() -> None:
    """A truncated SID is an error, not a shorter SID."""
    with pytest.raises(ValueError, match="sub-authorities"):
        sid_text(bytes([1, 2]) + (5).to_bytes(6, "big") + b"\x00\x00\x00\x00")


@pytest.mark.parametrize("never", [b"0", b"9223372036854775807"])
def test_account_expires_never_is_none(never: bytes) -> None:
    """0 and the largest 64-bit value both mean the account never expires."""
    assert filetime_text(never) is None


def test_file_time_is_utc() -> None:
    """2020-01-01T00:00:00Z as a Windows file time."""
    assert filetime_text(b"132223104000000000") == "2020-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"20260305093000Z", "2026-03-05T09:30:00Z"),
        (b"20260305093000.0Z", "2026-03-05T09:30:00Z"),
        (b"20260305103000+0100", "2026-03-05T09:30:00Z"),
        (b"2026030509Z", "2026-03-05T09:00:00Z"),
    ],
)
def test_generalized_time_is_utc(raw: bytes, text: str) -> None:
    """whenChanged and modifyTimestamp, in any zone, become one UTC text form."""
    assert generalized_time_text(raw) == text
    assert converter_for("whenChanged")(raw) == text


def test_text_is_nfc_and_binary_is_base64() -> None:
    """é written as e + U+0301 reads as é; a photo is kept, not mangled."""
    assert plain_text("E\u0301quipe".encode()) == "Équipe"
    assert plain_text(b"\xff\xd8\xff") == "/9j/"
