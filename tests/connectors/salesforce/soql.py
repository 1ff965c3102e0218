"""The little SOQL the emulator understands: ``SELECT fields|COUNT() FROM Object
[WHERE condition]``, conditions with AND, OR, NOT, parentheses, ``= != < <= > >=``,
``IN (...)`` and ``LIKE``; literals as the SOQL reference writes them (quoted
strings with backslash escapes, numbers, ``true``/``false``/``null``, date and
datetime literals). Anything else is a ``MalformedQuery``, as Salesforce's
``MALFORMED_QUERY`` would be.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

Row = dict[str, Any]
Predicate = Callable[[Row], bool]


class MalformedQuery(ValueError):
    """The query is not SOQL the emulator reads."""


_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))
  | (?P<date>\d{4}-\d\d-\d\d)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<op><=|>=|!=|=|<|>|\(|\)|,)
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def tokens(text: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise MalformedQuery(f"unexpected token at position {position}")
        position = match.end()
        kind = match.lastgroup or ""
        value: Any = match.group(kind)
        if kind == "string":
            value = _unquote(value)
        elif kind == "datetime":
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif kind == "date":
            value = date.fromisoformat(value)
        elif kind == "number":
            value = float(value)
        found.append((kind, value))
    return found


@dataclass
class Query:
    """A parsed query: its fields (``None`` for ``COUNT()``), object, condition."""

    fields: list[str] | None
    sobject: str
    where: Predicate


def parse(text: str, lookup: Callable[[Row, str], Any]) -> Query:
    """Parse ``text``; ``lookup(row, path)`` reads a field or relation path."""
    match = re.match(
        r"^\s*SELECT\s+(.+?)\s+FROM\s+([A-Za-z][A-Za-z0-9_]*)(?:\s+WHERE\s+(.+))?\s*$",
        text,
        re.IGNORECASE | re.DOTALL,
    )
    if match is None:
        raise MalformedQuery("expecting SELECT ... FROM ... [WHERE ...]")
    selected, sobject, condition = match.groups()
    fields: list[str] | None
    if selected.replace(" ", "").upper() == "COUNT()":
        fields = None
    else:
        fields = [name.strip() for name in selected.split(",")]
        if not all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_.]*", f) for f in fields):
            raise MalformedQuery("unexpected token in the field list")
    where: Predicate = lambda row: True  # noqa: E731
    if condition:
        parser = _Parser(tokens(condition), lookup)
        where = parser.expression()
        if parser.position != len(parser.tokens):
            raise MalformedQuery("unexpected token after the condition")
    return Query(fields, sobject, where)


class _Parser:
    def __init__(
        self, found: list[tuple[str, Any]], lookup: Callable[[Row, str], Any]
    ) -> None:
        self.tokens, self.position, self.lookup = found, 0, lookup

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, Any]:
        token = self.peek()
        if token is None:
            raise MalformedQuery("unexpected end of the condition")
        self.position += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].upper() == word:
            self.position += 1
            return True
        return False

    def expression(self) -> Predicate:
        left = self.conjunction()
        while self.keyword("OR"):
            right = self.conjunction()
            left = (lambda a, b: lambda row: a(row) or b(row))(left, right)
        return left

    def conjunction(self) -> Predicate:
        left = self.unary()
        while self.keyword("AND"):
            right = self.unary()
            left = (lambda a, b: lambda row: a(row) and b(row))(left, right)
        return left

    def unary(self) -> Predicate:
        if self.keyword("NOT"):
            inner = self.unary()
            return lambda row: not inner(row)
        token = self.peek()
        if token == ("op", "("):
            self.take()
            inner = self.expression()
            if self.take() != ("op", ")"):
                raise MalformedQuery("expecting )")
            return inner
        return self.comparison()

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "word":
            lowered = value.lower()
            if lowered in ("null", "true", "false"):
                return {"null": None, "true": True, "false": False}[lowered]
            raise MalformedQuery(f"unexpected token: {value}")
        if kind == "op":
            raise MalformedQuery(f"unexpected token: {value}")
        return value

    def comparison(self) -> Predicate:
        kind, path = self.take()
        if kind != "word":
            raise MalformedQuery(f"expecting a field, not {path!r}")
        if self.keyword("IN"):
            if self.take() != ("op", "("):
                raise MalformedQuery("expecting ( after IN")
            values = [self.literal()]
            while self.peek() == ("op", ","):
                self.take()
                values.append(self.literal())
            if self.take() != ("op", ")"):
                raise MalformedQuery("expecting )")
            return lambda row: _comparable(self.lookup(row, path)) in values
        if self.keyword("LIKE"):
            pattern = self.literal()
            regex = re.compile(
                "^"
                + re.escape(str(pattern)).replace("%", ".*").replace("_", ".")
                + "$",
                re.IGNORECASE,
            )
            return lambda row: bool(regex.match(str(self.lookup(row, path) or "")))
        kind, operator = self.take()
        if kind != "op" or operator in "(),":
            raise MalformedQuery(f"expecting an operator after {path}")
        value = self.literal()
        return lambda row: _compare(
            _comparable(self.lookup(row, path)), operator, value
        )


def _comparable(value: Any) -> Any:
    """Stored text as what a literal compares with (datetimes, dates, numbers)."""
    if isinstance(value, str):
        if re.fullmatch(r"\d{4}-\d\d-\d\dT.*", value):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
            return date.fromisoformat(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _compare(left: Any, operator: str, right: Any) -> bool:
    if operator == "=":
        return bool(left == right)
    if operator == "!=":
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        return bool(
            {
                "<": left < right,
                "<=": left <= right,
                ">": left > right,
                ">=": left >= right,
            }[operator]
        )
    except TypeError:
        raise MalformedQuery("values of different types compared") from None
