"""Field plans: how one learner field and the source key are read from a record.

A plan is built once per mapping from the checked spec, so that the per-record work
is a dictionary lookup, a few string operations and the transforms' calls.

What a value becomes (DESIGN: blank cells never overwrite unless the mapping says
they may clear):

- the record has no such field (a missing column): the learner field is left alone;
- an explicit null: the learner field is cleared;
- empty after trimming, or empty after the transforms: ``on_empty`` decides
  (``leave``, ``clear``, or ``default``);
- anything else: trimmed, transformed, then read as a date, checked as an email,
  or checked as a status, for those fields.
"""

from __future__ import annotations

import enum
import functools
import re
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Final, cast

from microcred_sync.connectors.base import FieldValue
from microcred_sync.errors import RecordRejected
from microcred_sync.learners import (
    DATE_FIELDS,
    FIELD_MAX_LENGTH,
    LearnerStatus,
    LearnerValue,
)
from microcred_sync.mappings import transforms
from microcred_sync.mappings.emails import EmailCheck
from microcred_sync.mappings.spec import STATUS_FIELD, FieldSpec, TransformStep

#: Fields whose values ``trace`` may show; the others are personal data.
VISIBLE_FIELDS: Final = frozenset({"department", "job_title", "location", "status"})

#: What a spreadsheet makes of a long number: ``1.23457E+11``, ``73928e05`` (CSV-04).
_SCIENTIFIC: Final = re.compile(r"[0-9]+(?:[.,][0-9]+)?[eE][+-]?[0-9]+")

_STATUSES: Final[Mapping[str, LearnerStatus]] = {
    "active": "active",
    "suspended": "suspended",
}

TextStep = Callable[[str], str]
Finish = Callable[[str], LearnerValue]


class Leave(enum.Enum):
    """The learner field is left as it is on the platform."""

    LEAVE = "leave"


class Missing(enum.Enum):
    """The record has no such field."""

    MISSING = "missing"


class Unknown(enum.Enum):
    """Not remembered yet."""

    UNKNOWN = "unknown"


LEAVE: Final = Leave.LEAVE
MISSING: Final = Missing.MISSING
UNKNOWN: Final = Unknown.UNKNOWN

#: How many raw values a field plan remembers the outcome of: dates repeat within
#: a few tens of thousands of days and are slow to parse; text is cheap.
TEXT_MEMO_SIZE: Final = 4096
DATE_MEMO_SIZE: Final = 50_000

Outcome = LearnerValue | Leave

#: Why a list of values (a multi-valued directory attribute) cannot fill one field.
_LIST_FOR_ONE_VALUE: Final = "is a list of values; map an attribute read as text"


def as_status(value: Outcome) -> LearnerStatus:
    """The learner status a status plan gave; a status left alone is ``active``."""
    if value is LEAVE:
        return "active"
    return _STATUSES[cast(str, value)]


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """How the learner field ``name`` is read: from one record field or a template.

    ``empty`` and ``null`` are the outcomes for an empty value and for an explicit
    null; ``finish`` reads the transformed text as the field's type. Converting is
    a pure function of the raw text, so ``memo`` remembers the first outcomes.
    """

    name: str
    source: str | None
    template: tuple[tuple[str, str | None], ...]
    steps: tuple[TextStep, ...]
    finish: Finish | None
    empty: Outcome
    null: Outcome
    memo_size: int = TEXT_MEMO_SIZE
    #: Text longer than the platform holds is rejected, never cut short.
    max_length: int | None = None
    memo: dict[str | tuple[str, ...], Outcome] = field(
        default_factory=dict, compare=False, repr=False
    )

    def resolve(self, fields: Mapping[str, FieldValue]) -> Outcome:
        """What the record says about this field; ``LEAVE`` if nothing.

        Raises ``RecordRejected`` whose reason starts with the field's name
        (``status: value is not listed in the map``), since the reason is what a
        quarantine keeps; the reason never repeats the value.
        """
        raw = fields.get(self.source, MISSING) if self.source else self._fill(fields)
        if raw is MISSING:
            return LEAVE
        if raw is None:
            return self.null
        # Departments, titles, dates and statuses repeat; names and emails do not
        # and soon stop being remembered.
        outcome = self.memo.get(raw, UNKNOWN)
        return self.outcome_of(raw) if outcome is UNKNOWN else outcome

    def outcome_of(self, raw: str | tuple[str, ...]) -> Outcome:
        """Convert a raw text not remembered yet, and remember it if there is room."""
        try:
            outcome = self.convert(raw)
        except RecordRejected as rejected:
            raise RecordRejected(
                f"{self.name}: {rejected.reason}", field=self.name
            ) from None
        if len(self.memo) < self.memo_size:
            self.memo[raw] = outcome
        return outcome

    def read(self, fields: Mapping[str, FieldValue]) -> FieldValue | Missing:
        """The raw text, ``None`` for null, or ``MISSING`` for a missing column."""
        if self.source is not None:
            return fields.get(self.source, MISSING)
        return self._fill(fields)

    def convert(self, raw: str | tuple[str, ...]) -> Outcome:
        """Trim, transform and finish a value that is not null."""
        if isinstance(raw, tuple):
            # A multi-valued attribute (issue 3) is for rules, not a learner field.
            raise RecordRejected(_LIST_FOR_ONE_VALUE)
        text = raw.strip()
        if text:
            for step in self.steps:
                text = step(text)
        if not text:
            return self.empty
        outcome = text if self.finish is None else self.finish(text)
        limit = self.max_length
        if limit is not None and isinstance(outcome, str) and len(outcome) > limit:
            raise RecordRejected(f"longer than {limit} characters")
        return outcome

    def _fill(self, fields: Mapping[str, FieldValue]) -> str | Missing:
        """Fill the template; nulls and empty cells give empty parts."""
        parts: list[str] = []
        for literal, name in self.template:
            parts.append(literal)
            if name is not None:
                value = fields.get(name, MISSING)
                if value is MISSING:
                    return MISSING
                if isinstance(value, tuple):
                    raise RecordRejected(
                        f"{self.name}: {name}: {_LIST_FOR_ONE_VALUE}", field=self.name
                    )
                parts.append(value or "")
        return " ".join("".join(parts).split())

    def origin(self) -> str:
        """Where the value comes from, for ``trace``."""
        if self.source is not None:
            return f"from {self.source}"
        names = ", ".join(name for _, name in self.template if name is not None)
        return f"format of {names}"


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """How the source key is read: trimmed, transformed, never a number."""

    source: str
    steps: tuple[TextStep, ...]

    def resolve(self, fields: Mapping[str, FieldValue]) -> str:
        """The normalized source key.

        Raises ``RecordRejected`` when there is none, or when it looks like a number
        a spreadsheet wrote in scientific notation (its digits are lost).
        """
        raw = fields.get(self.source)
        if isinstance(raw, tuple):
            raise RecordRejected(f"the source key {_LIST_FOR_ONE_VALUE}")
        text = raw.strip() if raw is not None else ""
        if not text:
            raise RecordRejected("no source key")
        if text[0].isdigit() and _SCIENTIFIC.fullmatch(text) is not None:
            reason = (
                "source key is in scientific notation (reformatted by a spreadsheet?)"
            )
            raise RecordRejected(reason, key=text)
        for step in self.steps:
            text = step(text)
        if not text:
            raise RecordRejected("no source key")
        # One spelling per key: an export that turns é into e + U+0301 (NFD) must
        # still find the same learner.
        return text if text.isascii() else unicodedata.normalize("NFC", text)


def build_key_plan(source: str, steps: tuple[TransformStep, ...]) -> KeyPlan:
    """The key plan for a mapping's ``source_key`` and ``key_transforms``."""
    return KeyPlan(source, tuple(_text_step(step) for step in steps))


def build_field_plan(
    name: str, spec: FieldSpec, date_formats: tuple[str, ...], emails: EmailCheck
) -> FieldPlan:
    """The plan for learner field ``name`` (or the status) from its checked spec."""
    text_steps = tuple(s for s in spec.transforms if not s.gives_date)
    empty = _empty_outcome(name, spec)
    return FieldPlan(
        name=name,
        source=spec.from_,
        template=_template_parts(spec.format) if spec.format is not None else (),
        steps=tuple(_text_step(step) for step in text_steps),
        finish=_finish(name, spec, date_formats, emails),
        empty=empty,
        null=empty if name == STATUS_FIELD else None,
        memo_size=DATE_MEMO_SIZE if name in DATE_FIELDS else TEXT_MEMO_SIZE,
        max_length=FIELD_MAX_LENGTH.get(name),
    )


def _text_step(step: TransformStep) -> TextStep:
    """Bind a text transform to its argument."""
    apply = cast(Callable[..., str], transforms.TRANSFORMS[step.name].apply)
    return functools.partial(apply, arg=step.arg)


def _finish(
    name: str, spec: FieldSpec, date_formats: tuple[str, ...], emails: EmailCheck
) -> Finish | None:
    """What turns the transformed text into the field's value, if anything."""
    if name in DATE_FIELDS:
        last = spec.transforms[-1] if spec.transforms else None
        explicit = last.arg if last is not None and last.gives_date else None
        formats = explicit if explicit is not None else date_formats
        return functools.partial(transforms.parse_date, arg=formats)
    if name == "email":
        return emails.display_form
    if name == STATUS_FIELD:
        return _check_status
    return None


def _check_status(text: str) -> str:
    """A status value must be ``active`` or ``suspended`` once transformed."""
    if text not in _STATUSES:
        raise RecordRejected("unmapped status")
    return text


def _empty_outcome(name: str, spec: FieldSpec) -> Outcome:
    """What an empty value gives, by ``on_empty``."""
    if spec.on_empty == "leave":
        return LEAVE
    if spec.on_empty == "clear":
        return None
    default = spec.default
    if name in DATE_FIELDS and isinstance(default, str):
        return date.fromisoformat(default)
    return default


def _template_parts(template: str) -> tuple[tuple[str, str | None], ...]:
    """A checked template as (literal text, record field or None) pairs."""
    return tuple(
        (literal, name) for literal, name, _, _ in string.Formatter().parse(template)
    )
