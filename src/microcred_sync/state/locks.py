"""Job locks in the state store: one run of a job at a time, across processes and
replicas.

`microcred-sync run`, the daemon and every replica of it take the same lock before a
run starts, so a job never runs twice at once. How the lock is held depends on the
database:

- PostgreSQL: a session advisory lock on a key derived from the job id, taken on a
  connection of its own, outside the engine's pool. A session lock lives as long
  as its session; returned to the pool, the connection would keep the lock for
  whoever borrows it next. Closing the connection releases the lock, and so does
  the death of the process holding it (the server sees the session end), which
  lets another replica pick the job up at once.
- SQLite: a lease, a row naming the run, its host and process, and when it expires.
  The running job renews it as it makes progress. Another run takes it over only
  when it has expired, or when its holder was on this host and that process is
  gone (killed).

``renew`` is where a run learns that it lost its lock (the lock's connection
dropped, or its lease was taken over): it raises ``LockLost``, and the run stops
before its next batch.

Replicas fire a job at the same instants and race for its lock; a replica slow to
get there could take the lock once the winner has finished, and run the same slot
again. The daemon runs a job inside ``slot(job, since)``: a lock taken there is
given back at once, as ``JobLocked``, when a run of the job started since then.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..errors import StateError, SyncError
from .tables import locks, runs

LEASE = timedelta(minutes=10)

#: Prefix of the lock connection's ``application_name``, which names the run that
#: holds it (PostgreSQL's ``pg_stat_activity`` shows it to an operator too).
APPLICATION = "microcred-sync run "


#: The slot being run in this thread: (job, the earliest start of a run of it that
#: already served the slot).
_SLOT: ContextVar[tuple[str, datetime] | None] = ContextVar(
    "microcred_slot", default=None
)


@contextmanager
def slot(job: str, since: datetime) -> Iterator[None]:
    """Within the block, a lock on ``job`` is refused (``JobLocked``) when a run of
    it started at or after ``since``: that run served this slot already."""
    token = _SLOT.set((job, since))
    try:
        yield
    finally:
        _SLOT.reset(token)


class JobLocked(SyncError):
    """Another run of the same job holds the lock; try again when it has finished."""


class LockLost(StateError):
    """The run no longer holds its job's lock; it must stop, another may have it."""


def advisory_key(job: str) -> int:
    """The PostgreSQL advisory lock key of ``job``: a signed 64-bit hash of its id.

    Two job ids sharing a key (one chance in about 10^15 for 200 jobs) would only
    run one after the other, never together.
    """
    digest = hashlib.blake2b(
        job.encode("utf-8"), digest_size=8, person=b"microcred-lock"
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


class JobLock:
    """The lock on one job, held by one run: ``acquire``, ``renew``, ``release``."""

    def __init__(self, engine: Engine, job: str, run_id: str) -> None:
        self.engine, self.job, self.run_id = engine, job, run_id
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._session: Connection | None = None

    @property
    def advisory(self) -> bool:
        """Whether the lock is a PostgreSQL advisory lock (else a SQLite lease)."""
        return self.engine.dialect.name == "postgresql"

    def acquire(self) -> None:
        """Take the lock, or raise JobLocked naming the run that holds it (or the
        run that served the slot, inside ``slot``)."""
        if self.advisory:
            self._acquire_advisory()
        else:
            self._acquire_lease()
        served = _SLOT.get()
        if served is None or served[0] != self.job:
            return
        try:
            earlier = self._started_since(served[1])
        except BaseException:
            self.release()
            raise
        if earlier is not None:
            self.release()
            raise JobLocked(
                f"a run of {self.job} already served this slot", run=earlier
            )

    def taken(self) -> str | None:
        """Why ``acquire`` would find the job taken now (its lock held by a live
        run, or, inside ``slot``, its slot already served), or None. A look only:
        it takes nothing, and a None may be stale by the time ``acquire`` runs."""
        held = "another run holds its lock"
        with self.engine.connect() as connection:
            if self.advisory:
                if self._holder(connection):
                    return held
            else:
                holder = connection.execute(
                    select(locks).where(locks.c.job == self.job)
                ).one_or_none()
                now = datetime.now(UTC)
                if holder is not None and not self._stale(
                    holder.host, holder.pid, holder.expires_at, now
                ):
                    return held
        served = _SLOT.get()
        if served is None or served[0] != self.job:
            return None
        earlier = self._started_since(served[1])
        if earlier is None:
            return None
        return f"run {earlier} already served this slot"

    def _started_since(self, since: datetime) -> str | None:
        # A run for a few keys (``run --only``) serves no slot.
        query = (
            select(runs.c.id)
            .where(
                runs.c.job == self.job,
                runs.c.started_at >= since,
                runs.c.mode != "only",
            )
            .limit(1)
        )
        with self.engine.connect() as connection:
            return connection.execute(query).scalar_one_or_none()

    def renew(self) -> None:
        """Check the lock is still held and, for a lease, push its end further out;
        called as the run makes progress. Raises LockLost when it is not held."""
        if self.advisory:
            self._check_session()
            return
        with self.engine.begin() as connection:
            renewed = connection.execute(
                update(locks)
                .where(locks.c.job == self.job, locks.c.run_id == self.run_id)
                .values(expires_at=datetime.now(UTC) + LEASE)
            ).rowcount
        if not renewed:
            raise LockLost(
                f"the lease on {self.job} expired and another run took it over; "
                "this run stops here",
                run=self.run_id,
            )

    def release(self) -> None:
        """Give the lock up (only if this run still holds it); never raises for a
        lock that is already gone."""
        if self.advisory:
            self._release_advisory()
            return
        with self.engine.begin() as connection:
            connection.execute(
                delete(locks).where(
                    locks.c.job == self.job, locks.c.run_id == self.run_id
                )
            )

    # -- PostgreSQL -----------------------------------------------------------

    def _acquire_advisory(self) -> None:
        # Autocommit: the session never sits in a transaction. Out of the pool:
        # closing this connection really ends the session, and with it the lock.
        session = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        session.detach()
        try:
            session.execute(
                text("SELECT set_config('application_name', :name, false)"),
                {"name": APPLICATION + self.run_id},
            )
            taken = session.execute(
                text("SELECT pg_try_advisory_lock(:key)"),
                {"key": advisory_key(self.job)},
            ).scalar_one()
        except BaseException:
            session.close()
            raise
        if not taken:
            holder = self._holder(session)
            session.close()
            raise JobLocked(
                f"another run of {self.job} is in progress; try again later", **holder
            )
        self._session = session

    def _holder(self, session: Connection) -> dict[str, object]:
        """The run and client address holding the job's advisory lock, if known."""
        key = advisory_key(self.job) & 0xFFFF_FFFF_FFFF_FFFF
        row = session.execute(
            text(
                "SELECT a.application_name, host(a.client_addr) FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.classid::bigint = :high AND l.objid::bigint = :low"
            ),
            {"high": key >> 32, "low": key & 0xFFFF_FFFF},
        ).first()
        if row is None:
            return {}
        name, address = row
        run = name.removeprefix(APPLICATION) if name.startswith(APPLICATION) else None
        return {"run": run, "host": address}

    def _check_session(self) -> None:
        if self._session is None:
            raise LockLost(f"the lock on {self.job} is not held", run=self.run_id)
        try:
            self._session.execute(text("SELECT 1"))
        except SQLAlchemyError:
            self._release_advisory()
            raise LockLost(
                f"the connection holding the lock on {self.job} was lost; another "
                "replica may run the job now, so this run stops here",
                run=self.run_id,
            ) from None

    def _release_advisory(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            session.execute(
                text("SELECT pg_advisory_unlock(:key)"),
                {"key": advisory_key(self.job)},
            )
        except SQLAlchemyError:
            pass  # the session is gone, and its lock with it
        finally:
            session.close()

    # -- SQLite ---------------------------------------------------------------

    def _acquire_lease(self) -> None:
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
