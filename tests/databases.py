"""The databases tests run on: SQLite files, and a throwaway PostgreSQL server.

The server is the throwaway PostgreSQL of ``examples/example_postgres.py`` (the
benchmarks start the same one), started once per session and stopped afterwards.

A test marked ``both_databases`` runs twice, once per backend, through the
``database_backend`` fixture (which ``project_dir`` and ``databases`` use), unless
it is also marked ``sqlite_only`` (with the reason: SQLite's own lock rows, or a
test of batching whose cost on a server adds nothing). On
PostgreSQL each test gets fresh databases copied from templates that the
migrations brought to head once per session (``CREATE DATABASE ... TEMPLATE``).
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import example_postgres

BACKENDS = ("sqlite", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_databases: run the test on SQLite and on PostgreSQL"
    )
    config.addinivalue_line(
        "markers",
        "sqlite_only(reason): in a both_databases module, run on SQLite alone",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("both_databases") is None:
        return
    if metafunc.definition.get_closest_marker("sqlite_only") is not None:
        return
    metafunc.parametrize("database_backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL of a running PostgreSQL (database name to be appended)."""
    if example_postgres.bindir() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; scripts/test.sh installs it")
        pytest.skip("PostgreSQL server binaries not found (run scripts/test.sh)")
    # Enough connections for several worker processes, each with a pool.
    with example_postgres.throwaway_postgres(max_connections=200) as server:
        yield server


def _admin(server: str) -> Any:
    """An autocommit psycopg connection to the server's ``postgres`` database."""
    import psycopg

    url = server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    return psycopg.connect(url, autocommit=True)


@pytest.fixture(scope="session")
def postgres_templates(postgres_server: str) -> tuple[str, str]:
    """Template databases of the state store and the platform, migrated to head."""
    from microcred_sync.migrations import PLATFORM, STATE, upgrade
    from microcred_sync.sqlutil import make_engine

    names = ("template_state", "template_platform")
    example_postgres.create_databases(postgres_server, *names)
    for schema, name in zip((STATE, PLATFORM), names, strict=True):
        engine = make_engine(f"{postgres_server}/{name}")
        try:
            upgrade(engine, schema)
        finally:
            engine.dispose()
    return names


@pytest.fixture
def postgres_databases(
    postgres_server: str, postgres_templates: tuple[str, str]
) -> Iterator[tuple[str, str]]:
    """Two fresh databases at head: the state store's and the platform's."""
    names = [f"state_{uuid.uuid4().hex[:8]}", f"platform_{uuid.uuid4().hex[:8]}"]
    with _admin(postgres_server) as connection:
        for name, template in zip(names, postgres_templates, strict=True):
            connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield f"{postgres_server}/{names[0]}", f"{postgres_server}/{names[1]}"
    with _admin(postgres_server) as connection:
        for name in names:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_postgres_database(postgres_server: str) -> Iterator[str]:
    """A fresh database with no table at all (not copied from a template)."""
    name = f"empty_{uuid.uuid4().hex[:8]}"
    yield example_postgres.create_databases(postgres_server, name)[0]
    with _admin(postgres_server) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_backend(request: pytest.FixtureRequest) -> str:
    """``sqlite``, or the backend a ``both_databases`` test runs on this time."""
    return str(getattr(request, "param", "sqlite"))


@dataclass(frozen=True)
class Databases:
    """The URLs of one test's state store and platform database."""

    backend: str
    state_url: str
    platform_url: str

    def connect(self, which: str) -> DbConnection:
        """A DB-API connection to the ``state`` or ``platform`` database, taking
        ``?`` markers on either backend (for the tests' own SQL)."""
        url = self.state_url if which == "state" else self.platform_url
        return DbConnection(url)


@pytest.fixture
def databases(
    database_backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Databases:
    """Fresh, empty-of-rows databases on the test's backend."""
    if database_backend == "sqlite":
        folder = tmp_path / "databases"
        return Databases(
            "sqlite",
            f"sqlite:///{folder / 'state.db'}",
            f"sqlite:///{folder / 'platform.db'}",
        )
    state, platform = request.getfixturevalue("postgres_databases")
    return Databases("postgresql", state, platform)


class DbConnection:
    """sqlite3's connection interface over SQLite or PostgreSQL (psycopg)."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite"):
            import sqlite3

            self.postgres = False
            self.raw: Any = sqlite3.connect(url.removeprefix("sqlite:///"))
        else:
            import psycopg

            self.postgres = True
            self.raw = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        if self.postgres:
            sql = re.sub(r"\?", "%s", sql)
        return self.raw.execute(sql, tuple(parameters))

    def commit(self) -> None:
        self.raw.commit()

    def close(self) -> None:
        self.raw.close()
