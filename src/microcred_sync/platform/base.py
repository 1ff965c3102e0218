"""The platform adapter interface: where learners and enrollments are provisioned."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from ..changes import Change
from ..partners import Partner, Program


class Platform(ABC):
    """A learning platform that microcred-sync provisions.

    ``apply`` performs a batch of changes in one transaction and must be idempotent:
    applying the same batch twice leaves the platform as applying it once (a crash
    between the platform's commit and the state store's is repaired that way).
    ``writes`` counts the rows the adapter has written since it was opened.
    """

    writes: int = 0

    @abstractmethod
    def ensure_catalog(self, partner: Partner, programs: Iterable[Program]) -> None:
        """Make the partner and its programs known to the platform."""

    @abstractmethod
    def active_enrollments(self, partner: str) -> int:
        """How many of the partner's enrollments are active (the guard's base)."""

    @abstractmethod
    def apply(self, partner: str, batch: Sequence[Change]) -> None:
        """Apply the batch's changes that are not held; raise ApplyError on refusal."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
