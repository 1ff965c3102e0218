"""The mapper: turns a record into the learner and the programs it wants.

``Mapper`` is built once per run from a checked ``MappingSpec``; everything that
can be worked out in advance (field plans, bound transforms, compiled rules) is,
so mapping a record costs a few microseconds and touches no pydantic model.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

from microcred_sync.connectors.base import FieldValue, Record
from microcred_sync.errors import ConfigError, RecordRejected
from microcred_sync.learners import (
    KEY_MAX_LENGTH,
    LEARNER_FIELDS,
    LearnerStatus,
    LearnerValue,
    WantedLearner,
)
from microcred_sync.mappings.emails import EmailCheck
from microcred_sync.mappings.fields import (
    LEAVE,
    MISSING,
    UNKNOWN,
    VISIBLE_FIELDS,
    FieldPlan,
    Outcome,
    as_status,
    build_field_plan,
    build_key_plan,
)
from microcred_sync.mappings.rules import (
    EnrollmentRule,
    RuleSet,
    presence_tested_fields,
)
from microcred_sync.mappings.spec import STATUS_FIELD, MappingSpec

_NO_PROGRAMS: Final[frozenset[str]] = frozenset()


class Mapper:
    """Maps records to wanted learners by one mapping.

    ``programs`` are the ids of the programs the platform offers; a rule naming
    another program is a ``ConfigError`` here, before any record is read. Not
    thread-safe (rules remember their outcomes).
    """

    def __init__(self, spec: MappingSpec, programs: Collection[str]) -> None:
        _check_programs(spec, frozenset(programs))
        self.spec = spec
        emails = EmailCheck()
        self._key = build_key_plan(spec.source_key, spec.key_transforms)
        plans = {
            name: build_field_plan(name, field, spec.date_formats, emails)
            for name, field in spec.fields.items()
        }
        self._status = plans.pop(STATUS_FIELD, None)
        self._fields = tuple(plans[name] for name in LEARNER_FIELDS if name in plans)
        self._rules = RuleSet(
            tuple(EnrollmentRule(rule.program, rule.when) for rule in spec.enrollments)
        )
        self._required = _required_source_fields(spec.source_key, self._rules.rules)
        self._source_fields = _source_fields(spec, self._rules.rules)

    @property
    def fingerprint(self) -> str:
        """Changes whenever the mapping does; part of every record hash."""
        return self.spec.fingerprint

    def source_fields(self) -> frozenset[str]:
        """Every record field the mapping reads.

        The source key, each field's ``from`` and ``format`` fields, and each
        ``record.<name>`` a rule names. A rule that uses ``record`` as a whole map
        (``record["job level"]``, ``size(record)``) adds nothing: which fields it
        reads is not known before it runs.
        """
        return self._source_fields

    def required_source_fields(self) -> frozenset[str]:
        """The record fields without which every record is rejected.

        The source key, and each ``record.<name>`` a rule names (a missing column
        makes the rule fail), except where that rule tests ``has(record.<name>)``.
        A missing learner-field column only leaves the field alone, so those are
        not required. Meant to be checked against the first record of a read.
        """
        return self._required

    def key_of(self, record: Record) -> str:
        """The record's normalized source key.

        Raises ``RecordRejected("no source key")`` when it is missing or empty, and
        rejects a key a spreadsheet turned into scientific notation (CSV-04).
        """
        return self._key.resolve(record.fields)

    def map(
        self,
        record: Record,
        key: str | None = None,
        completed: frozenset[str] = frozenset(),
    ) -> WantedLearner:
        """The learner and programs the record wants; ``key`` is the record's
        ``key_of``, when the caller has it already, ``completed`` the programs the
        learner has completed (rules see them as ``learner.completed``).

        Raises ``RecordRejected`` (with the key, and the field where there is one)
        when the record cannot be mapped: a problem reading it, no key, a bad email,
        a date that does not parse, an unmapped status, or a failing rule.
        """
        if record.problem is not None:
            raise RecordRejected(record.problem, key=self._key_or_none(record))
        if key is None:
            key = self._key.resolve(record.fields)
        try:
            if len(key) > KEY_MAX_LENGTH:
                raise RecordRejected(
                    f"source key longer than {KEY_MAX_LENGTH} characters"
                )
            learner = self._learner_fields(record.fields)
            status = self._status_of(record.fields)
            programs = self._programs(record.fields, learner, status, completed)
        except RecordRejected as rejected:
            raise RecordRejected(
                rejected.reason, key=key, field=rejected.field
            ) from None
        return WantedLearner(key, learner, status, programs)

    def trace(
        self, record: Record, completed: frozenset[str] = frozenset()
    ) -> list[str]:
        """Lines explaining how the record maps, for a ``--only`` debugging view.

        Shows the key and the values of non-personal fields only; for the others,
        what happened (set, left alone, cleared, rejected) without the value.
        """
        fields = record.fields
        lines = [] if record.problem is None else [f"record: {record.problem}"]
        lines.append(self._trace_key(record))
        learner: dict[str, LearnerValue] = {}
        for plan in self._fields:
            traced = _trace_field(plan, fields)
            lines.append(traced.line)
            if traced.outcome is not LEAVE:
                learner[plan.name] = traced.outcome
        status = self._trace_status(fields, lines)
        lines.extend(self._trace_rules(fields, learner, status, completed))
        lines.append(self._trace_result(record, completed))
        return lines

    def _learner_fields(
        self, fields: Mapping[str, FieldValue]
    ) -> dict[str, LearnerValue]:
        """The learner fields the record speaks about.

        What ``FieldPlan.resolve`` does for each field, with its remembered
        outcomes looked up here: this runs for every changed record.
        """
        learner: dict[str, LearnerValue] = {}
        get = fields.get
        for plan in self._fields:
            source = plan.source
            raw = get(source, MISSING) if source is not None else plan.read(fields)
            if raw is MISSING:
                continue
            if raw is None:
                outcome = plan.null
            else:
                remembered = plan.memo.get(raw, UNKNOWN)
                outcome = plan.outcome_of(raw) if remembered is UNKNOWN else remembered
            if outcome is not LEAVE:
                learner[plan.name] = outcome
        return learner

    def _status_of(self, fields: Mapping[str, FieldValue]) -> LearnerStatus:
        """The wanted status; ``active`` when the mapping or the record is silent."""
        if self._status is None:
            return "active"
        return as_status(self._status.resolve(fields))

    def _programs(
        self,
        fields: Mapping[str, FieldValue],
        learner: Mapping[str, LearnerValue],
        status: LearnerStatus,
        completed: frozenset[str],
    ) -> frozenset[str]:
        """The programs the rules give; a suspended learner wants none."""
        if status != "active" or not self._rules.rules:
            return _NO_PROGRAMS
        return self._rules.programs(fields, learner, status, completed)

    def _key_or_none(self, record: Record) -> str | None:
        """The key if there is one, for the context of another rejection."""
        try:
            return self._key.resolve(record.fields)
        except RecordRejected:
            return None

    def _trace_key(self, record: Record) -> str:
        """The trace line for the source key."""
        source = self.spec.source_key
        try:
            return f"key: from {source} -> {self._key.resolve(record.fields)}"
        except RecordRejected as rejected:
            return f"key: from {source} -> rejected: {rejected.reason}"

    def _trace_status(self, fields: Mapping[str, FieldValue], lines: list[str]) -> str:
        """Append the status line; return the status the rules see, or "rejected"."""
        if self._status is None:
            lines.append("status: not mapped -> active")
            return "active"
        traced = _trace_field(self._status, fields)
        if traced.rejected:
            lines.append(traced.line)
            return "rejected"
        status = as_status(traced.outcome)
        lines.append(f"{traced.line} (status {status})")
        return status

    def _trace_rules(
        self,
        fields: Mapping[str, FieldValue],
        learner: Mapping[str, LearnerValue],
        status: str,
        completed: frozenset[str],
    ) -> list[str]:
        """One line per enrollment rule."""
        if status != "active":
            rules = self._rules.rules
            return [f"rules: not evaluated, status is {status}"] if rules else []
        lines = []
        for index, rule in enumerate(self._rules.rules):
            outcome = rule.outcome(fields, learner, status, completed)
            said = str(outcome).lower() if isinstance(outcome, bool) else outcome
            lines.append(f"rule {index} ({rule.program}): {said}")
        return lines

    def _trace_result(self, record: Record, completed: frozenset[str]) -> str:
        """The final line: what ``map`` does with the record."""
        try:
            wanted = self.map(record, completed=completed)
        except RecordRejected as rejected:
            return f"result: rejected: {rejected}"
        programs = ", ".join(sorted(wanted.programs)) or "none"
        return (
            f"result: {len(wanted.fields)} fields, status {wanted.status}, "
            f"programs: {programs}"
        )


class DuplicateKeys:
    """Notices a source key that comes twice within one read (CSV-06).

    What to do about it is the mapping's ``duplicates`` policy: ``keep_first``
    quarantines the later records, ``reject_read`` holds the whole read.
    """

    def __init__(self) -> None:
        self._first: dict[str, str] = {}

    def note(self, key: str, location: str) -> str | None:
        """Remember ``key``; return where it was first seen if it was seen before."""
        first = self._first.get(key)
        if first is None:
            self._first[key] = location
        return first


def _source_fields(
    spec: MappingSpec, rules: tuple[EnrollmentRule, ...]
) -> frozenset[str]:
    """The source key, every field's sources, and the record fields rules name."""
    names = {spec.source_key}
    for field in spec.fields.values():
        names.update(field.sources)
    for rule in rules:
        names.update(rule.record_fields or ())
    return frozenset(names)


def _required_source_fields(
    source_key: str, rules: tuple[EnrollmentRule, ...]
) -> frozenset[str]:
    """The source key and the record fields a rule cannot do without."""
    required = {source_key}
    for rule in rules:
        guarded = presence_tested_fields(rule.source, "record")
        required.update(set(rule.record_fields or ()) - guarded)
    return frozenset(required)


def _check_programs(spec: MappingSpec, programs: frozenset[str]) -> None:
    """Every rule must name a program the platform offers."""
    for index, rule in enumerate(spec.enrollments):
        if rule.program not in programs:
            raise ConfigError(
                f"{spec.origin}: enrollments.{index}.program: "
                f"unknown program {rule.program!r}"
            )


@dataclass(frozen=True, slots=True)
class _Traced:
    """One field's trace line and its outcome."""

    line: str
    outcome: Outcome
    rejected: bool = False


def _trace_field(plan: FieldPlan, fields: Mapping[str, FieldValue]) -> _Traced:
    """Explain one field: where it comes from, what the record held, the outcome."""
    head = f"{plan.name}: {plan.origin()}"
    try:
        outcome = plan.resolve(fields)
    except RecordRejected as rejected:
        # The line already starts with the field's name; the reason does too.
        reason = rejected.reason.removeprefix(f"{plan.name}: ")
        return _Traced(f"{head} -> rejected: {reason}", LEAVE, rejected=True)
    raw = plan.read(fields)
    if raw is MISSING:
        found = "column missing, "
    elif raw is None:
        found = "null, "
    elif isinstance(raw, str) and not raw.strip():
        found = "empty, "
    else:
        found = ""
    return _Traced(f"{head} -> {found}{_describe(plan.name, outcome)}", outcome)


def _describe(name: str, outcome: Outcome) -> str:
    """An outcome; values are shown for non-personal fields only."""
    if outcome is LEAVE:
        return "left alone"
    if outcome is None:
        return "cleared"
    if name in VISIBLE_FIELDS:
        return f"set to {outcome!r}"
    if isinstance(outcome, str):
        return f"set (text, {len(outcome)} characters)"
    return f"set ({type(outcome).__name__})"
