"""Alembic environment of the state store: runs, plans, snapshots, outbox, cursors."""

from microcred_sync.migrations import PLATFORM, STATE
from microcred_sync.migrations.environment import run_migrations

run_migrations(
    STATE.target(),
    STATE.version_table,
    PLATFORM.table_names() | {PLATFORM.version_table},
)
