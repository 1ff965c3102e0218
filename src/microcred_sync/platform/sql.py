"""The `sql` platform adapter: the platform's roster database through SQLAlchemy.

Every write is keyed by a derived id (learner, enrollment), so a batch applied twice
leaves one learner and one enrollment. A completed enrollment is never withdrawn or
reopened, and nothing here deletes a row.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..changes import Change, enrollment_id
from ..errors import ApplyError
from ..learners import DATE_FIELDS, LEARNER_FIELDS
from ..mappings.emails import normalize_email
from ..migrations import PLATFORM, name_failures, prepare, require_current
from ..partners import Partner, Program
from ..results.records import AwardRecord, ResultRecord, Score
from ..sqlutil import (
    dialect_insert,
    execute_many,
    make_engine,
    release_engine,
    sqlite_or_memory,
    upsert,
)
from .base import Platform
from .tables import awards as awards_table
from .tables import enrollments, learners, partners, programs
from .tables import learners as learners_table
from .tables import results as results_table

#: Ids per IN list.
LOOKUP_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class LearnerIdentityRow:
    """What identifies a learner to the partner: key, email, employee number."""

    id: str
    external_key: str
    email: str | None
    employee_number: str | None


class SqlPlatform(Platform):
    """A platform whose roster lives in a SQL database (SQLite or PostgreSQL)."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url, PLATFORM.name)
        name_failures(self.engine, PLATFORM)
        self.writes = 0
        #: The masked URL of a database without the schema yet, when this empty
        #: platform in memory stands in for it.
        self.unmigrated: str | None = None

    @classmethod
    def existing(cls, url: str) -> SqlPlatform:
        """The platform at ``url`` to read from without writing (see
        ``StateStore.existing``)."""
        platform = cls(sqlite_or_memory(url))
        if platform.engine.url.database in (None, "", ":memory:"):
            platform.create_schema()
            return platform
        try:
            found = require_current(platform.engine, PLATFORM)
        except BaseException:
            platform.close()
            raise
        if found.found != "new":
            return platform
        platform.close()
        empty = cls.existing("sqlite://")
        empty.unmigrated = platform.engine.url.render_as_string(hide_password=True)
        return empty

    def create_schema(self) -> None:
        """Migrate a new database to the current schema, or check that an existing
        one is at it (``migrations.prepare``); ConfigError when it is behind."""
        prepare(self.engine, PLATFORM)

    def close(self) -> None:
        release_engine(self.engine)

    def ensure_catalog(self, partner: Partner, offered: Iterable[Program]) -> None:
        rows = [
            {"id": p.id, "title": p.title, "activity_iri": p.activity_iri}
            for p in offered
        ]
        with self.engine.begin() as connection:
            upsert(
                connection, partners, [{"id": partner.id, "name": partner.name}], ["id"]
            )
            upsert(connection, programs, rows, ["id"])

    def active_enrollments(self, partner: str) -> int:
        query = select(func.count()).where(
            enrollments.c.partner_id == partner, enrollments.c.status == "active"
        )
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def apply(self, partner: str, batch: Sequence[Change]) -> None:
        by_kind: dict[str, list[Change]] = defaultdict(list)
        for change in batch:
            if not change.held:
                by_kind[change.kind].append(change)
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as connection:
                self.writes += self._create(connection, partner, by_kind["create"], now)
                self.writes += self._update(connection, by_kind["update"], now)
                self.writes += self._set_status(
                    connection, by_kind["suspend"], "suspended", now
                )
                self.writes += self._set_status(
                    connection, by_kind["reactivate"], "active", now
                )
                self.writes += self._enroll(connection, partner, by_kind["enroll"], now)
                self.writes += self._withdraw(connection, by_kind["withdraw"], now)
        except SQLAlchemyError as exc:
            raise ApplyError(
                "the platform refused a batch: "
                f"{type(getattr(exc, 'orig', None) or exc).__name__}",
                partner=partner,
                first_key=batch[0].source_key if batch else None,
            ) from exc

    def _create(
        self, connection: Connection, partner: str, creates: list[Change], now: datetime
    ) -> int:
        rows = []
        for change in creates:
            row: dict[str, Any] = {name: None for name in LEARNER_FIELDS}
            row.update(_columns(change.after or {}))
            row.update(
                id=change.learner_id,
                partner_id=partner,
                external_key=change.source_key,
                status="active",
                created_at=now,
                updated_at=now,
            )
            row["email_norm"] = normalize_email(row["email"]) if row["email"] else None
            rows.append(row)
        return upsert(
            connection,
            learners,
            rows,
            ["id"],
            update=[*LEARNER_FIELDS, "email_norm", "status", "updated_at"],
        )

    def _update(
        self, connection: Connection, updates: list[Change], now: datetime
    ) -> int:
        # One executemany per set of touched columns.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for change in updates:
            values = _columns(change.after or {})
            if "email" in values:
                values["email_norm"] = (
                    normalize_email(values["email"]) if values["email"] else None
                )
            row = {f"v_{column}": value for column, value in values.items()}
            groups[tuple(sorted(values))].append({**row, "b_id": change.learner_id})
        for columns, rows in groups.items():
            assignments: dict[str, Any] = {
                column: bindparam(f"v_{column}") for column in columns
            }
            statement = (
                update(learners)
                .where(learners.c.id == bindparam("b_id"))
                .values({**assignments, "updated_at": now})
            )
            execute_many(connection, statement, rows)
        return len(updates)

    def _set_status(
        self, connection: Connection, changes: list[Change], status: str, now: datetime
    ) -> int:
        if not changes:
            return 0
        statement = (
            update(learners)
            .where(learners.c.id == bindparam("b_id"))
            .values(status=status, updated_at=now)
        )
        rows = [{"b_id": change.learner_id} for change in changes]
        return execute_many(connection, statement, rows)

    def _enroll(
        self, connection: Connection, partner: str, enrolls: list[Change], now: datetime
    ) -> int:
        if not enrolls:
            return 0
        rows = [
            {
                "id": enrollment_id(change.learner_id, change.program or ""),
                "partner_id": partner,
                "learner_id": change.learner_id,
                "program_id": change.program,
                "status": "active",
                "enrolled_at": now,
                "updated_at": now,
            }
            for change in enrolls
        ]
        statement = dialect_insert(connection, enrollments)
        statement = statement.on_conflict_do_update(
            index_elements=["id"],
            set_={"status": "active", "updated_at": statement.excluded.updated_at},
            where=and_(
                enrollments.c.status != "active", enrollments.c.status != "completed"
            ),
        )
        return execute_many(connection, statement, rows)

    def _withdraw(
        self, connection: Connection, withdrawals: list[Change], now: datetime
    ) -> int:
        if not withdrawals:
            return 0
        statement = (
            update(enrollments)
            .where(
                enrollments.c.id == bindparam("b_id"),
                enrollments.c.status != "withdrawn",
                enrollments.c.status != "completed",
            )
            .values(status="withdrawn", updated_at=now)
        )
        rows = [
            {"b_id": enrollment_id(change.learner_id, change.program or "")}
            for change in withdrawals
        ]
        return execute_many(connection, statement, rows)

    # -- results and awards -----------------------------------------------------

    def enrollments_of(self, partner: str, learners: list[str]) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        with self.engine.connect() as connection:
            for start in range(0, len(learners), LOOKUP_CHUNK):
                chunk = learners[start : start + LOOKUP_CHUNK]
                known = select(learners_table.c.id).where(
                    learners_table.c.partner_id == partner,
                    learners_table.c.id.in_(chunk),
                )
                for (ident,) in connection.execute(known):
                    found[ident] = set()
                query = select(
                    enrollments.c.learner_id, enrollments.c.program_id
                ).where(
                    enrollments.c.partner_id == partner,
                    enrollments.c.learner_id.in_(chunk),
                )
                for ident, program in connection.execute(query):
                    found.setdefault(ident, set()).add(program)
        return found

    def learner_identities(
        self, partner: str, ids: list[str]
    ) -> dict[str, LearnerIdentityRow]:
        """The partner's learners among ``ids``, with what identifies them."""
        found: dict[str, LearnerIdentityRow] = {}
        table = learners_table
        with self.engine.connect() as connection:
            for start in range(0, len(ids), LOOKUP_CHUNK):
                query = select(
                    table.c.id,
                    table.c.external_key,
                    table.c.email,
                    table.c.employee_number,
                ).where(
                    table.c.partner_id == partner,
                    table.c.id.in_(ids[start : start + LOOKUP_CHUNK]),
                )
                for row in connection.execute(query):
                    found[row.id] = LearnerIdentityRow(*row)
        return found

    def record_results(
        self, partner: str, results: Sequence[ResultRecord], now: datetime
    ) -> int:
        rows = [
            {
                "id": result.id,
                "partner_id": partner,
                "learner_id": result.learner_id,
                "program_id": result.program,
                "activity_iri": result.activity_iri,
                "recorded_at": result.recorded_at,
                "completion": result.completion,
                "success": result.success,
                "score_raw": result.score.raw,
                "score_min": result.score.min,
                "score_max": result.score.max,
                "score_scaled": result.score.scaled,
                "duration": result.duration,
                "scorm": orjson.dumps(result.scorm).decode() if result.scorm else None,
                "imported_at": now,
            }
            for result in results
        ]
        return self._insert_new(results_table, rows)

    def record_awards(
        self, partner: str, awards: Sequence[AwardRecord], now: datetime
    ) -> int:
        rows = [
            {
                "id": award.id,
                "partner_id": partner,
                "learner_id": award.learner_id,
                "program_id": award.program,
                "issued_at": award.issued_at,
                "imported_at": now,
            }
            for award in awards
        ]
        completed = [
            {"b_id": enrollment_id(award.learner_id, award.program)} for award in awards
        ]
        statement = (
            update(enrollments)
            .where(enrollments.c.id == bindparam("b_id"))
            .values(status="completed", updated_at=now)
        )
        return self._insert_new(awards_table, rows, also=(statement, completed))

    def _insert_new(
        self,
        table: Table,
        rows: list[dict[str, Any]],
        also: tuple[Any, list[dict[str, Any]]] | None = None,
    ) -> int:
        """Insert the rows whose id is not there yet, in one transaction; return
        how many were new."""
        if not rows:
            return 0
        ids = [row["id"] for row in rows]
        try:
            with self.engine.begin() as connection:
                present: set[str] = set()
                for start in range(0, len(ids), LOOKUP_CHUNK):
                    chunk = ids[start : start + LOOKUP_CHUNK]
                    query = select(table.c.id).where(table.c.id.in_(chunk))
                    present.update(connection.execute(query).scalars())
                new = [row for row in rows if row["id"] not in present]
                execute_many(connection, table.insert(), new)
                if also is not None:
                    execute_many(connection, also[0], also[1])
        except SQLAlchemyError as exc:
            raise ApplyError(
                f"the platform refused {table.name}: "
                f"{type(getattr(exc, 'orig', None) or exc).__name__}"
            ) from exc
        self.writes += len(new)
        return len(new)

    def results_after(
        self, partner: str, after: tuple[datetime, str], limit: int
    ) -> list[ResultRecord]:
        return [
            _result(row) for row in self._page(results_table, partner, after, limit)
        ]

    def awards_after(
        self, partner: str, after: tuple[datetime, str], limit: int
    ) -> list[AwardRecord]:
        return [_award(row) for row in self._page(awards_table, partner, after, limit)]

    def awards_of(
        self, partner: str, learner_ids: Iterable[str]
    ) -> dict[str, list[AwardRecord]]:
        """Every award of the partner's learners among ``learner_ids``, by learner
        (a learner without an award is absent)."""
        ids = sorted(set(learner_ids))
        found: dict[str, list[AwardRecord]] = defaultdict(list)
        with self.engine.connect() as connection:
            for start in range(0, len(ids), LOOKUP_CHUNK):
                chunk = ids[start : start + LOOKUP_CHUNK]
                query = (
                    select(awards_table)
                    .where(
                        awards_table.c.partner_id == partner,
                        awards_table.c.learner_id.in_(chunk),
                    )
                    .order_by(awards_table.c.learner_id, awards_table.c.id)
                )
                for row in connection.execute(query):
                    found[row.learner_id].append(_award(row))
        return dict(found)

    def _page(
        self, table: Table, partner: str, after: tuple[datetime, str], limit: int
    ) -> list[Any]:
        """Rows of ``table`` stored after ``after`` (stored at, then id), in order."""
        moment, ident = after
        query = (
            select(table)
            .where(
                table.c.partner_id == partner,
                or_(
                    table.c.imported_at > moment,
                    and_(table.c.imported_at == moment, table.c.id > ident),
                ),
            )
            .order_by(table.c.imported_at, table.c.id)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return list(connection.execute(query))


def _utc(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _award(row: Any) -> AwardRecord:
    return AwardRecord(
        row.id,
        row.partner_id,
        row.learner_id,
        row.program_id,
        _utc(row.issued_at),
        _utc(row.imported_at),
    )


def _result(row: Any) -> ResultRecord:
    return ResultRecord(
        row.id,
        row.partner_id,
        row.learner_id,
        row.program_id,
        row.activity_iri,
        _utc(row.recorded_at),
        completion=row.completion,
        success=row.success,
        score=Score(row.score_raw, row.score_min, row.score_max, row.score_scaled),
        duration=row.duration,
        scorm=orjson.loads(row.scorm) if row.scorm else None,
        imported_at=_utc(row.imported_at),
    )


def _columns(fields: dict[str, Any]) -> dict[str, Any]:
    """Learner fields from a change, typed for the table (dates as dates)."""
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in LEARNER_FIELDS:
            continue
        if name in DATE_FIELDS and isinstance(value, str):
            value = date.fromisoformat(value)
        values[name] = value
    return values
