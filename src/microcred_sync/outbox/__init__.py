"""The outbox: statements and write-backs stored before they are delivered.

A flow that produces deliveries (the results job) calls ``Outbox(engine).enqueue``
with ``NewDelivery`` entries; the deliver flow (``outbox.deliver.run_deliver``)
sends them. Importing this package registers the outbox table with the state
store's schema.
"""

from __future__ import annotations

from .store import KINDS, STATUSES, Delivery, NewDelivery, Outbox
from .tables import outbox

__all__ = [
    "KINDS",
    "STATUSES",
    "Delivery",
    "NewDelivery",
    "Outbox",
    "outbox",
]
