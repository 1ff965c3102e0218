"""Results and awards as the platform holds them, and their derived ids.

A result is what the platform recorded for a learner on an activity: a native
outcome (completion, success, score, duration) or SCORM run-time data, or both.
An award is a credential issued to a learner for a program; there is at most one
per learner and program. Both are keyed by ids derived from what they describe,
so importing the same file twice stores each once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..changes import derived_id


def result_id(
    partner: str, learner: str, program: str, activity: str, recorded_at: datetime
) -> str:
    """The id of a result: the same learner, activity and moment give the same id."""
    moment = recorded_at.isoformat(timespec="microseconds")
    return derived_id(f"result/{partner}/{learner}/{program}/{activity}/{moment}")


def award_id(partner: str, learner: str, program: str) -> str:
    """The id of the award of ``program`` to ``learner``."""
    return derived_id(f"award/{partner}/{learner}/{program}")


@dataclass(frozen=True, slots=True)
class Score:
    """A score as the platform recorded it; any part may be missing."""

    raw: float | None = None
    min: float | None = None
    max: float | None = None
    scaled: float | None = None


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """One result of a partner's learner on an activity of a program."""

    id: str
    partner: str
    learner_id: str
    program: str
    activity_iri: str
    recorded_at: datetime
    completion: bool | None = None
    success: bool | None = None
    score: Score = field(default_factory=Score)
    #: ISO 8601 duration (``PT1H2M3S``).
    duration: str | None = None
    #: SCORM run-time data by its ``cmi.*`` name, as text.
    scorm: dict[str, str] | None = None
    imported_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AwardRecord:
    """A credential issued to a learner for a program."""

    id: str
    partner: str
    learner_id: str
    program: str
    issued_at: datetime
    imported_at: datetime | None = None
