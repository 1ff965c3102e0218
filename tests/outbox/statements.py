"""Simple, valid xAPI 1.0.3 statements for the outbox tests, built here so that the
tests depend on nothing but the outbox."""

from __future__ import annotations

import uuid
from typing import Any

from microcred_sync.outbox import NewDelivery

NAMESPACE = uuid.UUID("0b6f1c2e-7d4a-5e8b-9c3d-2a1f0e9d8c7b")

COMPLETED = "http://adlnet.gov/expapi/verbs/completed"


def statement(
    activity: str,
    number: int,
    *,
    email: str | None = None,
    verb: str = COMPLETED,
    timestamp: str = "2026-03-29T00:30:00.123Z",
) -> dict[str, Any]:
    """Learner ``number`` did ``verb`` on ``activity``; the id is derived from all
    three, so the same fact always has the same id."""
    return {
        "id": str(uuid.uuid5(NAMESPACE, f"{activity}|{number}|{verb}")),
        "timestamp": timestamp,
        "actor": {
            "objectType": "Agent",
            "mbox": f"mailto:{email or f'learner{number}@example.org'}",
        },
        "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}},
        "object": {
            "objectType": "Activity",
            "id": activity,
            "definition": {
                "name": {"en-US": "Data Analytics Foundations"},
                "type": "http://adlnet.gov/expapi/activities/course",
            },
        },
    }


def voiding(
    target_id: str, *, timestamp: str = "2026-03-30T08:00:00.000Z"
) -> dict[str, Any]:
    """A statement voiding ``target_id`` (xAPI 1.0.3 data 2.3.2)."""
    return {
        "id": str(uuid.uuid5(NAMESPACE, f"voids|{target_id}")),
        "timestamp": timestamp,
        "actor": {"objectType": "Agent", "mbox": "mailto:registrar@example.org"},
        "verb": {
            "id": "http://adlnet.gov/expapi/verbs/voided",
            "display": {"en-US": "voided"},
        },
        "object": {"objectType": "StatementRef", "id": target_id},
    }


def deliveries(
    partner: str, sink: str, statements: list[dict[str, Any]]
) -> list[NewDelivery]:
    return [
        NewDelivery(id=s["id"], partner=partner, sink=sink, payload=s)
        for s in statements
    ]
