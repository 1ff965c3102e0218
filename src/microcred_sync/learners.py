"""The learner as microcred-sync sees it: its fields and its wanted state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

#: The learner fields a mapping may set, in the order plans and audits show them.
LEARNER_FIELDS: Final = (
    "email",
    "given_name",
    "family_name",
    "display_name",
    "employee_number",
    "department",
    "job_title",
    "manager_key",
    "location",
    "hire_date",
    "exit_date",
)

#: The longest text each learner field may hold (the platform's column sizes).
FIELD_MAX_LENGTH: Final = {
    "email": 320,
    "given_name": 200,
    "family_name": 200,
    "display_name": 400,
    "employee_number": 100,
    "department": 200,
    "job_title": 300,
    "manager_key": 255,
    "location": 200,
}

#: The longest source key.
KEY_MAX_LENGTH: Final = 255

#: The fields stored as dates; everything else is text.
DATE_FIELDS: Final = frozenset({"hire_date", "exit_date"})

LearnerStatus = Literal["active", "suspended"]

#: A learner field's value: text, a date, or ``None`` to clear it.
LearnerValue = str | date | None


@dataclass(frozen=True, slots=True)
class WantedLearner:
    """What a mapping says one record wants on the platform.

    ``fields`` holds only the fields the record speaks about: a field that is absent
    is left as it is on the platform; a field whose value is ``None`` is cleared.
    ``programs`` are the programs the enrollment rules give this learner.
    """

    key: str
    fields: dict[str, LearnerValue]
    status: LearnerStatus
    programs: frozenset[str]
