"""The state store's tables: runs, their changes, the last applied snapshot of each
source key, and quarantined records.

The state store is microcred-sync's own database (SQLite by default, PostgreSQL in
production); the platform's roster database is a separate one.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: One execution of a job: its plan, its outcome and why.
runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("job", String(100), nullable=False),
    Column("partner", String(100), nullable=False),
    Column("flow", String(20), nullable=False),
    Column("mode", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("records_read", Integer, nullable=False, default=0),
    Column("quarantined", Integer, nullable=False, default=0),
    Column("counts", Text),
    Column("held_reason", Text),
    Column("error", Text),
    Column("override", Boolean, nullable=False, default=False),
    #: Suspensions applied so far, counted in the transaction that records them:
    #: the guard's rolling window sums these.
    Column("suspensions_applied", Integer, nullable=False, default=0),
    #: When a run that shares its job with others (deliver) last said it was alive.
    Column("heartbeat_at", DateTime(timezone=True)),
    Index("ix_runs_job_started", "job", "started_at"),
)

#: Every change a run planned, stored before it is applied: the audit trail.
#: ``state`` is ``planned`` (applied once an ``applied_batches`` range covers its
#: seq), or, for changes that wait for the guard, ``deferred``, then ``applied`` or
#: ``held``. A deferred change of a key's group carries the key's new snapshot.
changes = Table(
    "changes",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("partner", String(100), nullable=False),
    Column("source_key", String(255), nullable=False),
    Column("learner_id", String(36), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("program", String(100)),
    Column("before", Text),
    Column("after", Text),
    Column("snapshot", Text),
    Column("state", String(20), nullable=False),
    Column("applied_at", DateTime(timezone=True)),
    Index("ix_changes_partner_key", "partner", "source_key"),
)

#: The ranges of planned changes the platform committed, one row per batch: a
#: batch is marked applied with one row, not by rewriting each of its changes.
applied_batches = Table(
    "applied_batches",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("first_seq", Integer, primary_key=True),
    Column("last_seq", Integer, nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

#: The last applied state of each source key, with the hash of the record it came
#: from, so an unchanged record costs no mapping and no platform call.
snapshots = Table(
    "snapshots",
    metadata,
    Column("partner", String(100), primary_key=True),
    Column("source_key", String(255), primary_key=True),
    Column("connector", String(100), nullable=False),
    Column("learner_id", String(36), nullable=False),
    Column("record_hash", String(32)),
    Column("fields", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("programs", Text, nullable=False),
    Column("email_norm", String(320)),
    Column("suspended_at", DateTime(timezone=True)),
    Index("ix_snapshots_email", "partner", "email_norm"),
)

#: The programs each source key's learner completed (was awarded), as the results
#: flow saw them: enrollment rules see them, and stacked programs wait for them.
#: Only the results flow writes here; a roster run reads.
completions = Table(
    "completions",
    metadata,
    Column("partner", String(100), primary_key=True),
    Column("source_key", String(255), primary_key=True),
    Column("program", String(100), primary_key=True),
    Column("completed_at", DateTime(timezone=True), nullable=False),
)

#: The Open Badges credentials the results flow issued for awards: the document
#: (JSON, or a VC-JWT when signed), by award.
credentials = Table(
    "credentials",
    metadata,
    Column("award_id", String(36), primary_key=True),
    Column("partner", String(100), nullable=False),
    Column("credential_id", String(100), nullable=False),
    Column("document", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

#: Records that could not become learners, with where they were and why.
quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("job", String(100), nullable=False),
    Column("partner", String(100), nullable=False),
    Column("location", String(500), nullable=False),
    Column("source_key", String(255)),
    Column("reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_quarantine_job_run", "job", "run_id"),
)

#: One row per job while a run of it is in progress: a lease, renewed as the run
#: goes, that a run on another host may take over once it has expired.
locks = Table(
    "locks",
    metadata,
    Column("job", String(100), primary_key=True),
    Column("run_id", String(32), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

#: When an alert was last sent for a job, per kind (``run`` for a failed or held
#: run, ``outbox`` for entries waiting too long), so that it repeats at most once
#: per configured interval, whichever replica sends it.
alerts = Table(
    "alerts",
    metadata,
    Column("job", String(100), primary_key=True),
    Column("kind", String(20), primary_key=True),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    #: The run that raised it (a run alert), for the operator's reference.
    Column("run_id", String(32)),
)

#: The files a file source picked up (an SFTP drop), by connector and identity:
#: name, size, modification time and content hash. A drop whose content was
#: processed before is skipped, whatever it is called now. ``outcome`` is
#: ``archived`` (read and applied), ``rejected`` (it could not be read) or
#: ``duplicate`` (the same content as an archived one; not read).
processed_files = Table(
    "processed_files",
    metadata,
    Column("connector", String(100), primary_key=True),
    Column("sha256", String(64), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("size", BigInteger, primary_key=True),
    Column("mtime", DateTime(timezone=True), primary_key=True),
    Column("outcome", String(20), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)
