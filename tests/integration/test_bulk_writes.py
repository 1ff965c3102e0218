"""Bulk writes (``sqlutil.execute_many`` and ``upsert``) on SQLite and PostgreSQL.

On PostgreSQL an INSERT of many rows goes as one statement per page of rows (the
values as arrays, unnested); these tests hold it to what one statement per row
gives: every value back as written, rows in their order, a key given twice
handled as two statements in a row would, and a bad row refusing the batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    event,
    func,
    select,
)
from sqlalchemy.exc import DataError, IntegrityError

from microcred_sync.sqlutil import (
    PG_PAGE_ROWS,
    dialect_insert,
    execute_many,
    make_engine,
    upsert,
)
from tests.databases import Databases

pytestmark = pytest.mark.both_databases

METADATA = MetaData()
ITEMS = Table(
    "bulk_items",
    METADATA,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("code", String(40), nullable=False, unique=True),
    Column("label", String),
    Column("count", Integer),
    Column("day", Date),
    Column("at", DateTime(timezone=True)),
    Column("flag", Boolean),
    Column("status", String, nullable=False, server_default="new"),
)

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(databases: Databases) -> Iterator[Engine]:
    engine = make_engine(databases.state_url)
    METADATA.create_all(engine)
    yield engine
    engine.dispose()


def item(number: int, **overrides: Any) -> dict[str, Any]:
    """One row, its values as awkward as the sources give them."""
    labels = [None, "O'Brien", "100% done", "Zoë ✓", "back\\slash", '"quoted"', ""]
    row = {
        "code": f"c{number:05d}",
        "label": labels[number % len(labels)],
        "count": None if number % 5 == 0 else number,
        "day": None if number % 3 == 0 else date(2026, 1, 1) + timedelta(days=number),
        "at": BASE + timedelta(seconds=number),
        "flag": [True, False, None][number % 3],
    }
    return {**row, **overrides}


def read(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(select(ITEMS).order_by(ITEMS.c.seq)).mappings()
        return [dict(row) for row in rows]


def aware(value: datetime | None) -> datetime | None:
    # SQLite gives timestamps back without their offset (they are stored in UTC).
    return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


def test_many_rows_arrive_whole_and_in_their_order(engine: Engine) -> None:
    rows = [item(number) for number in range(2_345)]  # more than one page
    with engine.begin() as connection:
        assert execute_many(connection, ITEMS.insert(), rows) == len(rows)

    back = read(engine)
    assert [row["code"] for row in back] == [row["code"] for row in rows]
    assert [row["seq"] for row in back] == list(range(1, len(rows) + 1))
    for written, stored in zip(rows, back, strict=True):
        assert stored["label"] == written["label"]
        assert stored["count"] == written["count"]
        assert stored["day"] == written["day"]
        assert aware(stored["at"]) == written["at"]
        assert stored["flag"] == written["flag"]
        assert stored["status"] == "new"  # the server's default, not a NULL


def test_a_column_of_nothing_but_nulls(engine: Engine) -> None:
    rows = [
        item(number, label=None, count=None, day=None, at=None) for number in range(3)
    ]
    with engine.begin() as connection:
        execute_many(connection, ITEMS.insert(), rows)
    assert [(row["label"], row["count"], row["at"]) for row in read(engine)] == [
        (None, None, None)
    ] * 3


def test_a_bad_row_refuses_the_whole_batch(engine: Engine) -> None:
    rows = [item(number) for number in range(1_200)]
    rows[1_100]["code"] = rows[3]["code"]  # a unique key twice, in a later page
    with pytest.raises(IntegrityError), engine.begin() as connection:
        execute_many(connection, ITEMS.insert(), rows)
    assert read(engine) == []


def test_upsert_updates_the_rows_there_and_inserts_the_others(engine: Engine) -> None:
    with engine.begin() as connection:
        execute_many(connection, ITEMS.insert(), [item(n) for n in range(0, 1_000, 2)])
    changed = [item(n, label=f"new {n}", count=-n) for n in range(1_000)]
    with engine.begin() as connection:
        upsert(connection, ITEMS, changed, keys=["code"], update=["label", "count"])

    back = {row["code"]: row for row in read(engine)}
    assert len(back) == 1_000
    assert all(back[f"c{n:05d}"]["label"] == f"new {n}" for n in range(1_000))
    assert all(back[f"c{n:05d}"]["count"] == -n for n in range(1_000))
    # The updated rows kept their own other columns.
    assert back["c00002"]["flag"] == item(2)["flag"]


def test_upsert_given_a_key_twice_keeps_the_last_as_row_by_row_would(
    engine: Engine,
) -> None:
    rows = [item(1, label="first"), item(2), item(1, label="second")]
    with engine.begin() as connection:
        upsert(connection, ITEMS, rows, keys=["code"], update=["label"])
    assert {row["code"]: row["label"] for row in read(engine)} == {
        "c00001": "second",
        "c00002": item(2)["label"],
    }


def test_insert_if_absent_given_a_key_twice_keeps_the_first(engine: Engine) -> None:
    rows = [item(1, label="first"), item(1, label="second"), item(3)]
    with engine.begin() as connection:
        upsert(connection, ITEMS, rows, keys=["code"], update=[])
    with engine.begin() as connection:
        upsert(connection, ITEMS, [item(1, label="third")], keys=["code"], update=[])
    assert {row["code"]: row["label"] for row in read(engine)} == {
        "c00001": "first",
        "c00003": item(3)["label"],
    }


def test_conflict_update_with_values_and_a_condition_of_its_own(
    engine: Engine,
) -> None:
    """The shape of re-enrolling: back to active, unless the row is completed."""
    with engine.begin() as connection:
        execute_many(
            connection,
            ITEMS.insert(),
            [item(1, status="withdrawn"), item(2, status="completed")],
        )
    rows = [item(number) for number in (1, 2, 3)]
    with engine.begin() as connection:
        statement = dialect_insert(connection, ITEMS)
        statement = statement.on_conflict_do_update(
            index_elements=["code"],
            set_={"status": "active", "label": statement.excluded.label},
            where=and_(ITEMS.c.status != "completed", ITEMS.c.status != "active"),
        )
        execute_many(connection, statement, rows)
    assert {row["code"]: row["status"] for row in read(engine)} == {
        "c00001": "active",
        "c00002": "completed",
        "c00003": "new",
    }


def test_on_postgresql_rows_go_a_page_per_statement(
    engine: Engine, databases: Databases
) -> None:
    if databases.backend != "postgresql":
        pytest.skip("the statements per row are SQLite's own business")
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        with engine.begin() as connection:
            execute_many(connection, ITEMS.insert(), [item(n) for n in range(1_000)])
            upsert(
                connection,
                ITEMS,
                [item(n, label="again") for n in range(2_000)],
                keys=["code"],
                update=["label"],
            )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    inserts = [statement for statement in sent if statement.startswith("INSERT")]
    pages = -(-1_000 // PG_PAGE_ROWS) - (-2_000 // PG_PAGE_ROWS)
    assert len(inserts) == pages
    assert sum(row["label"] == "again" for row in read(engine)) == 2_000


def test_a_value_the_database_computes_still_goes_in(engine: Engine) -> None:
    statement = ITEMS.insert().values(label=func.upper("fixed"))
    rows = [{"code": f"x{number}", "count": number} for number in range(3)]
    with engine.begin() as connection:
        execute_many(connection, statement, rows)
    assert [(row["code"], row["label"]) for row in read(engine)] == [
        ("x0", "FIXED"),
        ("x1", "FIXED"),
        ("x2", "FIXED"),
    ]


def test_a_text_longer_than_its_column_is_refused_not_cut(
    engine: Engine, databases: Databases
) -> None:
    if databases.backend != "postgresql":
        pytest.skip("SQLite does not hold a text to its column's length")
    rows = [item(number) for number in range(10)]
    rows[7]["code"] = "k" * 41  # String(40)
    with pytest.raises(DataError), engine.begin() as connection:
        execute_many(connection, ITEMS.insert(), rows)
    assert read(engine) == []


def test_values_of_several_types_in_one_column_go_in_as_each_would(
    engine: Engine,
) -> None:
    rows = [
        item(1, label="text", count=1, at=BASE),
        item(2, label=7, count=True, at=BASE.replace(tzinfo=None)),
    ]
    with engine.begin() as connection:
        execute_many(connection, ITEMS.insert(), rows)
    back = read(engine)
    assert [row["label"] for row in back] == ["text", "7"]
    assert [row["count"] for row in back] == [1, 1]
    assert [aware(row["at"]) for row in back] == [BASE, BASE]  # the session is UTC


def test_an_on_conflict_update_taking_a_value_of_each_row(engine: Engine) -> None:
    with engine.begin() as connection:
        execute_many(connection, ITEMS.insert(), [item(1), item(2)])
    with engine.begin() as connection:
        statement = dialect_insert(connection, ITEMS).on_conflict_do_update(
            index_elements=["code"], set_={"label": bindparam("relabel")}
        )
        rows = [
            {"code": "c00001", "relabel": "one"},
            {"code": "c00002", "relabel": "two"},
        ]
        execute_many(connection, statement, rows)
    assert [row["label"] for row in read(engine)] == ["one", "two"]
