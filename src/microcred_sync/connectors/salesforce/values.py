"""Salesforce values as record text, and record values as Salesforce wants them.

Reading (REST JSON and Bulk API 2.0 CSV give the same text, SF-05), by the field's
type from describe():

- ``date``: ``YYYY-MM-DD`` as sent; ``datetime``: ISO 8601 in UTC to the second,
  ``2011-07-07T00:37:00Z`` (Salesforce sends ``...000+0000`` or ``...000Z``);
- ``boolean``: ``true`` / ``false``; numbers: ``23`` for whole ones, else the
  shortest text that reads back the same; ``multipicklist``: a list of texts;
- null, and the empty cell Bulk sends for it: ``None``.

Writing: a ``date`` field gets ``YYYY-MM-DD``, a ``datetime`` field ISO 8601 in
UTC with ``Z``; a time without an offset is refused (``ValueError``), never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Final

from ..base import FieldValue

_STAMP: Final = re.compile(r"\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-6]\d[.+Z]")

#: Field types whose values are numbers.
NUMBER_TYPES: Final = frozenset({"double", "currency", "percent", "int", "long"})


def datetime_text(text: str) -> str:
    """A Salesforce datetime as ISO 8601 UTC text; ``ValueError`` if it is not one
    or has no offset."""
    # What Salesforce sends is UTC already (``...000+0000``, Bulk: ``...000Z``).
    if len(text) in (24, 28) and text.endswith(("+0000", "Z")) and _STAMP.match(text):
        return text[:19] + "Z"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("a datetime without an offset")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def number_text(value: float | int | str) -> str:
    """One spelling of a number, whether JSON or CSV sent it."""
    number = float(value)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def read_value(value: Any, field_type: str | None) -> FieldValue:
    """One value as record text, by its describe() type (``None`` if unknown)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if field_type == "datetime":
        return datetime_text(str(value))
    if field_type == "date":
        return date.fromisoformat(str(value)).isoformat()
    if field_type == "multipicklist":
        return tuple(part for part in str(value).split(";") if part)
    if field_type in NUMBER_TYPES or isinstance(value, int | float):
        return number_text(value)
    if isinstance(value, Mapping):
        raise ValueError("a relation where a value was expected")
    return str(value)


Reader = Callable[[Any], FieldValue]


def _text(value: Any) -> FieldValue:
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    return read_value(value, None)


def reader_for(field_type: str | None) -> Reader:
    """``read_value`` for one field type, fast for the text types."""
    if field_type in ("id", "string", "email", "picklist", "phone", "url", "textarea"):
        return _text
    return lambda value: read_value(value, field_type)


def path_value(record: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at a relation path (``("Account", "Name")``) of a REST record;
    ``None`` when a relation on the way is null. Keys are matched without regard
    to case when the exact spelling is not there (SOQL is not case-sensitive)."""
    current: Any = record
    for part in path:
        if current is None:
            return None
        if part in current:
            current = current[part]
            continue
        folded = part.casefold()
        current = next(
            (value for key, value in current.items() if key.casefold() == folded),
            None,
        )
    return current


def write_value(value: Any, field_type: str | None) -> Any:
    """A record value as the field of ``field_type`` takes it (SF-05)."""
    if value is None or field_type not in ("date", "datetime"):
        return value
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        if field_type == "date":
            return value.isoformat()
        raise ValueError("a date-only value for a datetime field")
    else:
        text = str(value)
        if field_type == "date" and len(text) == 10:
            return date.fromisoformat(text).isoformat()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO 8601 date or time") from None
        if len(text) == 10 and field_type == "datetime":
            raise ValueError("a date-only value for a datetime field")
    if moment.tzinfo is None:
        raise ValueError("a time without a time zone offset is ambiguous")
    if field_type == "date":
        return moment.date().isoformat()
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
