"""The planner: what the mapping wants, compared with the last applied snapshot.

Records are read in chunks. For each chunk the planner fetches the snapshots of its
keys in one query; a record whose hash matches its snapshot costs nothing more. The
others are mapped and diffed into groups of changes, one group per source key, which
go to a ``PlanSink``. After a complete full read, keys that were not seen are
suspended. The planner never writes to the platform.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from ..changes import SKIPPED, Change, Counts, Snapshot, SnapshotHead, learner_id
from ..connectors.base import Record
from ..errors import ReadError, ReadIncomplete, RecordRejected
from ..learners import DATE_FIELDS, LearnerValue, WantedLearner
from ..mappings.emails import normalize_email
from ..mappings.engine import Mapper
from ..partners import Partner

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1000

#: A learner who completed nothing yet.
_NONE: frozenset[str] = frozenset()

#: A record to diff: key, record, hash, what it wants, its snapshot, completions.
_Mapped = tuple[str, Record, str, WantedLearner, "Snapshot | None", frozenset[str]]

#: A claim's generation for groups recorded only at the end of the run.
_UNTIL_THE_END = 2**62


class SnapshotReader(Protocol):
    """What the planner reads from the state store."""

    def heads(self, partner: str, keys: list[str]) -> dict[str, SnapshotHead]: ...

    def snapshots(self, partner: str, keys: list[str]) -> dict[str, Snapshot]: ...

    def email_owners(self, partner: str, emails: list[str]) -> dict[str, str]: ...

    def completed(self, partner: str, keys: list[str]) -> dict[str, frozenset[str]]: ...

    def any_completed(self, partner: str) -> bool: ...

    def connector_heads(
        self, partner: str, connector: str
    ) -> Iterator[tuple[str, SnapshotHead]]: ...


class PlanSink(Protocol):
    """Where the planner puts its work: changes by key group, and quarantine."""

    def add_group(self, group: list[Change]) -> None: ...

    def quarantine(self, location: str, key: str | None, reason: str) -> None: ...

    #: Incremented each time what was added so far (but groups that wait for the
    #: guard) has been recorded in the state store; constant for a dry run.
    generation: int


@dataclass
class PlanStats:
    """What one planning pass saw."""

    read: int = 0
    quarantined: int = 0
    unchanged: int = 0
    skipped_inactive: int = 0
    #: Records quarantined before their key was known.
    unkeyed: int = 0
    #: Suspensions of learners absent from a full read.
    absent: int = 0
    read_complete: bool = True
    read_problem: str | None = None
    counts: Counts = field(default_factory=Counts)


@dataclass(frozen=True)
class PlanScope:
    """What a planning pass is about: which partner, connector, and how much."""

    partner: Partner
    connector: str
    full_read: bool
    only: frozenset[str] | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: Each program's prerequisites: a program is enrolled in only once the
    #: learner has completed them (programs stack).
    prerequisites: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class Planner:
    """Turns a source read into groups of changes for one partner and connector."""

    def __init__(
        self,
        scope: PlanScope,
        mapper: Mapper,
        state: SnapshotReader,
        sink: PlanSink,
        trace: Callable[[str], None] | None = None,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger,
        deprovisionable: int | None = None,
    ) -> None:
        """``deprovisionable`` is how many of the connector's learners a full read
        could deprovision, counted before the read (see ``Baseline``): once the
        read has seen that many of them, nobody is absent and the store is not
        scanned for who is."""
        self.scope = scope
        self._deprovisionable = deprovisionable
        self._deprovisionable_seen = 0
        self._completions_known: bool | None = None
        # Keys seen whose snapshot was not looked up (quarantined first).
        self._seen_unlooked: list[str] = []
        self.log = log
        self.mapper = mapper
        self.state = state
        self.sink = sink
        self.trace = trace
        self.stats = PlanStats()
        self._salt = mapper.fingerprint.encode()[:64]
        # Keys seen in this read, as hashes to keep a million in little memory. A
        # collision errs on the safe side: a record wrongly taken for a duplicate is
        # quarantined, or an absent learner is not suspended, in this run only.
        self._seen: set[int] = set()
        self._found_only: set[str] = set()
        # Emails claimed by records not yet recorded in the store, as hashes, with
        # the sink's generation when claimed. A hash collision (about one in 10^8
        # runs of a million learners) quarantines one record as a duplicate email,
        # in this run only: hash() changes per process.
        self._claimed_emails: dict[int, int] = {}
        self._claims_generation = sink.generation
        self._duplicates_fail = mapper.spec.duplicates == "reject_read"

    def plan(self, records: Iterable[Record]) -> PlanStats:
        """Plan from ``records``; a ReadIncomplete ends the read but not the plan."""
        pending: list[tuple[str, Record]] = []
        try:
            for record in records:
                self.stats.read += 1
                if self.stats.read == 1:
                    self._check_columns(record)
                keyed = self._keyed(record)
                if keyed is not None:
                    pending.append((keyed, record))
                if len(pending) >= CHUNK_SIZE:
                    self._plan_chunk(pending)
                    pending = []
        except ReadIncomplete as exc:
            self.stats.read_complete = False
            self.stats.read_problem = str(exc)
            self.log.warning("read ended early: %s", exc)
        self._plan_chunk(pending)
        if (
            self.scope.full_read
            and self.scope.only is None
            and self.stats.read_complete
        ):
            self._plan_unseen()
        if self.scope.only is not None:
            for key in sorted(self.scope.only - self._found_only):
                self._say(key, "not found in the source")
        return self.stats

    def _check_columns(self, record: Record) -> None:
        """Fail fast when the source lacks what the mapping cannot do without; a
        missing optional column only leaves its learner field alone."""
        present = record.fields.keys()
        missing = sorted(self.mapper.required_source_fields() - present)
        if missing:
            raise ReadError(
                f"the source has no field {', '.join(missing)}, which the mapping"
                " needs for the source key or its rules; check the mapping or the"
                " export",
                location=record.location,
            )
        absent = sorted(self.mapper.source_fields() - present)
        if absent:
            self.log.warning(
                "the source has no field %s: those learner fields are left alone",
                ", ".join(absent),
            )

    # -- reading --------------------------------------------------------------

    def _keyed(self, record: Record) -> str | None:
        """The record's source key, or None once it has been quarantined or skipped.

        A record with a key is seen even when it is quarantined: a malformed row is
        no reason to suspend the person it belongs to.
        """
        only = self.scope.only
        try:
            key = self.mapper.key_of(record)
        except RecordRejected as exc:
            if only is None:
                self.stats.unkeyed += 1
                self._quarantine(record, None, record.problem or exc.reason)
            return None
        if only is not None and key not in only:
            return None
        seen = hash(key)
        if seen in self._seen:
            if self._duplicates_fail:
                raise ReadError(
                    "duplicate source key within one read; "
                    "the mapping rejects the read",
                    location=record.location,
                    key=key,
                )
            self._quarantine(
                record,
                key,
                "duplicate source key: an earlier record with this key was kept",
            )
            return None
        self._seen.add(seen)
        if only is not None:
            self._found_only.add(key)
        if record.problem is not None:
            self._quarantine(record, key, record.problem)
            self._seen_unlooked.append(key)
            return None
        return key

    def _quarantine(self, record: Record, key: str | None, reason: str) -> None:
        self.stats.quarantined += 1
        self.sink.quarantine(record.location, key, reason)
        self.log.warning("quarantined %s key=%s: %s", record.location, key, reason)
        if self.trace is not None:
            self.trace(f"{key or record.location}: quarantined: {reason}")

    # -- planning a chunk -----------------------------------------------------

    def _plan_chunk(self, pending: list[tuple[str, Record]]) -> None:
        if not pending:
            return
        partner = self.scope.partner.id
        keys = [key for key, _ in pending]
        heads = self.state.heads(partner, keys)
        self._count_deprovisionable(heads.values())
        completions = (
            self.state.completed(partner, keys) if self._any_completions() else {}
        )
        second_look: list[tuple[str, Record, str]] = []
        for key, record in pending:
            digest = self._hash(record, completions.get(key))
            head = heads.get(key)
            if head is not None and head.connector != self.scope.connector:
                reason = (
                    f"source key already provisioned from connector {head.connector}"
                )
                self._quarantine(record, key, reason)
                continue
            if (
                head is not None
                and head.record_hash == digest
                and not self._withdraw_due(head)
                and self.scope.only is None
            ):
                self.stats.unchanged += 1
                self._say(key, "unchanged since the last applied run")
                continue
            second_look.append((key, record, digest))
        known = self.state.snapshots(
            partner, [key for key, _, _ in second_look if key in heads]
        )
        mapped: list[_Mapped] = []
        for key, record, digest in second_look:
            completed = completions.get(key, _NONE)
            wanted = self._map(key, record, completed)
            if wanted is not None:
                mapped.append((key, record, digest, wanted, known.get(key), completed))
        self._plan_mapped(mapped)

    def _any_completions(self) -> bool:
        """Whether any of the partner's learners completed a program (asked once
        per run: most partners' rosters come long before any completion)."""
        if self._completions_known is None:
            self._completions_known = self.state.any_completed(self.scope.partner.id)
        return self._completions_known

    def _map(
        self, key: str, record: Record, completed: frozenset[str]
    ) -> WantedLearner | None:
        try:
            wanted = self.mapper.map(record, key, completed)
        except RecordRejected as exc:
            self._quarantine(record, key, exc.reason)
            return None
        if self.trace is not None:
            for line in self.mapper.trace(record, completed):
                self.trace(f"{key}: {line}")
        return wanted

    def _plan_mapped(self, mapped: list[_Mapped]) -> None:
        self._forget_recorded_claims()
        emails = [_email_of(wanted) for _, _, _, wanted, _, _ in mapped]
        owners = self.state.email_owners(
            self.scope.partner.id, [email for email in emails if email]
        )
        for (key, record, digest, wanted, snapshot, completed), email in zip(
            mapped, emails, strict=True
        ):
            # A leaver who was never provisioned will not be: no learner holds
            # the email, whichever order the read comes in and whether or not
            # the leaver was seen by an earlier run.
            provisioned = wanted.status == "active" or (
                snapshot is not None and snapshot.status != SKIPPED
            )
            if (
                email
                and provisioned
                and not self._claim_email(email, key, owners, snapshot)
            ):
                self._quarantine(
                    record, key, "email already belongs to another learner"
                )
                continue
            group = self._diff(key, digest, wanted, snapshot, email, completed)
            if group and email and any(change.deprovision for change in group):
                # Recorded only once the guard has spoken: keep the claim till then.
                self._claimed_emails[hash(email)] = _UNTIL_THE_END
            if group:
                self._emit(group)

    def _forget_recorded_claims(self) -> None:
        """Drop claims the sink has since recorded: the store now answers for them,
        so the set stays the size of a batch, not of the roster."""
        generation = self.sink.generation
        if generation != self._claims_generation:
            self._claimed_emails = {
                claim: made
                for claim, made in self._claimed_emails.items()
                if made >= generation
            }
            self._claims_generation = generation

    def _claim_email(
        self, email: str, key: str, owners: dict[str, str], snapshot: Snapshot | None
    ) -> bool:
        """Whether ``key`` may hold ``email``: no other learner has it, in the store
        or earlier in this read."""
        owner = owners.get(email)
        if owner is not None and owner != key:
            return False
        if snapshot is not None and snapshot.email_norm == email:
            return True
        claim = hash(email)
        if claim in self._claimed_emails:
            return False
        self._claimed_emails[claim] = self.sink.generation
        return True

    # -- diffing --------------------------------------------------------------

    def _diff(
        self,
        key: str,
        digest: str,
        wanted: WantedLearner,
        snapshot: Snapshot | None,
        email: str | None,
        completed: frozenset[str],
    ) -> list[Change]:
        if snapshot is None or snapshot.status == SKIPPED:
            return self._diff_new(key, digest, wanted, email, completed)
        return self._diff_known(key, digest, wanted, snapshot, completed)

    def _diff_new(
        self,
        key: str,
        digest: str,
        wanted: WantedLearner,
        email: str | None,
        completed: frozenset[str],
    ) -> list[Change]:
        ident = learner_id(self.scope.partner.id, key)
        if wanted.status != "active":
            # A leaver never provisioned is not created only to be suspended; the
            # snapshot remembers the record so that the next run skips it at once.
            self.stats.skipped_inactive += 1
            self._say(key, "not created: inactive in the source")
            skipped = Snapshot(ident, digest, {}, SKIPPED, [], None, None)
            return [Change("refresh", key, ident, snapshot=skipped)]
        fields = _jsonable_fields(wanted.fields)
        enrolls = self._enrollments(key, ident, wanted.programs, completed)
        programs = [change.program or "" for change in enrolls]
        snapshot = Snapshot(ident, digest, fields, "active", programs, email, None)
        group = [
            Change(
                "create",
                key,
                ident,
                after={**fields, "status": "active"},
                snapshot=snapshot,
            )
        ]
        return group + enrolls

    def _diff_known(
        self,
        key: str,
        digest: str,
        wanted: WantedLearner,
        snapshot: Snapshot,
        completed: frozenset[str],
    ) -> list[Change]:
        ident = snapshot.learner_id
        fields, before, after = _merge(snapshot.fields, wanted.fields)
        status, group = self._status_changes(key, ident, wanted.status, snapshot)
        if after:
            group.append(Change("update", key, ident, before=before, after=after))
        programs = set(snapshot.programs)
        if status == "active":
            enrolls = self._enrollments(
                key, ident, wanted.programs - programs, completed
            )
            group += enrolls
            for program in sorted(programs - wanted.programs - completed):
                group.append(
                    Change(
                        "withdraw",
                        key,
                        ident,
                        program=program,
                        reason="no rule gives it",
                        deprovision=True,
                    )
                )
            programs = (programs & wanted.programs) | {
                change.program or "" for change in enrolls
            }
        elif self._withdraw_due(snapshot):
            group += self._deprovision_withdrawals(key, ident, programs - completed)
            programs = set()
        suspended_at = _suspended_at(status, snapshot, self.scope.now)
        email = fields.get("email")
        new = Snapshot(
            ident,
            digest,
            fields,
            status,
            sorted(programs),
            normalize_email(email) if email else None,
            suspended_at,
        )
        if not group:
            return [Change("refresh", key, ident, snapshot=new)]
        group[0].snapshot = new
        return group

    def _enrollments(
        self, key: str, ident: str, programs: Iterable[str], completed: frozenset[str]
    ) -> list[Change]:
        """Enroll in ``programs``, but those the learner completed already and
        those whose prerequisites the learner has not completed yet: they wait,
        and the trace says for what."""
        prerequisites = self.scope.prerequisites
        enrolls: list[Change] = []
        for program in sorted(programs):
            if program in completed:
                self._say(key, f"{program} already completed")
                continue
            needed = prerequisites.get(program, ())
            missing = [name for name in needed if name not in completed]
            if missing:
                self._say(key, f"{program} waits for {', '.join(missing)}")
                continue
            reason = f"builds on {', '.join(needed)}, completed" if needed else None
            enrolls.append(Change("enroll", key, ident, program=program, reason=reason))
        return enrolls

    def _status_changes(
        self, key: str, ident: str, wanted: str, snapshot: Snapshot
    ) -> tuple[str, list[Change]]:
        if snapshot.status == "active" and wanted == "suspended":
            change = Change(
                "suspend",
                key,
                ident,
                before={"status": "active"},
                after={"status": "suspended"},
                reason="inactive in the source",
                deprovision=True,
            )
            return "suspended", [change]
        if snapshot.status == "suspended" and wanted == "active":
            change = Change(
                "reactivate",
                key,
                ident,
                before={"status": "suspended"},
                after={"status": "active"},
                reason="active in the source again",
            )
            return "active", [change]
        return snapshot.status, []

    # -- after the read -------------------------------------------------------

    def _count_deprovisionable(self, heads: Iterable[SnapshotHead]) -> None:
        """Count the seen learners a full read could deprovision were they absent."""
        connector = self.scope.connector
        withdraw = self.scope.partner.deprovision.mode == "withdraw"
        for head in heads:
            if head.connector == connector and (
                head.status == "active"
                or (withdraw and head.status == "suspended" and head.has_programs)
            ):
                self._deprovisionable_seen += 1

    def _all_deprovisionable_seen(self) -> bool:
        """Whether the read saw every learner it could deprovision (so none is
        absent); False when that was not counted."""
        if self._deprovisionable is None:
            return False
        partner = self.scope.partner.id
        for start in range(0, len(self._seen_unlooked), CHUNK_SIZE):
            chunk = self._seen_unlooked[start : start + CHUNK_SIZE]
            self._count_deprovisionable(self.state.heads(partner, chunk).values())
        self._seen_unlooked = []
        return self._deprovisionable_seen >= self._deprovisionable

    def _plan_unseen(self) -> None:
        """Suspend who is gone from a complete full read; withdraw by policy."""
        if self._all_deprovisionable_seen():
            return
        partner, connector = self.scope.partner.id, self.scope.connector
        pending: list[str] = []
        for key, head in self.state.connector_heads(partner, connector):
            if hash(key) in self._seen:
                continue
            if head.status == "active" or self._withdraw_due(head):
                pending.append(key)
            if len(pending) >= CHUNK_SIZE:
                self._deprovision(pending)
                pending = []
        self._deprovision(pending)

    def _deprovision(self, keys: list[str]) -> None:
        partner = self.scope.partner.id
        completions = self.state.completed(partner, keys)
        for key, snapshot in self.state.snapshots(partner, keys).items():
            if snapshot.status == "active":
                self.stats.absent += 1
                self._emit(self._suspend_absent(key, snapshot))
                continue
            ident = snapshot.learner_id
            programs = set(snapshot.programs) - completions.get(key, _NONE)
            changes = self._deprovision_withdrawals(key, ident, programs)
            snapshot.programs = []
            if not changes:  # all completed: nothing to withdraw, ever
                changes = [Change("refresh", key, ident)]
            changes[0].snapshot = snapshot
            self._emit(changes)

    def _suspend_absent(self, key: str, snapshot: Snapshot) -> list[Change]:
        gone = Snapshot(
            snapshot.learner_id,
            None,
            snapshot.fields,
            "suspended",
            snapshot.programs,
            snapshot.email_norm,
            self.scope.now,
        )
        return [
            Change(
                "suspend",
                key,
                snapshot.learner_id,
                before={"status": "active"},
                after={"status": "suspended"},
                reason="absent from a full read",
                deprovision=True,
                snapshot=gone,
            )
        ]

    def _withdraw_due(self, head: SnapshotHead | Snapshot) -> bool:
        """Whether policy withdraws this suspended learner's open enrollments now."""
        policy = self.scope.partner.deprovision
        has_programs = (
            head.has_programs if isinstance(head, SnapshotHead) else bool(head.programs)
        )
        if policy.mode != "withdraw" or not has_programs or head.suspended_at is None:
            return False
        waited = self.scope.now - head.suspended_at
        return waited >= timedelta(days=policy.withdraw_after_days)

    def _deprovision_withdrawals(
        self, key: str, ident: str, programs: set[str]
    ) -> list[Change]:
        days = self.scope.partner.deprovision.withdraw_after_days
        reason = f"suspended for {days} days or more"
        return [
            Change(
                "withdraw", key, ident, program=program, reason=reason, deprovision=True
            )
            for program in sorted(programs)
        ]

    # -- output ---------------------------------------------------------------

    def _emit(self, group: list[Change]) -> None:
        for change in group:
            self.stats.counts.add(change)
        if self.trace is not None:
            for change in group:
                self._say(change.source_key, change.describe())
        self.sink.add_group(group)

    def _say(self, key: str, line: str) -> None:
        if self.trace is not None:
            self.trace(f"{key}: {line}")

    def _hash(self, record: Record, completed: frozenset[str] | None) -> str:
        """A hash of the record, the mapping, and the programs the learner has
        completed; equal hashes need no mapping. A new completion changes it, so
        the rules see it on the next run.

        Fields go in in the source's order: a reordered export is remapped once.
        """
        text = repr(record.fields).encode()
        if completed:
            text += repr(sorted(completed)).encode()
        return hashlib.blake2b(text, digest_size=16, key=self._salt).hexdigest()


def _email_of(wanted: WantedLearner) -> str | None:
    email = wanted.fields.get("email")
    return normalize_email(email) if isinstance(email, str) and email else None


def _jsonable(value: LearnerValue) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _jsonable_fields(fields: dict[str, LearnerValue]) -> dict[str, Any]:
    """A copy of learner fields as JSON holds them: dates as ISO text."""
    copied: dict[str, Any] = dict(fields)
    for name in DATE_FIELDS:
        value = copied.get(name)
        if isinstance(value, date):
            copied[name] = value.isoformat()
    return copied


def _merge(
    current: dict[str, Any], wanted: dict[str, LearnerValue]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The fields after applying ``wanted``, and the before/after of what changed."""
    merged = dict(current)
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name, value in wanted.items():
        new = _jsonable(value)
        if merged.get(name) != new:
            before[name], after[name] = merged.get(name), new
            merged[name] = new
    return merged, before, after


def _suspended_at(status: str, snapshot: Snapshot, now: datetime) -> datetime | None:
    if status != "suspended":
        return None
    return snapshot.suspended_at if snapshot.status == "suspended" else now
