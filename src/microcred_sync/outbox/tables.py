"""The outbox table, in the state store's ``metadata`` so that
``StateStore.create_schema()`` creates it along with the rest.

Import this module (``microcred_sync.outbox`` does) before creating the schema.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text

from ..state.tables import metadata

#: One row per delivery to one sink, updated in place as it is attempted: the
#: statement (or write-back) id is unique per sink, so enqueuing twice is a no-op.
#: ``status`` is ``pending``, ``delivered`` or ``dead``. ``last_error`` holds the
#: sink's reason or the failure, never a payload, a response body or a secret.
outbox = Table(
    "outbox",
    metadata,
    Column("sink", String(100), primary_key=True),
    Column("id", String(36), primary_key=True),
    Column("partner", String(100), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    #: Order within one enqueue call, so a batch goes out in the order it came.
    Column("position", Integer, nullable=False, default=0),
    Column("delivered_at", DateTime(timezone=True)),
    #: The run that enqueued it (a results run), when there was one.
    Column("run_id", String(32)),
    #: The deliver run that claimed it last, and until when its claim holds: a
    #: claimed entry is left to that run; one whose claim ran out (its run died)
    #: is due again. Kept once delivered: the run that sent it.
    Column("claimed_by", String(32)),
    Column("claimed_until", DateTime(timezone=True)),
    Index("ix_outbox_due", "sink", "status", "created_at", "position"),
)
