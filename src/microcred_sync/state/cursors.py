"""Cursors of incremental reads, kept in the state store's ``cursors`` table.

A source reads its cursor before a run and hands the new one over when the run
has applied what it read; ``save`` is called only then, so a run that failed or
was held reads the same changes again next time.

The table lives here rather than in ``tables.py``: it is created on the first
save, so a state store made before it existed needs no migration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
)

from ..sqlutil import first_row, make_engine, release_engine

#: Where an incremental read resumes, per connector and server (a USN means
#: something only on the server that issued it), and when the last full read was.
cursors = Table(
    "cursors",
    MetaData(),
    Column("connector", String(100), primary_key=True),
    Column("server", String(500), primary_key=True),
    Column("value", Text, nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
    Column("full_read_at", DateTime(timezone=True)),
)


@dataclass(frozen=True)
class Cursor:
    """Where the next delta read of one connector on one server starts."""

    value: str
    saved_at: datetime
    full_read_at: datetime | None


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite gives naive datetimes back; they were written in UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class CursorStore:
    """The ``cursors`` table of the state store at ``url``.

    Reading never creates the store (a dry run writes nothing): a missing SQLite
    file or table reads as "no cursor".
    """

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, connector: str, server: str) -> Cursor | None:
        """The cursor of ``connector`` on ``server``, if one was saved."""
        query = select(cursors).where(
            cursors.c.connector == connector, cursors.c.server == server
        )
        row = first_row(self.url, cursors, query, "state")
        if row is None:
            return None
        return Cursor(
            row.value, _aware(row.saved_at) or row.saved_at, _aware(row.full_read_at)
        )

    def last_full_read(self, connector: str) -> datetime | None:
        """When the last full read of ``connector`` was applied, on any server."""
        query = select(func.max(cursors.c.full_read_at)).where(
            cursors.c.connector == connector
        )
        row = first_row(self.url, cursors, query, "state")
        return None if row is None else _aware(row[0])

    def save(
        self, connector: str, server: str, value: str, *, full: bool, now: datetime
    ) -> None:
        """Keep ``value`` as the cursor of ``connector`` on ``server``.

        A full read also stamps ``full_read_at``; a delta read keeps the last one.
        """
        previous = self.get(connector, server)
        full_read_at = now if full else (previous.full_read_at if previous else None)
        engine = make_engine(self.url, "state")
        try:
            cursors.create(engine, checkfirst=True)
            with engine.begin() as connection:
                connection.execute(
                    delete(cursors).where(
                        cursors.c.connector == connector, cursors.c.server == server
                    )
                )
                connection.execute(
                    insert(cursors).values(
                        connector=connector,
                        server=server,
                        value=value,
                        saved_at=now,
                        full_read_at=full_read_at,
                    )
                )
        finally:
            release_engine(engine)


def full_read_due(
    state_url: str | None,
    connector: str,
    server: str,
    every_hours: float | None,
    now: datetime,
) -> bool:
    """Whether an incremental source reads in full this time: when it has no
    incremental reads (``every_hours`` None) or no state store, no cursor for
    ``server`` yet, or its last full read is ``every_hours`` old."""
    if every_hours is None or state_url is None:
        return True
    store = CursorStore(state_url)
    last = store.last_full_read(connector)
    if last is None or now - last >= timedelta(hours=every_hours):
        return True
    return store.get(connector, server) is None
