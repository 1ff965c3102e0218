"""The outbox: deliveries stored in the state database before they go on the wire.

Every method opens its own short transaction. An entry is keyed by its sink and its
id (the statement id, a UUID v5 derived from what it describes), so enqueuing the
same statement again, in the same run or a later one, changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
from sqlalchemy import Engine, Row, bindparam, func, or_, select, update

from ..sqlutil import upsert
from .errors import OutboxEntryInvalid
from .tables import outbox

Kind = Literal["statement", "writeback"]
Status = Literal["pending", "delivered", "dead"]

KINDS: tuple[str, ...] = ("statement", "writeback")
STATUSES: tuple[str, ...] = ("pending", "delivered", "dead")

#: Ids per IN list; well under every database's limit on bound parameters.
CHUNK = 500

#: How long a deliver run's claim on an entry holds unless renewed: longer than a
#: batch with its retries takes (the run renews its claims after each batch).
CLAIM_LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class NewDelivery:
    """What a flow hands the outbox: one statement (or write-back) for one sink.

    ``id`` is the statement's own id (``payload["id"]``); a statement carries an
    explicit ``timestamp`` with its offset (an LRS fills a missing one with the time
    it stored it, so a resend would conflict with the first copy).
    """

    id: str
    partner: str
    sink: str
    payload: dict[str, Any]
    kind: Kind = "statement"
    run_id: str | None = None


@dataclass(frozen=True)
class Delivery:
    """An outbox entry as stored; ``payload`` is its JSON text, sent as it is."""

    id: str
    partner: str
    sink: str
    kind: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    run_id: str | None = field(default=None, compare=False)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; the outbox only writes UTC-aware ones."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


class Outbox:
    """The durable queue of deliveries, in the state store's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- enqueue --------------------------------------------------------------

    def enqueue(
        self, deliveries: Iterable[NewDelivery], now: datetime | None = None
    ) -> int:
        """Store ``deliveries`` as pending, in one transaction; returns how many
        were new. An entry already there for its sink is left as it is.

        Raises OutboxEntryInvalid, with nothing stored, when an entry has no UUID
        id, an unknown kind, or is a statement whose ``id`` differs from the entry's
        or whose ``timestamp`` is missing or has no offset.
        """
        now = now or datetime.now(UTC)
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for position, delivery in enumerate(deliveries):
            _check(delivery)
            rows.setdefault((delivery.sink, delivery.id), _row(delivery, position, now))
        if not rows:
            return 0
        fresh = list(rows.values())
        with self.engine.begin() as connection:
            known = self._known(connection, list(rows))
            fresh = [row for row in fresh if (row["sink"], row["id"]) not in known]
            # Insert-if-absent also covers a concurrent enqueue of the same id.
            upsert(connection, outbox, fresh, keys=("sink", "id"), update=())
        return len(fresh)

    def replace(
        self, deliveries: Iterable[NewDelivery], now: datetime | None = None
    ) -> int:
        """Store each of ``deliveries`` as the latest state of its id ("latest
        state wins"), in one transaction; returns how many were new or changed.

        For entries whose payload is a whole state (a learner's Contact fields):
        one not there yet is stored as pending; one there with another payload
        takes the new one and is pending again, whatever its status (the error
        cleared; a pending one keeps its wait after a failure and its claim, a
        delivered or dead one is due now); one with the same payload is left as
        it is. A run that sent the older payload
        settles it with ``record_sent``, which leaves the newer one pending.
        Raises OutboxEntryInvalid, with nothing stored, as ``enqueue`` does.
        """
        now = now or datetime.now(UTC)
        latest: dict[tuple[str, str], NewDelivery] = {}
        for delivery in deliveries:
            _check(delivery)
            latest[(delivery.sink, delivery.id)] = delivery
        if not latest:
            return 0
        with self.engine.begin() as connection:
            stored = self._stored(connection, list(latest))
            fresh: list[dict[str, Any]] = []
            changed: list[dict[str, Any]] = []
            for position, (key, delivery) in enumerate(latest.items()):
                row = _row(delivery, position, now)
                if key not in stored:
                    fresh.append(row)
                    continue
                payload, status, next_attempt_at, claimed_until = stored[key]
                if payload == row["payload"]:
                    continue
                # A pending entry may be on the wire: its run keeps its claim and
                # settles it with record_sent. A delivered or dead one is free.
                pending = status == "pending"
                changed.append(
                    {
                        "b_sink": delivery.sink,
                        "b_id": delivery.id,
                        "b_payload": row["payload"],
                        "b_run_id": delivery.run_id,
                        "b_next": next_attempt_at if pending else now,
                        "b_claimed_until": claimed_until if pending else None,
                    }
                )
            upsert(connection, outbox, fresh, keys=("sink", "id"), update=())
            if changed:
                statement = (
                    update(outbox)
                    .where(
                        outbox.c.sink == bindparam("b_sink"),
                        outbox.c.id == bindparam("b_id"),
                    )
                    .values(
                        payload=bindparam("b_payload"),
                        status="pending",
                        next_attempt_at=bindparam("b_next"),
                        last_error=None,
                        delivered_at=None,
                        run_id=bindparam("b_run_id"),
                        claimed_until=bindparam("b_claimed_until"),
                    )
                )
                connection.execute(statement, changed)
        return len(fresh) + len(changed)

    @staticmethod
    def _stored(
        connection: Any, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, str, datetime, datetime | None]]:
        """Payload, status, next attempt and claim of the entries among ``keys``."""
        by_sink: dict[str, list[str]] = {}
        for sink, ident in keys:
            by_sink.setdefault(sink, []).append(ident)
        stored: dict[tuple[str, str], tuple[str, str, datetime, datetime | None]] = {}
        for sink, ids in by_sink.items():
            for chunk in _chunks(ids):
                query = select(
                    outbox.c.id,
                    outbox.c.payload,
                    outbox.c.status,
                    outbox.c.next_attempt_at,
                    outbox.c.claimed_until,
                ).where(outbox.c.sink == sink, outbox.c.id.in_(chunk))
                for row in connection.execute(query):
                    stored[(sink, row.id)] = (
                        row.payload,
                        row.status,
                        _aware(row.next_attempt_at) or row.next_attempt_at,
                        row.claimed_until,
                    )
        return stored

    @staticmethod
    def _known(connection: Any, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        by_sink: dict[str, list[str]] = {}
        for sink, ident in keys:
            by_sink.setdefault(sink, []).append(ident)
        known: set[tuple[str, str]] = set()
        for sink, ids in by_sink.items():
            for chunk in _chunks(ids):
                query = select(outbox.c.id).where(
                    outbox.c.sink == sink, outbox.c.id.in_(chunk)
                )
                known.update((sink, ident) for ident in connection.scalars(query))
        return known

    # -- delivering -----------------------------------------------------------

    def due(
        self,
        sink: str,
        limit: int,
        *,
        partner: str | None = None,
        now: datetime | None = None,
    ) -> list[Delivery]:
        """Up to ``limit`` pending entries of ``sink`` whose next attempt is due,
        oldest first; only ``partner``'s when given."""
        now = now or datetime.now(UTC)
        query = (
            select(outbox)
            .where(
                outbox.c.sink == sink,
                outbox.c.status == "pending",
                outbox.c.next_attempt_at <= now,
            )
            .order_by(outbox.c.created_at, outbox.c.position, outbox.c.id)
            .limit(limit)
        )
        if partner is not None:
            query = query.where(outbox.c.partner == partner)
        with self.engine.connect() as connection:
            return [_delivery(row) for row in connection.execute(query)]

    def claim(
        self,
        sink: str,
        limit: int,
        run_id: str,
        *,
        partner: str | None = None,
        now: datetime | None = None,
        lease: timedelta = CLAIM_LEASE,
    ) -> list[Delivery]:
        """Claim up to ``limit`` due entries of ``sink`` for the deliver run
        ``run_id``, oldest first: pending, next attempt due, and not claimed by a run
        whose claim still holds; only ``partner``'s when given.

        One statement picks and claims, so two runs never get the same entry: on
        PostgreSQL the picking skips rows another run is claiming at that moment
        (``FOR UPDATE SKIP LOCKED``) rather than waiting for it; SQLite has one
        writer at a time. The claim holds until ``now + lease``; ``renew_claims``
        extends it while the run goes on, and a dead run's entries are due again
        once it runs out.
        """
        now = now or datetime.now(UTC)
        picked = (
            select(outbox.c.id)
            .where(
                outbox.c.sink == sink,
                outbox.c.status == "pending",
                outbox.c.next_attempt_at <= now,
                or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= now),
            )
            .order_by(outbox.c.created_at, outbox.c.position, outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if partner is not None:
            picked = picked.where(outbox.c.partner == partner)
        # Picked once, in a materialized CTE: as a plain IN subquery PostgreSQL may
        # run it again for the UPDATE and claim more than ``limit`` entries.
        chosen = picked.cte("picked").prefix_with("MATERIALIZED")
        statement = (
            update(outbox)
            .where(outbox.c.sink == sink, outbox.c.id.in_(select(chosen.c.id)))
            .values(claimed_by=run_id, claimed_until=now + lease)
            .returning(*outbox.c)
        )
        with self.engine.begin() as connection:
            rows = list(connection.execute(statement))
        # RETURNING gives no order; the entries go out in the order they came in.
        rows.sort(key=lambda row: (row.created_at, row.position, row.id))
        return [_delivery(row) for row in rows]

    def renew_claims(
        self, run_id: str, now: datetime | None = None, lease: timedelta = CLAIM_LEASE
    ) -> int:
        """Extend the claims of ``run_id`` on entries still pending to ``now +
        lease``; returns how many it holds."""
        now = now or datetime.now(UTC)
        query = (
            update(outbox)
            .where(outbox.c.claimed_by == run_id, outbox.c.status == "pending")
            .values(claimed_until=now + lease)
        )
        with self.engine.begin() as connection:
            return int(connection.execute(query).rowcount)

    def release_claims(self, sink: str, run_id: str) -> int:
        """End the claims of ``run_id`` on ``sink``'s entries (at the end of its
        run): those still pending may be taken by another run when they are due;
        settled ones keep ``claimed_by``, the run that sent them. Returns how many
        pending entries were released."""
        query = (
            update(outbox)
            .where(
                outbox.c.sink == sink,
                outbox.c.claimed_by == run_id,
                outbox.c.claimed_until.is_not(None),
            )
            .values(claimed_until=None)
            .returning(outbox.c.status)
        )
        with self.engine.begin() as connection:
            statuses = connection.execute(query).scalars().all()
        return sum(1 for status in statuses if status == "pending")

    def mark_delivered(
        self, sink: str, ids: Sequence[str], now: datetime | None = None
    ) -> None:
        """The sink acknowledged ``ids`` (or already held them): delivered."""
        now = now or datetime.now(UTC)
        self._set(
            sink,
            ids,
            status="delivered",
            delivered_at=now,
            last_error=None,
            attempts=outbox.c.attempts + 1,
        )

    def record_failure(
        self, sink: str, ids: Sequence[str], error: str, retry_at: datetime
    ) -> None:
        """One more failed attempt of ``ids``; they stay pending until ``retry_at``."""
        self._set(
            sink,
            ids,
            only_status="pending",
            last_error=error,
            next_attempt_at=retry_at,
            attempts=outbox.c.attempts + 1,
        )

    def dead_letter(
        self, sink: str, ids: Sequence[str], reason: str, now: datetime | None = None
    ) -> None:
        """The sink refused ``ids`` for good: dead, with the sink's ``reason``."""
        self._set(
            sink,
            ids,
            only_status="pending",
            status="dead",
            last_error=reason,
            next_attempt_at=now or datetime.now(UTC),
            attempts=outbox.c.attempts + 1,
        )

    def record_sent(
        self,
        sink: str,
        sent: Sequence[Delivery],
        status: Status,
        *,
        error: str | None = None,
        retry_at: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        """Record an attempt of the entries ``sent`` as ``mark_delivered``
        (``delivered``), ``record_failure`` (``pending``, until ``retry_at``) or
        ``dead_letter`` (``dead``) do, on the rows that still hold the payload
        that was sent: one ``replace`` gave a newer payload meanwhile stays as
        that left it, to be sent in its turn.

        Raises ValueError for ``pending`` without ``retry_at``.
        """
        now = now or datetime.now(UTC)
        values: dict[str, Any] = {"attempts": outbox.c.attempts + 1}
        if status == "delivered":
            values.update(status="delivered", delivered_at=now, last_error=None)
        elif status == "dead":
            values.update(status="dead", last_error=error, next_attempt_at=now)
        elif retry_at is None:
            raise ValueError("a failed attempt needs the time of the next one")
        else:
            values.update(last_error=error, next_attempt_at=retry_at)
        query = update(outbox).where(
            outbox.c.sink == sink,
            outbox.c.id == bindparam("b_id"),
            outbox.c.payload == bindparam("b_payload"),
        )
        if status != "delivered":
            query = query.where(outbox.c.status == "pending")
        parameters = [{"b_id": entry.id, "b_payload": entry.payload} for entry in sent]
        if not parameters:
            return
        with self.engine.begin() as connection:
            connection.execute(query.values(**values), parameters)

    def requeue(
        self,
        sink: str,
        ids: Sequence[str] | None = None,
        *,
        partner: str | None = None,
        now: datetime | None = None,
    ) -> int:
        """Make dead entries, and pending ones waiting out a backoff, due now;
        ``ids`` limits it to those. Returns how many were requeued."""
        now = now or datetime.now(UTC)
        query = (
            update(outbox)
            .where(
                outbox.c.sink == sink,
                (outbox.c.status == "dead")
                | ((outbox.c.status == "pending") & (outbox.c.next_attempt_at > now)),
            )
            # An operator's retry is due for any run, whoever claimed it last.
            .values(status="pending", next_attempt_at=now, claimed_until=None)
        )
        if partner is not None:
            query = query.where(outbox.c.partner == partner)
        with self.engine.begin() as connection:
            if ids is None:
                return int(connection.execute(query).rowcount)
            return sum(
                int(connection.execute(query.where(outbox.c.id.in_(chunk))).rowcount)
                for chunk in _chunks(list(ids))
            )

    def _set(
        self,
        sink: str,
        ids: Sequence[str],
        only_status: str | None = None,
        **values: Any,
    ) -> None:
        with self.engine.begin() as connection:
            for chunk in _chunks(list(ids)):
                query = update(outbox).where(
                    outbox.c.sink == sink, outbox.c.id.in_(chunk)
                )
                if only_status is not None:
                    query = query.where(outbox.c.status == only_status)
                connection.execute(query.values(**values))

    # -- reading back ---------------------------------------------------------

    def entries(
        self,
        sinks: Sequence[str],
        *,
        partner: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Delivery]:
        """The entries of ``sinks`` (of ``partner``, in ``status``, among ``ids``),
        oldest first."""
        query = (
            select(outbox)
            .where(outbox.c.sink.in_(list(sinks)))
            .order_by(outbox.c.created_at, outbox.c.position, outbox.c.id)
        )
        if ids is not None:
            query = query.where(outbox.c.id.in_(list(ids)))
        if partner is not None:
            query = query.where(outbox.c.partner == partner)
        if status is not None:
            query = query.where(outbox.c.status == status)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [_delivery(row) for row in connection.execute(query)]

    def counts(
        self, sinks: Sequence[str], *, partner: str | None = None
    ) -> dict[str, int]:
        """Entries of ``sinks`` by status (every status present, 0 when none)."""
        query = (
            select(outbox.c.status, func.count())
            .where(outbox.c.sink.in_(list(sinks)))
            .group_by(outbox.c.status)
        )
        if partner is not None:
            query = query.where(outbox.c.partner == partner)
        found = dict.fromkeys(STATUSES, 0)
        with self.engine.connect() as connection:
            for status, count in connection.execute(query):
                found[status] = int(count)
        return found


def _check(delivery: NewDelivery) -> None:
    """Raise OutboxEntryInvalid if ``delivery`` could not be delivered as given."""
    where = {"sink": delivery.sink, "partner": delivery.partner}
    try:
        uuid.UUID(delivery.id)
    except (ValueError, AttributeError, TypeError):
        raise OutboxEntryInvalid(
            f"outbox id {delivery.id!r} is not a UUID", **where
        ) from None
    if delivery.kind not in KINDS:
        raise OutboxEntryInvalid(f"unknown outbox kind {delivery.kind!r}", **where)
    if delivery.kind != "statement":
        return
    if delivery.payload.get("id") != delivery.id:
        raise OutboxEntryInvalid(
            "a statement's id must be the outbox id", id=delivery.id, **where
        )
    _check_timestamp(delivery.payload.get("timestamp"), delivery.id, where)


def _check_timestamp(value: object, ident: str, where: dict[str, str]) -> None:
    # xAPI 1.0.3 data 2.4.7 lets the LRS fill a missing timestamp with "stored":
    # every resend would then differ from the first copy (a 409 on Ralph). A time
    # without an offset is ambiguous (XA-03).
    if not isinstance(value, str):
        raise OutboxEntryInvalid(
            "a statement needs an explicit timestamp", id=ident, **where
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise OutboxEntryInvalid(
            f"timestamp {value!r} is not an ISO 8601 time", id=ident, **where
        ) from None
    if moment.tzinfo is None:
        raise OutboxEntryInvalid(
            f"timestamp {value!r} has no time zone offset", id=ident, **where
        )


def _row(delivery: NewDelivery, position: int, now: datetime) -> dict[str, Any]:
    return {
        "sink": delivery.sink,
        "id": delivery.id,
        "partner": delivery.partner,
        "kind": delivery.kind,
        "payload": orjson.dumps(delivery.payload).decode(),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "created_at": now,
        "position": position,
        "delivered_at": None,
        "run_id": delivery.run_id,
    }


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        partner=row.partner,
        sink=row.sink,
        kind=row.kind,
        payload=row.payload,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=_aware(row.next_attempt_at) or row.next_attempt_at,
        last_error=row.last_error,
        created_at=_aware(row.created_at) or row.created_at,
        delivered_at=_aware(row.delivered_at),
        run_id=row.run_id,
    )
