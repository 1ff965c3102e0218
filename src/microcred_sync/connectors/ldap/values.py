"""Directory values as record text: identifiers, times, and everything else.

Every converter takes the raw bytes the server sent for one value and returns the
one canonical text form microcred-sync keeps, so that a key read today matches the
key read last year and other tools' spelling of it:

- ``objectGUID``: ``{7d3f7bd6-820e-403f-85ea-1c913ab7a15e}``; Active Directory
  stores the first three fields little-endian (LD-03).
- ``objectSid``: ``S-1-5-21-...``, sub-authorities unsigned (LD-03).
- Windows file times (``accountExpires``, ``pwdLastSet``, ...), 100 ns ticks since
  1601: ISO 8601 in UTC (``2026-03-05T09:30:00Z``); ``0`` and the largest 64-bit
  value mean "never" and become ``None``.
- Generalized time (``whenChanged``, ``modifyTimestamp``, ...): ISO 8601 in UTC.
- Anything else: UTF-8 text (NFC); a value that is not UTF-8 (a photo, a
  certificate) is kept as base64 rather than mangled.

A value that cannot be read as its syntax raises ``ValueError``; the source turns
that into a quarantined record, naming the attribute, never the value.
"""

from __future__ import annotations

import base64
import re
import unicodedata
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

#: A Windows file time counts 100-nanosecond ticks from this moment.
FILETIME_EPOCH: Final = datetime(1601, 1, 1, tzinfo=UTC)

#: ``accountExpires`` and friends use both of these for "never".
FILETIME_NEVER: Final = frozenset({0, 0x7FFFFFFFFFFFFFFF})

#: Attributes Active Directory keeps as file times (Large Integer syntax).
FILETIME_ATTRIBUTES: Final = frozenset(
    name.casefold()
    for name in (
        "accountExpires",
        "pwdLastSet",
        "lastLogon",
        "lastLogonTimestamp",
        "lastLogoff",
        "badPasswordTime",
        "lockoutTime",
    )
)

#: Attributes of Generalized Time syntax in the usual schemas (RFC 4512, AD).
GENERALIZED_TIME_ATTRIBUTES: Final = frozenset(
    name.casefold()
    for name in (
        "whenChanged",
        "whenCreated",
        "modifyTimestamp",
        "createTimestamp",
        "pwdChangedTime",
        "pwdAccountLockedTime",
        "dSCorePropagationData",
    )
)

#: YYYYMMDDHH[MM[SS]][(.|,)fraction](Z|+HHMM|-HHMM), RFC 4517 section 3.3.13.
_GENERALIZED_TIME: Final = re.compile(
    r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})?(\d{2})?(?:[.,](\d+))?(Z|[+-]\d{2}(?:\d{2})?)"
)

Converter = Callable[[bytes], "str | None"]


def guid_text(raw: bytes) -> str:
    """An ``objectGUID`` in its canonical form, braces included."""
    if len(raw) != 16:
        raise ValueError(f"a GUID has 16 bytes, not {len(raw)}")
    return "{" + str(uuid.UUID(bytes_le=raw)) + "}"


def guid_bytes(text: str) -> bytes:
    """The bytes a GUID is stored as, for a filter (``escape_bytes`` them)."""
    return uuid.UUID(text.strip("{}")).bytes_le


def sid_text(raw: bytes) -> str:
    """An ``objectSid``: revision, 48-bit big-endian authority, then unsigned
    little-endian 32-bit sub-authorities (MS-DTYP section 2.4.2.2)."""
    if len(raw) < 8:
        raise ValueError("a SID has at least 8 bytes")
    revision, count = raw[0], raw[1]
    if len(raw) != 8 + 4 * count:
        raise ValueError(
            f"a SID with {count} sub-authorities has {8 + 4 * count} bytes"
        )
    authority = int.from_bytes(raw[2:8], "big")
    subs = [
        int.from_bytes(raw[8 + 4 * index : 12 + 4 * index], "little")
        for index in range(count)
    ]
    return "-".join(["S", str(revision), str(authority), *map(str, subs)])


def iso_utc(moment: datetime) -> str:
    """A moment as ISO 8601 in UTC, to the second, with ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def filetime(raw: bytes) -> datetime | None:
    """A Windows file time as a UTC datetime; ``None`` for never."""
    ticks = int(raw.decode("ascii"))
    if ticks in FILETIME_NEVER:
        return None
    if ticks < 0:
        raise ValueError("a file time is not negative")
    try:
        return FILETIME_EPOCH + timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None  # past year 9999: never, for any practical purpose


def filetime_text(raw: bytes) -> str | None:
    """A Windows file time as ISO 8601 UTC text; ``None`` for never."""
    moment = filetime(raw)
    return None if moment is None else iso_utc(moment)


def generalized_time(raw: bytes) -> datetime:
    """A Generalized Time value as a UTC datetime (fractions of a second dropped)."""
    match = _GENERALIZED_TIME.fullmatch(raw.decode("ascii"))
    if match is None:
        raise ValueError("not a generalized time")
    year, month, day, hour, minute, second, _fraction, zone = match.groups()
    moment = datetime(
        int(year), int(month), int(day), int(hour), int(minute or 0), int(second or 0)
    )
    if zone == "Z":
        return moment.replace(tzinfo=UTC)
    sign = 1 if zone[0] == "+" else -1
    offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5] or 0))
    return (moment - sign * offset).replace(tzinfo=UTC)


def generalized_time_text(raw: bytes) -> str:
    """A Generalized Time value as ISO 8601 UTC text."""
    return iso_utc(generalized_time(raw))


def plain_text(raw: bytes) -> str:
    """UTF-8 text in one Unicode spelling (NFC); base64 when it is not text."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii")
    return text if text.isascii() else unicodedata.normalize("NFC", text)


_BY_NAME: Final[dict[str, Converter]] = {
    "objectguid": guid_text,
    "objectsid": sid_text,
    **{name: filetime_text for name in FILETIME_ATTRIBUTES},
    **{name: generalized_time_text for name in GENERALIZED_TIME_ATTRIBUTES},
}


def converter_for(attribute: str) -> Converter:
    """The converter for an attribute, by its name (any case)."""
    return _BY_NAME.get(attribute.casefold(), plain_text)
