"""Alembic migrations of both databases, on SQLite and PostgreSQL: the migrated
schema is the metadata's, and opening a database does what its state calls for."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Engine, inspect, text

from microcred_sync.cli import main
from microcred_sync.errors import ConfigError
from microcred_sync.migrations import PLATFORM, SCHEMAS, STATE, Schema, current, upgrade
from microcred_sync.platform.sql import SqlPlatform
from microcred_sync.sqlutil import make_engine
from microcred_sync.state.store import StateStore
from tests.conftest import ProjectDir
from tests.databases import Databases

pytestmark = pytest.mark.both_databases


@pytest.fixture
def empty(
    database_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[dict[str, Engine]]:
    """An engine per schema on a database with no table at all."""
    if database_backend == "sqlite":
        urls = {name: f"sqlite:///{tmp_path}/{name}.db" for name in SCHEMAS}
    else:
        url = request.getfixturevalue("empty_postgres_database")
        # Both schemas in one database: their tables and version tables coexist.
        urls = dict.fromkeys(SCHEMAS, url)
    engines = {name: make_engine(url) for name, url in urls.items()}
    yield engines
    for engine in engines.values():
        engine.dispose()


def differences(engine: Engine, schema: Schema) -> list[object]:
    """What autogenerate would still write for ``schema`` against ``engine``."""
    other = next(s for s in SCHEMAS.values() if s is not schema)
    foreign = other.table_names() | {other.version_table}

    def include(name: str | None, type_: str, _parents: object) -> bool:
        return not (type_ == "table" and name in foreign)

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": schema.version_table,
                "include_name": include,
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, list(schema.target())))


def to_revision(engine: Engine, schema: Schema, revision: str) -> None:
    with engine.begin() as connection:
        command.upgrade(schema.config(connection), revision)


def test_migrated_schema_is_the_metadata(empty: dict[str, Engine]) -> None:
    """Upgraded from nothing, each database matches its tables' metadata exactly: a
    table or column added without a revision fails here."""
    for name, schema in SCHEMAS.items():
        before = upgrade(empty[name], schema)
        assert before.found == "new"
        assert current(empty[name], schema).at_head
        assert differences(empty[name], schema) == []


def test_every_revision_downgrades_and_upgrades_again(
    empty: dict[str, Engine],
) -> None:
    """Down to nothing and back up leaves the same schema."""
    for name, schema in SCHEMAS.items():
        upgrade(empty[name], schema)
        with empty[name].begin() as connection:
            command.downgrade(schema.config(connection), "base")
        assert set(inspect(empty[name]).get_table_names()) & schema.table_names() == (
            set()
        )
        upgrade(empty[name], schema)
        assert differences(empty[name], schema) == []


def test_opening_a_new_database_migrates_it_to_head(
    empty: dict[str, Engine],
) -> None:
    """A run's first open of an empty database creates every table, at head."""
    store = StateStore(str(empty["state"].url.render_as_string(hide_password=False)))
    platform = SqlPlatform(
        str(empty["platform"].url.render_as_string(hide_password=False))
    )
    try:
        store.create_schema()
        platform.create_schema()
        assert current(store.engine, STATE).at_head
        assert current(platform.engine, PLATFORM).at_head
        store.create_schema()
    finally:
        store.close()
        platform.close()


def test_a_database_behind_head_stops_the_run_and_nothing_is_written(
    empty: dict[str, Engine],
) -> None:
    """At an older revision, opening raises ConfigError naming `db upgrade`, and the
    schema and version stay as they were; `upgrade` then brings it to head."""
    engine = empty["state"]
    to_revision(engine, STATE, STATE.baseline)
    if STATE.head() == STATE.baseline:
        pytest.skip("the state store has one revision only")
    tables = _columns(engine)
    store = StateStore(engine.url.render_as_string(hide_password=False))
    try:
        with pytest.raises(ConfigError) as raised:
            store.create_schema()
        assert "microcred-sync db upgrade" in str(raised.value)
        assert "state_url" in str(raised.value)
        # Reading (`status`, `audit`) is refused the same way.
        with pytest.raises(ConfigError, match="db upgrade"):
            StateStore.existing(engine.url.render_as_string(hide_password=False))
        assert _columns(engine) == tables
        assert current(engine, STATE).current == STATE.baseline
        assert upgrade(engine, STATE).current == STATE.baseline
        store.create_schema()
        assert differences(engine, STATE) == []
    finally:
        store.close()


def test_a_database_made_by_create_all_is_recognised_stamped_and_upgraded(
    empty: dict[str, Engine],
) -> None:
    """A state store from before migrations (the baseline's tables, no version
    table, no cursors table yet) keeps its rows: opening refuses with ConfigError,
    `upgrade` stamps it with the baseline and brings it to head."""
    engine = empty["state"]
    to_revision(engine, STATE, STATE.baseline)
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {STATE.version_table}"))
        connection.execute(text("DROP TABLE cursors"))
        connection.execute(
            text(
                "INSERT INTO runs (id, job, partner, flow, mode, status, started_at,"
                " records_read, quarantined, override, suspensions_applied) VALUES"
                " ('r1', 'job', 'acme', 'roster', 'full', 'done', :at, 3, 0,"
                " false, 0)"
            ),
            {"at": datetime(2026, 11, 30, 9, 0, tzinfo=UTC)},
        )
    found = current(engine, STATE)
    assert (found.found, found.current) == ("created", None)
    if STATE.head() != STATE.baseline:
        store = StateStore(engine.url.render_as_string(hide_password=False))
        try:
            with pytest.raises(ConfigError, match="made before migrations"):
                store.create_schema()
        finally:
            store.close()
    before = upgrade(engine, STATE)
    assert before.found == "created"
    assert current(engine, STATE).at_head
    assert differences(engine, STATE) == []
    with engine.connect() as connection:
        assert connection.execute(text("SELECT records_read FROM runs")).all() == [(3,)]


def test_a_revision_from_a_newer_version_is_refused(empty: dict[str, Engine]) -> None:
    """A version table naming a revision this code does not know: ConfigError."""
    engine = empty["platform"]
    upgrade(engine, PLATFORM)
    with engine.begin() as connection:
        connection.execute(
            text(f"UPDATE {PLATFORM.version_table} SET version_num = 'f00d'")
        )
    platform = SqlPlatform(engine.url.render_as_string(hide_password=False))
    try:
        with pytest.raises(ConfigError, match="does not know"):
            platform.create_schema()
        with pytest.raises(ConfigError, match="does not know"):
            upgrade(engine, PLATFORM)
    finally:
        platform.close()


def test_replicas_opening_a_new_database_at_once_migrate_it_once(
    empty_postgres_database: str,
) -> None:
    """Four stores opening one new PostgreSQL database together all start, at
    head (the migration takes an advisory lock)."""
    url = empty_postgres_database
    errors: list[BaseException] = []

    def open_store() -> None:
        store = StateStore(url)
        try:
            store.create_schema()
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    engine = make_engine(url)
    try:
        assert current(engine, STATE).at_head
    finally:
        engine.dispose()


def test_threads_opening_both_new_databases_at_once_take_turns(
    empty: dict[str, Engine],
) -> None:
    """Eight threads of one process open the new state store and platform at
    once, as the daemon's first runs do: none fails, and both end at head."""
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_both() -> None:
        store = StateStore(empty["state"].url.render_as_string(hide_password=False))
        platform = SqlPlatform(
            empty["platform"].url.render_as_string(hide_password=False)
        )
        try:
            start.wait(timeout=30)
            store.create_schema()
            platform.create_schema()
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()
            platform.close()

    threads = [threading.Thread(target=open_both) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert current(empty["state"], STATE).at_head
    assert current(empty["platform"], PLATFORM).at_head


def test_db_commands_show_and_apply_revisions(
    project_dir: ProjectDir, databases: Databases
) -> None:
    """`db current` before and after `db upgrade`, with the URLs of the settings."""
    env = {
        "MICROCRED_ROOT": str(project_dir.root),
        "MICROCRED_STATE_URL": databases.state_url,
        "MICROCRED_PLATFORM_URL": databases.platform_url,
    }
    runner = CliRunner()
    before = runner.invoke(main, ["db", "current"], env=env)
    assert before.exit_code == 0, before.output
    if databases.backend == "sqlite":
        assert "state: no database yet" in before.output
    upgraded = runner.invoke(main, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert "platform: " in upgraded.output
    after = runner.invoke(main, ["db", "current", "--database", "state"], env=env)
    assert after.output.startswith(f"state: at {STATE.head()} (head)")
    assert "platform" not in after.output


def _columns(engine: Engine) -> dict[str, list[str]]:
    found = inspect(engine)
    return {
        table: sorted(column["name"] for column in found.get_columns(table))
        for table in found.get_table_names()
    }
