"""The `sql` platform's migration environment (Alembic ``script_location``)."""
