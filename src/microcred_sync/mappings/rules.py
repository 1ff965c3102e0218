"""Enrollment rules: CEL expressions that give a learner a program.

A rule sees two maps. ``record`` holds the record's fields (text, trimmed; an
explicit null is ``null``; a missing column is absent, so ``has(record.x)`` tells;
a multi-valued directory attribute is a list of texts). A directory source's
``record.groups`` lists the person's groups, nested ones included:
``in_group(record.groups, "CN=Data Analysts,OU=Groups,DC=example,DC=com")`` tests
membership by DN, compared as a DN (case, spacing and escaping aside), and
``in_group(record.groups, "Data Analysts")`` by the group's name.
``learner`` holds the mapped learner fields (text; dates as ISO 8601 text; a field
left alone is absent, a cleared one is ``null``) and ``status``.

CEL is evaluated by the ``cel`` package, never by Python's ``eval``. Handing maps to
CEL costs about two microseconds per entry, so a rule receives only the fields it
names (``record.job_level``); a rule that uses a map in another way
(``record["job level"]``, ``size(record)``) receives the whole map. CEL has no clock
and no side effects, so a rule's outcome depends only on those fields, and is
remembered per distinct combination of their values.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Final

import cel

from microcred_sync.connectors.base import FieldValue
from microcred_sync.connectors.ldap.dn import in_group
from microcred_sync.errors import RecordRejected
from microcred_sync.learners import LEARNER_FIELDS, LearnerValue

#: The variables a rule may use.
RULE_VARIABLES: Final = ("record", "learner")

#: What ``learner`` holds besides the learner fields: the status, and the programs
#: the learner has completed (was awarded), for rules over stacked programs.
STATUS: Final = "status"
COMPLETED: Final = "completed"

#: Functions a rule may call besides CEL's own.
RULE_FUNCTIONS: Final[dict[str, Callable[..., bool]]] = {"in_group": in_group}

#: How many outcomes a rule remembers; beyond that it evaluates every time.
OUTCOME_CACHE_SIZE: Final = 65536

#: Longest CEL error text kept in a rejection reason.
_MESSAGE_MAX: Final = 200

#: Variables bound by the CEL comprehension macros (``record.all(k, ...)``).
_MACRO_VARIABLE: Final = re.compile(
    r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,"
)


def _string_literal_pattern() -> re.Pattern[str]:
    """A CEL string or bytes literal, triple-quoted ones first.

    A raw literal (``r"..."``) ends at the first closing quote; in the others a
    backslash escapes the next character.
    """
    raw: list[str] = []
    escaped: list[str] = []
    for quote in ("'''", '"""'):
        raw.append(f"{quote}.*?{quote}")
        escaped.append(quote + r"(?:\\.|[^\\])*?" + quote)
    for quote in ("'", '"'):
        raw.append(quote + "[^" + quote + r"\n]*" + quote)
        escaped.append(quote + r"(?:\\.|[^\\\n" + quote + "])*" + quote)
    raw_part = "|".join(raw)
    escaped_part = "|".join(escaped)
    return re.compile(
        f"(?:[rR][bB]?|[bB][rR])(?:{raw_part})|[bB]?(?:{escaped_part})", re.DOTALL
    )


#: A string literal in a rule: a variable named inside one is not an access.
_STRING_LITERAL: Final = _string_literal_pattern()

#: Absent from a map (a missing column, or a learner field left alone).
_ABSENT: Final = object()


@functools.lru_cache(maxsize=1024)
def compile_rule(source: str) -> cel.Program:
    """Compile a rule; raises ``ValueError`` with CEL's message, trimmed.

    Also refuses variables other than ``record`` and ``learner``, so that a typo
    fails when the mapping is loaded rather than on every record. A compiled
    program holds no state, so loading a mapping and building its mapper share one.
    """
    try:
        program = cel.compile(source)
    except ValueError as error:
        raise ValueError(f"does not compile: {_trimmed(error)}") from None
    bound = set(_MACRO_VARIABLE.findall(source))
    unknown = sorted(set(program.variables()) - bound - set(RULE_VARIABLES))
    if unknown:
        names = ", ".join(unknown)
        raise ValueError(f"unknown variable {names}; rules see record and learner")
    return program


def referenced_fields(source: str, variable: str) -> tuple[str, ...] | None:
    """The fields of ``variable`` a rule names, or ``None`` if it needs them all.

    Conservative: any use of ``variable`` other than ``variable.name`` (a call, an
    index, ``in``, a mention inside a string) means the whole map.
    """
    mention = re.compile(rf"\b{variable}\b")
    literals = _STRING_LITERAL.findall(source)
    if any(mention.search(literal) for literal in literals):
        return None
    names: list[str] = []
    for use in mention.finditer(source):
        access = re.match(
            r"\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)(\s*\()?", source[use.end() :]
        )
        if access is None or access.group(2) is not None:
            return None
        names.append(access.group(1))
    return tuple(dict.fromkeys(names))


def presence_tested_fields(source: str, variable: str) -> frozenset[str]:
    """The fields of ``variable`` a rule tests with ``has(variable.name)``.

    Such a rule is written to cope with the field being absent, so a missing column
    need not make it fail.
    """
    tested = re.finditer(
        rf"\bhas\s*\(\s*{variable}\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)", source
    )
    return frozenset(match.group(1) for match in tested)


@dataclass(slots=True)
class EnrollmentRule:
    """One compiled rule: ``program`` is wanted when ``source`` is true.

    ``record_fields`` and ``learner_fields`` are the fields it names (``None``: it
    needs the whole map).
    """

    program: str
    source: str
    record_fields: tuple[str, ...] | None = field(init=False, repr=False)
    learner_fields: tuple[str, ...] | None = field(init=False, repr=False)
    _compiled: cel.Program = field(init=False, repr=False)
    _uses: frozenset[str] = field(init=False, repr=False)
    _functions: dict[str, Callable[..., bool]] = field(init=False, repr=False)
    _outcomes: dict[tuple[object, ...], bool | str] = field(
        init=False, repr=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._compiled = compile_rule(self.source)
        self._uses = frozenset(self._compiled.variables()) & set(RULE_VARIABLES)
        called = set(self._compiled.functions())
        self._functions = {
            name: function
            for name, function in RULE_FUNCTIONS.items()
            if name in called
        }
        self.record_fields = referenced_fields(self.source, "record")
        self.learner_fields = referenced_fields(self.source, "learner")

    def wants(
        self,
        record: Mapping[str, FieldValue],
        learner: Mapping[str, LearnerValue],
        status: str,
        completed: frozenset[str] = frozenset(),
    ) -> bool:
        """Whether the learner should have the program.

        Raises ``RecordRejected`` naming the program when the rule fails or does
        not give true or false.
        """
        outcome = self.outcome(record, learner, status, completed)
        if outcome is True or outcome is False:
            return outcome
        raise RecordRejected(f"enrollment rule for {self.program}: {outcome}")

    def outcome(
        self,
        record: Mapping[str, FieldValue],
        learner: Mapping[str, LearnerValue],
        status: str,
        completed: frozenset[str] = frozenset(),
    ) -> bool | str:
        """The rule's result, or the text of the error it gave."""
        key = (
            _lookup_key(record, self.record_fields),
            _lookup_key(learner, self.learner_fields),
            status,
            _completed_key(completed, self.learner_fields),
        )
        outcome = self._outcomes.get(key)
        if outcome is None:
            outcome = self._evaluate(record, learner, status, completed)
            if len(self._outcomes) < OUTCOME_CACHE_SIZE:
                self._outcomes[key] = outcome
        return outcome

    def _evaluate(
        self,
        record: Mapping[str, FieldValue],
        learner: Mapping[str, LearnerValue],
        status: str,
        completed: frozenset[str],
    ) -> bool | str:
        """Run the program once; errors come back as text."""
        context: dict[str, object] = {}
        if "record" in self._uses:
            context["record"] = record_view(record, self.record_fields)
        if "learner" in self._uses:
            context["learner"] = learner_view(
                learner, status, self.learner_fields, completed
            )
        try:
            if self._functions:
                result = self._compiled.execute(
                    cel.Context(variables=context, functions=self._functions)
                )
            else:
                result = self._compiled.execute(context)
        except KeyError as error:
            return f"no such field: {error.args[0] if error.args else '?'}"
        except Exception as error:  # any failure inside CEL is the rule's failure
            return _trimmed(error)
        if isinstance(result, bool):
            return result
        return f"gave {type(result).__name__}, not true or false"


def record_view(
    record: Mapping[str, FieldValue], names: tuple[str, ...] | None
) -> dict[str, str | list[str] | None]:
    """The ``record`` map a rule sees: trimmed text, lists of trimmed text, null
    kept, absent left out."""
    chosen = record.keys() if names is None else (n for n in names if n in record)
    view: dict[str, str | list[str] | None] = {}
    for name in chosen:
        value = record[name]
        if isinstance(value, tuple):
            view[name] = [text.strip() for text in value]
        else:
            view[name] = None if value is None else value.strip()
    return view


def learner_view(
    learner: Mapping[str, LearnerValue],
    status: str,
    names: tuple[str, ...] | None,
    completed: frozenset[str] = frozenset(),
) -> dict[str, str | list[str] | None]:
    """The ``learner`` map a rule sees: text, dates as ISO 8601, ``status``, and
    ``completed``, the programs the learner has been awarded (sorted).

    A learner field the record leaves alone is ``null`` here, so that a rule over a
    blank cell is false rather than an error.
    """
    chosen = LEARNER_FIELDS if names is None else names
    view: dict[str, str | list[str] | None] = {}
    for name in chosen:
        if name in (STATUS, COMPLETED):
            continue
        value = learner.get(name)
        view[name] = value.isoformat() if isinstance(value, date) else value
    if names is None or STATUS in names:
        view[STATUS] = status
    if names is None or COMPLETED in names:
        view[COMPLETED] = sorted(completed)
    return view


def _completed_key(
    completed: frozenset[str], names: tuple[str, ...] | None
) -> frozenset[str] | None:
    """What a rule's outcome depends on in the completed programs."""
    return completed if names is None or COMPLETED in names else None


def _lookup_key(
    values: Mapping[str, object], names: tuple[str, ...] | None
) -> tuple[object, ...]:
    """What a rule's outcome depends on in one map."""
    if names is None:
        return tuple(values.items())
    return tuple([values.get(name, _ABSENT) for name in names])


def _trimmed(error: Exception) -> str:
    """The first line of an error's text, shortened."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= _MESSAGE_MAX else text[: _MESSAGE_MAX - 1] + "…"


class RuleSet:
    """A mapping's enrollment rules, evaluated together for one learner.

    The programs a learner wants depend only on the fields the rules name, so the
    answer is remembered per distinct combination of their values (one lookup per
    record for all rules). Not thread-safe.
    """

    def __init__(self, rules: tuple[EnrollmentRule, ...]) -> None:
        self.rules = rules
        self._record_fields = _union(rule.record_fields for rule in rules)
        self._learner_fields = _union(rule.learner_fields for rule in rules)
        self._answers: dict[tuple[object, ...], frozenset[str] | str] = {}
        self._program_sets: dict[tuple[str, ...], frozenset[str]] = {}

    def programs(
        self,
        record: Mapping[str, FieldValue],
        learner: Mapping[str, LearnerValue],
        status: str,
        completed: frozenset[str] = frozenset(),
    ) -> frozenset[str]:
        """The programs the rules give.

        Raises ``RecordRejected`` naming the program whose rule failed.
        """
        key = (
            _lookup_key(record, self._record_fields),
            _lookup_key(learner, self._learner_fields),
            status,
            _completed_key(completed, self._learner_fields),
        )
        answer = self._answers.get(key)
        if answer is None:
            answer = self._decide(record, learner, status, completed)
            if len(self._answers) < OUTCOME_CACHE_SIZE:
                self._answers[key] = answer
        if isinstance(answer, str):
            raise RecordRejected(answer)
        return answer

    def _decide(
        self,
        record: Mapping[str, FieldValue],
        learner: Mapping[str, LearnerValue],
        status: str,
        completed: frozenset[str],
    ) -> frozenset[str] | str:
        """Evaluate every rule: the programs, or the first failure's reason."""
        granted: list[str] = []
        for rule in self.rules:
            try:
                if rule.wants(record, learner, status, completed):
                    granted.append(rule.program)
            except RecordRejected as rejected:
                return rejected.reason
        # Most learners share a few program sets; keep one frozenset per set.
        chosen = tuple(dict.fromkeys(granted))
        return self._program_sets.setdefault(chosen, frozenset(chosen))


def _union(
    field_lists: Iterable[tuple[str, ...] | None],
) -> tuple[str, ...] | None:
    """All the fields named, or ``None`` if any rule needs the whole map."""
    names: list[str] = []
    for fields in field_lists:
        if fields is None:
            return None
        names.extend(fields)
    return tuple(dict.fromkeys(names))
