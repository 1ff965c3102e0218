"""Alembic environment of the `sql` platform's roster database."""

from microcred_sync.migrations import PLATFORM, STATE
from microcred_sync.migrations.environment import run_migrations

run_migrations(
    PLATFORM.target(),
    PLATFORM.version_table,
    STATE.table_names() | {STATE.version_table},
)
