"""The roster flow: read, plan, persist the plan, guard, apply, record the outcome.

``run_roster`` is what `microcred-sync run` and `plan` (with ``dry_run``) call. A
run that fails or is held is returned as an outcome, not raised; only a
configuration problem raises (``ConfigError``), before anything is written.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.exc import SQLAlchemyError

from ..changes import Change
from ..connectors.base import Record, SourceContext
from ..errors import (
    EXIT_CONFIG,
    ConfigError,
    ReadError,
    RunStopped,
    SyncError,
    recorded,
)
from ..logging import run_context, run_logger
from ..mappings.engine import Mapper
from ..platform.sql import SqlPlatform
from ..project import Project
from ..state.locks import JobLock, JobLocked
from ..state.store import StateStore
from .apply import BatchApplier
from .guard import Baseline, Verdict, judge
from .planner import Planner, PlanScope, PlanStats

logger = logging.getLogger(__name__)

RunStatus = Literal["done", "held", "failed", "planned", "stopped"]

#: Records read between two renewals of the job's lock.
HEARTBEAT_RECORDS = 20_000

EXIT_CODES: dict[str, int] = {
    "done": 0,
    "planned": 0,
    "failed": 1,
    "held": 3,
    "stopped": 1,
}


@dataclass
class RunOptions:
    """How one run goes: a dry run, a few keys only, an override, callbacks, and
    ``stop``, which, once set, ends the run after the batch being applied."""

    dry_run: bool = False
    only: frozenset[str] | None = None
    allow_mass_deprovision: bool = False
    trace: Callable[[str], None] | None = None
    on_record: Callable[[], None] | None = None
    on_batch: Callable[[int], None] | None = None
    stop: threading.Event | None = None


@dataclass
class RunOutcome:
    """What a run did, for the command line and the scheduler."""

    job: str
    partner: str
    status: RunStatus
    run_id: str | None = None
    stats: PlanStats = field(default_factory=PlanStats)
    held_reason: str | None = None
    error: str | None = None
    platform_writes: int = 0
    changes: list[Change] = field(default_factory=list)
    #: Another run held the job's lock: this one did not start.
    locked: bool = False
    #: The run failed on a setting it met only once started (exit 2).
    config_error: bool = False

    @property
    def exit_code(self) -> int:
        """The command line's exit code for this outcome."""
        return EXIT_CONFIG if self.config_error else EXIT_CODES[self.status]


class MemoryPlan:
    """A plan sink for dry runs: keeps changes and quarantine in memory."""

    def __init__(self) -> None:
        self.generation = 0
        self.changes: list[Change] = []
        self.quarantined: list[tuple[str, str | None, str]] = []

    def add_group(self, group: list[Change]) -> None:
        for change in group:
            change.seq = len(self.changes) + 1
            self.changes.append(change)

    def quarantine(self, location: str, key: str | None, reason: str) -> None:
        self.quarantined.append((location, key, reason))


def run_roster(
    project: Project, job_id: str, options: RunOptions | None = None
) -> RunOutcome:
    """Run (or, with ``dry_run``, plan) one roster job to its end.

    Raises ConfigError, before anything is written, when the job cannot run.
    """
    options = options or RunOptions()
    job = project.job(job_id)
    if job.flow != "roster" or job.source is None or job.mapping is None:
        raise ConfigError(
            f"job {job.id} is a {job.flow} job: only roster jobs are planned;"
            f" `microcred-sync run {job.id}` runs it"
        )
    partner = project.partners[job.partner]
    offered = project.programs_of(partner.id)
    mapper = Mapper(project.mappings[job.mapping], offered.keys())
    source = project.connectors[job.source].open_source(
        job.source, project.settings.root
    )
    # Sources with secrets or cursors (ldap) get them from the settings.
    settings = project.settings
    state_url = settings.database_url(settings.state_url)
    source.attach(SourceContext(settings.secrets_dir, state_url))
    scope = PlanScope(
        partner,
        job.source,
        full_read=source.full,
        only=options.only,
        prerequisites={p.id: p.prerequisites for p in offered.values()},
    )
    if options.dry_run:
        return _dry_run(project, job.id, scope, mapper, source.read(), options)

    store = StateStore(settings.database_url(settings.state_url))
    platform: SqlPlatform | None = None
    try:
        store.create_schema()
        # The lock comes before the platform and the source's read: a replica
        # that finds the job taken gives up having opened nothing else.
        run_id = uuid.uuid4().hex
        lock = JobLock(store.engine, job.id, run_id)
        try:
            lock.acquire()
        except JobLocked as exc:
            # Not a warning: whoever started the run reports it (the command's
            # "not run" line, the daemon's "skipped" one); replicas lose such
            # races at every slot.
            return RunOutcome(job.id, partner.id, "failed", error=str(exc), locked=True)
        try:
            platform = SqlPlatform(settings.database_url(settings.platform_url))
            platform.create_schema()
            platform.ensure_catalog(partner, offered.values())
            run = _Run(
                job.id, scope, mapper, store, platform, options, settings.batch_size
            )
            full = source.full and options.only is None
            outcome = run.execute(run_id, lock, source.read(), full)
        finally:
            lock.release()
        # An incremental source keeps its new cursor only once its read is applied.
        if outcome.status == "done" and options.only is None:
            source.commit()
        elif outcome.status == "failed":
            source.reject()
        return outcome
    finally:
        store.close()
        if platform is not None:
            platform.close()


def _dry_run(
    project: Project,
    job: str,
    scope: PlanScope,
    mapper: Mapper,
    records: Iterable[Record],
    options: RunOptions,
) -> RunOutcome:
    """Plan without writing anything, not even an empty state store."""
    settings = project.settings
    store = StateStore.existing(settings.database_url(settings.state_url))
    platform = SqlPlatform.existing(settings.database_url(settings.platform_url))
    sink = MemoryPlan()
    outcome = RunOutcome(job, scope.partner.id, "planned")
    try:
        baseline = _baseline(store, platform, scope)
        planner = Planner(
            scope,
            mapper,
            store,
            sink,
            trace=options.trace,
            deprovisionable=baseline.deprovisionable,
        )
        outcome.stats = planner.plan(_counted(records, options))
        verdict = _verdict(outcome.stats, scope, store, baseline, options)
    except ReadError as exc:
        outcome.status, outcome.error = "failed", str(exc)
        return outcome
    finally:
        store.close()
        platform.close()
    for change in sink.changes:
        change.held = verdict.held and change.deprovision
    outcome.held_reason = verdict.reason if verdict.held else None
    outcome.changes = sink.changes
    return outcome


def _baseline(store: StateStore, platform: SqlPlatform, scope: PlanScope) -> Baseline:
    """The job's own active learners (what its full read may deprovision), and the
    partner's active enrollments."""
    partner = scope.partner.id
    counts = store.connector_counts(partner, scope.connector)
    withdrawable = counts.suspended_enrolled
    if scope.partner.deprovision.mode != "withdraw":
        withdrawable = 0
    return Baseline(
        counts.active,
        platform.active_enrollments(partner),
        deprovisionable=counts.active + withdrawable,
    )


def _verdict(
    stats: PlanStats,
    scope: PlanScope,
    store: StateStore,
    baseline: Baseline,
    options: RunOptions,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger,
) -> Verdict:
    verdict = judge(
        stats,
        scope.partner.guard,
        scope.partner.id,
        store,
        full_read=scope.full_read and scope.only is None,
        now=scope.now,
        baseline=baseline,
    )
    if verdict.held and verdict.overridable and options.allow_mass_deprovision:
        log.warning("guard overridden by --allow-mass-deprovision: %s", verdict.reason)
        return Verdict(False)
    return verdict


def _counted(
    records: Iterable[Record],
    options: RunOptions,
    heartbeat: Callable[[], None] | None = None,
) -> Iterator[Record]:
    """The records, telling the progress display and renewing the job's lock."""
    for count, record in enumerate(records, start=1):
        if options.on_record is not None:
            options.on_record()
        if heartbeat is not None and count % HEARTBEAT_RECORDS == 0:
            heartbeat()
        yield record


class _Run:
    """One stored, applied run of a roster job."""

    def __init__(
        self,
        job: str,
        scope: PlanScope,
        mapper: Mapper,
        store: StateStore,
        platform: SqlPlatform,
        options: RunOptions,
        batch_size: int,
    ) -> None:
        self.job, self.scope, self.mapper = job, scope, mapper
        self.store, self.platform, self.options = store, platform, options
        self.log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger
        self.heartbeat: Callable[[], None] = lambda: None
        self.batch_size = batch_size
        self.partner = scope.partner.id

    def execute(
        self, run_id: str, lock: JobLock, records: Iterable[Record], full_read: bool
    ) -> RunOutcome:
        """Run under ``lock``, held, and record the outcome."""
        mode = "only" if self.options.only else ("full" if full_read else "delta")
        outcome = RunOutcome(self.job, self.partner, "done", run_id=run_id)
        with run_context(run_id=run_id, job=self.job, partner=self.partner):
            self._execute(run_id, mode, records, outcome, lock)
        return outcome

    def _execute(
        self,
        run_id: str,
        mode: str,
        records: Iterable[Record],
        outcome: RunOutcome,
        lock: JobLock,
    ) -> None:
        self.store.start_run(
            run_id, self.job, self.partner, "roster", mode, datetime.now(UTC)
        )
        log = self.log = run_logger(
            __name__, run_id=run_id, job=self.job, partner=self.partner
        )
        log.info("run started (%s read)", mode)
        self.heartbeat = lock.renew
        try:
            self._plan_and_apply(run_id, records, outcome)
        except RunStopped as exc:
            outcome.status, outcome.error = "stopped", str(exc)
            log.warning("run stopped: %s", exc)
        except SyncError as exc:
            # A read or a batch refused; or met only once the run had started: a
            # setting (a secret not set, read when the source connects), a lost
            # lock. The run is failed and alerted on; a setting keeps exit 2.
            outcome.status, outcome.error = "failed", str(exc)
            outcome.config_error = isinstance(exc, ConfigError)
            log.error("run failed: %s", exc)
        except BaseException as exc:
            # Interrupted (Ctrl-C, a signal) or a bug: say so if the store lets us.
            # It may not (the interrupted transaction can still hold SQLite's
            # lock); the next run of the job marks this one interrupted anyway.
            try:
                self.store.update_run(
                    run_id,
                    status="failed",
                    error=recorded(exc),
                    finished_at=datetime.now(UTC),
                )
            except SQLAlchemyError:
                log.warning("could not record the run as failed; the next run will")
            raise
        outcome.platform_writes = self.platform.writes
        self.store.update_run(
            run_id,
            status=outcome.status,
            error=outcome.error,
            finished_at=datetime.now(UTC),
            records_read=outcome.stats.read,
            quarantined=outcome.stats.quarantined,
            counts=outcome.stats.counts.by_kind,
            held_reason=outcome.held_reason,
            override=self.options.allow_mass_deprovision,
        )
        log.info("run %s: %s", outcome.status, _summary(outcome))

    def _batch_done(self, size: int) -> None:
        self.heartbeat()
        if self.options.on_batch is not None:
            self.options.on_batch(size)

    def _plan_and_apply(
        self, run_id: str, records: Iterable[Record], outcome: RunOutcome
    ) -> None:
        """Plan the read; batches without deprovisioning are applied as they fill."""
        baseline = _baseline(self.store, self.platform, self.scope)
        applier = BatchApplier(
            self.store,
            self.platform,
            run_id=run_id,
            job=self.job,
            partner=self.partner,
            connector=self.scope.connector,
            batch_size=self.batch_size,
            on_batch=self._batch_done,
            stop=self.options.stop,
        )
        planner = Planner(
            self.scope,
            self.mapper,
            self.store,
            applier,
            trace=self.options.trace,
            log=self.log,
            deprovisionable=baseline.deprovisionable,
        )
        try:
            outcome.stats = planner.plan(
                _counted(records, self.options, self.heartbeat)
            )
        finally:
            outcome.stats = planner.stats
        verdict = _verdict(
            outcome.stats, self.scope, self.store, baseline, self.options, self.log
        )
        if verdict.held:
            outcome.status, outcome.held_reason = "held", verdict.reason
        applier.finish(hold=verdict.held)


def _summary(outcome: RunOutcome) -> str:
    counts = ", ".join(
        f"{kind}={n}" for kind, n in outcome.stats.counts.by_kind.items()
    )
    return (
        f"read={outcome.stats.read} unchanged={outcome.stats.unchanged} "
        f"quarantined={outcome.stats.quarantined} {counts} "
        f"platform_writes={outcome.platform_writes}"
    )
