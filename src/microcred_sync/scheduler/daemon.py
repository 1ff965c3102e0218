"""The daemon: `microcred-sync schedule` runs the jobs of `scheduler/jobs.yaml` on
their schedules, until SIGTERM or SIGINT.

APScheduler 3 fires the jobs: one instance of a job at a time, missed runs
coalesced into one, a run that starts later than its misfire grace skipped (and
counted). Firing is not running, though: every run takes its job's lock in the state
store first (``state/locks.py``), as `microcred-sync run` does, so any number of
replicas may share one state database and a job still runs on one of them at a
time. A replica whose run finds the lock taken skips that run.

Jobs live in a memory job store. The jobs file is the one source of what runs when,
read by every replica at start; a shared SQLAlchemy job store would not keep two
schedulers from both running a job (APScheduler 3 has no such coordination) and
would only add pickled state to keep in step with the file. ``run_job`` is still a
module-level function taking a job id, for a deployment that wants such a store.

Interval schedules count from one fixed instant, so replicas fire together and the
lock decides; a job that never ran, or is overdue, runs at start. On SIGTERM or
SIGINT the daemon takes no new run, asks the running ones to stop after their batch
in hand, and exits once they have, within ``daemon.stop_seconds``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..errors import SyncError
from ..ops.health import HealthServer
from ..ops.metrics import Metrics
from ..outbox.deliver import DeliverOptions, run_deliver
from ..platform.sql import SqlPlatform
from ..project import Project, load_project
from ..results.flow import run_results
from ..settings import load_settings
from ..sqlutil import shared_engines
from ..state.locks import JobLock, slot
from ..state.store import StateStore
from ..sync.roster import RunOptions, run_roster
from .jobs import Job
from .triggers import next_run, trigger

logger = logging.getLogger(__name__)

#: Where interval schedules count from, the same for every replica.
INTERVAL_ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)

#: How often the main thread looks for a signal, in seconds.
SIGNAL_POLL = 0.2

#: How often the outbox's oldest entries are checked for an alert, in seconds.
OUTBOX_CHECK_SECONDS = 60


def execute(project: Project, job_id: str, stop: threading.Event | None = None) -> Any:
    """Run one job of ``project`` now and return its flow's outcome.

    ``stop``, once set, ends the run after its batch in hand. Raises ConfigError,
    before anything is written, when the job cannot run.
    """
    job = project.job(job_id)
    if job.flow == "roster":
        return run_roster(project, job_id, RunOptions(stop=stop))
    if job.flow == "results":
        return run_results(project, job_id, stop=stop)
    return run_deliver(project, job_id, DeliverOptions(stop=stop))


def run_job(job_id: str, root: str | None = None) -> str:
    """Run one job by id, loading the project under ``root`` itself; returns the
    run's status (``locked`` when another run held the job).

    This is the function a persistent APScheduler job store can name
    (``microcred_sync.scheduler.daemon:run_job``): plain arguments, nothing pickled
    but a job id and a folder.
    """
    project = load_project(load_settings(Path(root) if root else None))
    outcome = execute(project, job_id)
    return "locked" if outcome.locked else str(outcome.status)


class Daemon:
    """One scheduler process: its jobs, its running runs, its metrics and health."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.settings = project.settings.daemon
        settings = project.settings
        self.store = StateStore(settings.database_url(settings.state_url))
        self.stop = threading.Event()
        self.metrics = Metrics(self.store.engine, _sink_partners(project))
        self.scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(self.settings.workers)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self.settings.misfire_grace_seconds,
            },
            timezone=UTC,
        )
        self._running: dict[str, datetime] = {}
        #: Jobs whose catch-up run at start has not run yet, with their grace.
        self._catching_up: dict[str, int] = {}
        self._idle = threading.Condition()
        self.health: HealthServer | None = None

    # -- starting -------------------------------------------------------------

    def start(self) -> None:
        """Prepare the databases, schedule the jobs, start serving.

        Raises ConfigError, before any job runs, when a database is behind and
        needs `microcred-sync db upgrade`, or when the HTTP port cannot be bound.
        """
        self._prepare_databases()
        _route_scheduler_logs()
        last_started = {run.job: run.started_at for run in self.store.latest_runs()}
        now = datetime.now(UTC)
        for job in self.project.jobs.values():
            if job.schedule is not None:
                self._add(job, now, last_started.get(job.id))
        if _has_outbox_alerts(self.project):
            self.scheduler.add_job(
                self._check_outbox,
                "interval",
                seconds=OUTBOX_CHECK_SECONDS,
                id="outbox-age-check",
            )
        self.scheduler.add_listener(
            self._on_skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        )
        if self.settings.http_port:
            self.health = HealthServer(
                self.settings.http_host,
                self.settings.http_port,
                self.metrics.registry,
                self.checks,
            )
            self.health.start()
        self.scheduler.start()
        logger.info(
            "scheduler started: %d jobs, %d workers",
            len(self.scheduler.get_jobs()),
            self.settings.workers,
        )

    def _prepare_databases(self) -> None:
        """Migrate a new state store and platform database here, once, before the
        first run: the runs fired together at start would otherwise all find
        them new and race to create the same tables."""
        self.store.create_schema()
        flows = {job.flow for job in self.project.jobs.values()}
        if not flows & {"roster", "results"}:
            return  # deliver jobs alone never open the platform
        settings = self.project.settings
        platform = SqlPlatform(settings.database_url(settings.platform_url))
        try:
            platform.create_schema()
        finally:
            platform.close()

    def _add(self, job: Job, now: datetime, last_started: datetime | None) -> None:
        schedule = job.schedule
        assert schedule is not None
        fires = trigger(schedule, INTERVAL_ANCHOR if schedule.interval else None)
        options: dict[str, Any] = {}
        grace = schedule.misfire_grace_seconds or self.settings.misfire_grace_seconds
        due = next_run(schedule, now, last_started) == now
        if schedule.interval is not None and due:
            # Due now: at its last tick, so that the ticks after stay on the anchor
            # (or now, when that tick is past the grace of a long interval).
            since = now - timedelta(seconds=schedule.interval)
            tick = fires.get_next_fire_time(None, since) or now
            late = (now - tick).total_seconds() >= grace
            options["next_run_time"] = now if late else tick
        # APScheduler keeps the jitter on the trigger; ours gives nominal times.
        setattr(fires, "jitter", schedule.jitter_seconds or None)  # noqa: B010
        options["misfire_grace_time"] = grace
        if schedule.interval is not None and due:
            # The catch-up run may wait long for a worker behind the others due at
            # start; measured from its tick, that wait would drop it as missed
            # (and the next tick is refused while it queues: no run at all). No
            # grace until it has run; ``_run`` gives the job its grace back.
            options["misfire_grace_time"] = None
            self._catching_up[job.id] = grace
        self.scheduler.add_job(
            self._run,
            fires,
            args=[job.id],
            id=job.id,
            name=job.id,
            replace_existing=True,
            **{name: value for name, value in options.items() if value is not None},
        )

    # -- running --------------------------------------------------------------

    def _run(self, job_id: str) -> None:
        """One scheduled run of ``job_id``: counted, and reported to alerts."""
        if self.stop.is_set():
            return  # queued before the shutdown: not started
        started = datetime.now(UTC)
        with self._idle:
            self._running[job_id] = started
        job = self.project.jobs[job_id]
        try:
            with slot(job_id, started - _slot_slack(job)):
                if taken := self._taken(job):
                    logger.info("job %s skipped: %s", job_id, taken)
                    self.metrics.count(job_id, "locked")
                    return
                outcome = execute(self.project, job_id, self.stop)
        except (SyncError, SQLAlchemyError) as exc:
            logger.error("job %s could not run: %s", job_id, _first_line(exc))
            self.metrics.count(job_id, "failed")
            return
        except Exception:
            logger.exception("job %s crashed", job_id)
            self.metrics.count(job_id, "failed")
            return
        finally:
            with self._idle:
                self._running.pop(job_id, None)
                self._idle.notify_all()
            grace = self._catching_up.pop(job_id, None)
            if grace is not None and not self.stop.is_set():
                with suppress(JobLookupError):
                    self.scheduler.modify_job(job_id, misfire_grace_time=grace)
        self.metrics.observe(
            job_id, job.flow, outcome, started, datetime.now(UTC), job.sinks
        )
        if outcome.locked:
            # Lost the race for the lock after the look: the lock's own words
            # (the holder's run and host, or the run that served the slot).
            logger.info("job %s skipped: %s", job_id, outcome.error)
            return
        _after_run(self.project, job_id, outcome)

    def _taken(self, job: Job) -> str | None:
        """Why another run has ``job`` (holds it, or served its slot), seen on this
        daemon's own connection before the run opens anything: replicas fire
        together, and all but one of them would find the lock taken. Deliver
        jobs take no job lock; their workers share the outbox by row claims."""
        if job.flow == "deliver":
            return None
        return JobLock(self.store.engine, job.id, run_id="").taken()

    def _check_outbox(self) -> None:
        from ..ops import alerts

        alerts.check_outbox_age(self.project)

    def _on_skipped(self, event: JobExecutionEvent | JobSubmissionEvent) -> None:
        if event.job_id not in self.project.jobs:
            return
        if isinstance(event, JobExecutionEvent):
            # EVENT_JOB_MISSED: too late to start, past the misfire grace.
            logger.warning(
                "job %s missed its run of %s (later than its misfire grace)",
                event.job_id,
                event.scheduled_run_time.isoformat(),
            )
            self.metrics.count(event.job_id, "missed")
        else:
            # EVENT_JOB_MAX_INSTANCES: the last run overran its slot.
            logger.warning(
                "job %s is still running here: this run is skipped", event.job_id
            )
            self.metrics.count(event.job_id, "overran")

    # -- health ---------------------------------------------------------------

    def checks(self) -> Mapping[str, bool]:
        """Whether the state store answers and the scheduler is running."""
        try:
            with self.store.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            database = True
        except SQLAlchemyError:
            database = False
        running = self.scheduler.state == STATE_RUNNING and not self.stop.is_set()
        return {"database": database, "scheduler": running}

    # -- stopping -------------------------------------------------------------

    def shutdown(self, timeout: float | None = None) -> bool:
        """Take no new run, ask running ones to stop after their batch, wait for
        them up to ``timeout`` seconds (default: the settings'); returns whether
        they all ended in time."""
        timeout = self.settings.stop_seconds if timeout is None else timeout
        self.stop.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + timeout
        with self._idle:
            if self._running:
                logger.info(
                    "waiting for %d running jobs to end their batch: %s",
                    len(self._running),
                    ", ".join(sorted(self._running)),
                )
            while self._running and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)
            unfinished = sorted(self._running)
        if self.health is not None:
            self.health.close()
        self.store.close()
        if unfinished:
            logger.error(
                "jobs still running after %.0f s, left unfinished (the next run "
                "marks them interrupted): %s",
                timeout,
                ", ".join(unfinished),
            )
            return False
        logger.info("scheduler stopped")
        return True


def serve(project: Project) -> bool:
    """Run the daemon in this process until SIGTERM or SIGINT; returns whether it
    stopped cleanly (every run ended in time, locks released). Its runs share one
    engine per database (``sqlutil.shared_engines``)."""
    with shared_engines(pool_size=2 * project.settings.daemon.workers):
        return _serve(project)


def _serve(project: Project) -> bool:
    daemon = Daemon(project)
    asked: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Only a flag here: the main thread does the rest, outside the handler.
        asked.append(signum)

    previous = {
        number: signal.signal(number, on_signal)
        for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        daemon.start()
        while not asked:
            time.sleep(SIGNAL_POLL)
        logger.info("%s received: stopping", signal.Signals(asked[0]).name)
    finally:
        clean = daemon.shutdown()
        for number, handler in previous.items():
            signal.signal(number, handler)
    return clean


def _route_scheduler_logs() -> None:
    """APScheduler's warnings through the package's handlers (format, redaction),
    not as bare lines beside them; its per-run INFO lines are left out."""
    package = logging.getLogger("microcred_sync")
    if not package.handlers:
        return
    library = logging.getLogger("apscheduler")
    library.handlers[:] = package.handlers
    library.setLevel(logging.WARNING)
    library.propagate = False


def _slot_slack(job: Job) -> timedelta:
    """How long before this daemon fired a run another replica may have started the
    same slot's run: half an interval, at most a minute (and a cron job's slots
    are a minute apart at least)."""
    interval = job.schedule.interval if job.schedule is not None else None
    seconds = min(interval / 2, 60.0) if interval is not None else 30.0
    return timedelta(seconds=seconds)


def _after_run(project: Project, job_id: str, outcome: Any) -> None:
    """Hand a finished run to the alerts (``ops.alerts.after_run``); an alert that
    cannot go out never stops the daemon."""
    from ..ops import alerts

    try:
        alerts.after_run(project, job_id, outcome)
    except Exception:
        logger.exception("alerting on job %s failed", job_id)


def _has_outbox_alerts(project: Project) -> bool:
    """Whether any webhook is set up and any deliver job could fill up."""
    has_deliver = any(job.flow == "deliver" for job in project.jobs.values())
    return bool(project.settings.alerts.webhooks) and has_deliver


def _sink_partners(project: Project) -> dict[str, str]:
    """The sinks of the project's jobs, with the partner of each."""
    return {
        sink: job.partner
        for job in project.jobs.values()
        if job.flow == "deliver"
        for sink in job.sinks
    }


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    return str(cause).splitlines()[0] if str(cause) else type(cause).__name__
