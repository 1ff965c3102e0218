"""Job locks in the state store: one run of a job at a time, across processes.

A lock is a lease: a row naming the run, its host and process, and when it expires.
The running job renews it as it goes. Another run takes it over only when it has
expired, or when its holder was on this host and that process is gone (killed).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import SyncError
from .tables import locks

LEASE = timedelta(minutes=10)


class JobLocked(SyncError):
    """Another run of the same job holds the lock; try again when it has finished."""


class JobLock:
    """The lease on one job, held by one run."""

    def __init__(self, engine: Engine, job: str, run_id: str) -> None:
        self.engine, self.job, self.run_id = engine, job, run_id
        self.host, self.pid = socket.gethostname(), os.getpid()

    def acquire(self) -> None:
        """Take the lock, or raise JobLocked naming the run that holds it."""
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            holder = connection.execute(
                select(locks).where(locks.c.job == self.job)
            ).one_or_none()
            if holder is not None and not self._stale(
                holder.host, holder.pid, holder.expires_at, now
            ):
                raise JobLocked(
                    f"another run of {self.job} is in progress; try again later",
                    run=holder.run_id,
                    host=holder.host,
                    pid=holder.pid,
                )
            if holder is not None:
                connection.execute(delete(locks).where(locks.c.job == self.job))
            try:
                connection.execute(
                    locks.insert().values(
                        job=self.job,
                        run_id=self.run_id,
                        host=self.host,
                        pid=self.pid,
                        expires_at=now + LEASE,
                    )
                )
            except IntegrityError:
                # Another run took it between our look and our insert.
                raise JobLocked(
                    f"another run of {self.job} is in progress; try again later"
                ) from None

    def renew(self) -> None:
        """Push the lease's end further out; called as the run makes progress."""
        with self.engine.begin() as connection:
            connection.execute(
                update(locks)
                .where(locks.c.job == self.job, locks.c.run_id == self.run_id)
                .values(expires_at=datetime.now(UTC) + LEASE)
            )

    def release(self) -> None:
        """Give the lock up (only if this run still holds it)."""
        with self.engine.begin() as connection:
            connection.execute(
                delete(locks).where(
                    locks.c.job == self.job, locks.c.run_id == self.run_id
                )
            )

    def _stale(self, host: str, pid: int, expires_at: datetime, now: datetime) -> bool:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at < now:
            return True
        return host == self.host and not _alive(pid)


def _alive(pid: int) -> bool:
    """Whether a process of this host is still running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
