"""The state store: runs, stored plans, snapshots, quarantine and the audit trail.

Every method opens its own short transaction unless it says otherwise. A batch's
changes are stored before the platform applies them; its snapshots and the mark
that it was applied are written in one transaction after the platform committed
it: a crash in between leaves the snapshots behind, the next run plans the same
changes again, and the platform's idempotent writes make that harmless.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, Row, and_, func, or_, select, update

from ..changes import Change, Snapshot, SnapshotHead
from ..migrations import STATE, name_failures, prepare, require_current
from ..sqlutil import (
    column_length,
    driver_rows,
    execute_many,
    make_engine,
    placeholders,
    release_engine,
    sqlite_or_memory,
    upsert,
)
from .tables import (
    applied_batches,
    changes,
    completions,
    credentials,
    quarantine,
    runs,
    snapshots,
)

#: Rows per IN list (the planner asks for a chunk of 1000 at a time); well under
#: the limit on bound parameters of every database we run on.
LOOKUP_CHUNK = 1000


def _dumps(document: Any) -> str | None:
    if document is None:
        return None
    return orjson.dumps(document).decode()


def _loads(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; the store only ever writes UTC-aware ones."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ConnectorCounts:
    """A connector's learners by what a full read could still do to them."""

    active: int
    #: Suspended with enrollments left, which the withdraw policy may withdraw.
    suspended_enrolled: int


@dataclass(frozen=True)
class Batch:
    """One batch of a run: changes to apply now, changes that wait for the guard,
    and records quarantined."""

    applied: Sequence[Change] = ()
    deferred: Sequence[Change] = ()
    quarantined: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True)
class RunInfo:
    """A run as `status` and the command line show it."""

    id: str
    job: str
    partner: str
    mode: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    records_read: int
    quarantined: int
    counts: dict[str, int]
    held_reason: str | None
    error: str | None


#: The statuses of a run still going (or killed before it could say otherwise).
UNFINISHED = ("planning", "applying")


class StateStore:
    """microcred-sync's own database."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url, STATE.name)
        name_failures(self.engine, STATE)
        #: The masked URL of a database without the schema yet (a new PostgreSQL
        #: one), when this empty store in memory stands in for it.
        self.unmigrated: str | None = None

    @classmethod
    def existing(cls, url: str) -> StateStore:
        """The store at ``url`` to read from without writing: when its SQLite file
        does not exist yet, or its database has none of the schema's tables yet
        (``unmigrated`` then names it), an empty store in memory stands in for
        it. Raises ConfigError when the database needs `microcred-sync db
        upgrade`."""
        store = cls(sqlite_or_memory(url))
        if store.engine.url.database in (None, "", ":memory:"):
            store.create_schema()
            return store
        try:
            found = require_current(store.engine, STATE)
        except BaseException:
            store.close()
            raise
        if found.found != "new":
            return store
        store.close()
        empty = cls.existing("sqlite://")
        empty.unmigrated = store.engine.url.render_as_string(hide_password=True)
        return empty

    def create_schema(self) -> None:
        """Migrate a new database to the current schema, or check that an existing
        one is at it (``migrations.prepare``).

        Raises ConfigError, with nothing written, when the database is behind and
        needs `microcred-sync db upgrade`.
        """
        prepare(self.engine, STATE)

    def close(self) -> None:
        release_engine(self.engine)

    # -- snapshots ------------------------------------------------------------

    def snapshots(self, partner: str, keys: list[str]) -> dict[str, Snapshot]:
        """The snapshots of ``keys`` that exist."""
        found: dict[str, Snapshot] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(keys), LOOKUP_CHUNK):
                chunk = keys[start : start + LOOKUP_CHUNK]
                query = select(snapshots).where(
                    snapshots.c.partner == partner, snapshots.c.source_key.in_(chunk)
                )
                for row in connection.execute(query):
                    found[row.source_key] = _snapshot(row)
        return found

    def heads(self, partner: str, keys: list[str]) -> dict[str, SnapshotHead]:
        """What the planner needs to skip an unchanged record, for ``keys``."""
        found: dict[str, SnapshotHead] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(keys), LOOKUP_CHUNK):
                chunk = keys[start : start + LOOKUP_CHUNK]
                sql = (
                    f"SELECT {_HEAD_SQL} FROM snapshots WHERE partner = "
                    f"{placeholders(connection, 1)} AND source_key IN "
                    f"({placeholders(connection, len(chunk))})"
                )
                for row in driver_rows(connection, sql, [partner, *chunk]):
                    found[row[0]] = _head(row)
        return found

    def email_owners(self, partner: str, emails: list[str]) -> dict[str, str]:
        """For each normalized email held by a learner, that learner's source key."""
        owners: dict[str, str] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(emails), LOOKUP_CHUNK):
                chunk = emails[start : start + LOOKUP_CHUNK]
                query = select(snapshots.c.email_norm, snapshots.c.source_key).where(
                    snapshots.c.partner == partner, snapshots.c.email_norm.in_(chunk)
                )
                owners.update(
                    {
                        row.email_norm: row.source_key
                        for row in connection.execute(query)
                    }
                )
        return owners

    def completed(self, partner: str, keys: list[str]) -> dict[str, frozenset[str]]:
        """The programs each of ``keys`` completed, for the keys that did any."""
        found: dict[str, set[str]] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(keys), LOOKUP_CHUNK):
                chunk = keys[start : start + LOOKUP_CHUNK]
                sql = (
                    "SELECT source_key, program FROM completions WHERE partner = "
                    f"{placeholders(connection, 1)} AND source_key IN "
                    f"({placeholders(connection, len(chunk))})"
                )
                for key, program in driver_rows(connection, sql, [partner, *chunk]):
                    found.setdefault(key, set()).add(program)
        return {key: frozenset(programs) for key, programs in found.items()}

    def any_completed(self, partner: str) -> bool:
        """Whether any of the partner's learners completed a program."""
        query = select(completions.c.partner).where(completions.c.partner == partner)
        with self.engine.connect() as connection:
            return connection.execute(query.limit(1)).first() is not None

    def record_completions(
        self, partner: str, completed: Sequence[tuple[str, str, datetime]]
    ) -> int:
        """Remember (source key, program, when) completions; returns how many were
        new. The next roster run re-plans those learners (their hash changed)."""
        rows = [
            {
                "partner": partner,
                "source_key": key,
                "program": program,
                "completed_at": moment,
            }
            for key, program, moment in completed
        ]
        with self.engine.begin() as connection:
            before = connection.execute(
                select(func.count()).where(completions.c.partner == partner)
            ).scalar_one()
            upsert(
                connection,
                completions,
                rows,
                keys=("partner", "source_key", "program"),
                update=(),
            )
            after = connection.execute(
                select(func.count()).where(completions.c.partner == partner)
            ).scalar_one()
        return int(after - before)

    def record_quarantine(self, rows: Sequence[dict[str, Any]]) -> None:
        """Store quarantined records (or results) of a run."""
        with self.engine.begin() as connection:
            execute_many(connection, quarantine.insert(), _storable(rows))

    def record_credentials(
        self, partner: str, issued: Sequence[tuple[str, str, str]]
    ) -> None:
        """Keep (award id, credential id, document) credentials; an award's first
        credential stays (its id is derived, so a later one is the same)."""
        now = datetime.now(UTC)
        rows = [
            {
                "award_id": award,
                "partner": partner,
                "credential_id": credential,
                "document": document,
                "created_at": now,
            }
            for award, credential, document in issued
        ]
        with self.engine.begin() as connection:
            upsert(connection, credentials, rows, keys=("award_id",), update=())

    def credential(self, award_id: str) -> str | None:
        """The credential document issued for an award, if any."""
        query = select(credentials.c.document).where(credentials.c.award_id == award_id)
        with self.engine.connect() as connection:
            return connection.execute(query).scalar_one_or_none()

    def connector_heads(
        self, partner: str, connector: str
    ) -> Iterator[tuple[str, SnapshotHead]]:
        """The head of every snapshot that ``connector`` provisioned."""
        with self.engine.connect() as connection:
            marks = placeholders(connection, 2).split(", ")
            sql = (
                f"SELECT {_HEAD_SQL} FROM snapshots WHERE partner = {marks[0]}"
                f" AND connector = {marks[1]}"
            )
            cursor = connection.exec_driver_sql(sql, (partner, connector))
            while rows := cursor.fetchmany(5000):
                for row in rows:
                    yield row[0], _head(row)

    def connector_counts(self, partner: str, connector: str) -> ConnectorCounts:
        """How many of the partner's learners from ``connector`` are active, and
        how many are suspended with enrollments left, in one pass."""
        query = select(
            func.count().filter(snapshots.c.status == "active"),
            func.count().filter(
                snapshots.c.status == "suspended", snapshots.c.programs != "[]"
            ),
        ).where(snapshots.c.partner == partner, snapshots.c.connector == connector)
        with self.engine.connect() as connection:
            active, suspended = connection.execute(query).one()
        return ConnectorCounts(int(active or 0), int(suspended or 0))

    def applied_deprovisions(self, partner: str, since: datetime) -> int:
        """Suspensions applied to the partner by runs started since ``since``."""
        query = select(func.coalesce(func.sum(runs.c.suspensions_applied), 0)).where(
            runs.c.partner == partner, runs.c.started_at >= since
        )
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    # -- runs -----------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        job: str,
        partner: str,
        flow: str,
        mode: str,
        now: datetime,
        *,
        exclusive: bool = True,
        silent_after: timedelta | None = None,
    ) -> None:
        """Record a new run; runs of the same job left unfinished become interrupted.

        The caller holds the job's lock, so an unfinished run is a dead one. Runs
        that share a job (``exclusive`` false: deliver runs, which claim their
        entries) say they are alive with ``beat``; of those, only the ones silent
        for longer than ``silent_after`` are dead.
        """
        unfinished = (runs.c.job == job) & runs.c.status.in_(UNFINISHED)
        if not exclusive:
            if silent_after is None:
                raise ValueError("a shared run needs silent_after")
            last = func.coalesce(runs.c.heartbeat_at, runs.c.started_at)
            unfinished &= last < now - silent_after
        with self.engine.begin() as connection:
            connection.execute(
                update(runs)
                .where(unfinished)
                .values(status="interrupted", finished_at=now)
            )
            connection.execute(
                runs.insert().values(
                    id=run_id,
                    job=job,
                    partner=partner,
                    flow=flow,
                    mode=mode,
                    status="planning",
                    suspensions_applied=0,
                    started_at=now,
                    heartbeat_at=now,
                    records_read=0,
                    quarantined=0,
                )
            )

    def beat(self, run_id: str, now: datetime | None = None) -> None:
        """Say that the run ``run_id`` is still alive (see ``start_run``)."""
        with self.engine.begin() as connection:
            connection.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(heartbeat_at=now or datetime.now(UTC))
            )

    def update_run(self, run_id: str, **values: Any) -> None:
        """Set columns of a run (``counts`` as a dict)."""
        if "counts" in values:
            values["counts"] = _dumps(values["counts"])
        with self.engine.begin() as connection:
            connection.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def run(self, run_id: str) -> RunInfo:
        """One run, by id."""
        with self.engine.connect() as connection:
            row = connection.execute(select(runs).where(runs.c.id == run_id)).one()
        return _run_info(row)

    def latest_runs(self) -> list[RunInfo]:
        """The newest run of every job, runs for a few keys (``run --only``) left
        out: they are not the job's run, and its schedule goes on from the last
        whole one."""
        newest = (
            select(runs.c.job, func.max(runs.c.started_at).label("started"))
            .where(runs.c.mode != "only")
            .group_by(runs.c.job)
            .subquery()
        )
        query = (
            select(runs)
            .join(
                newest,
                and_(runs.c.job == newest.c.job, runs.c.started_at == newest.c.started),
            )
            .where(runs.c.mode != "only")
            .order_by(runs.c.job)
        )
        with self.engine.connect() as connection:
            return [_run_info(row) for row in connection.execute(query)]

    def has_run(self, job: str, run_id: str) -> bool:
        """Whether ``run_id`` is a run of ``job``."""
        query = select(runs.c.id).where(runs.c.job == job, runs.c.id == run_id)
        with self.engine.connect() as connection:
            return connection.execute(query).first() is not None

    def _reads_since_full(self, job: str) -> list[str]:
        """The job's latest full read and its delta reads since (all its delta
        reads if it never had a full one); runs for a few keys are left out."""
        full = self.latest_run_id(job, "full")
        query = select(runs.c.id).where(runs.c.job == job, runs.c.mode != "only")
        if full is not None:
            started = select(runs.c.started_at).where(runs.c.id == full)
            query = query.where(runs.c.started_at >= started.scalar_subquery())
        with self.engine.connect() as connection:
            found = list(connection.execute(query).scalars())
        if not found:
            latest = self.latest_run_id(job)
            return [latest] if latest else []
        return found

    def latest_run_id(self, job: str, mode: str | None = None) -> str | None:
        """The newest run of ``job`` (of that ``mode``, if given)."""
        query = (
            select(runs.c.id)
            .where(runs.c.job == job)
            .order_by(runs.c.started_at.desc())
            .limit(1)
        )
        if mode is not None:
            query = query.where(runs.c.mode == mode)
        with self.engine.connect() as connection:
            return connection.execute(query).scalar_one_or_none()

    # -- plans ----------------------------------------------------------------

    def hold_deprovisioning(self, run_id: str) -> int:
        """Mark the run's waiting suspensions and withdrawals as held."""
        query = (
            update(changes)
            .where(
                changes.c.run_id == run_id,
                changes.c.state == "deferred",
                changes.c.kind.in_(("suspend", "withdraw")),
            )
            .values(state="held")
        )
        with self.engine.begin() as connection:
            return int(connection.execute(query).rowcount)

    def record_planned(self, run_id: str, partner: str, batch: Batch) -> None:
        """Store a batch's plan before any of it is applied, in one transaction:
        its changes (those that wait for the guard as ``deferred``, with their
        group's snapshot) and its quarantined records.

        ``refresh`` changes only move a snapshot: they leave no audit row.
        """
        rows = [
            _change_row(run_id, partner, change, "planned")
            for change in batch.applied
            if change.kind != "refresh"
        ]
        rows += [
            _change_row(run_id, partner, change, "deferred")
            for change in batch.deferred
        ]
        with self.engine.begin() as connection:
            execute_many(connection, changes.insert(), rows)
            execute_many(connection, quarantine.insert(), _storable(batch.quarantined))

    def record_applied(
        self,
        run_id: str,
        partner: str,
        connector: str,
        applied: Sequence[Change],
        now: datetime,
    ) -> None:
        """Record changes the platform committed, in one transaction: the
        snapshots of their keys, and the range of their seqs as applied."""
        rows = [
            _snapshot_row(partner, connector, change)
            for change in applied
            if change.snapshot is not None
        ]
        with self.engine.begin() as connection:
            upsert(connection, snapshots, rows, keys=("partner", "source_key"))
            connection.execute(
                applied_batches.insert().values(
                    run_id=run_id,
                    first_seq=applied[0].seq,
                    last_seq=applied[-1].seq,
                    applied_at=now,
                )
            )

    def planned_batches(self, run_id: str, size: int) -> Iterator[list[Change]]:
        """The run's changes not yet applied, in order, in batches that never split a
        key's group (held changes come along so that their group is known)."""
        query = (
            select(changes)
            .where(
                changes.c.run_id == run_id, changes.c.state.in_(("deferred", "held"))
            )
            .order_by(changes.c.seq)
        )
        batch: list[Change] = []
        with self.engine.connect() as connection:
            result = connection.execution_options(yield_per=size).execute(query)
            for row in result:
                change = _change(row)
                if len(batch) >= size and change.snapshot is not None:
                    yield batch
                    batch = []
                batch.append(change)
        if batch:
            yield batch

    def commit_batch(
        self,
        run_id: str,
        partner: str,
        connector: str,
        batch: Sequence[Change],
        now: datetime,
    ) -> None:
        """Record an applied batch of deferred changes, in one transaction."""
        # A group with held changes carries the snapshot of its applied part, with
        # no record hash, so the next run plans what was held again (the applier
        # sees to that: ``BatchApplier.finish``).
        rows = [
            _snapshot_row(partner, connector, change)
            for change in batch
            if change.snapshot is not None
        ]
        suspended = sum(
            1 for change in batch if change.kind == "suspend" and not change.held
        )
        with self.engine.begin() as connection:
            upsert(connection, snapshots, rows, keys=("partner", "source_key"))
            connection.execute(
                update(changes)
                .where(
                    changes.c.run_id == run_id,
                    changes.c.state == "deferred",
                    changes.c.seq.between(batch[0].seq, batch[-1].seq),
                )
                .values(state="applied", applied_at=now)
            )
            if suspended:
                connection.execute(
                    update(runs)
                    .where(runs.c.id == run_id)
                    .values(suspensions_applied=runs.c.suspensions_applied + suspended)
                )

    # -- reading back ---------------------------------------------------------

    def audit(self, key: str, partner: str | None = None) -> list[dict[str, Any]]:
        """Every applied or held change of a source key, oldest first."""
        batch = applied_batches
        covered = and_(
            changes.c.state == "planned",
            batch.c.run_id == changes.c.run_id,
            changes.c.seq.between(batch.c.first_seq, batch.c.last_seq),
        )
        query = (
            select(changes, runs.c.job, batch.c.applied_at.label("batch_applied_at"))
            .join(runs, runs.c.id == changes.c.run_id)
            .outerjoin(batch, covered)
            .where(
                changes.c.source_key == key,
                or_(
                    changes.c.state.in_(("applied", "held")),
                    batch.c.run_id.is_not(None),
                ),
            )
            .order_by(runs.c.started_at, changes.c.seq)
        )
        if partner is not None:
            query = query.where(changes.c.partner == partner)
        with self.engine.connect() as connection:
            return [_audit_entry(row) for row in connection.execute(query)]

    def quarantined(self, job: str, run_id: str | None = None) -> list[dict[str, Any]]:
        """The quarantined records of a job's run, in source order.

        By default those of the latest full read and of the delta reads since: a
        run for a few keys (``--only``) does not hide what the whole source holds,
        and what a delta read quarantined stays in sight until the next full read.
        """
        run_ids = [run_id] if run_id else self._reads_since_full(job)
        if not run_ids:
            return []
        query = select(quarantine).where(
            quarantine.c.job == job, quarantine.c.run_id.in_(run_ids)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(quarantine.c.id)).all()
        found = [
            {
                "location": r.location,
                "key": r.source_key,
                "reason": r.reason,
                "run_id": r.run_id,
            }
            for r in rows
        ]
        return sorted(found, key=lambda entry: _location_order(entry["location"]))


_HEAD_SQL = "source_key, record_hash, status, suspended_at, programs, connector"


def _head(row: Sequence[Any]) -> SnapshotHead:
    """A head from a driver row (``_HEAD_SQL``'s columns, values as the driver
    returns them: SQLite gives the timestamp as text)."""
    suspended = row[3]
    if isinstance(suspended, str):
        suspended = datetime.fromisoformat(suspended)
    return SnapshotHead(row[1], row[2], _aware(suspended), row[4] != "[]", row[5])


def _location_order(location: str) -> tuple[str, int]:
    """``hris.csv:12`` sorts before ``hris.csv:100``."""
    name, _, line = location.rpartition(":")
    return (name, int(line)) if line.isdigit() else (location, 0)


def _snapshot(row: Row[Any]) -> Snapshot:
    return Snapshot(
        learner_id=row.learner_id,
        record_hash=row.record_hash,
        fields=orjson.loads(row.fields),
        status=row.status,
        programs=orjson.loads(row.programs),
        email_norm=row.email_norm,
        suspended_at=_aware(row.suspended_at),
    )


def _snapshot_row(partner: str, connector: str, change: Change) -> dict[str, Any]:
    snapshot = change.snapshot
    assert snapshot is not None
    return {
        "partner": partner,
        "source_key": change.source_key,
        "connector": connector,
        "learner_id": snapshot.learner_id,
        "record_hash": snapshot.record_hash,
        "fields": _dumps(snapshot.fields),
        "status": snapshot.status,
        "programs": _dumps(snapshot.programs),
        "email_norm": snapshot.email_norm,
        "suspended_at": snapshot.suspended_at,
    }


def _change_row(
    run_id: str,
    partner: str,
    change: Change,
    state: str,
    applied_at: datetime | None = None,
) -> dict[str, Any]:
    after = dict(change.after or {})
    if change.reason:
        after["reason"] = change.reason
    snapshot = change.snapshot if state == "deferred" else None
    return {
        "run_id": run_id,
        "seq": change.seq,
        "partner": partner,
        "source_key": change.source_key,
        "learner_id": change.learner_id,
        "kind": change.kind,
        "program": change.program,
        "before": _dumps(change.before),
        "after": _dumps(after or None),
        "snapshot": _dumps(snapshot.to_json()) if snapshot else None,
        "state": state,
        "applied_at": applied_at,
    }


def _change(row: Row[Any]) -> Change:
    after = _loads(row.after)
    reason = after.pop("reason", None) if isinstance(after, dict) else None
    snapshot = _loads(row.snapshot)
    return Change(
        kind=row.kind,
        source_key=row.source_key,
        learner_id=row.learner_id,
        program=row.program,
        before=_loads(row.before),
        after=after or None,
        snapshot=Snapshot.from_json(snapshot) if snapshot else None,
        reason=reason,
        seq=row.seq,
        held=row.state == "held",
    )


def _audit_entry(row: Row[Any]) -> dict[str, Any]:
    change = _change(row)
    applied_at = _aware(row.applied_at or row.batch_applied_at)
    return {
        "run_id": row.run_id,
        "job": row.job,
        "partner": row.partner,
        "learner_key": row.source_key,
        "learner_id": row.learner_id,
        "kind": row.kind,
        "program": row.program,
        "state": "applied" if row.state == "planned" else row.state,
        "applied_at": applied_at.isoformat() if applied_at else None,
        "before": change.before,
        "after": change.after,
        "reason": change.reason,
    }


def _run_info(row: Row[Any]) -> RunInfo:
    return RunInfo(
        id=row.id,
        job=row.job,
        partner=row.partner,
        mode=row.mode,
        status=row.status,
        started_at=_aware(row.started_at) or row.started_at,
        finished_at=_aware(row.finished_at),
        records_read=row.records_read,
        quarantined=row.quarantined,
        counts=_loads(row.counts) or {},
        held_reason=row.held_reason,
        error=row.error,
    )


#: How much of a quarantined record's place and key the quarantine keeps.
_QUARANTINE_LENGTHS = {
    name: column_length(quarantine, name) for name in ("location", "source_key")
}


def _storable(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Quarantine rows as the table holds them: a place or key longer than its
    column (a key too long to be one is a reason for quarantine) keeps its start,
    its last character replaced with an ellipsis to show it was cut. Elsewhere a
    text too long is refused; here it is evidence, and refusing it would fail the
    run that quarantines it."""
    kept = []
    for row in rows:
        for name, length in _QUARANTINE_LENGTHS.items():
            value = row.get(name)
            if isinstance(value, str) and length and len(value) > length:
                row = {**row, name: value[: length - 1] + "…"}
        kept.append(row)
    return kept
