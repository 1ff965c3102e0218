"""`microcred-sync results import FILE`: results a content player exported, into
the platform.

The file is CSV (a header row; SCORM run-time data in columns named ``cmi.*``) or
JSON lines (one object per line; SCORM data under ``scorm``). Each row names the
learner by the partner's source key and the program; ``kind`` is ``result`` (the
default) or ``award``. A row that cannot be read is rejected with its line and
the reason and the others are imported; importing the same file again stores
nothing twice (ids are derived from what a row describes).

Columns (CSV) or keys (JSON lines):

- ``learner`` (source key), ``program``, ``kind``;
- results: ``recorded_at`` (ISO 8601 with a UTC offset), ``activity`` (an IRI; the
  program's by default), ``completion``, ``success`` (true/false), ``score_raw``,
  ``score_min``, ``score_max``, ``score_scaled``, ``duration`` (ISO 8601);
- awards: ``issued_at`` (ISO 8601 with a UTC offset).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TextIO

import orjson

from ..changes import learner_id
from ..errors import ConfigError
from ..partners import Program
from ..platform.tables import results as results_table
from ..sqlutil import column_length
from ..statements.errors import ScormDataError
from ..statements.scorm import translate
from .records import AwardRecord, ResultRecord, Score, award_id, result_id

#: How far ahead of this machine's clock a timestamp may be (clock skew).
FUTURE_TOLERANCE = timedelta(minutes=5)

#: Rows resolved against the platform at a time.
CHUNK = 1000

_DURATION = re.compile(
    r"^P(?!$)(\d+(?:\.\d+)?Y)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?W)?(\d+(?:\.\d+)?D)?"
    r"(T(?=\d)(\d+(?:\.\d+)?H)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?S)?)?$"
)
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_KNOWN = frozenset(
    {
        "kind",
        "learner",
        "program",
        "recorded_at",
        "issued_at",
        "activity",
        "completion",
        "success",
        "score_raw",
        "score_min",
        "score_max",
        "score_scaled",
        "duration",
        "scorm",
    }
)


class RowProblem(ValueError):
    """What is wrong with one row; the message names the field."""


@dataclass
class ImportReport:
    """What an import did."""

    results: int = 0
    awards: int = 0
    #: Rows already on the platform (the same id).
    already: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)


class ResultsPlatform(Protocol):
    """What the importer needs of the platform (see ``Platform``)."""

    def enrollments_of(
        self, partner: str, learners: list[str]
    ) -> dict[str, set[str]]: ...

    def record_results(
        self, partner: str, results: list[ResultRecord], now: datetime
    ) -> int: ...

    def record_awards(
        self, partner: str, awards: list[AwardRecord], now: datetime
    ) -> int: ...


@dataclass(frozen=True)
class _Row:
    location: str
    fields: Mapping[str, Any]


def read_rows(path: Path) -> Iterator[_Row]:
    """The file's rows with where each is; raises ConfigError if it cannot be read
    at all (missing, not UTF-8, an unknown suffix)."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".ndjson", ".json"):
        raise ConfigError(
            f"{path}: results files are .csv or JSON lines (.jsonl, .ndjson)"
        )
    try:
        stream = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error.strerror}") from None
    with stream:
        try:
            if suffix == ".csv":
                yield from _csv_rows(path.name, stream)
            else:
                yield from _json_rows(path.name, stream)
        except UnicodeDecodeError as error:
            raise ConfigError(
                f"{path}: not UTF-8 text (byte {error.start} of a line)"
            ) from None


def _csv_rows(name: str, stream: TextIO) -> Iterator[_Row]:
    header = stream.readline()
    stream.seek(0)
    # Comma, or what a European spreadsheet writes: the header says which.
    counts = {mark: header.count(mark) for mark in (",", ";", "\t")}
    delimiter = max(counts, key=lambda mark: counts[mark])
    reader = csv.DictReader(stream, delimiter=delimiter, strict=True)
    line = 1
    for row in reader:
        fields: dict[str, Any] = {}
        scorm: dict[str, str] = {}
        for column, value in row.items():
            if column is None:
                fields["\0extra"] = value
                continue
            text = (value or "").strip()
            if column.startswith("cmi."):
                if text:
                    scorm[column] = text
            elif text:
                fields[column.strip()] = text
        if scorm:
            fields["scorm"] = scorm
        yield _Row(f"{name}:{line + 1}", fields)
        line = reader.line_num


def _json_rows(name: str, stream: Iterable[str]) -> Iterator[_Row]:
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        location = f"{name}:{number}"
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            yield _Row(location, {"\0problem": f"not JSON ({error.msg})"})
            continue
        if not isinstance(document, dict):
            yield _Row(location, {"\0problem": "a line must be a JSON object"})
            continue
        yield _Row(location, document)


#: The longest texts the platform keeps for a result's fields, by field.
_LENGTHS = {
    "activity": column_length(results_table, "activity_iri"),
    "duration": column_length(results_table, "duration"),
}


def _check_length(value: str, name: str) -> None:
    """A value longer than the platform's column holds is refused, never cut."""
    length = _LENGTHS[name]
    if length is not None and len(value) > length:
        raise RowProblem(f"{name}: longer than {length} characters")


def parse_row(
    fields: Mapping[str, Any],
    partner: str,
    programs: Mapping[str, Program],
    now: datetime,
) -> ResultRecord | AwardRecord:
    """One row as a result or an award; raises RowProblem naming the field."""
    if "\0problem" in fields:
        raise RowProblem(str(fields["\0problem"]))
    if "\0extra" in fields:
        raise RowProblem("the row has more cells than the header")
    unknown = sorted(set(fields) - _KNOWN)
    if unknown:
        raise RowProblem(f"unknown field {unknown[0]!r}")
    kind = _text(fields, "kind") or "result"
    key = _text(fields, "learner")
    program_id = _text(fields, "program")
    if not key:
        raise RowProblem("learner: missing")
    if not program_id:
        raise RowProblem("program: missing")
    program = programs.get(program_id)
    if program is None:
        raise RowProblem(f"program: {program_id!r} is not offered to {partner}")
    learner = learner_id(partner, key)
    if kind == "award":
        issued = _moment(fields, "issued_at", now)
        return AwardRecord(
            award_id(partner, learner, program.id), partner, learner, program.id, issued
        )
    if kind != "result":
        raise RowProblem(f"kind: {kind!r} is neither result nor award")
    recorded = _moment(fields, "recorded_at", now)
    activity = _text(fields, "activity") or program.activity_iri
    if not re.match(r"^[a-z][a-z0-9+.-]*:\S+$", activity):
        raise RowProblem("activity: not an IRI")
    _check_length(activity, "activity")
    score = Score(
        _number(fields, "score_raw"),
        _number(fields, "score_min"),
        _number(fields, "score_max"),
        _number(fields, "score_scaled"),
    )
    _check_score(score)
    duration = _text(fields, "duration")
    if duration is not None and not _DURATION.match(duration):
        raise RowProblem("duration: not an ISO 8601 duration (PT1H30M)")
    if duration is not None:
        _check_length(duration, "duration")
    scorm = _scorm(fields.get("scorm"))
    if scorm:
        try:
            translate(scorm)
        except ScormDataError as problem:
            raise RowProblem(f"scorm: {problem}") from None
    return ResultRecord(
        result_id(partner, learner, program.id, activity, recorded),
        partner,
        learner,
        program.id,
        activity,
        recorded,
        completion=_flag(fields, "completion"),
        success=_flag(fields, "success"),
        score=score,
        duration=duration,
        scorm=scorm,
    )


def import_rows(
    rows: Iterable[_Row],
    partner: str,
    programs: Mapping[str, Program],
    platform: ResultsPlatform,
    now: datetime | None = None,
) -> ImportReport:
    """Parse, check against the platform's enrollments, and store; see the module
    docstring."""
    now = now or datetime.now(UTC)
    report = ImportReport()
    pending: list[tuple[str, ResultRecord | AwardRecord]] = []
    for row in rows:
        try:
            pending.append(
                (row.location, parse_row(row.fields, partner, programs, now))
            )
        except RowProblem as problem:
            report.rejected.append((row.location, str(problem)))
        if len(pending) >= CHUNK:
            _store(pending, partner, platform, report, now)
            pending = []
    _store(pending, partner, platform, report, now)
    report.rejected.sort(key=lambda rejection: _line_of(rejection[0]))
    return report


def _line_of(location: str) -> int:
    return int(location.rpartition(":")[2])


def _store(
    pending: list[tuple[str, ResultRecord | AwardRecord]],
    partner: str,
    platform: ResultsPlatform,
    report: ImportReport,
    now: datetime,
) -> None:
    if not pending:
        return
    learners = sorted({record.learner_id for _, record in pending})
    enrolled = platform.enrollments_of(partner, learners)
    results: list[ResultRecord] = []
    awards: list[AwardRecord] = []
    for location, record in pending:
        programs = enrolled.get(record.learner_id)
        if programs is None:
            report.rejected.append((location, "learner: not a learner of the partner"))
        elif record.program not in programs:
            reason = f"program: the learner is not enrolled in {record.program}"
            report.rejected.append((location, reason))
        elif isinstance(record, AwardRecord):
            awards.append(record)
        else:
            results.append(record)
    stored_results = platform.record_results(partner, results, now)
    stored_awards = platform.record_awards(partner, awards, now)
    report.results += stored_results
    report.awards += stored_awards
    report.already += len(results) + len(awards) - stored_results - stored_awards


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RowProblem(f"{name}: must be text")
    return value.strip() or None


def _flag(fields: Mapping[str, Any], name: str) -> bool | None:
    value = fields.get(name)
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RowProblem(f"{name}: {text!r} is not true or false")


def _number(fields: Mapping[str, Any], name: str) -> float | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RowProblem(f"{name}: not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RowProblem(f"{name}: not a number") from None
    if not math.isfinite(number):
        raise RowProblem(f"{name}: not a finite number")
    return number


def _moment(fields: Mapping[str, Any], name: str, now: datetime) -> datetime:
    text = _text(fields, name)
    if text is None:
        raise RowProblem(f"{name}: missing")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RowProblem(f"{name}: not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        raise RowProblem(f"{name}: needs a UTC offset (Z or +01:00)")
    moment = moment.astimezone(UTC)
    if moment > now + FUTURE_TOLERANCE:
        raise RowProblem(f"{name}: in the future")
    return moment


def _check_score(score: Score) -> None:
    if score.min is not None and score.max is not None and score.min > score.max:
        raise RowProblem("score_min: greater than score_max")
    if score.raw is not None:
        if score.min is not None and score.raw < score.min:
            raise RowProblem("score_raw: below score_min")
        if score.max is not None and score.raw > score.max:
            raise RowProblem("score_raw: above score_max")
    if score.scaled is not None and not -1 <= score.scaled <= 1:
        raise RowProblem("score_scaled: outside -1..1")


def _scorm(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RowProblem("scorm: must be an object of cmi.* names")
    data: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not name.startswith("cmi."):
            raise RowProblem(f"scorm: {name!r} is not a cmi.* name")
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise RowProblem(f"scorm: {name}: must be text or a number")
        data[name] = str(item)
    return data or None
