"""What both migration environments run: Alembic's ``env.py`` hands over here.

A caller of ours (``migrations.upgrade`` and friends) passes an open connection in
``config.attributes["connection"]``, inside a transaction it commits; the
``alembic`` command line passes ``sqlalchemy.url`` instead. SQLite gets batch mode,
so that a revision that alters a column works there too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alembic import context
from sqlalchemy import Connection, MetaData

from ..sqlutil import make_engine


def run_migrations(
    target: Sequence[MetaData],
    version_table: str,
    foreign: frozenset[str],
) -> None:
    """Run the revisions Alembic's command asks for against ``target``'s database.

    ``foreign`` names tables another schema of ours may keep in the same database
    (both URLs may name one PostgreSQL database): autogenerate leaves them alone.
    """
    options: dict[str, Any] = {
        "target_metadata": list(target),
        "version_table": version_table,
        "include_name": _include_name(foreign),
        "compare_type": True,
    }
    if context.is_offline_mode():
        url = context.config.get_main_option("sqlalchemy.url")
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection, options)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as opened:
            _run(opened, options)
            opened.commit()
    finally:
        engine.dispose()


def _run(connection: Connection, options: dict[str, Any]) -> None:
    batch = connection.dialect.name == "sqlite"
    context.configure(connection=connection, render_as_batch=batch, **options)
    with context.begin_transaction():
        context.run_migrations()


def _include_name(foreign: frozenset[str]) -> Any:
    def include(name: str | None, type_: str, _parents: dict[str, Any]) -> bool:
        return not (type_ == "table" and name in foreign)

    return include
