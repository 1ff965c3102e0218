"""Small SQLAlchemy helpers shared by the state store and the `sql` platform."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    Executable,
    Row,
    Table,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.dml import OnConflictDoUpdate
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement
from sqlalchemy.types import TypeEngine

from .errors import ConfigError


@dataclass
class _Shared:
    """The engines ``shared_engines`` keeps, while at least one block holds it."""

    pool_size: int
    holders: int = 0
    engines: dict[tuple[str, str], Engine] = field(default_factory=dict)


_SHARED: _Shared | None = None
_SHARED_LOCK = threading.Lock()


@contextmanager
def shared_engines(pool_size: int = 5) -> Iterator[None]:
    """Within the block, every ``make_engine`` of this process for one URL and
    purpose gives the same engine, with ``pool_size`` connections kept open, and
    ``release_engine`` leaves it open; the engines are disposed when the last
    such block ends.

    For the daemon: its runs borrow connections that earlier runs opened. A run
    opening engines of its own pays for new connections and SQLAlchemy's first
    look at the server each time, about a sixth of a 1,000-learner run on
    PostgreSQL. In-memory SQLite engines are never shared (each is a database of
    its own).
    """
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = _Shared(pool_size)
        _SHARED.holders += 1
    try:
        yield
    finally:
        engines: list[Engine] = []
        with _SHARED_LOCK:
            assert _SHARED is not None
            _SHARED.holders -= 1
            if not _SHARED.holders:
                engines, _SHARED = list(_SHARED.engines.values()), None
        for engine in engines:
            engine.dispose()


def make_engine(url: str, purpose: str = "") -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys.
    Inside ``shared_engines``, the one engine of ``url`` and ``purpose`` (the
    schema it serves: two purposes may share a database, never an engine).

    Raises ConfigError when the URL's driver is unknown or not installed; no
    connection is made yet.
    """
    parsed = _supported_url(url)
    if parsed.database in (None, "", ":memory:") and url.startswith("sqlite"):
        return _new_engine(url, None)
    with _SHARED_LOCK:
        if _SHARED is None:
            return _new_engine(url, None)
        key = (purpose, url)
        if key not in _SHARED.engines:
            _SHARED.engines[key] = _new_engine(url, _SHARED.pool_size)
        return _SHARED.engines[key]


def release_engine(engine: Engine) -> None:
    """Done with ``engine``: disposed, unless ``shared_engines`` keeps it."""
    with _SHARED_LOCK:
        if _SHARED is not None and any(
            kept is engine for kept in _SHARED.engines.values()
        ):
            return
    engine.dispose()


#: The databases the state store and the sql platform run on.
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def _supported_url(url: str) -> URL:
    """``url`` parsed; ConfigError unless it is a URL of a supported database."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "the database URL is not a URL (sqlite:///path or "
            "postgresql+psycopg://user@host/name)"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        # The URL is not shown: it may hold a password.
        raise ConfigError(
            f"the database URL names {backend}: microcred-sync keeps its state "
            "and the sql platform on SQLite or PostgreSQL"
        )
    return parsed


def _new_engine(url: str, pool_size: int | None) -> Engine:
    # A shared pool keeps ``pool_size`` connections and opens more when busy
    # (closed again on return), so that no run ever waits for a free one.
    pool: dict[str, Any] = {}
    if pool_size is not None:
        pool = {"pool_size": pool_size, "max_overflow": -1}
    try:
        if not url.startswith("sqlite"):
            return create_engine(url, pool_pre_ping=True, **pool)
        engine = create_engine(url, connect_args={"timeout": 30}, **pool)
    except ModuleNotFoundError as exc:
        # The dialect imports its driver here; the URL is not shown (a password).
        module = exc.name or "database"
        # Drivers that an optional extra of ours installs (``pyproject.toml``).
        extra = {"psycopg": "postgres"}.get(module.partition(".")[0])
        install = f"'microcred-sync[{extra}]'" if extra else module
        raise ConfigError(
            f"the database URL needs the {module} driver: pip install {install}"
        ) from None
    except NoSuchModuleError:
        raise ConfigError(
            f"the database URL names an unknown database or driver "
            f"{make_url(url).drivername!r}"
        ) from None
    database = engine.url.database
    if database and database != ":memory:":
        folder = Path(database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"cannot create the folder {folder} for a SQLite database: "
                f"{error.strerror}; check the state_url and platform_url settings"
            ) from None

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Batches touch index pages all over the tree; keep more of them in memory.
        cursor.execute("PRAGMA cache_size=-8192")
        cursor.close()

    return engine


def column_length(table: Table, name: str) -> int | None:
    """The most characters column ``name`` of ``table`` holds (None: no limit)."""
    length = getattr(table.c[name].type, "length", None)
    return int(length) if length is not None else None


def dialect_insert(
    connection: Connection, table: Table
) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that can say ON CONFLICT, in the connection's dialect."""
    name = connection.dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise NotImplementedError(f"upsert is not supported on {name}")


def upsert(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: Sequence[str] | None = None,
) -> int:
    """Insert ``rows``, updating ``update`` columns where ``keys`` already exist.

    With ``update`` empty, existing rows are left alone (insert if absent). Returns
    the number of rows sent.
    """
    if not rows:
        return 0
    statement = dialect_insert(connection, table)
    columns = list(rows[0]) if update is None else list(update)
    columns = [column for column in columns if column not in keys]
    if columns:
        statement = statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={column: statement.excluded[column] for column in columns},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    return execute_many(connection, statement, rows)


def execute_many(
    connection: Connection, statement: ClauseElement, rows: Sequence[dict[str, Any]]
) -> int:
    """Run ``statement`` once per row through the driver's own ``executemany``;
    on PostgreSQL, an INSERT goes as one statement per page of rows instead (see
    ``_insert_pages``), with the same outcome.

    SQLAlchemy compiles the statement once and converts values whose type needs it
    (dates and times on SQLite, say); the per-row work of ``Connection.execute``,
    which costs more than the database itself on large batches, is skipped. Every
    row must carry the same keys. Returns the number of rows sent.
    """
    if not rows:
        return 0
    dialect = connection.dialect
    # As for an executemany: no RETURNING of new keys that nobody would read.
    compiled = statement.compile(
        dialect=dialect, column_keys=list(rows[0]), for_executemany=True
    )
    assert isinstance(compiled, SQLCompiler)
    names = list(compiled.positiontup or compiled.binds)
    binds = [compiled.binds[name] for name in names]
    # Values fixed in the statement itself (``.values(updated_at=now)``).
    fixed = {
        name: bind.effective_value
        for name, bind in zip(names, binds, strict=True)
        if name not in rows[0]
    }
    converters = [
        (index, processor)
        for index, bind in enumerate(binds)
        if (processor := _bind_processor(bind.type, dialect)) is not None
    ]
    pick = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
    # Converted values repeat (one timestamp per batch, a few hundred dates).
    seen: list[dict[Any, Any]] = [{} for _ in converters]
    prepared: list[Any] = []
    for row in rows:
        values = list(pick({**fixed, **row} if fixed else row))
        for (index, processor), cache in zip(converters, seen, strict=True):
            value = values[index]
            if value is not None:
                if value not in cache:
                    cache[value] = processor(value)
                values[index] = cache[value]
        prepared.append(values)
    if connection.dialect.name == "postgresql" and _insert_pages(
        connection, compiled, names, prepared, supplied=set(rows[0])
    ):
        return len(rows)
    connection.exec_driver_sql(
        str(compiled),
        [
            tuple(values)
            if compiled.positional
            else dict(zip(names, values, strict=True))
            for values in prepared
        ],
    )
    return len(rows)


#: Rows per INSERT on PostgreSQL: a batch of the roster flow is one statement.
PG_PAGE_ROWS = 1_000

#: A named bound value, as the PostgreSQL dialect writes it.
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")

#: One value of a VALUES row as the PostgreSQL dialect writes it: a bound value,
#: with its cast or not (``%(seq)s::INTEGER``, ``%(flag)s``).
_ROW_VALUE = re.compile(r"%\((\w+)\)s(?:::([A-Z][A-Z ]*[A-Z]))?")

#: A type's length, precision or other modifier: ``(255)``, ``(10, 2)``.
_TYPE_MODIFIER = re.compile(r"\s*\([^)]*\)")


def _insert_pages(
    connection: Connection,
    compiled: SQLCompiler,
    names: list[str],
    prepared: list[list[Any]],
    supplied: set[str],
) -> bool:
    """Send the rows of an INSERT ``PG_PAGE_ROWS`` at a time, each column's values
    as one array: ``INSERT INTO t (a, b) SELECT * FROM unnest(%b::A[], %b::B[])``,
    the statement's ON CONFLICT clause kept. Returns False, having sent nothing,
    where one statement could differ from one per row: a statement of another
    shape, an update on conflict where two rows share a key (one statement may not
    update a row twice), an ON CONFLICT clause taking values of each row, a column
    whose values are of several Python types (an array has one element type; each
    row casts its own).

    The arrays are cast to the columns' types without their lengths, as the values
    of one row are: a text longer than its column is refused, not cut short.

    The server then plans and runs one statement per page instead of one per row,
    and the driver sends a few arrays in binary instead of every row's values:
    on 1,000-learner roster runs, 18% less CPU for the process and 28% less for
    the server, and a few round trips instead of a thousand, which count on a
    busy machine. Rows go in in their order (the function scan yields the arrays'
    elements in order).
    """
    statement = compiled.statement
    if not compiled.isinsert or compiled.positional or compiled.effective_returning:
        return False
    if getattr(statement, "select", None) is not None:
        return False  # INSERT ... SELECT
    # The ON CONFLICT clause of a dialect insert (SQLAlchemy has no public name).
    conflict = getattr(statement, "_post_values_clause", None)
    if isinstance(conflict, OnConflictDoUpdate) and _shares_key(
        conflict, names, prepared
    ):
        return False
    split = _values_clause(str(compiled))
    if split is None:
        return False
    head, values, tail = split
    index = {name: position for position, name in enumerate(names)}
    parts = values[1:-1].split(", ")
    matches = [_ROW_VALUE.fullmatch(part) for part in parts]
    if not all(matches):
        return False  # a value that is no bound value: a SQL expression
    columns = [(match.group(1), match.group(2)) for match in matches if match]
    tail_names = _PLACEHOLDER.findall(tail)
    if any(name in supplied for name in tail_names):
        return False  # the ON CONFLICT clause takes a value of each row
    arrays = ", ".join(
        f"%b::{cast or _type_name(compiled, name, connection.dialect)}[]"
        for name, cast in columns
    )
    sql = f"{head}SELECT * FROM unnest({arrays}){_PLACEHOLDER.sub('%s', tail)}"
    by_column = [[row[index[name]] for row in prepared] for name, _cast in columns]
    if not all(_one_kind(values) for values in by_column):
        return False  # an array holds values of one type; a row may cast its own
    fixed = [prepared[0][index[name]] for name in tail_names]
    for start in range(0, len(prepared), PG_PAGE_ROWS):
        page = [values[start : start + PG_PAGE_ROWS] for values in by_column]
        connection.exec_driver_sql(sql, (*page, *fixed))
    return True


def _type_name(compiled: SQLCompiler, name: str, dialect: Dialect) -> str:
    """The SQL type of bound value ``name``, without a length or precision: cast
    to ``VARCHAR(5)``, PostgreSQL would cut a longer text where the column refuses
    it (and so does one statement per row)."""
    declared = compiled.binds[name].type.compile(dialect=dialect)
    return _TYPE_MODIFIER.sub("", declared)


def _one_kind(values: list[Any]) -> bool:
    """Whether the values other than None are all of one Python type (and, for
    datetimes, all with a time zone or all without): the driver sends an array
    of one element type only."""
    kinds = {
        (type(value), value.tzinfo is None)
        if isinstance(value, datetime)
        else type(value)
        for value in values
        if value is not None
    }
    return len(kinds) <= 1


def _values_clause(sql: str) -> tuple[str, str, str] | None:
    """``INSERT INTO t (...) VALUES (<one row>) <rest>`` as the text before
    ``VALUES``, the row in its parentheses, and the rest; None for another shape."""
    marker = " VALUES ("
    start = sql.find(marker)
    if start < 0 or _PLACEHOLDER.search(sql, 0, start):
        return None
    depth, opening = 0, start + len(marker) - 1
    for position in range(opening, len(sql)):
        if sql[position] == "(":
            depth += 1
        elif sql[position] == ")":
            depth -= 1
            if not depth:
                head, row = sql[:start], sql[opening : position + 1]
                return head + " ", row, sql[position + 1 :]
    return None


def _shares_key(
    conflict: OnConflictDoUpdate, names: list[str], prepared: list[list[Any]]
) -> bool:
    """Whether two rows carry the same values in the conflict's key columns (or
    the key cannot be told from the statement)."""
    targets = [
        element if isinstance(element, str) else str(element.key)
        for element in conflict.inferred_target_elements or ()
    ]
    if not targets or any(target not in names for target in targets):
        return True
    positions = [names.index(target) for target in targets]
    seen: set[tuple[Any, ...]] = set()
    for row in prepared:
        key = tuple(row[position] for position in positions)
        if key in seen:
            return True
        seen.add(key)
    return False


def placeholders(connection: Connection, count: int) -> str:
    """``count`` bound-parameter markers in the driver's own style (``?`` or ``%s``)."""
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([marker] * count)


def driver_rows(
    connection: Connection, sql: str, parameters: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """Rows of a plain SQL query run by the driver itself, without SQLAlchemy's
    per-row processing: for the hot lookups of the planner only. ``sql`` uses
    ``{marks}`` where the caller's markers go (see ``placeholders``)."""
    cursor = connection.exec_driver_sql(sql, tuple(parameters))
    return [tuple(row) for row in cursor.fetchall()]


def sqlite_or_memory(url: str) -> str:
    """``url``, or an in-memory SQLite URL when it names a SQLite file that does not
    exist: for reading without creating anything."""
    prefix = "sqlite:///"
    if url.startswith(prefix):
        path = url.removeprefix(prefix)
        if path and path != ":memory:" and not Path(path).exists():
            return "sqlite://"
    return url


def first_row(
    url: str, table: Table, query: Executable, purpose: str = ""
) -> Row[Any] | None:
    """The first row ``query`` gives in the database at ``url``, or None when
    ``table`` is not there yet; reading creates neither the table nor a SQLite
    file (see ``sqlite_or_memory``)."""
    engine = make_engine(sqlite_or_memory(url), purpose)
    try:
        if not inspect(engine).has_table(table.name):
            return None
        with engine.connect() as connection:
            return connection.execute(query).first()
    finally:
        release_engine(engine)


def _bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Any:
    """The dialect's own conversion of a bound value (SQLite's dates and times as
    SQLAlchemy writes them), not the generic type's, which has none."""
    return type_.dialect_impl(dialect).bind_processor(dialect)
