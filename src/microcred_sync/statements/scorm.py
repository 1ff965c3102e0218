"""SCORM run-time data (1.2 and 2004) to an xAPI verb and ``result``.

The mapping follows ADL's SCORM-in-xAPI profile (verbs passed, failed and completed of
the ADL vocabulary; ``result.success``, ``result.completion``, ``result.score`` and
``result.duration``), one statement per finished attempt. SCORM 1.2
``cmi.core.lesson_status``::

    lesson_status    verb        completion  success
    passed           passed      true        true
    completed        completed   true        (unset)
    failed           failed      (unset)     false
    incomplete       (none)      false       (unset)
    browsed          (none)      (unset)     (unset)
    not attempted    (none)      (unset)     (unset)

SCORM 2004: ``cmi.success_status`` passed or failed gives the verb passed or failed
and ``success``; otherwise ``cmi.completion_status`` completed gives the verb
completed. ``completion`` is true for completed, false for incomplete, unset for
not attempted and unknown (the profile's rule). Verb (none) means there is nothing
to report as a result statement: no completion, no success, only progress.

Scores: ``raw``, ``min`` and ``max`` are passed on as given (an empty value is no
value). ``scaled`` is SCORM 2004's ``cmi.score.scaled`` when set; otherwise it is
computed as raw / max only when min is 0 and max is above 0, which is when that
quotient is what the data says. ADL's profile suggests raw / 100 for SCORM 1.2, but
that assumes a 0..100 range the data does not state, so it is not done. Values
outside what the SCORM and xAPI data models allow raise ScormDataError: scaled
outside -1..1, raw outside min..max, min not below max.

Durations become ISO 8601 (``PT2H30M5S``), to 0.01 s as xAPI compares them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final, Literal

from .errors import ScormDataError
from .vocabulary import COMPLETED, FAILED, PASSED, Verb

ScormVersion = Literal["1.2", "2004"]


@dataclass(frozen=True, slots=True)
class Score:
    """An xAPI score; construction checks the xAPI rules (raise ScormDataError)."""

    scaled: float | None = None
    raw: float | None = None
    min: float | None = None
    max: float | None = None
    #: The SCORM element prefix the values came from, for error messages.
    source: str = "score"

    def __post_init__(self) -> None:
        # xAPI 1.0.3 section 2.4.5.1.1: scaled in -1..1, min < max, raw in min..max.
        if self.scaled is not None and not -1 <= self.scaled <= 1:
            raise ScormDataError(
                "scaled score must be within -1..1",
                field=f"{self.source}.scaled",
                value=str(self.scaled),
            )
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ScormDataError(
                "min must be below max",
                field=f"{self.source}.min",
                value=f"{self.min}..{self.max}",
            )
        if self.raw is not None and (
            (self.min is not None and self.raw < self.min)
            or (self.max is not None and self.raw > self.max)
        ):
            raise ScormDataError(
                "raw score is outside min..max",
                field=f"{self.source}.raw",
                value=f"{self.raw} not in {self.min}..{self.max}",
            )

    def is_empty(self) -> bool:
        return all(v is None for v in (self.scaled, self.raw, self.min, self.max))

    def to_json(self) -> dict[str, float]:
        """The xAPI ``score`` object, without the parts that are not set."""
        parts = (
            ("scaled", self.scaled),
            ("raw", self.raw),
            ("min", self.min),
            ("max", self.max),
        )
        return {name: value for name, value in parts if value is not None}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a result says, in xAPI terms: the verb and the ``result`` parts.

    ``verb`` is None when there is nothing to report (incomplete, browsed, not
    attempted): the results job sends no result statement for it.
    """

    verb: Verb | None
    completion: bool | None = None
    success: bool | None = None
    score: Score | None = None
    #: ISO 8601 duration.
    duration: str | None = None

    def to_result(self) -> dict[str, Any]:
        """The xAPI ``result`` object; empty when nothing is known."""
        result: dict[str, Any] = {}
        if self.score is not None and not self.score.is_empty():
            result["score"] = self.score.to_json()
        if self.success is not None:
            result["success"] = self.success
        if self.completion is not None:
            result["completion"] = self.completion
        if self.duration is not None:
            result["duration"] = self.duration
        return result


#: SCORM 1.2 lesson_status -> (verb, completion, success); see the module docstring.
LESSON_STATUS: Final[Mapping[str, tuple[Verb | None, bool | None, bool | None]]] = {
    "passed": (PASSED, True, True),
    "completed": (COMPLETED, True, None),
    "failed": (FAILED, None, False),
    "incomplete": (None, False, None),
    "browsed": (None, None, None),
    "not attempted": (None, None, None),
}

#: SCORM 2004 completion_status -> completion.
COMPLETION_STATUS: Final[Mapping[str, bool | None]] = {
    "completed": True,
    "incomplete": False,
    "not attempted": None,
    "unknown": None,
}

#: SCORM 2004 success_status -> success.
SUCCESS_STATUS: Final[Mapping[str, bool | None]] = {
    "passed": True,
    "failed": False,
    "unknown": None,
}

_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_TIMESPAN = re.compile(r"^(\d{2,4}):([0-5]\d):([0-5]\d)(\.\d{1,2})?$")
_INTERVAL = re.compile(
    r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?"
    r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def translate(values: Mapping[str, str]) -> Outcome:
    """The outcome of SCORM run-time data, 1.2 or 2004 told apart by the names.

    ``values`` are the final values of the attempt by their ``cmi.*`` name, as text
    (see ``final_values``). Raises ScormDataError naming the element at fault.
    """
    version = scorm_version(values)
    return from_scorm12(values) if version == "1.2" else from_scorm2004(values)


def scorm_version(values: Mapping[str, str]) -> ScormVersion:
    """Which SCORM version's data model ``values`` use; raise if neither or both."""
    names = [name for name in values if name.startswith("cmi.")]
    core = [name for name in names if name.startswith("cmi.core.")]
    if not names:
        raise ScormDataError("no SCORM run-time data (no cmi.* element)", field="cmi")
    if core and len(core) != len(names):
        other = next(name for name in names if not name.startswith("cmi.core."))
        raise ScormDataError(
            "SCORM 1.2 (cmi.core.*) and SCORM 2004 elements are mixed", field=other
        )
    return "1.2" if core else "2004"


def from_scorm12(values: Mapping[str, str]) -> Outcome:
    """The outcome of SCORM 1.2 data (``cmi.core.*``)."""
    # A missing lesson_status is the data model's initial value, "not attempted".
    status = values.get("cmi.core.lesson_status", "not attempted")
    if status not in LESSON_STATUS:
        raise ScormDataError(
            "unknown lesson_status", field="cmi.core.lesson_status", value=status
        )
    verb, completion, success = LESSON_STATUS[status]
    score = _score(values, "cmi.core.score", scaled_name=None)
    session = values.get("cmi.core.session_time", "")
    duration = scorm12_duration(session) if session else None
    return Outcome(verb, completion, success, score, duration)


def from_scorm2004(values: Mapping[str, str]) -> Outcome:
    """The outcome of SCORM 2004 data (``cmi.completion_status`` and the rest)."""
    # Both statuses start as "unknown" in the SCORM 2004 data model.
    completion_status = values.get("cmi.completion_status", "unknown")
    success_status = values.get("cmi.success_status", "unknown")
    if completion_status not in COMPLETION_STATUS:
        raise ScormDataError(
            "unknown completion_status",
            field="cmi.completion_status",
            value=completion_status,
        )
    if success_status not in SUCCESS_STATUS:
        raise ScormDataError(
            "unknown success_status", field="cmi.success_status", value=success_status
        )
    completion = COMPLETION_STATUS[completion_status]
    success = SUCCESS_STATUS[success_status]
    verb = _verb_2004(completion, success)
    score = _score(values, "cmi.score", scaled_name="cmi.score.scaled")
    session = values.get("cmi.session_time", "")
    duration = scorm2004_duration(session) if session else None
    return Outcome(verb, completion, success, score, duration)


def native_outcome(
    *,
    completion: bool | None = None,
    success: bool | None = None,
    score: Score | None = None,
    duration: str | None = None,
) -> Outcome:
    """The outcome of a result the platform recorded natively (no SCORM data).

    The verb follows the SCORM 2004 rule (success first, then completion);
    ``duration`` must be an ISO 8601 duration and is written as xAPI compares it.
    Raises ScormDataError (field ``duration``) for another duration.
    """
    verb = _verb_2004(completion, success)
    written = _interval(duration, field="duration") if duration else None
    return Outcome(verb, completion, success, score, written)


def _verb_2004(completion: bool | None, success: bool | None) -> Verb | None:
    # Success says more than completion: "passed" with completion true says both.
    if success is True:
        return PASSED
    if success is False:
        return FAILED
    return COMPLETED if completion else None


def _score(
    values: Mapping[str, str], prefix: str, scaled_name: str | None
) -> Score | None:
    raw = _decimal(values, f"{prefix}.raw")
    low = _decimal(values, f"{prefix}.min")
    high = _decimal(values, f"{prefix}.max")
    scaled = _decimal(values, scaled_name) if scaled_name else None
    if all(v is None for v in (raw, low, high, scaled)):
        return None

    # raw / max is the scaled score only when the range starts at 0 (see above).
    if scaled is None and raw is not None and low == 0 and high is not None:
        scaled = raw / high if high > 0 else None
    return Score(scaled, raw, low, high, source=prefix)


def _decimal(values: Mapping[str, str], name: str) -> float | None:
    text = values.get(name, "")
    if text == "":
        return None
    if not _DECIMAL.match(text):
        raise ScormDataError("not a decimal number", field=name, value=text)
    number = float(text)
    if not math.isfinite(number):
        raise ScormDataError("not a finite number", field=name, value=text)
    return number


def scorm12_duration(text: str) -> str:
    """A SCORM 1.2 CMITimespan (``HHHH:MM:SS.SS``) as an ISO 8601 duration."""
    match = _TIMESPAN.match(text)
    if match is None:
        raise ScormDataError(
            "not a CMITimespan (HHHH:MM:SS.SS)",
            field="cmi.core.session_time",
            value=text,
        )
    hours, minutes, seconds, fraction = match.groups()
    exact = Decimal(seconds + (fraction or ""))
    return _iso_duration(time=(int(hours), int(minutes), exact))


def scorm2004_duration(text: str) -> str:
    """A SCORM 2004 timeinterval (ISO 8601, ``P[nY][nM][nD][T[nH][nM][n[.n]S]]``) in
    the form xAPI compares: no zero parts, seconds to 0.01."""
    return _interval(text, field="cmi.session_time")


def _interval(text: str, field: str) -> str:
    match = _INTERVAL.match(text)
    if match is None or text.endswith("T") or text == "P":
        raise ScormDataError(
            "not an ISO 8601 duration (timeinterval)", field=field, value=text
        )
    years, months, days, hours, minutes, seconds = match.groups()
    return _iso_duration(
        date=(int(years or 0), int(months or 0), int(days or 0)),
        time=(int(hours or 0), int(minutes or 0), Decimal(seconds or 0)),
    )


def _iso_duration(
    *, time: tuple[int, int, Decimal], date: tuple[int, int, int] = (0, 0, 0)
) -> str:
    hours, minutes, seconds = time
    seconds = seconds.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    date_part = "".join(
        f"{amount}{unit}" for amount, unit in zip(date, "YMD", strict=True) if amount
    )
    shown = format(seconds.normalize(), "f") if seconds else ""
    time_part = "".join(
        f"{amount}{unit}"
        for amount, unit in ((hours, "H"), (minutes, "M"), (shown, "S"))
        if amount
    )
    if not date_part and not time_part:
        return "PT0S"
    return f"P{date_part}" + (f"T{time_part}" if time_part else "")


#: The SCORM API calls that end an attempt (1.2, 2004).
_FINISH: Final = frozenset({"LMSFinish", "Terminate"})
_SET: Final = frozenset({"LMSSetValue", "SetValue"})
_IGNORED: Final = frozenset({"LMSCommit", "Commit", "LMSInitialize", "Initialize"})


def final_values(calls: Iterable[tuple[str, ...]]) -> dict[str, str]:
    """The values an attempt ends with, from its API calls in order.

    A call is ``("LMSSetValue" | "SetValue", element, value)``, ``("LMSFinish",)``
    or ``("Terminate",)`` (commits and initialize are accepted and change nothing).
    A later value replaces an earlier one; the values are taken at the finish call.
    Raises ScormDataError for a call after the finish, or no finish at all.
    """
    values: dict[str, str] = {}
    finished = False
    for call in calls:
        name = call[0]
        if finished:
            raise ScormDataError("call after the attempt finished", field=name)
        if name in _SET and len(call) == 3:
            values[call[1]] = call[2]
        elif name in _FINISH:
            finished = True
        elif name not in _IGNORED:
            raise ScormDataError("not a SCORM API call this reads", field=name)
    if not finished:
        raise ScormDataError(
            "the attempt never finished (no LMSFinish or Terminate)", field="calls"
        )
    return values
