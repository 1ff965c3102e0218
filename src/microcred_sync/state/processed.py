"""The files a file source picked up, kept in the state store's ``processed_files``.

A source looks a drop up by its content before reading it, and records it once
the run's outcome is known: archived after an applied run, rejected after a read
that failed on the file itself. Looking up never creates the store (a dry run
writes nothing): a missing SQLite file or table reads as "never processed".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from ..sqlutil import first_row, make_engine, release_engine, upsert
from .tables import processed_files

#: Outcomes after which the same content is not read again.
SKIPPED_OUTCOMES = ("archived", "duplicate")


@dataclass(frozen=True)
class FileIdentity:
    """What tells one dropped file from another: name, size, mtime, content."""

    name: str
    size: int
    mtime: datetime
    sha256: str

    def describe(self) -> str:
        """``hris.csv (1204 bytes, modified 2026-12-01T01:00:00+00:00)``."""
        return f"{self.name} ({self.size} bytes, modified {self.mtime.isoformat()})"


@dataclass(frozen=True)
class ProcessedFile:
    """A file recorded as processed, as the state store has it."""

    identity: FileIdentity
    outcome: str
    processed_at: datetime


def _aware(moment: datetime) -> datetime:
    # SQLite gives naive datetimes back; they were written in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ProcessedFiles:
    """The ``processed_files`` table of the state store at ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def find(self, connector: str, sha256: str, size: int) -> ProcessedFile | None:
        """The earliest file of ``connector`` with this content that was archived
        (or skipped as a duplicate of one), if any."""
        query = (
            select(processed_files)
            .where(
                processed_files.c.connector == connector,
                processed_files.c.sha256 == sha256,
                processed_files.c.size == size,
                processed_files.c.outcome.in_(SKIPPED_OUTCOMES),
            )
            .order_by(processed_files.c.processed_at)
        )
        row = first_row(self.url, processed_files, query, "state")
        if row is None:
            return None
        identity = FileIdentity(row.name, row.size, _aware(row.mtime), row.sha256)
        return ProcessedFile(identity, row.outcome, _aware(row.processed_at))

    def record(
        self, connector: str, identity: FileIdentity, outcome: str, now: datetime
    ) -> None:
        """Keep ``identity`` as processed with ``outcome`` (the latest one wins)."""
        row = {
            "connector": connector,
            "sha256": identity.sha256,
            "name": identity.name,
            "size": identity.size,
            "mtime": identity.mtime,
            "outcome": outcome,
            "processed_at": now,
        }
        keys = ["connector", "sha256", "name", "size", "mtime"]
        engine = make_engine(self.url, "state")
        try:
            processed_files.create(engine, checkfirst=True)
            with engine.begin() as connection:
                upsert(connection, processed_files, [row], keys)
        finally:
            release_engine(engine)
