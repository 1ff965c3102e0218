"""Group membership for enrollment rules: every group a person is in, nested too.

Two ways, chosen by the connector's ``groups.nesting``:

- ``in_chain`` (Active Directory): for each group, one search for the people in
  it at any depth, with the matching rule LDAP_MATCHING_RULE_IN_CHAIN
  (1.2.840.113556.1.4.1941); the server follows the nesting.
- ``expand`` (elsewhere): every group is read once with its ``member`` and
  ``uniqueMember`` values (a ranged ``member;range=...`` is read to its end); a
  person's direct groups come from its ``memberOf`` where the entry has one, else
  from those values; groups within groups are followed upwards, each group once,
  so a cycle (A in B in A) ends.

Groups are keyed by canonical DN (``dn.canonical_dn``). ``Membership.changed``
lists the groups changed since a delta read's cursor: their members are re-read
even though their own entries did not change.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ldap3.utils.conv import escape_filter_chars

from .dn import canonical_dn
from .session import Session

logger = logging.getLogger(__name__)

#: LDAP_MATCHING_RULE_IN_CHAIN (MS-ADTS section 3.1.1.3.4.4.3).
IN_CHAIN: Final = "1.2.840.113556.1.4.1941"

#: ``member;range=1500-2999`` or ``member;range=3000-*``.
_RANGED: Final = re.compile(r"^(member|uniquemember);range=(\d+)-(\d+|\*)$", re.I)

_MEMBER_ATTRIBUTES: Final = ("member", "uniqueMember")


@dataclass
class Membership:
    """Who is in which group, nested groups included."""

    #: canonical person (or group) DN -> canonical DNs of the groups it is in.
    direct: dict[str, set[str]] = field(default_factory=dict)
    #: canonical group DN -> canonical DNs of the groups it is directly in.
    parents: dict[str, set[str]] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)
    #: Groups changed since the cursor (empty for a full read).
    changed: set[str] = field(default_factory=set)
    in_chain: bool = False
    _closure: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)

    def groups_of(self, dn: str, member_of: Sequence[str] | None) -> tuple[str, ...]:
        """The sorted canonical DNs of every group ``dn`` is in, nested included.

        ``member_of`` is the entry's own ``memberOf`` values, if it has any.
        """
        if self.in_chain:
            return tuple(sorted(self.direct.get(canonical_dn(dn), ())))
        if member_of:
            first = {canonical_dn(group) for group in member_of} & self.groups
        else:
            first = self.direct.get(canonical_dn(dn), set())
        found: set[str] = set()
        for group in first:
            found |= self._with_ancestors(group)
        return tuple(sorted(found))

    def members_of_changed(self) -> set[str]:
        """Canonical DNs of the people in a changed group, at any depth."""
        if not self.changed:
            return set()
        affected = set()
        for member in self.direct:
            if member in self.groups:
                continue
            if self.in_chain:
                reached = self.direct[member]
            else:
                reached = set()
                for group in self.direct[member]:
                    reached |= self._with_ancestors(group)
            if reached & self.changed:
                affected.add(member)
        return affected

    def _with_ancestors(self, group: str) -> frozenset[str]:
        """``group`` and every group above it; each visited once (cycles end)."""
        known = self._closure.get(group)
        if known is not None:
            return known
        seen = {group}
        todo = [group]
        while todo:
            for parent in self.parents.get(todo.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        closure = frozenset(seen)
        self._closure[group] = closure
        return closure


@dataclass(frozen=True)
class GroupQuery:
    """Where the groups and people are, and how to read them."""

    group_bases: tuple[str, ...]
    group_filter: str
    people_bases: tuple[str, ...]
    people_filter: str
    scope: str
    page_size: int
    member_range: int | None
    change_attribute: str
    changed_since: Any = None  # a callable (raw value -> bool) for delta reads


def read_membership(session: Session, query: GroupQuery, in_chain: bool) -> Membership:
    """Read every group under the group bases and who is in it."""
    membership = Membership(in_chain=in_chain)
    attributes = [query.change_attribute]
    if not in_chain:
        attributes += _member_request(query.member_range)
    for entry in _entries(
        session, query.group_bases, query.group_filter, attributes, query
    ):
        group = canonical_dn(entry["dn"])
        membership.groups.add(group)
        raw = entry.get("raw_attributes", {})
        if query.changed_since is not None and query.changed_since(
            _first(raw, query.change_attribute)
        ):
            membership.changed.add(group)
        if in_chain:
            continue
        for member in _all_members(session, entry, query.member_range):
            membership.direct.setdefault(canonical_dn(member), set()).add(group)
    if in_chain:
        for group in membership.groups:
            _read_chain(session, query, group, membership)
    else:
        membership.parents = {
            member: groups
            for member, groups in membership.direct.items()
            if member in membership.groups
        }
    logger.debug(
        "%d groups read (%s)",
        len(membership.groups),
        "in chain" if in_chain else "expanded",
    )
    return membership


def _read_chain(
    session: Session, query: GroupQuery, group: str, membership: Membership
) -> None:
    """The people in ``group`` at any depth, by the in-chain matching rule."""
    chain = f"(memberOf:{IN_CHAIN}:={escape_filter_chars(group)})"
    search_filter = f"(&{query.people_filter}{chain})"
    for entry in _entries(session, query.people_bases, search_filter, ["1.1"], query):
        membership.direct.setdefault(canonical_dn(entry["dn"]), set()).add(group)


def _entries(
    session: Session,
    bases: Iterable[str],
    search_filter: str,
    attributes: Sequence[str],
    query: GroupQuery,
) -> Iterator[dict[str, Any]]:
    for base in bases:
        for page in session.paged(
            base, search_filter, attributes, query.scope, query.page_size
        ):
            yield from page


def _member_request(member_range: int | None) -> list[str]:
    """The member attributes to ask for: plain, or the first range explicitly."""
    if member_range is None:
        return list(_MEMBER_ATTRIBUTES)
    return [f"member;range=0-{member_range - 1}", "uniqueMember"]


def _all_members(
    session: Session, entry: dict[str, Any], member_range: int | None
) -> Iterator[str]:
    """Every member DN of a group entry.

    ldap3 (``auto_range``) already asks for the ranges after the first one and
    merges them into ``member``; should a ranged attribute still hold values, its
    following ranges are asked for here until the range that ends in ``*``.
    """
    raw: dict[str, list[bytes]] = entry.get("raw_attributes", {})
    ranged: str | None = None
    for name, values in raw.items():
        if name.casefold() == "uniquemember":
            # nameAndOptionalUID: "DN#'0101'B" carries an optional UID after '#'.
            yield from (_strip_uid(value.decode("utf-8")) for value in values)
        elif name.casefold() == "member":
            yield from (value.decode("utf-8") for value in values)
        elif _RANGED.match(name) and values:
            ranged = name
            yield from (value.decode("utf-8") for value in values)
    while ranged is not None:
        match = _RANGED.match(ranged)
        if match is None or match.group(3) == "*":
            return
        start = int(match.group(3)) + 1
        end = "*" if member_range is None else str(start + member_range - 1)
        found = session.read_entry(entry["dn"], [f"member;range={start}-{end}"])
        following = (found or {}).get("raw_attributes", {})
        ranged = next(
            (
                name
                for name, values in following.items()
                if _RANGED.match(name) and values
            ),
            None,
        )
        if ranged is not None:
            yield from (value.decode("utf-8") for value in following[ranged])


def _strip_uid(value: str) -> str:
    head, sep, tail = value.rpartition("#")
    if sep and tail.startswith("'") and tail.endswith("'B"):
        return head
    return value


def _first(raw: dict[str, list[bytes]], name: str) -> bytes | None:
    for key, values in raw.items():
        if key.casefold() == name.casefold() and values:
            return values[0]
    return None
