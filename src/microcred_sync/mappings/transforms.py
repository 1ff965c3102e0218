"""The named transforms a mapping may apply to a record's value.

Each transform is a small pure function ``(value, arg) -> value`` registered in
``TRANSFORMS`` with a checker for its argument. A mapping file names transforms
either bare (``trim``) or with an argument (``{zero_pad: 6}``); the checker runs
when the mapping is loaded, so a bad name or argument is a configuration error and
never a surprise in the middle of a run.

A transform receives text that is already trimmed and not empty. It raises
``RecordRejected`` (without a field; the field plan adds it, to the reason too) when
the value cannot be transformed. Rejection reasons never repeat the value: it may
be personal data.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Final

from microcred_sync.errors import RecordRejected
from microcred_sync.learners import LearnerValue

#: Lower-case words that begin a family name: "Mary Ann van der Berg" has the
#: family name "van der Berg".
NAME_PARTICLES: Final = frozenset(
    {"van", "von", "de", "der", "den", "da", "di", "du", "del", "della", "le", "la"}
)

#: The ``map`` entry used for any value the map does not list.
MAP_FALLBACK: Final = "*"

#: A sample date used to check that a strptime format reads a whole date back.
_PROBE_DATE: Final = date(2001, 2, 3)


@dataclass(frozen=True, slots=True)
class Transform:
    """A registered transform: the function, its argument checker, its result.

    ``check_arg`` turns the argument written in the mapping file into the one
    ``apply`` takes, or raises ``ValueError`` saying what is wrong with it.
    ``gives_date`` is true for the one transform whose result is a date, which
    must therefore come last and only on a date field.
    """

    apply: Callable[[str, Any], LearnerValue]
    check_arg: Callable[[object], Any]
    gives_date: bool = False


# -- argument checkers ---------------------------------------------------------


def no_arg(arg: object) -> None:
    """Accept only a missing argument (``trim`` or ``{trim: null}``)."""
    if arg is not None:
        raise ValueError("takes no argument")


def name_part_arg(arg: object) -> str:
    """Accept ``given`` or ``family`` for ``split_name``."""
    if arg not in ("given", "family"):
        raise ValueError("argument must be 'given' or 'family'")
    return str(arg)


def date_formats_arg(arg: object) -> tuple[str, ...] | None:
    """Accept no argument (the mapping's formats) or one or more strptime formats."""
    if arg is None:
        return None
    formats = [arg] if isinstance(arg, str) else arg
    if not isinstance(formats, list) or not formats:
        raise ValueError("argument must be a list of strptime formats")
    return tuple(check_date_format(fmt) for fmt in formats)


def check_date_format(fmt: object) -> str:
    """Return ``fmt`` if it is a strptime format that reads day, month and year."""
    if not isinstance(fmt, str):
        raise ValueError("a date format must be text, such as '%d-%m-%Y'")
    try:
        read_back = datetime.strptime(_PROBE_DATE.strftime(fmt), fmt).date()
    except ValueError:
        read_back = None
    if read_back != _PROBE_DATE:
        raise ValueError(f"date format {fmt!r} does not read a whole date back")
    return fmt


def map_arg(arg: object) -> dict[str, str]:
    """Accept a mapping of text to text; keys are casefolded for lookup."""
    if not isinstance(arg, dict) or not arg:
        raise ValueError("argument must be a mapping of values to values")
    table: dict[str, str] = {}
    for source, target in arg.items():
        if not isinstance(source, str) or not isinstance(target, str):
            # YAML reads yes, on, 1 and the like as booleans and numbers.
            raise ValueError(f"map entry {source!r}: quote keys and values as text")
        folded = source if source == MAP_FALLBACK else source.casefold()
        if folded in table:
            raise ValueError(f"map entry {source!r} repeats another key")
        table[folded] = target
    return table


def width_arg(arg: object) -> int:
    """Accept a width from 1 to 64 for ``zero_pad``."""
    if isinstance(arg, bool) or not isinstance(arg, int) or not 1 <= arg <= 64:
        raise ValueError("argument must be a width from 1 to 64")
    return arg


def prefix_arg(arg: object) -> str:
    """Accept non-empty text for ``strip_prefix``."""
    if not isinstance(arg, str) or not arg:
        raise ValueError("argument must be the prefix text")
    return arg


# -- transforms ----------------------------------------------------------------


def trim(value: str, arg: None) -> str:
    """Remove surrounding whitespace."""
    return value.strip()


def lower(value: str, arg: None) -> str:
    """Lower-case the value."""
    return value.lower()


def upper(value: str, arg: None) -> str:
    """Upper-case the value."""
    return value.upper()


def collapse_spaces(value: str, arg: None) -> str:
    """Replace every run of whitespace by one space and trim the ends."""
    return " ".join(value.split())


def split_name(value: str, arg: str) -> str:
    """Take the given or the family part of a full name.

    ``"Okafor, Dana"`` (family first, with a comma) splits at the first comma.
    Otherwise the last word is the family name, together with the particles
    (``NAME_PARTICLES``) just before it: ``"Mary Ann van der Berg"`` is given
    ``"Mary Ann"``, family ``"van der Berg"``. The given part keeps at least one
    word. A single word is a given name with an empty family name.
    """
    given, family = _split_full_name(value)
    return given if arg == "given" else family


@functools.lru_cache(maxsize=64)
def _split_full_name(value: str) -> tuple[str, str]:
    """Split a full name into (given, family); see ``split_name``.

    Remembers the last few names: a mapping usually takes both parts of one name.
    """
    if "," in value:
        family, _, given = value.partition(",")
        return " ".join(given.split()), " ".join(family.split())
    words = value.split()
    start = len(words) - 1
    while start > 1 and words[start - 1].casefold() in NAME_PARTICLES:
        start -= 1
    if start < 1:
        return " ".join(words), ""
    return " ".join(words[:start]), " ".join(words[start:])


def parse_date(value: str, arg: tuple[str, ...]) -> date:
    """Read a date: ISO 8601 first, then each strptime format in ``arg`` in order.

    An ISO datetime is accepted and its date is taken as written (with or without
    an offset). Raises ``RecordRejected`` naming the formats tried.
    """
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        pass
    for fmt in arg:
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    tried = ", ".join(("ISO 8601", *arg))
    raise RecordRejected(f"not a date in any of the formats tried: {tried}")


def map_value(value: str, arg: Mapping[str, str]) -> str:
    """Look the casefolded value up in ``arg``; ``"*"`` catches the rest.

    Raises ``RecordRejected`` when the value is not listed and there is no ``"*"``.
    """
    target = arg.get(value.casefold())
    if target is None:
        target = arg.get(MAP_FALLBACK)
    if target is None:
        raise RecordRejected("value is not listed in the map")
    return target


def zero_pad(value: str, arg: int) -> str:
    """Pad an all-digit value with leading zeros to ``arg`` digits.

    Other values (``E-0001``) and longer ones are returned unchanged.
    """
    if value.isascii() and value.isdigit():
        return value.zfill(arg)
    return value


def strip_prefix(value: str, arg: str) -> str:
    """Remove the prefix ``arg`` (case-sensitive) and the whitespace after it."""
    return value.removeprefix(arg).strip()


#: Every transform a mapping may name.
TRANSFORMS: Final[Mapping[str, Transform]] = MappingProxyType(
    {
        "trim": Transform(trim, no_arg),
        "lower": Transform(lower, no_arg),
        "upper": Transform(upper, no_arg),
        "collapse_spaces": Transform(collapse_spaces, no_arg),
        "split_name": Transform(split_name, name_part_arg),
        "parse_date": Transform(parse_date, date_formats_arg, gives_date=True),
        "map": Transform(map_value, map_arg),
        "zero_pad": Transform(zero_pad, width_arg),
        "strip_prefix": Transform(strip_prefix, prefix_arg),
    }
)

#: Names people reach for that are spelled differently here, with what to use.
_HINTS: Final = {
    "default": "use 'on_empty: default' with 'default: <value>'",
    "strip": "use 'trim'",
    "lowercase": "use 'lower'",
    "uppercase": "use 'upper'",
}


def lookup(name: str) -> Transform:
    """Return the transform called ``name``; raises ``ValueError`` if there is none."""
    transform = TRANSFORMS.get(name)
    if transform is None:
        hint = _HINTS.get(name, "known: " + ", ".join(sorted(TRANSFORMS)))
        raise ValueError(f"unknown transform {name!r} ({hint})")
    return transform
