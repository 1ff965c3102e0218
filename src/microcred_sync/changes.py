"""Changes: what a run does to the platform, one learner or enrollment at a time."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, NamedTuple

ChangeKind = Literal[
    "create", "update", "suspend", "reactivate", "enroll", "withdraw", "refresh"
]

#: The kinds a plan reports; ``refresh`` only updates the state store's snapshot
#: (the record changed in a way that changes nothing on the platform).
REPORTED_KINDS: Final = (
    "create",
    "update",
    "suspend",
    "reactivate",
    "enroll",
    "withdraw",
)


#: The namespace of every id microcred-sync derives (UUID v5).
NAMESPACE: Final = uuid.UUID("5d0f3f5e-6b1a-5a51-9c1e-6d6963726564")


_NAMESPACE_BYTES: Final = NAMESPACE.bytes


def derived_id(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))``, without building a ``UUID`` object: a
    full read derives one or more ids per record."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def learner_id(partner: str, source_key: str) -> str:
    """The platform id of a partner's learner: the same key always gives the same id."""
    return derived_id(f"learner/{partner}/{source_key}")


def enrollment_id(learner: str, program: str) -> str:
    """The id of an enrollment; also its xAPI ``registration``."""
    return derived_id(f"enrollment/{learner}/{program}")


#: The snapshot status of a record that was read but never provisioned (a leaver
#: seen for the first time): not a learner, only remembered.
SKIPPED: Final = "skipped"


class SnapshotHead(NamedTuple):
    """The part of a snapshot that decides whether a record needs a second look."""

    record_hash: str | None
    status: str
    suspended_at: datetime | None
    has_programs: bool
    connector: str


@dataclass(slots=True)
class Snapshot:
    """The last applied state of one source key, as the state store keeps it."""

    learner_id: str
    record_hash: str | None
    fields: dict[str, Any]
    status: str
    programs: list[str]
    email_norm: str | None
    suspended_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "learner_id": self.learner_id,
            "record_hash": self.record_hash,
            "fields": self.fields,
            "status": self.status,
            "programs": self.programs,
            "email_norm": self.email_norm,
            "suspended_at": self.suspended_at.isoformat()
            if self.suspended_at
            else None,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Snapshot:
        suspended = document.get("suspended_at")
        return cls(
            learner_id=document["learner_id"],
            record_hash=document.get("record_hash"),
            fields=document["fields"],
            status=document["status"],
            programs=list(document["programs"]),
            email_norm=document.get("email_norm"),
            suspended_at=datetime.fromisoformat(suspended) if suspended else None,
        )


@dataclass(slots=True)
class Change:
    """One planned change. ``before`` and ``after`` hold only the fields it touches.

    ``snapshot`` is set on the first change of a source key's group: the key's state
    once the whole group is applied.
    """

    kind: ChangeKind
    source_key: str
    learner_id: str
    program: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    snapshot: Snapshot | None = None
    reason: str | None = None
    seq: int = 0
    held: bool = False
    #: A suspension or a withdrawal: it waits for the guard's verdict.
    deprovision: bool = False

    def describe(self) -> str:
        """One line for plans and traces: kind, key, program or fields."""
        target = f" {self.program}" if self.program else ""
        touched = (
            f" ({', '.join(sorted(self.after))})"
            if self.kind == "update" and self.after
            else ""
        )
        why = f": {self.reason}" if self.reason else ""
        return f"{self.kind:<10} {self.source_key}{target}{touched}{why}"


@dataclass(slots=True)
class Counts:
    """How many changes of each reported kind a plan holds."""

    by_kind: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(REPORTED_KINDS, 0)
    )

    def add(self, change: Change) -> None:
        if change.kind in self.by_kind:
            self.by_kind[change.kind] += 1

    def total(self) -> int:
        return sum(self.by_kind.values())
