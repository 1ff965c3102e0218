"""JSON values as record text, the same way for every API.

``flatten`` turns one JSON object into a record's fields:

- text stays text; ``true`` / ``false`` become ``"true"`` / ``"false"``; a whole
  number ``"12"`` (never ``"12.0"``), another the shortest text that reads back the
  same (``"2.5"``); ``null`` is ``None``;
- a nested object gives dotted names (``{"Location": {"id": "L1"}}`` ->
  ``Location.id``); an empty one ``None`` under its own name;
- a list of values is a tuple of texts (nulls left out); a list of objects gives
  one tuple per dotted name (``Groups.id`` -> ``("G1", "G2")``).

``values: workday`` and ``values: odata`` read those vendors' date and time
spellings on the way (see ``presets``); ``ValueError`` for a value that looks like
one but cannot be read, which quarantines that record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import orjson

from ..base import FieldValue

#: A text value as the record holds it, or ``None``.
TextReader = Callable[[str], str]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

#: OData v2 JSON (verbose): ``/Date(<ms since 1970 UTC>[+-<offset minutes>])/``.
_ODATA_DATE: Final = re.compile(r"^/Date\((-?\d+)(?:([+-])(\d{4}))?\)/$")

#: Workday's xs:date with a zone (``2019-03-04-08:00``, ``2019-03-04Z``).
_WD_DATE: Final = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[+-]\d{2}:\d{2}|Z)$")

#: Workday's xs:dateTime with a zone (``2019-03-04T10:00:00.000-08:00``).
_WD_TIME: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$"
)


def number_text(value: float | int) -> str:
    """One spelling of a JSON number."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def utc_text(moment: datetime) -> str:
    """A time as ISO 8601 UTC to the second, milliseconds when it has some."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return (
            moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(text: str) -> str:
    return text


def workday_text(text: str) -> str:
    """A Workday date with a zone as the date; a time with a zone in UTC."""
    if len(text) < 11 or not text[0].isdigit():
        return text
    match = _WD_DATE.match(text)
    if match is not None:
        return date.fromisoformat(match.group(1)).isoformat()
    if _WD_TIME.match(text):
        return utc_text(datetime.fromisoformat(text))
    return text


def odata_text(text: str) -> str:
    """An OData v2 ``/Date(...)/`` as a date (Edm.DateTime at midnight) or a UTC
    time; any other text as it is."""
    if not text.startswith("/Date("):
        return text
    match = _ODATA_DATE.match(text)
    if match is None:
        raise ValueError(f"{text[:40]!r} is not an OData /Date(...)/ value")
    moment = _EPOCH + timedelta(milliseconds=int(match.group(1)))
    if match.group(2) is None and moment.time() == datetime.min.time():
        return moment.date().isoformat()
    return utc_text(moment)


_READERS: Final[dict[str, TextReader]] = {
    "plain": _plain,
    "workday": workday_text,
    "odata": odata_text,
}


class Flattener:
    """Turns JSON objects into record fields, reading texts with one vendor's
    reader; ``odata`` also leaves out ``__metadata`` and ``__deferred`` links."""

    def __init__(self, values: str = "plain") -> None:
        self.read_text = _READERS[values]
        self.odata = values == "odata"

    def flatten(self, source: Mapping[str, Any]) -> dict[str, FieldValue]:
        """The fields of one record (see the module docstring)."""
        fields: dict[str, FieldValue] = {}
        self._object(source, "", fields)
        return fields

    def _object(
        self, source: Mapping[str, Any], prefix: str, fields: dict[str, FieldValue]
    ) -> None:
        # The common types first, inline: this runs once per value of a read.
        read_text = self.read_text
        plain = read_text is _plain
        for key, value in source.items():
            name = prefix + key if prefix else key
            kind = type(value)
            if kind is str:
                fields[name] = value if plain else read_text(value)
            elif kind is int:
                fields[name] = str(value)
            elif value is None:
                fields[name] = None
            elif kind is bool:
                fields[name] = "true" if value else "false"
            elif kind is float:
                fields[name] = (
                    str(int(value))
                    if value.is_integer() and abs(value) < 1e15
                    else repr(value)
                )
            elif kind is list:
                self._list(value, name, fields)
            elif kind is dict:
                if self.odata:
                    if key != "__metadata":
                        self._odata_nested(value, name, fields)
                elif value:
                    self._object(value, name + ".", fields)
                else:
                    fields[name] = None
            else:
                fields[name] = self._scalar(value)

    def _odata_nested(
        self, value: dict[str, Any], dotted: str, fields: dict[str, FieldValue]
    ) -> None:
        if "__deferred" in value:
            return
        if isinstance(value.get("results"), list):
            self._list(value["results"], dotted, fields)
        elif value:
            self._object(value, dotted + ".", fields)
        else:
            fields[dotted] = None

    def _list(
        self, values: list[Any], dotted: str, fields: dict[str, FieldValue]
    ) -> None:
        if self.read_text is not _plain:
            # Texts are read only once the list is known to hold no object.
            if any(isinstance(value, dict) for value in values):
                self._objects(values, dotted, fields)
            else:
                fields[dotted] = tuple(
                    self._scalar(value) for value in values if value is not None
                )
            return
        texts: list[str] = []
        for value in values:
            kind = type(value)
            if kind is str:
                texts.append(value)
            elif kind is dict:
                self._objects(values, dotted, fields)
                return
            elif value is not None:
                texts.append(self._scalar(value))
        fields[dotted] = tuple(texts)

    def _objects(
        self, values: list[Any], dotted: str, fields: dict[str, FieldValue]
    ) -> None:
        # A list of objects: one tuple per dotted name, in the objects' order.
        parts: dict[str, list[str]] = {}
        for value in values:
            if not isinstance(value, dict):
                continue
            for name, text in self.flatten(value).items():
                column = parts.setdefault(f"{dotted}.{name}", [])
                if isinstance(text, tuple):
                    column.extend(text)
                elif text is not None:
                    column.append(text)
        for name, column in parts.items():
            fields[name] = tuple(column)

    def _scalar(self, value: Any) -> str:
        if isinstance(value, str):
            return self.read_text(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return number_text(value)
        if isinstance(value, list | dict):
            # A list within a list: kept as its JSON text rather than lost.
            return orjson.dumps(value).decode()
        return str(value)


def parse_moment(text: str) -> datetime | None:
    """A record's time or date text as an aware time, or ``None`` if it is none."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
