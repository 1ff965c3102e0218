"""The state store's migration environment (Alembic ``script_location``)."""
