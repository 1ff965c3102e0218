"""The platform adapter interface: where learners and enrollments are provisioned."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import datetime

from ..changes import Change
from ..partners import Partner, Program
from ..results.records import AwardRecord, ResultRecord


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
    def enrollments_of(self, partner: str, learners: list[str]) -> dict[str, set[str]]:
        """The programs each of ``learners`` is enrolled in, whatever the status;
        learners unknown to the platform are left out."""

    @abstractmethod
    def record_results(
        self, partner: str, results: Sequence[ResultRecord], now: datetime
    ) -> int:
        """Store results not stored yet (by id); return how many were new."""

    @abstractmethod
    def record_awards(
        self, partner: str, awards: Sequence[AwardRecord], now: datetime
    ) -> int:
        """Store awards not stored yet and complete their enrollments; return how
        many were new."""

    @abstractmethod
    def results_after(
        self, partner: str, after: tuple[datetime, str], limit: int
    ) -> list[ResultRecord]:
        """The partner's results stored after ``after`` (when stored, then id),
        in that order, at most ``limit``: a page of the results flow's read."""

    @abstractmethod
    def awards_after(
        self, partner: str, after: tuple[datetime, str], limit: int
    ) -> list[AwardRecord]:
        """The partner's awards stored after ``after``, like ``results_after``."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
