"""What `microcred-sync status` shows: each job's last run, outcome and next run,
and the outbox backlog of each sink.

Read-only: nothing here writes to the state store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from ..outbox.tables import outbox
from ..project import Project
from ..scheduler.triggers import next_run
from ..state.locks import JobLock
from ..state.store import UNFINISHED, RunInfo, StateStore


@dataclass(frozen=True)
class Backlog:
    """A sink's pending outbox entries: how many, and since when the oldest waits."""

    sink: str
    pending: int
    oldest_at: datetime | None

    def age_seconds(self, now: datetime) -> float | None:
        """How long the oldest pending entry has waited, in seconds."""
        if self.oldest_at is None:
            return None
        return max(0.0, (now - self.oldest_at).total_seconds())


@dataclass(frozen=True)
class JobStatus:
    """One job's line of `status`."""

    job: str
    partner: str
    flow: str
    last: RunInfo | None
    next_run: datetime | None
    #: The last run is unfinished and nothing holds the job's lock: its process
    #: is gone (killed), and the job's next run will record it interrupted.
    abandoned: bool = False


def outbox_backlog(
    engine: Engine, sinks: Sequence[str] | None = None
) -> dict[str, Backlog]:
    """The pending entries of each sink (of ``sinks``, or every sink that has any).

    A sink named in ``sinks`` without pending entries is listed with 0.
    """
    query = (
        select(outbox.c.sink, func.count(), func.min(outbox.c.created_at))
        .where(outbox.c.status == "pending")
        .group_by(outbox.c.sink)
    )
    if sinks is not None:
        query = query.where(outbox.c.sink.in_(list(sinks)))
    found = {sink: Backlog(sink, 0, None) for sink in sinks or ()}
    with engine.connect() as connection:
        for sink, count, oldest in connection.execute(query):
            found[sink] = Backlog(sink, int(count), _aware(oldest))
    return dict(sorted(found.items()))


def job_statuses(project: Project, store: StateStore, now: datetime) -> list[JobStatus]:
    """Every job of `scheduler/jobs.yaml`, in file order, with its newest run and
    when its schedule runs it next (None for a job without a schedule)."""
    latest = {run.job: run for run in store.latest_runs()}
    statuses = []
    for job in project.jobs.values():
        last = latest.get(job.id)
        upcoming = None
        if job.schedule is not None:
            upcoming = next_run(job.schedule, now, last.started_at if last else None)
        abandoned = _abandoned(store, job.flow, last)
        statuses.append(
            JobStatus(job.id, job.partner, job.flow, last, upcoming, abandoned)
        )
    return statuses


def _abandoned(store: StateStore, flow: str, last: RunInfo | None) -> bool:
    """Whether ``last`` is unfinished with nobody holding its job's lock. Deliver
    runs take no job lock (they share the outbox), so theirs are left as they
    are."""
    if last is None or flow == "deliver" or last.status not in UNFINISHED:
        return False
    return JobLock(store.engine, last.job, run_id="").taken() is None


def status_document(
    statuses: Sequence[JobStatus], backlog: dict[str, Backlog], now: datetime
) -> dict[str, Any]:
    """`status --output json`: jobs and outbox backlog, times in ISO 8601 UTC."""
    return {
        "generated_at": _iso(now),
        "jobs": [
            {
                "job": status.job,
                "partner": status.partner,
                "flow": status.flow,
                "last_run": _run_document(status.last, status.abandoned),
                "next_run": _iso(status.next_run),
            }
            for status in statuses
        ],
        "outbox": [
            {
                "sink": entry.sink,
                "pending": entry.pending,
                "oldest_pending_at": _iso(entry.oldest_at),
                "oldest_pending_age_seconds": entry.age_seconds(now),
            }
            for entry in backlog.values()
        ],
    }


def _run_document(run: RunInfo | None, abandoned: bool) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "run_id": run.id,
        "status": run.status,
        "abandoned": abandoned,
        "mode": run.mode,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "read": run.records_read,
        "quarantined": run.quarantined,
        "counts": run.counts,
        "held_reason": run.held_reason,
        "error": run.error,
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; the outbox writes UTC ones."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
