"""The fields of a write-back, taken from the facts of what it describes.

Every write-back sink (a Salesforce object, an HRIS's JSON body) names its fields
the same way: each from a fact of the award or result, or a fixed value. A fact
that is unknown (no email, no credential) leaves the field out unless its spec
says to send it empty (``when_missing`` other than ``leave``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from ..platform.sql import LearnerIdentityRow
    from ..results.records import AwardRecord


class FactOrValue(BaseModel):
    """The part of a field spec every write-back shares: ``from`` names a fact,
    or ``value`` gives a fixed value (null and "" included); exactly one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_: str | None = Field(default=None, alias="from")
    value: str | int | float | bool | None = None

    @model_validator(mode="after")
    def _one_source(self) -> FactOrValue:
        fixed = "value" in self.model_fields_set
        if (self.from_ is None) == (not fixed):
            raise ValueError("give exactly one of 'from' and 'value'")
        return self


class FieldSpec(Protocol):
    """One field of a write-back: ``from_`` a fact, or a fixed ``value``."""

    @property
    def from_(self) -> str | None: ...

    @property
    def value(self) -> str | int | float | bool | None: ...

    @property
    def when_missing(self) -> str: ...


def field_values(
    specs: Mapping[str, FieldSpec], facts: Mapping[str, Any]
) -> dict[str, Any]:
    """The fields to write: null, empty and "leave unchanged" kept apart (a field
    whose fact is unknown and left is not sent at all)."""
    written: dict[str, Any] = {}
    for name, spec in specs.items():
        if spec.from_ is None:
            written[name] = spec.value
            continue
        value = facts.get(spec.from_)
        if value is None and spec.when_missing == "leave":
            continue
        written[name] = value
    return written


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a time without a zone (as SQLite gives it back) is UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def award_facts(
    award: AwardRecord,
    learner: LearnerIdentityRow,
    *,
    program_title: str | None = None,
    credential_id: str | None = None,
) -> dict[str, Any]:
    """The facts of an award that every write-back of it may name; a sink adds
    its own (the Contact, the employee id, the local day). ``issued_at`` keeps
    the award's own offset: a Salesforce date field takes the day there."""
    return {
        "award_id": award.id,
        "credential_id": credential_id,
        "program": award.program,
        "program_title": program_title,
        "issued_at": award.issued_at.isoformat(),
        "learner_id": award.learner_id,
        "email": learner.email,
    }
