"""The deliver flow: the outbox's due entries, in batches, to the job's sinks.

``run_deliver`` is what `microcred-sync run` calls for a job with ``flow: deliver``.
Only the job's partner's entries are taken, and only for the job's sinks, which
belong to that partner (``load_project`` checks it). An entry is marked delivered
once the sink acknowledged it, or said it already held it; refused ones are
dead-lettered one by one with the sink's reason; temporary failures are retried
and recorded, and what a run could not deliver stays pending for a later run. A run
that stops early is returned as a ``failed`` outcome, not raised; only a
configuration problem raises (``ConfigError``), before anything is written.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from tenacity import RetryCallState

from ..connectors.salesforce import SalesforceConnector
from ..connectors.salesforce.writeback import SalesforceWriter, deliver_batch
from ..errors import ConfigError, RunStopped, recorded
from ..logging import run_context, run_logger
from ..project import Project, is_sink
from ..state.store import StateStore
from .errors import DeliveryRefused, DeliveryStopped, DeliveryTemporary
from .filesink import FileWriter
from .hris import HrisSink
from .hrisclient import HrisClient
from .hrisclient import deliver_batch as deliver_hris_batch
from .lrs import LrsClient, PostResult, lrs_auth, lrs_session
from .retry import held_back, reschedule_delay, retrying
from .sinks import FileSink, LrsSink
from .store import CLAIM_LEASE, Delivery, Outbox

logger = logging.getLogger(__name__)

DeliverStatus = Literal["done", "failed", "stopped"]

EXIT_CODES: dict[str, int] = {"done": 0, "failed": 1, "stopped": 1}

#: Seconds between two renewals of the run's claims while batches go out.
RENEW_SECONDS = 30.0

#: Batches taken from the outbox per query.
PAGE_BATCHES = 10

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


@dataclass
class DeliverOptions:
    """Callbacks of one run: ``on_batch`` gets the size of each batch done;
    ``stop``, once set, ends the run before its next batch."""

    on_batch: Callable[[int], None] | None = None
    stop: threading.Event | None = None


@dataclass(frozen=True)
class DeadLetter:
    """An entry a sink refused for good, and the sink's reason."""

    id: str
    sink: str
    reason: str


@dataclass
class DeliverOutcome:
    """What a deliver run did, for the command line and the scheduler."""

    job: str
    partner: str
    status: DeliverStatus
    run_id: str | None = None
    #: Entries taken from the outbox.
    taken: int = 0
    #: Stored by the sink in this run.
    delivered: int = 0
    #: Acknowledged as held already (a resend after a lost answer).
    already_stored: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    #: Failed attempts that were retried.
    retried: int = 0
    requests: int = 0
    #: The partner's entries for these sinks still pending after the run.
    pending: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: Another run held the job's lock: this one did not start.
    locked: bool = False

    @property
    def exit_code(self) -> int:
        """The command line's exit code for this outcome."""
        return EXIT_CODES[self.status]

    @property
    def counts(self) -> dict[str, int]:
        """The figures ``runs.counts`` keeps, as `status` shows them."""
        return {
            "delivered": self.delivered,
            "already_stored": self.already_stored,
            "dead": len(self.dead),
            "pending": self.pending,
        }


def run_deliver(
    project: Project, job_id: str, options: DeliverOptions | None = None
) -> DeliverOutcome:
    """Run one deliver job to its end (or until a sink stops it).

    Raises ConfigError, before anything is written, when the job cannot run (not a
    deliver job, a sink's secret missing).
    """
    options = options or DeliverOptions()
    job = project.job(job_id)
    if job.flow != "deliver":
        raise ConfigError(f"job {job.id} is a {job.flow} job, not a deliver job")
    settings = project.settings
    channels: list[_Channel] = []
    store: StateStore | None = None
    try:
        # Secrets are read first, so that a missing one stops the run before it
        # has written anything.
        channels.extend(_open(project, name, job.partner) for name in job.sinks)
        store = StateStore(settings.database_url(settings.state_url))
        store.create_schema()
        return _Run(job.id, job.partner, store, channels, options).execute()
    finally:
        for channel in channels:
            channel.close()
        if store is not None:
            store.close()


class _Channel:
    """One sink of a job, opened: its config and its writer or client."""

    def __init__(
        self,
        name: str,
        config: LrsSink | FileSink | SalesforceConnector | HrisSink,
        target: LrsClient | FileWriter | SalesforceWriter | HrisClient,
    ) -> None:
        self.name, self.config, self.target = name, config, target

    def close(self) -> None:
        if isinstance(self.target, LrsClient | SalesforceWriter | HrisClient):
            self.target.close()


def _open(project: Project, name: str, partner: str) -> _Channel:
    config = project.connectors[name]
    if not is_sink(config) or config.partner != partner:
        # load_project refuses both; this is the last line of partner isolation.
        raise ConfigError(f"connector {name!r} is not a sink of partner {partner!r}")
    root = project.settings.root
    if isinstance(config, SalesforceConnector):
        return _salesforce_channel(project, name, config)
    if isinstance(config, HrisSink):
        settings = project.settings
        client = HrisClient.open(config, name, root, settings.secrets_dir)
        return _Channel(name, config, client)
    assert isinstance(config, LrsSink | FileSink)
    if isinstance(config, FileSink):
        return _Channel(
            name,
            config,
            FileWriter(project.settings.resolve(config.path), connector=name),
        )
    try:
        auth = lrs_auth(config, project.settings.secrets_dir)
    except ConfigError as exc:
        raise ConfigError(f"connectors/{name}.yaml: {exc}") from None
    session = lrs_session(config, auth, root)
    return _Channel(name, config, LrsClient(config, session, connector=name))


def _salesforce_channel(
    project: Project, name: str, config: SalesforceConnector
) -> _Channel:
    """Write-backs to an org (``connectors/salesforce/writeback.py``)."""
    settings = project.settings
    try:
        writer = SalesforceWriter(config, name, settings.root, settings.secrets_dir)
    except ConfigError as exc:
        raise ConfigError(f"connectors/{name}.yaml: {exc}") from None
    return _Channel(name, config, writer)


class _Run:
    """One recorded run of a deliver job."""

    def __init__(
        self,
        job: str,
        partner: str,
        store: StateStore,
        channels: Sequence[_Channel],
        options: DeliverOptions,
    ) -> None:
        self.job, self.partner, self.store = job, partner, store
        self.channels, self.options = channels, options
        self.outbox = Outbox(store.engine)

    def execute(self) -> DeliverOutcome:
        """Deliver and record the outcome.

        No job lock: runs of one deliver job (several workers, or replicas) share
        its backlog, each sending only the entries it claimed (``Outbox.claim``).
        """
        run_id = uuid.uuid4().hex
        outcome = DeliverOutcome(self.job, self.partner, "done", run_id=run_id)
        with run_context(run_id=run_id, job=self.job, partner=self.partner):
            self._execute(outcome)
        return outcome

    def _execute(self, outcome: DeliverOutcome) -> None:
        assert outcome.run_id is not None
        run_id = outcome.run_id
        self.store.start_run(
            run_id,
            self.job,
            self.partner,
            "deliver",
            "full",
            datetime.now(UTC),
            exclusive=False,
            # A worker renews its claims and heartbeat every RENEW_SECONDS: one
            # silent for a whole claim lease is gone.
            silent_after=CLAIM_LEASE,
        )
        # "applying" until the end: a run killed meanwhile shows as interrupted.
        self.store.update_run(run_id, status="applying")
        log = run_logger(__name__, run_id=run_id, job=self.job, partner=self.partner)
        log.info(
            "run started: delivering to %s", ", ".join(c.name for c in self.channels)
        )
        errors: list[str] = []
        try:
            for channel in self.channels:
                try:
                    _SinkRun(channel, self, outcome, log, run_id).run()
                except DeliveryStopped as stopped:
                    errors.append(f"{channel.name}: {stopped.message}")
                    log.error("delivery to %s stopped: %s", channel.name, stopped)
        except RunStopped as exc:
            outcome.status, outcome.error = "stopped", str(exc)
            log.warning("run stopped: %s", exc)
        except BaseException as exc:
            self.store.update_run(
                run_id,
                status="failed",
                error=recorded(exc),
                finished_at=datetime.now(UTC),
            )
            raise
        if errors and outcome.status != "stopped":
            outcome.status, outcome.error = "failed", "; ".join(errors)
        sinks = [channel.name for channel in self.channels]
        outcome.pending = self.outbox.counts(sinks, partner=self.partner)["pending"]
        self.store.update_run(
            run_id,
            status=outcome.status,
            error=outcome.error,
            finished_at=datetime.now(UTC),
            records_read=outcome.taken,
            quarantined=len(outcome.dead),
            counts=outcome.counts,
        )
        log.info(
            "run %s: taken=%d delivered=%d already_stored=%d dead=%d pending=%d "
            "requests=%d",
            outcome.status,
            outcome.taken,
            outcome.delivered,
            outcome.already_stored,
            len(outcome.dead),
            outcome.pending,
            outcome.requests,
        )


class _OutboxWrites:
    """The run's outbox updates, made in order on one worker thread, so that the
    next batch goes on the wire while the last one is being marked. ``drain``
    waits for them all (and raises what failed)."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self.pending: list[Future[None]] = []

    def submit(self, update: Callable[..., None], *args: object) -> None:
        self.pending.append(self.pool.submit(update, *args))

    def drain(self) -> None:
        pending, self.pending = self.pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self.pool.shutdown()


class _SinkRun:
    """The due entries of one sink, batch after batch, until none is left."""

    def __init__(
        self,
        channel: _Channel,
        run: _Run,
        outcome: DeliverOutcome,
        log: Log,
        run_id: str,
    ) -> None:
        self.channel, self.name, self.config = channel, channel.name, channel.config
        self.outbox, self.partner, self.options = run.outbox, run.partner, run.options
        self.store = run.store
        self.outcome, self.log, self.run_id = outcome, log, run_id
        deadline = (
            self.config.deadline_seconds
            if isinstance(self.config, LrsSink | SalesforceConnector | HrisSink)
            else None
        )
        self.deadline = time.monotonic() + (deadline or 86_400.0)
        self.renew_at = time.monotonic() + RENEW_SECONDS
        self.writes = _OutboxWrites()

    def run(self) -> None:
        """Deliver until nothing is due; raises DeliveryStopped to stop early."""
        if isinstance(self.config, LrsSink | HrisSink) and not self.config.verify_tls:
            warning = f"TLS certificate checks are off for sink {self.name}"
            self.log.warning("%s (verify_tls: false)", warning)
            self.outcome.warnings.append(warning)
        try:
            while page := self._page():
                for start in range(0, len(page), self.config.batch_size):
                    self._batch(page[start : start + self.config.batch_size])
        finally:
            self.writes.close()
            # What this run claimed and did not settle is due again at once.
            self.outbox.release_claims(self.name, self.run_id)
            if isinstance(self.channel.target, LrsClient | HrisClient):
                self.outcome.requests += self.channel.target.requests
                self.channel.target.requests = 0
            elif isinstance(self.channel.target, SalesforceWriter):
                self.outcome.requests += self.channel.target.requests

    def _page(self) -> list[Delivery]:
        """The next due entries, claimed for this run, once the updates of the last
        page are made."""
        self.writes.drain()
        size = self.config.batch_size * PAGE_BATCHES
        return self.outbox.claim(self.name, size, self.run_id, partner=self.partner)

    def _batch(self, batch: list[Delivery]) -> None:
        if self.options.stop is not None and self.options.stop.is_set():
            # Before taking the batch: what was sent is marked once the writes
            # in flight are made (``run`` drains them on the way out).
            raise RunStopped(
                "stopped by a shutdown between two batches; the rest waits for "
                "the next run",
                sink=self.name,
            )
        if time.monotonic() >= self.deadline:
            raise DeliveryStopped(
                "the run's deadline passed; the rest waits for the next run",
                sink=self.name,
            )
        self.outcome.taken += len(batch)
        self._send(batch)
        self._heartbeat()
        if self.options.on_batch is not None:
            self.options.on_batch(len(batch))

    def _heartbeat(self) -> None:
        """Renew the run's claims now and then (they hold for minutes)."""
        if time.monotonic() >= self.renew_at:
            self.outbox.renew_claims(self.run_id)
            self.store.beat(self.run_id)
            self.renew_at = time.monotonic() + RENEW_SECONDS

    def _send(self, batch: list[Delivery]) -> None:
        target = self.channel.target
        if isinstance(target, SalesforceWriter):
            self._write_back(target, batch)
            return
        if isinstance(target, HrisClient):
            self._record_completions(target, batch)
            return
        if isinstance(target, FileWriter):
            written, held = target.write(batch)
            self._delivered(batch, PostResult(written, held))
            return
        try:
            result = self._post(target, batch)
        except DeliveryRefused as refused:
            # Split until the statements at fault are alone (400, 409, 413): the
            # rest of the batch goes through.
            if len(batch) > 1:
                middle = len(batch) // 2
                self._send(batch[:middle])
                self._send(batch[middle:])
                return
            self._dead(batch[0], refused.message)
            return
        self._delivered(batch, result)

    def _record_completions(self, client: HrisClient, batch: list[Delivery]) -> None:
        """An hris sink's batch, one record per request (``outbox/hrisclient.py``
        records each outcome); a stop (429 beyond the cap, credentials) ends this
        sink's run, what was not sent staying queued."""
        self.writes.drain()
        result = deliver_hris_batch(
            client, self.outbox, self.name, batch, deadline=self.deadline, log=self.log
        )
        self.outcome.delivered += len(result.stored)
        self.outcome.already_stored += len(result.held)
        self.outcome.retried += result.retried
        self.outcome.dead.extend(
            DeadLetter(ident, self.name, reason) for ident, reason in result.dead
        )
        if result.stopped is not None:
            raise result.stopped

    def _write_back(self, writer: SalesforceWriter, batch: list[Delivery]) -> None:
        """A salesforce sink's batch: ``deliver_batch`` records each record's own
        outcome in the outbox; a stop (quota, credentials) ends this sink's run."""
        self.writes.drain()
        result = deliver_batch(writer, self.outbox, self.name, batch)
        self.outcome.delivered += len(result.delivered)
        self.outcome.retried += len(result.retry)
        self.outcome.dead.extend(
            DeadLetter(ident, self.name, reason) for ident, reason in result.dead
        )
        if result.stopped is not None:
            raise result.stopped

    def _delivered(self, batch: list[Delivery], result: PostResult) -> None:
        ids = [entry.id for entry in batch]
        self.writes.submit(self.outbox.mark_delivered, self.name, ids)
        self.outcome.delivered += result.stored
        self.outcome.already_stored += result.already_stored
        if result.unknown_ids:
            self.log.warning(
                "the LRS returned %d ids that were not sent", result.unknown_ids
            )
        self.log.debug(
            "batch of %d: %d stored, %d already stored",
            len(batch),
            result.stored,
            result.already_stored,
        )

    def _dead(self, entry: Delivery, reason: str) -> None:
        self.writes.submit(self.outbox.dead_letter, self.name, [entry.id], reason)
        self.outcome.dead.append(DeadLetter(entry.id, self.name, reason))
        self.log.warning("statement %s dead-lettered: %s", entry.id, reason)

    def _post(self, client: LrsClient, batch: list[Delivery]) -> PostResult:
        """POST one batch with retries; on giving up, reschedule it and stop."""
        assert isinstance(self.config, LrsSink)
        policy = self.config.retry
        body = b"[" + b",".join(entry.payload.encode() for entry in batch) + b"]"
        ids = [entry.id for entry in batch]

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            message = getattr(error, "message", type(error).__name__)
            retry_at = datetime.now(UTC) + timedelta(seconds=wait)
            self.writes.submit(
                self.outbox.record_failure, self.name, ids, message, retry_at
            )
            self.outcome.retried += 1
            self.log.warning(
                "attempt %d for %d statements failed: %s; retrying in %.1f s",
                state.attempt_number,
                len(ids),
                message,
                wait,
            )

        controller = retrying(policy, self.deadline - time.monotonic(), before_sleep)
        try:
            return controller(client.post, body, ids)
        except DeliveryTemporary as error:
            tries = int(controller.statistics.get("attempt_number", 1))
            held = held_back(error, policy, "the LRS")
            if held is not None:
                delay, why = held
            else:
                delay = reschedule_delay(policy, batch[0].attempts + tries)
                why = f"{error.message}, {tries} attempt{'s' if tries > 1 else ''}"
            retry_at = datetime.now(UTC) + timedelta(seconds=delay)
            self.writes.submit(
                self.outbox.record_failure, self.name, ids, error.message, retry_at
            )
            raise DeliveryStopped(
                f"{why}; {len(ids)} statements wait until "
                f"{retry_at:%Y-%m-%d %H:%M:%S} UTC",
                sink=self.name,
                status=error.context.get("status"),
            ) from None
