"""Alembic migrations of microcred-sync's two databases, and what opening one does.

Each database has its own migration environment in this package (``state/`` for
the state store, ``platform/`` for the `sql` platform) and its own version table,
so both may live in one PostgreSQL database. What a database is found to be
decides what happens when a flow opens it (``prepare``):

- new (none of the schema's tables): upgraded to the newest revision (head);
- at head: used as it is;
- made by ``create_all`` before migrations existed (it has the baseline's tables
  and no version table): stamped with the baseline when that is head, otherwise
  left alone with a ConfigError;
- behind head, or with tables but no version: ConfigError telling the operator to
  run `microcred-sync db upgrade`; nothing is written;
- at a revision this version does not know (a newer microcred-sync migrated it):
  ConfigError.

``upgrade`` is what `microcred-sync db upgrade` runs: it stamps a database made by
``create_all`` with the baseline, then applies the revisions up to head. On
PostgreSQL both take a transaction-scoped advisory lock, so replicas starting at
once against a new database migrate it once.

Within one process, threads (the daemon's runs, say) opening one database at once
take turns: ``prepare``, ``require_current`` and ``upgrade`` hold a lock per
database URL, so the second finds the database the first migrated rather than
half-made. Alembic's command and its ``context`` are process-wide state, so one
Alembic command at a time runs in a process, whatever the database.
"""

from __future__ import annotations

import functools
import threading
import weakref
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, MetaData, event, func, inspect, select
from sqlalchemy.engine import ExceptionContext

from ..errors import ConfigError

DatabaseName = Literal["state", "platform"]

FOLDER = Path(__file__).parent

#: One Alembic command at a time in this process (its context is module state).
_ALEMBIC = threading.RLock()
#: One opening at a time per database URL in this process, and the lock guarding
#: the table of those locks.
_OPENING: dict[str, threading.RLock] = {}
_OPENING_GUARD = threading.Lock()
#: Where ``name_failures`` keeps the setting on an error.
_FAILED_SETTING = "microcred_setting"
#: The engines ``name_failures`` has marked, with their setting.
_NAMED: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Schema:
    """One of our two databases, as its migrations see it."""

    name: DatabaseName
    #: The setting that names its URL, for messages.
    setting: str
    version_table: str
    #: The revision whose tables a database made by ``create_all`` has.
    baseline: str
    #: Tables of the baseline that ``create_all`` did not make (created on first
    #: use instead); a database without them is still recognised.
    optional: frozenset[str]
    target: Callable[[], Sequence[MetaData]]

    @property
    def folder(self) -> Path:
        return FOLDER / self.name

    def table_names(self) -> frozenset[str]:
        """The tables of the schema's metadata."""
        return frozenset(name for metadata in self.target() for name in metadata.tables)

    def config(self, connection: Connection | None = None) -> Config:
        """An Alembic configuration of this schema (on ``connection`` if given)."""
        config = Config()
        config.set_main_option("script_location", str(self.folder))
        if connection is not None:
            config.attributes["connection"] = connection
        return config

    def script(self) -> ScriptDirectory:
        """The schema's revisions, read from their files once per process."""
        return _script(self)

    def head(self) -> str:
        """The newest revision."""
        head = self.script().get_current_head()
        assert head is not None
        return head


@functools.cache
def _script(schema: Schema) -> ScriptDirectory:
    # Read once: every run opens both databases, and each new ScriptDirectory
    # executes every revision file again. The revision map is built here, before
    # the object is shared (two threads calling first may each build one).
    script = ScriptDirectory.from_config(schema.config())
    script.get_current_head()
    return script


def _state_target() -> Sequence[MetaData]:
    # The outbox registers its table on import; cursors keep their own metadata.
    from ..outbox import tables as _outbox_tables
    from ..state.cursors import cursors
    from ..state.tables import metadata

    assert _outbox_tables.outbox.metadata is metadata
    return (metadata, cursors.metadata)


def _platform_target() -> Sequence[MetaData]:
    from ..platform.tables import metadata

    return (metadata,)


STATE = Schema(
    name="state",
    setting="state_url",
    version_table="alembic_version_state",
    baseline="0001",
    optional=frozenset({"cursors"}),
    target=_state_target,
)
PLATFORM = Schema(
    name="platform",
    setting="platform_url",
    version_table="alembic_version_platform",
    baseline="0001",
    optional=frozenset(),
    target=_platform_target,
)
SCHEMAS: dict[str, Schema] = {"state": STATE, "platform": PLATFORM}

#: What a database was found to be.
Found = Literal["new", "created", "versioned", "unknown"]


@dataclass(frozen=True)
class Revision:
    """Where one database stands."""

    found: Found
    #: The revision in its version table, when it has one.
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def current(engine: Engine, schema: Schema) -> Revision:
    """Where the database of ``engine`` stands; reads only."""
    with engine.connect() as connection:
        return _examine(connection, schema)


def upgrade(engine: Engine, schema: Schema, revision: str = "head") -> Revision:
    """Apply the revisions up to ``revision``, in one transaction where the database
    allows (PostgreSQL); a database made by ``create_all`` is stamped with the
    baseline first. Returns where the database stood before.

    Raises ConfigError when the database has tables this schema cannot place, or a
    revision this version does not know.
    """
    with _opening(engine), _ALEMBIC, engine.begin() as connection:
        _lock(connection, schema)
        before = _examine(connection, schema)
        _refuse_unknown(before, schema)
        config = schema.config(connection)
        if before.found == "created":
            _create_optional(connection, schema)
            command.stamp(config, schema.baseline)
        command.upgrade(config, revision)
    return before


def prepare(engine: Engine, schema: Schema) -> None:
    """What opening a database for a run does (see the module's docstring).

    Raises ConfigError, with nothing written, unless the database is new (then
    migrated to head), at head, or made by ``create_all`` at the baseline's head.
    Safe to call from several threads at once: they take turns per database.
    """
    with _opening(engine):
        with engine.connect() as connection:
            found = _examine(connection, schema)
        if found.at_head:
            return
        _refuse_unknown(found, schema)
        if found.found == "new" or (
            found.found == "created" and schema.baseline == found.head
        ):
            upgrade(engine, schema)
            return
        raise _behind(found, schema)


def require_current(engine: Engine, schema: Schema) -> Revision:
    """For reading only: where the database stands, or ConfigError unless it is
    at head or new (an empty one has nothing to read, and no table to read it
    from: a caller stands something empty in for it); never writes."""
    with _opening(engine), engine.connect() as connection:
        found = _examine(connection, schema)
    if found.at_head or found.found == "new":
        return found
    _refuse_unknown(found, schema)
    if found.found == "created" and schema.baseline == found.head:
        return found
    raise _behind(found, schema)


def _opening(engine: Engine) -> threading.RLock:
    """The lock of this process's threads opening ``engine``'s database."""
    # Keyed by the whole URL: two that differ in their password alone would
    # share a lock, which is harmless. The key never leaves this process.
    key = engine.url.render_as_string(hide_password=False)
    with _OPENING_GUARD:
        return _OPENING.setdefault(key, threading.RLock())


def _behind(found: Revision, schema: Schema) -> ConfigError:
    if found.found == "created":
        return ConfigError(
            f"{schema.setting}: the {schema.name} database was made before "
            f"migrations existed and needs revisions up to {found.head}; run "
            f"`microcred-sync db upgrade --database {schema.name}` (it recognises "
            "and stamps it)"
        )
    return ConfigError(
        f"{schema.setting}: the {schema.name} database is at revision "
        f"{found.current}, this version of microcred-sync needs {found.head}; run "
        f"`microcred-sync db upgrade --database {schema.name}`"
    )


def _examine(connection: Connection, schema: Schema) -> Revision:
    head = schema.head()
    tables = set(inspect(connection).get_table_names())
    if schema.version_table in tables:
        context = MigrationContext.configure(
            connection, opts={"version_table": schema.version_table}
        )
        return Revision("versioned", context.get_current_revision(), head)
    ours = tables & schema.table_names()
    if not ours:
        return Revision("new", None, head)
    if _baseline_tables(schema) - schema.optional <= tables:
        return Revision("created", None, head)
    return Revision("unknown", None, head)


def _refuse_unknown(found: Revision, schema: Schema) -> None:
    if found.found == "unknown":
        raise ConfigError(
            f"{schema.setting}: the {schema.name} database holds some of "
            "microcred-sync's tables but no version table, and not those of a "
            "database made before migrations: it cannot be migrated safely; "
            "point the setting at a new database or restore the missing tables"
        )
    if found.current is None:
        return
    try:
        schema.script().get_revision(found.current)
    except CommandError:
        raise ConfigError(
            f"{schema.setting}: the {schema.name} database is at revision "
            f"{found.current}, which this version of microcred-sync does not know "
            "(a newer version migrated it); run that version, or a newer one"
        ) from None


def _baseline_tables(schema: Schema) -> frozenset[str]:
    """The tables the baseline revision creates, read from its module."""
    revision = schema.script().get_revision(schema.baseline)
    assert revision is not None
    tables: frozenset[str] = revision.module.TABLES
    return tables


def _create_optional(connection: Connection, schema: Schema) -> None:
    """Tables of the baseline that ``create_all`` left to their first use."""
    for metadata in schema.target():
        for name in schema.optional & set(metadata.tables):
            metadata.tables[name].create(connection, checkfirst=True)


def _lock(connection: Connection, schema: Schema) -> None:
    """On PostgreSQL, one migration of a database at a time, until commit."""
    if connection.dialect.name != "postgresql":
        return
    key = zlib.crc32(f"microcred-sync migrations {schema.name}".encode())
    connection.execute(select(func.pg_advisory_xact_lock(key)))


def name_failures(engine: Engine, schema: Schema) -> None:
    """Mark every error raised by ``engine`` (a failed connect included) with the
    setting that names its URL, for ``failed_setting`` where the error ends up."""

    # An engine kept by ``sqlutil.shared_engines`` serves one schema and is
    # marked once, however many stores open it.
    if _NAMED.get(engine) == schema.setting:
        return
    _NAMED[engine] = schema.setting

    def mark(context: ExceptionContext) -> None:
        if context.sqlalchemy_exception is not None:
            setattr(context.sqlalchemy_exception, _FAILED_SETTING, schema.setting)

    event.listen(engine, "handle_error", mark)


def failed_setting(error: BaseException) -> str | None:
    """The setting (``state_url`` or ``platform_url``) whose database raised
    ``error``, when its engine was marked by ``name_failures``."""
    setting = getattr(error, _FAILED_SETTING, None)
    return setting if isinstance(setting, str) else None


def selected(which: str) -> list[Schema]:
    """The schemas `--database` names: ``state``, ``platform`` or ``both``."""
    return list(SCHEMAS.values()) if which == "both" else [SCHEMAS[which]]


def describe(found: Revision) -> str:
    """Where a database stands, in the words `db current` prints."""
    if found.found == "new":
        return f"empty, no revision yet (head is {found.head})"
    if found.found == "created":
        return (
            f"made before migrations, no revision yet (head is {found.head}); "
            "`microcred-sync db upgrade` stamps and upgrades it"
        )
    if found.found == "unknown":
        return "holds some of the tables but no revision: not a database to migrate"
    if found.at_head:
        return f"at {found.current} (head)"
    return (
        f"at {found.current}, behind head {found.head}; run `microcred-sync db upgrade`"
    )
