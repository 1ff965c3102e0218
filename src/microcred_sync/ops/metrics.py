"""The daemon's Prometheus metrics: what its runs did, and the outbox as the state
store holds it when scraped.

Run figures are counted as each run of this daemon ends, so they are per replica:
sum them across replicas in queries. The outbox figures are read from the state
store at scrape time and are the same on every replica: take ``max`` across them.
Labels are job, sink and partner ids only, never a learner.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from ..outbox.tables import outbox
from .status import outbox_backlog

logger = logging.getLogger(__name__)

#: Seconds from an entry's enqueueing to its delivery: a minute to a day.
LATENCY_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)

#: Seconds a run takes, from a blink to hours.
DURATION_BUCKETS = (0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600)

#: Kinds of change whose application a held run leaves out.
_DEPROVISIONING = ("suspend", "withdraw")


class Metrics:
    """The metrics of one daemon, in a registry of their own."""

    def __init__(self, engine: Engine, sink_partners: Mapping[str, str]) -> None:
        self.engine = engine
        self.registry = CollectorRegistry()
        registry = self.registry
        self.runs = Counter(
            "microcred_runs",
            "Runs that ended, by job and outcome (done, held, failed, stopped; "
            "locked: another run held the job; missed: too late to start; "
            "overran: the job's last run here was still going)",
            ["job", "outcome"],
            registry=registry,
        )
        self.changes = Counter(
            "microcred_changes",
            "Changes applied to the platform by roster runs, by job and kind",
            ["job", "kind"],
            registry=registry,
        )
        self.records_read = Counter(
            "microcred_records_read",
            "Records read by roster runs, results and awards read by results runs",
            ["job"],
            registry=registry,
        )
        self.quarantined = Counter(
            "microcred_quarantined",
            "Records (or results) quarantined, by job",
            ["job"],
            registry=registry,
        )
        self.deliveries = Counter(
            "microcred_deliveries",
            "Outbox entries a deliver run settled, by job and result (delivered, "
            "already_stored, dead)",
            ["job", "result"],
            registry=registry,
        )
        self.latency = Histogram(
            "microcred_delivery_latency_seconds",
            "Seconds from enqueueing to delivery of the entries a deliver run sent",
            ["job"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.duration = Histogram(
            "microcred_run_duration_seconds",
            "Seconds a run took, by job",
            ["job"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.last_success = Gauge(
            "microcred_last_success_timestamp_seconds",
            "When the job's last run that ended done (or held) finished, Unix time",
            ["job"],
            registry=registry,
        )
        registry.register(OutboxCollector(engine, sink_partners))

    def count(self, job: str, outcome: str) -> None:
        """Count a run that has no outcome object (missed, or crashed)."""
        self.runs.labels(job, outcome).inc()

    def observe(
        self,
        job: str,
        flow: str,
        outcome: Any,
        started: datetime,
        finished: datetime,
        sinks: Sequence[str] = (),
    ) -> None:
        """Count what one run did; ``outcome`` is the flow's outcome object and
        ``sinks`` those of the job (a deliver job's latency is read for them)."""
        status = "locked" if getattr(outcome, "locked", False) else outcome.status
        self.runs.labels(job, status).inc()
        if status == "locked":
            return
        self.duration.labels(job).observe((finished - started).total_seconds())
        if status in ("done", "held"):
            self.last_success.labels(job).set(finished.timestamp())
        if flow == "roster":
            self._roster(job, outcome)
        elif flow == "results":
            self.records_read.labels(job).inc(outcome.results + outcome.awards)
            self.quarantined.labels(job).inc(outcome.quarantined)
        else:
            self._deliver(job, outcome, started, finished, sinks)

    def _roster(self, job: str, outcome: Any) -> None:
        stats = outcome.stats
        self.records_read.labels(job).inc(stats.read)
        self.quarantined.labels(job).inc(stats.quarantined)
        for kind, count in stats.counts.by_kind.items():
            if outcome.held_reason and kind in _DEPROVISIONING:
                continue  # planned, not applied
            if count:
                self.changes.labels(job, kind).inc(count)

    def _deliver(
        self,
        job: str,
        outcome: Any,
        started: datetime,
        finished: datetime,
        sinks: Sequence[str],
    ) -> None:
        self.deliveries.labels(job, "delivered").inc(outcome.delivered)
        self.deliveries.labels(job, "already_stored").inc(outcome.already_stored)
        self.deliveries.labels(job, "dead").inc(len(outcome.dead))
        if outcome.delivered or outcome.already_stored:
            for seconds in delivery_latencies(self.engine, started, finished, sinks):
                self.latency.labels(job).observe(seconds)


def delivery_latencies(
    engine: Engine,
    started: datetime,
    finished: datetime,
    sinks: Sequence[str] | None = None,
) -> list[float]:
    """Seconds from enqueueing to delivery of the entries delivered between
    ``started`` and ``finished`` (of ``sinks``, if given)."""
    query = select(outbox.c.created_at, outbox.c.delivered_at).where(
        outbox.c.status == "delivered",
        outbox.c.delivered_at >= started,
        outbox.c.delivered_at <= finished,
    )
    if sinks:
        query = query.where(outbox.c.sink.in_(list(sinks)))
    try:
        with engine.connect() as connection:
            rows = connection.execute(query).all()
    except SQLAlchemyError:
        logger.warning("delivery latency not measured: the state store did not answer")
        return []
    return [
        max(0.0, (_aware(delivered) - _aware(created)).total_seconds())
        for created, delivered in rows
    ]


class OutboxCollector(Collector):
    """The outbox backlog and the age of its oldest entry, per sink, read from the
    state store at each scrape; ``microcred_state_store_up`` says whether it
    answered."""

    def __init__(self, engine: Engine, sink_partners: Mapping[str, str]) -> None:
        self.engine, self.sink_partners = engine, dict(sink_partners)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "microcred_state_store_up",
            "1 when the state store answered the last scrape, 0 otherwise",
        )
        try:
            backlog = outbox_backlog(self.engine, sorted(self.sink_partners))
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        pending = GaugeMetricFamily(
            "microcred_outbox_backlog",
            "Pending outbox entries, by sink and partner",
            labels=["sink", "partner"],
        )
        age = GaugeMetricFamily(
            "microcred_outbox_oldest_age_seconds",
            "Seconds the oldest pending entry has waited (0 when none), by sink",
            labels=["sink", "partner"],
        )
        now = datetime.now(UTC)
        for sink, entry in backlog.items():
            labels = [sink, self.sink_partners.get(sink, "")]
            pending.add_metric(labels, entry.pending)
            age.add_metric(labels, entry.age_seconds(now) or 0.0)
        yield pending
        yield age


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
