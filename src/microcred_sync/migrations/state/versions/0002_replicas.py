"""Issue 6, several replicas: alert times, the files a file source picked up, and
claims on outbox entries.

- ``alerts`` (new): when an alert was last sent per job and kind.
- ``processed_files`` (new): the files an SFTP drop source picked up, by identity.
  Its code creates it on first use too, so it is created here only when missing.
- ``outbox.claimed_by``, ``outbox.claimed_until`` (new, nullable): the deliver run
  that claimed an entry and until when; existing entries start unclaimed.
- ``runs.heartbeat_at`` (new, nullable): when a deliver run (which shares its job
  with other workers) last said it was alive.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("job", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("job", "kind"),
    )
    if not sa.inspect(op.get_bind()).has_table("processed_files"):
        op.create_table(
            "processed_files",
            sa.Column("connector", sa.String(length=100), nullable=False),
            sa.Column("sha256", sa.String(length=64), nullable=False),
            sa.Column("name", sa.String(length=255), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("mtime", sa.DateTime(timezone=True), nullable=False),
            sa.Column("outcome", sa.String(length=20), nullable=False),
            sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("connector", "sha256", "name", "size", "mtime"),
        )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("heartbeat_at")
    op.drop_table("processed_files")
    op.drop_table("alerts")
