"""Baseline: the state store's tables as `create_all` made them before migrations.

Runs, changes, applied batches, snapshots, completions, credentials, quarantine,
locks, the outbox and the cursors of incremental reads. A database that has these
tables and no version table is stamped with this revision by `db upgrade`.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The tables this revision creates: how a database made by `create_all` is known.
TABLES = frozenset(
    [
        "applied_batches",
        "changes",
        "completions",
        "credentials",
        "cursors",
        "locks",
        "outbox",
        "quarantine",
        "runs",
        "snapshots",
    ]
)


def upgrade() -> None:
    op.create_table(
        "applied_batches",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "first_seq"),
    )
    op.create_table(
        "changes",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("partner", sa.String(length=100), nullable=False),
        sa.Column("source_key", sa.String(length=255), nullable=False),
        sa.Column("learner_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("program", sa.String(length=100), nullable=True),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("snapshot", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "seq"),
    )
    op.create_index("ix_changes_partner_key", "changes", ["partner", "source_key"])

    op.create_table(
        "completions",
        sa.Column("partner", sa.String(length=100), nullable=False),
        sa.Column("source_key", sa.String(length=255), nullable=False),
        sa.Column("program", sa.String(length=100), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partner", "source_key", "program"),
    )
    op.create_table(
        "credentials",
        sa.Column("award_id", sa.String(length=36), nullable=False),
        sa.Column("partner", sa.String(length=100), nullable=False),
        sa.Column("credential_id", sa.String(length=100), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("award_id"),
    )
    op.create_table(
        "locks",
        sa.Column("job", sa.String(length=100), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job"),
    )
    op.create_table(
        "outbox",
        sa.Column("sink", sa.String(length=100), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("partner", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("sink", "id"),
    )
    op.create_index(
        "ix_outbox_due", "outbox", ["sink", "status", "created_at", "position"]
    )

    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("job", sa.String(length=100), nullable=False),
        sa.Column("partner", sa.String(length=100), nullable=False),
        sa.Column("location", sa.String(length=500), nullable=False),
        sa.Column("source_key", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_quarantine_job_run", "quarantine", ["job", "run_id"])

    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("job", sa.String(length=100), nullable=False),
        sa.Column("partner", sa.String(length=100), nullable=False),
        sa.Column("flow", sa.String(length=20), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("records_read", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=True),
        sa.Column("held_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.Column("suspensions_applied", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runs_job_started", "runs", ["job", "started_at"])

    op.create_table(
        "snapshots",
        sa.Column("partner", sa.String(length=100), nullable=False),
        sa.Column("source_key", sa.String(length=255), nullable=False),
        sa.Column("connector", sa.String(length=100), nullable=False),
        sa.Column("learner_id", sa.String(length=36), nullable=False),
        sa.Column("record_hash", sa.String(length=32), nullable=True),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("programs", sa.Text(), nullable=False),
        sa.Column("email_norm", sa.String(length=320), nullable=True),
        sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("partner", "source_key"),
    )
    op.create_index("ix_snapshots_email", "snapshots", ["partner", "email_norm"])

    op.create_table(
        "cursors",
        sa.Column("connector", sa.String(length=100), nullable=False),
        sa.Column("server", sa.String(length=500), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("full_read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("connector", "server"),
    )


def downgrade() -> None:
    op.drop_table("cursors")
    op.drop_index("ix_snapshots_email", table_name="snapshots")

    op.drop_table("snapshots")
    op.drop_index("ix_runs_job_started", table_name="runs")

    op.drop_table("runs")
    op.drop_index("ix_quarantine_job_run", table_name="quarantine")

    op.drop_table("quarantine")
    op.drop_index("ix_outbox_due", table_name="outbox")

    op.drop_table("outbox")
    op.drop_table("locks")
    op.drop_table("credentials")
    op.drop_table("completions")
    op.drop_index("ix_changes_partner_key", table_name="changes")

    op.drop_table("changes")
    op.drop_table("applied_batches")
