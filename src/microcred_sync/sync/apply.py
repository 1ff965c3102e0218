"""Applying a plan in batches: stored first, then applied, then recorded.

``BatchApplier`` is the plan sink of a real run. Each batch of change groups is
stored in the state store (its changes, which are the audit trail, and its
quarantined records), applied to the platform in one transaction, then recorded
(the snapshots, and the batch's range of changes as applied) in the state store.
Groups that deprovision (a suspension, a withdrawal by policy) are only stored:
they wait for the guard's verdict on the whole read, and ``finish`` applies them
or holds their deprovisioning: the rest of a held group is applied and recorded,
and only what was held is planned again by the next run. Once ``stop`` is set,
the applier raises ``RunStopped`` after the batch in hand is recorded: a shutdown
never leaves a batch half-done.

A crash after a batch is stored but before it is recorded leaves its snapshots as
they were and its changes unmarked; the next run plans the same changes again and
the platform's writes, keyed by derived ids, make the replay harmless.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..changes import Change, Snapshot
from ..errors import RunStopped
from ..platform.base import Platform
from ..state.store import Batch, StateStore


class BatchApplier:
    """A plan sink that stores, applies and records batches of change groups."""

    def __init__(
        self,
        store: StateStore,
        platform: Platform,
        *,
        run_id: str,
        job: str,
        partner: str,
        connector: str,
        batch_size: int,
        on_batch: Callable[[int], None] | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.store, self.platform = store, platform
        self.run_id, self.job = run_id, job
        self.partner, self.connector = partner, connector
        self.batch_size = batch_size
        self.on_batch = on_batch
        self.stop = stop
        self._seq = 0
        self._groups: list[list[Change]] = []
        self._size = 0
        self._quarantined: list[dict[str, Any]] = []
        self.generation = 0

    # -- the sink -------------------------------------------------------------

    def add_group(self, group: list[Change]) -> None:
        for change in group:
            self._seq += 1
            change.seq = self._seq
        self._groups.append(group)
        self._size += len(group)
        if self._size >= self.batch_size:
            self.flush()

    def quarantine(self, location: str, key: str | None, reason: str) -> None:
        self._quarantined.append(
            {
                "run_id": self.run_id,
                "job": self.job,
                "partner": self.partner,
                "location": location,
                "source_key": key,
                "reason": reason,
                "created_at": datetime.now(UTC),
            }
        )

    # -- batches --------------------------------------------------------------

    def flush(self) -> None:
        """Store what is buffered, then apply and record all but deprovisioning."""
        if not self._groups and not self._quarantined:
            return
        ready: list[Change] = []
        deferred: list[Change] = []
        for group in self._groups:
            (deferred if _deprovisions(group) else ready).extend(group)
        batch = Batch(ready, deferred, self._quarantined)
        self.store.record_planned(self.run_id, self.partner, batch)
        self._groups, self._size, self._quarantined = [], 0, []
        if ready:
            self.platform.apply(self.partner, ready)
            self.store.record_applied(
                self.run_id, self.partner, self.connector, ready, datetime.now(UTC)
            )
            self._report(ready)
        self.generation += 1

    def finish(self, hold: bool) -> None:
        """Flush, then apply the deprovisioning groups, or hold their deprovisioning."""
        self.flush()
        if hold:
            self.store.hold_deprovisioning(self.run_id)
        for batch in self.store.planned_batches(self.run_id, self.batch_size):
            _record_only_what_is_applied(batch)
            self.platform.apply(self.partner, batch)
            self.store.commit_batch(
                self.run_id,
                self.partner,
                self.connector,
                batch,
                datetime.now(UTC),
            )
            self._report(batch)

    def _report(self, batch: list[Change]) -> None:
        if self.on_batch is not None:
            self.on_batch(len(batch))
        if self.stop is not None and self.stop.is_set():
            raise RunStopped(
                "stopped by a shutdown after a recorded batch; the next run of the "
                "job goes on from here",
                job=self.job,
                run=self.run_id,
            )


def _deprovisions(group: list[Change]) -> bool:
    return any(change.deprovision for change in group)


def _record_only_what_is_applied(batch: list[Change]) -> None:
    """Give each group with held changes the snapshot of the part that is applied.

    Its updates and enrollments go ahead and are remembered, so the next run does
    not write them again; a held withdrawal keeps its program in the snapshot and a
    held suspension keeps the learner active, and no record hash is kept, so the
    next run plans exactly what was held, and nothing held is lost. A batch never
    splits a group: its first change carries the group's snapshot.
    """
    first: Change | None = None
    for change in batch:
        if change.snapshot is not None:
            first = change
        if change.held and first is not None and first.snapshot is not None:
            first.snapshot = _without(first.snapshot, change)


def _without(snapshot: Snapshot, held: Change) -> Snapshot:
    """``snapshot`` as it stands while ``held`` waits."""
    kept = replace(snapshot, record_hash=None)
    if held.kind == "withdraw" and held.program:
        kept.programs = sorted({*snapshot.programs, held.program})
    elif held.kind == "suspend":
        kept.status = (held.before or {}).get("status", "active")
        kept.suspended_at = None
    return kept
