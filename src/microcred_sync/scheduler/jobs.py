"""`scheduler/jobs.yaml`: which flow runs for which partner, from what, and when."""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_MONTHS = (
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
)
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# The five crontab fields in order: name, lowest and highest number, names allowed.
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("weekday", 0, 7, _WEEKDAYS),
)
_CRON_TOKEN = re.compile(r"^[0-9a-z*,/-]+$")


class Schedule(BaseModel):
    """When a job runs: a cron expression in a time zone, or an interval.

    ``interval_seconds`` is for short intervals (tests, a busy outbox); operators
    mostly give minutes. ``misfire_grace_seconds``, when given, replaces the
    daemon's setting for this job: how late a run may still start (after a
    restart, a suspended host, or a run that overran its slot).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str | None = None
    interval_minutes: int | None = Field(default=None, ge=1)
    interval_seconds: int | None = Field(default=None, ge=1)
    timezone: str = "UTC"
    jitter_seconds: int = Field(default=0, ge=0)
    misfire_grace_seconds: int | None = Field(default=None, ge=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, timezone: str) -> str:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {timezone!r}") from None
        return timezone

    @field_validator("cron")
    @classmethod
    def _crontab(cls, cron: str | None) -> str | None:
        # A first check only, so that a typo fails at load time with the field
        # named; APScheduler parses the expression fully when the job is added.
        if cron is not None:
            fields = cron.split()
            if len(fields) != len(_CRON_FIELDS):
                raise ValueError(
                    f"a cron expression has 5 fields (minute hour day month "
                    f"weekday), not {len(fields)}"
                )
            for text, spec in zip(fields, _CRON_FIELDS, strict=True):
                _check_cron_field(text.lower(), *spec)
        return cron

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        given = [self.cron, self.interval_minutes, self.interval_seconds]
        if sum(value is not None for value in given) != 1:
            raise ValueError(
                "give exactly one of cron, interval_minutes or interval_seconds"
            )
        return self

    @property
    def interval(self) -> int | None:
        """The interval in seconds, for an interval schedule."""
        if self.interval_seconds is not None:
            return self.interval_seconds
        return None if self.interval_minutes is None else self.interval_minutes * 60


class Job(BaseModel):
    """One job: a flow for a partner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    flow: Literal["roster", "results", "deliver"]
    partner: str
    source: str | None = None
    mapping: str | None = None
    #: The sinks whose outbox entries a deliver job sends (and a results job fills).
    sinks: tuple[str, ...] = ()
    schedule: Schedule | None = None

    @model_validator(mode="after")
    def _roster_needs(self) -> Job:
        if self.flow == "roster" and (self.source is None or self.mapping is None):
            raise ValueError("a roster job needs a source and a mapping")
        if self.flow in ("deliver", "results") and not self.sinks:
            raise ValueError(f"a {self.flow} job needs at least one sink")
        if self.sinks and self.flow == "roster":
            raise ValueError("a roster job has no sinks")
        return self


class JobsFile(BaseModel):
    """The whole `scheduler/jobs.yaml`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    jobs: tuple[Job, ...]

    @model_validator(mode="after")
    def _unique(self) -> JobsFile:
        seen: set[str] = set()
        for job in self.jobs:
            if job.id in seen:
                raise ValueError(f"jobs: id {job.id!r} is declared twice")
            seen.add(job.id)
        return self


def _check_cron_field(
    text: str, name: str, lowest: int, highest: int, names: tuple[str, ...]
) -> None:
    """Raise ValueError if one crontab field is obviously wrong."""
    if not _CRON_TOKEN.match(text):
        raise ValueError(f"the {name} field {text!r} is not valid")
    for part in text.split(","):
        # In ``a-b/step`` the step is a count, not a value of the field.
        values, _, step = part.partition("/")
        if step and not step.isdigit():
            raise ValueError(f"the {name} field {text!r} is not valid")
        for value in values.split("-"):
            if value.isdigit():
                if not lowest <= int(value) <= highest:
                    raise ValueError(
                        f"{name} {value} is out of range {lowest}-{highest}"
                    )
            elif value != "*" and value not in names:
                raise ValueError(f"the {name} field {text!r} is not valid")
