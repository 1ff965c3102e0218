"""Distinguished names compared as names, never as strings (RFC 4514, LD-04).

``canonical_dn`` parses a DN with ``ldap3.utils.dn``, unescapes each value, and
writes it back in one spelling: attribute types lower case, values case-folded,
trimmed, NFC, re-escaped with ``escape_rdn``, the parts of a multi-valued RDN
sorted. Two DNs name the same entry when their canonical forms are equal, however
each was escaped (``\\,`` or ``\\2C``), cased or spaced. The usual naming attributes
(``cn``, ``ou``, ``dc``, ``uid``) all compare without regard to case, which is why
values are case-folded.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import escape_rdn, parse_dn

_HEX = frozenset("0123456789abcdefABCDEF")


def unescape_value(value: str) -> str:
    """An attribute value as written in a DN, without its escapes.

    Handles ``\\`` before a special character and ``\\HH`` hex pairs, which may
    spell a UTF-8 sequence over several pairs (``\\C3\\89`` is ``É``).
    """
    if "\\" not in value:
        return value
    out = bytearray()
    index = 0
    while index < len(value):
        char = value[index]
        if char != "\\":
            out += char.encode("utf-8")
            index += 1
            continue
        pair = value[index + 1 : index + 3]
        if len(pair) == 2 and set(pair) <= _HEX:
            out.append(int(pair, 16))
            index += 3
        elif index + 1 < len(value):
            out += value[index + 1].encode("utf-8")
            index += 2
        else:
            raise ValueError("a DN value ends with a lone backslash")
    return out.decode("utf-8")


#: Characters that ``escape_rdn`` escapes anywhere in a value.
_SPECIAL = frozenset('\\,+"<>;=\x00')


def _normalize_value(value: str) -> str:
    if value.isascii() and "\\" not in value:
        # Most values: nothing to unescape and nothing for NFC to change.
        return " ".join(value.split()).casefold()
    text = unicodedata.normalize("NFC", unescape_value(value)).strip()
    return " ".join(text.split()).casefold()


def _escaped(text: str) -> str:
    if not text:
        return ""
    if text[0] in "# " or _SPECIAL.intersection(text):
        return str(escape_rdn(text))
    return text


#: A DN in the plainest grammar of RFC 4514: ``type=value`` pairs of ASCII
#: letters, digits and a few punctuation marks that need no escaping, joined by
#: commas with no spaces around them; no multi-valued RDN, no escapes, no hex
#: form, no OID types. Most DNs a directory returns are spelled so.
_PLAIN_DN = re.compile(
    r"[A-Za-z][A-Za-z0-9-]*=[A-Za-z0-9._@'()-][A-Za-z0-9 ._@'()-]*"
    r"(?:,[A-Za-z][A-Za-z0-9-]*=[A-Za-z0-9._@'()-][A-Za-z0-9 ._@'()-]*)*"
)
_PLAIN_RDN = re.compile(r"([A-Za-z][A-Za-z0-9-]*)=([^,]*)")


@functools.lru_cache(maxsize=65536)
def canonical_dn(dn: str) -> str:
    """The one spelling of ``dn`` used to compare it; ``ValueError`` if not a DN.

    A DN in the plain grammar (``_PLAIN_DN``) is read by that grammar: its values
    hold no character that could escape, separate or join, so each comma ends an
    RDN. Any other DN goes through ldap3's parser. Both give the same spelling
    (``tests/connectors/ldap/test_dn.py`` checks it over many generated DNs).
    """
    if _PLAIN_DN.fullmatch(dn):
        return ",".join(
            f"{kind.lower()}={' '.join(value.split()).lower()}"
            for kind, value in _PLAIN_RDN.findall(dn)
        )
    return _parsed_canonical(dn)


def _parsed_canonical(dn: str) -> str:
    """``canonical_dn`` by ldap3's DN parser, for every grammar RFC 4514 allows."""
    try:
        parts = parse_dn(dn, strip=True)
    except LDAPInvalidDnError as error:
        raise ValueError(f"not a distinguished name: {error}") from None
    rdns: list[list[str]] = [[]]
    for attribute, value, separator in parts:
        text = _normalize_value(value)
        rdns[-1].append(f"{attribute.lower()}={_escaped(text)}")
        if separator == ",":
            rdns.append([])
    return ",".join("+".join(sorted(rdn)) for rdn in rdns if rdn)


def rdn_value(dn: str) -> str:
    """The value of the first RDN, unescaped (a group's name: ``Data Analysts``)."""
    attribute, value, _ = parse_dn(dn, strip=True)[0]
    del attribute
    return unicodedata.normalize("NFC", unescape_value(value)).strip()


def is_dn(text: str) -> bool:
    """Whether ``text`` reads as a DN of two RDNs or more (a name does not)."""
    try:
        return len(parse_dn(text, strip=True)) > 1
    except (LDAPInvalidDnError, ValueError, IndexError):
        return False


@functools.lru_cache(maxsize=4096)
def _wanted_group(wanted: str) -> tuple[str, str]:
    """How a rule names a group: ("dn", canonical DN) or ("name", folded name)."""
    if is_dn(wanted):
        return "dn", canonical_dn(wanted)
    return "name", " ".join(wanted.split()).casefold()


def in_group(groups: Sequence[str], wanted: str) -> bool:
    """Whether a learner's ``groups`` (canonical DNs) hold the group ``wanted``.

    ``wanted`` is a group's DN, in any spelling, or its name (the value of its
    first RDN, compared without regard to case). Nested groups are already in
    ``groups``: the source expanded them.
    """
    kind, target = _wanted_group(wanted)
    if kind == "dn":
        return target in groups
    return any(_name_of(group) == target for group in groups)


@functools.lru_cache(maxsize=65536)
def _name_of(canonical: str) -> str:
    return " ".join(rdn_value(canonical).split()).casefold()
