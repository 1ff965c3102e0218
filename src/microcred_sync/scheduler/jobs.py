"""`scheduler/jobs.yaml`: which flow runs for which partner, from what, and when."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Schedule(BaseModel):
    """When a job runs: a cron expression in a time zone, or an interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str | None = None
    interval_minutes: int | None = Field(default=None, ge=1)
    timezone: str = "UTC"
    jitter_seconds: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if (self.cron is None) == (self.interval_minutes is None):
            raise ValueError("give exactly one of cron or interval_minutes")
        return self


class Job(BaseModel):
    """One job: a flow for a partner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    flow: Literal["roster", "results", "deliver"]
    partner: str
    source: str | None = None
    mapping: str | None = None
    schedule: Schedule | None = None

    @model_validator(mode="after")
    def _roster_needs(self) -> Job:
        if self.flow == "roster" and (self.source is None or self.mapping is None):
            raise ValueError("a roster job needs a source and a mapping")
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
