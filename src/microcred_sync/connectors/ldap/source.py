"""The ``ldap`` source: people read from OpenLDAP or Active Directory as records.

One record per entry under the base DNs that matches the filter. Its fields:

- each of ``attributes``, as text (the first value if there are several; ``None``
  when the entry has none), and each of ``list_attributes`` as a list of texts,
  converted as ``values`` says (GUIDs, SIDs and times in one canonical form);
- the entry's immutable id (``entryUUID``, ``objectGUID``) under its name, so a
  mapping keys learners by it and a rename or a move keeps the learner;
- ``dn``, as the server spells it;
- ``groups`` when the connector names group bases: the canonical DNs of every group
  the person is in, nested included (``in_group`` in rules tests them);
- on Active Directory ``account_status``: ``disabled`` when userAccountControl has
  bit 0x2, ``expired`` past ``accountExpires``, else ``active`` (LD-07).

A read opens a fresh connection (LD-06), to the first server that answers. A
connection that drops is opened again, with tenacity's backoff, and the search
starts over from its first page (a paged-results cookie dies with its
connection); entries already yielded are skipped, so nothing is read twice.

Incremental reads (``incremental``): the cursor is taken from the server before
reading (``highestCommittedUSN`` on AD; the naming context's ``contextCSN`` on
OpenLDAP) and a delta read asks only for entries changed since the saved one
(``uSNChanged``, ``entryCSN``), plus the members of groups changed since. The new
cursor is saved by ``commit`` once the run has applied the read, per server.

Errors: ``SourceUnavailable`` before the first record (no server answers, a bind
is refused); ``ReadIncomplete`` when a search ends short of its end (a size or time
limit, a partial result, a referral, a connection that keeps dropping), naming the
server, the base and the limit; ``ConfigError`` for a secret that is not set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from ldap3.utils.conv import escape_filter_chars
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_exponential,
)

from ...errors import ReadIncomplete, SourceUnavailable
from ...secrets import read_secret
from ...state.cursors import CursorStore, full_read_due
from ..base import FieldValue, Record, Source
from .config import LdapConnector
from .dn import canonical_dn
from .groups import GroupQuery, Membership, read_membership
from .session import DROPPED, Endpoint, Session, make_tls
from .values import converter_for, filetime, plain_text

logger = logging.getLogger(__name__)

#: What each directory stamps on every change, and compares in a filter.
CHANGE_ATTRIBUTE = {"openldap": "entryCSN", "active_directory": "uSNChanged"}

_UAC_DISABLED = 0x2


@dataclass
class _ReadState:
    """One read's connection and progress, shared by its retries."""

    session: Session | None
    first_server: str
    yielded: set[int] = field(default_factory=set)
    dns: set[str] = field(default_factory=set)
    cookie: bytes | None = None
    drops: int = 0
    moved: bool = False
    delta: bool = False
    highest_change: str | None = None


@dataclass(frozen=True)
class _Pending:
    """The cursor a completed read leaves, saved by ``commit``."""

    server: str
    value: str
    full: bool


class LdapSource(Source):
    """Reads people from a directory; see the module docstring."""

    kind: ClassVar[str] = "ldap"

    def __init__(self, connector_id: str, root: Path, config: LdapConnector) -> None:
        super().__init__(connector_id, root)
        self.config = config
        self._full: bool | None = None
        self._pending: _Pending | None = None
        self.now = datetime.now(UTC)
        #: Entries yielded by the last read, for logs and the benchmark.
        self.entries_read = 0
        # Each attribute's converter, found once rather than per entry.
        self._text_attributes = [
            (name, name.casefold(), converter_for(name)) for name in config.attributes
        ]
        self._list_attributes = [
            (name, name.casefold(), converter_for(name))
            for name in config.list_attributes
        ]

    def describe(self) -> str:
        """The connector and its first server, e.g. ``ldap:hr ldap://dc1:389``."""
        return f"{super().describe()} {self.config.servers[0]}"

    # -- full or delta ---------------------------------------------------------

    @property
    def full(self) -> bool:
        """A full read unless incremental reads are on, a cursor is saved, and the
        last full read is recent enough; decided once per source."""
        if self._full is None:
            self._full = self._decide_full()
        return self._full

    def _decide_full(self) -> bool:
        incremental = self.config.incremental
        return full_read_due(
            self.context.state_url,
            self.connector_id,
            self.config.servers[0],
            incremental.full_read_every_hours if incremental else None,
            self.now,
        )

    def commit(self) -> None:
        """Save the cursor the last read took, now that the run applied it."""
        pending, state_url = self._pending, self.context.state_url
        if pending is None or state_url is None or self.config.incremental is None:
            return
        CursorStore(state_url).save(
            self.connector_id,
            pending.server,
            pending.value,
            full=pending.full,
            now=self.now,
        )
        self._pending = None

    # -- reading ---------------------------------------------------------------

    def read(self) -> Iterator[Record]:
        """Yield one record per person entry; see the module docstring for errors."""
        full = self.full
        endpoint = self._endpoint()
        if not self.config.verify_tls:
            logger.warning(
                "%s: TLS certificate verification is OFF for this connector",
                self.connector_id,
            )
        session = Session.open(endpoint, self.config.servers)
        state = _ReadState(session, session.url)
        try:
            cursor = self._server_cursor(session)
            since = None if full else self._saved_cursor(session.url)
            state.delta = since is not None
            membership = self._membership(state, since)
            yield from self._people(state, since, membership)
            if since is not None and membership is not None:
                yield from self._members_of_changed(state, membership)
        finally:
            if state.session is not None:
                state.session.close()
        value = cursor or state.highest_change
        if value is not None and not state.moved:
            self._pending = _Pending(state.first_server, value, full)
        elif state.moved:
            logger.warning(
                "%s: the read moved to another server; its cursor is not kept",
                self.connector_id,
            )
        logger.info(
            "%s: %s read of %d entries from %s",
            self.connector_id,
            "full" if full else "delta",
            self.entries_read,
            state.first_server,
        )

    def _endpoint(self) -> Endpoint:
        config = self.config
        password = None
        if config.password_secret is not None:
            password = read_secret(config.password_secret, self.context.secrets_dir)
        ca_file = None
        if config.ca_file is not None:
            ca_path = Path(config.ca_file)
            ca_file = str(ca_path if ca_path.is_absolute() else self.root / ca_path)
        return Endpoint(
            connector=self.connector_id,
            partner=config.partner,
            start_tls=config.start_tls,
            tls=make_tls(config.verify_tls, ca_file),
            bind_dn=config.bind_dn,
            password=password,
            connect_timeout=config.connect_timeout,
            operation_timeout=config.operation_timeout,
            follow_referrals=config.follow_referrals,
        )

    # -- cursors ---------------------------------------------------------------

    def _saved_cursor(self, server: str) -> str | None:
        """The saved cursor on this server, or ``None``: then every entry is read
        (still a delta read: nobody is suspended for being absent)."""
        if self.context.state_url is None:
            return None
        saved = CursorStore(self.context.state_url).get(self.connector_id, server)
        if saved is None:
            logger.warning(
                "%s: no cursor for %s; reading every entry", self.connector_id, server
            )
        return saved.value if saved is not None else None

    def _server_cursor(self, session: Session) -> str | None:
        """Where the server is now, read before the search so that changes made
        during it are read again next time."""
        if self.config.incremental is None:
            return None
        if self.config.directory == "active_directory":
            root = session.read_entry("", ["highestCommittedUSN"])
            usn = _first_value(root, "highestCommittedUSN")
            return usn.decode("ascii") if usn else None
        root = session.read_entry("", ["namingContexts"])
        csns: list[str] = []
        for context in _all_values(root, "namingContexts"):
            entry = session.read_entry(context.decode("utf-8"), ["contextCSN"])
            csns += [
                value.decode("ascii") for value in _all_values(entry, "contextCSN")
            ]
        # Several providers: the oldest of their CSNs misses none of their changes.
        return min(csns) if csns else None

    def _delta_filter(self, since: str | None) -> str:
        people = self.config.people_filter
        if since is None:
            return people
        value = escape_filter_chars(since)
        if self.config.directory == "active_directory":
            return f"(&{people}(uSNChanged>={int(since) + 1}))"
        return f"(&{people}(!(entryCSN<={value})))"

    def _changed_since(self, since: str | None) -> Any:
        if since is None:
            return None
        if self.config.directory == "active_directory":
            floor = int(since)
            return lambda raw: raw is not None and int(raw) > floor
        return lambda raw: raw is not None and raw.decode("ascii") > since

    # -- groups ----------------------------------------------------------------

    def _membership(self, state: _ReadState, since: str | None) -> Membership | None:
        groups = self.config.groups
        if groups is None:
            return None
        query = GroupQuery(
            group_bases=groups.base_dns,
            group_filter=self.config.group_filter,
            people_bases=self.config.base_dns,
            people_filter=self.config.people_filter,
            scope=self.config.scope,
            page_size=self.config.page_size,
            member_range=groups.member_range,
            change_attribute=CHANGE_ATTRIBUTE[self.config.directory],
            changed_since=self._changed_since(since),
        )
        in_chain = self.config.nesting == "in_chain"
        return self._retrying(state)(self._read_membership, state, query, in_chain)

    def _read_membership(
        self, state: _ReadState, query: GroupQuery, in_chain: bool
    ) -> Membership:
        return read_membership(self._session(state), query, in_chain)

    # -- people ----------------------------------------------------------------

    def _attributes(self) -> list[str]:
        config = self.config
        wanted = [*config.attributes, *config.list_attributes, config.id_attribute]
        wanted.append(CHANGE_ATTRIBUTE[config.directory])
        if config.directory == "active_directory":
            wanted += ["userAccountControl", "accountExpires"]
        if config.groups is not None and config.nesting == "expand":
            wanted.append("memberOf")
        seen: dict[str, str] = {}
        for name in wanted:
            seen.setdefault(name.casefold(), name)
        return list(seen.values())

    def _people(
        self, state: _ReadState, since: str | None, membership: Membership | None
    ) -> Iterator[Record]:
        search_filter = self._delta_filter(since)
        attributes = self._attributes()
        for base in self.config.base_dns:
            state.cookie = None
            first = True
            while first or state.cookie:
                first = False
                page = self._retrying(state)(
                    self._page, state, base, search_filter, attributes
                )
                for entry in page:
                    record = self._fresh_record(state, entry, membership)
                    if record is not None:
                        yield record

    def _page(
        self,
        state: _ReadState,
        base: str,
        search_filter: str,
        attributes: Sequence[str],
    ) -> list[dict[str, Any]]:
        """The next page under ``base``; after a reconnect, its first page again."""
        session = self._session(state)
        entries, state.cookie = session.search_page(
            base,
            search_filter,
            attributes,
            self.config.scope,
            self.config.page_size,
            state.cookie,
        )
        return entries

    def _members_of_changed(
        self, state: _ReadState, membership: Membership
    ) -> Iterator[Record]:
        """People not changed themselves whose groups changed: read them too."""
        attributes = self._attributes()
        for dn in sorted(membership.members_of_changed() - state.dns):
            entries = self._retrying(state)(self._one_entry, state, dn, attributes)
            for entry in entries:
                record = self._fresh_record(state, entry, membership)
                if record is not None:
                    yield record

    def _one_entry(
        self, state: _ReadState, dn: str, attributes: Sequence[str]
    ) -> list[dict[str, Any]]:
        session = self._session(state)
        entries, _ = session.search_page(
            dn, self.config.people_filter, attributes, "base", None, None
        )
        return entries

    def _fresh_record(
        self, state: _ReadState, entry: dict[str, Any], membership: Membership | None
    ) -> Record | None:
        """The entry's record, unless an earlier connection already yielded it."""
        raw = _by_name(entry.get("raw_attributes", {}))
        ident = _first_value(raw, self.config.id_attribute)
        seen = hash(ident if ident is not None else entry["dn"])
        if seen in state.yielded:
            return None
        state.yielded.add(seen)
        if self.config.incremental is not None:
            if state.delta:
                state.dns.add(canonical_dn(entry["dn"]))
            change = _first_value(raw, CHANGE_ATTRIBUTE[self.config.directory])
            if change is not None:
                text = change.decode("ascii")
                if state.highest_change is None or text > state.highest_change:
                    state.highest_change = text
        self.entries_read += 1
        return self._record(entry["dn"], raw, membership)

    def _record(
        self, dn: str, raw: dict[str, list[bytes]], membership: Membership | None
    ) -> Record:
        """Turn one entry's raw values into a record's fields."""
        config = self.config
        fields: dict[str, FieldValue] = {}
        problem = None
        try:
            for name, folded, convert in self._text_attributes:
                values = raw.get(folded)
                fields[name] = convert(values[0]) if values else None
            for name, folded, convert in self._list_attributes:
                values = raw.get(folded, [])
                fields[name] = tuple(
                    text for text in map(convert, values) if text is not None
                )
            ident = config.id_attribute
            if ident not in fields:
                values = raw.get(ident.casefold())
                fields[ident] = converter_for(ident)(values[0]) if values else None
        except ValueError as error:
            problem = f"a value cannot be read: {error}"
        fields["dn"] = dn
        if config.directory == "active_directory":
            fields["account_status"] = self._account_status(raw)
        if membership is not None:
            member_of = [plain_text(value) for value in raw.get("memberof", [])]
            fields["groups"] = membership.groups_of(dn, member_of or None)
        key = fields.get(config.id_attribute)
        location = f"{self.connector_id}:{key if isinstance(key, str) else 'entry'}"
        return Record(fields=fields, location=location, problem=problem)

    def _account_status(self, raw: dict[str, list[bytes]]) -> str | None:
        """``disabled``, ``expired`` or ``active``; ``None`` without a UAC."""
        uac = _first_value(raw, "userAccountControl")
        if uac is None:
            return None
        if int(uac) & _UAC_DISABLED:
            return "disabled"
        expires = _first_value(raw, "accountExpires")
        moment = filetime(expires) if expires is not None else None
        if moment is not None and moment <= self.now:
            return "expired"
        return "active"

    # -- connections and retries -------------------------------------------------

    def _session(self, state: _ReadState) -> Session:
        """The read's connection; a new one (same server first) after a drop."""
        if state.session is None:
            others = [url for url in self.config.servers if url != state.first_server]
            state.session = Session.open(
                self._endpoint(), [state.first_server, *others]
            )
            state.cookie = None
            if state.session.url != state.first_server:
                state.moved = True
        return state.session

    def _retrying(self, state: _ReadState) -> Retrying:
        return Retrying(
            retry=retry_if_exception_type(DROPPED),
            # The budget of reconnects is the read's, not one page's.
            stop=lambda retry: state.drops >= self.config.retries,
            wait=wait_exponential(multiplier=0.2, max=5),
            before_sleep=lambda retry: self._dropped(state, retry),
            retry_error_callback=lambda retry: self._gave_up(state, retry),
        )

    def _dropped(self, state: _ReadState, retry: RetryCallState) -> None:
        """One warning per drop; the next attempt opens a new connection."""
        state.drops += 1
        error = retry.outcome.exception() if retry.outcome else None
        logger.warning(
            "%s: connection to %s lost (%s); reconnecting, attempt %d of %d",
            self.connector_id,
            state.session.url if state.session else state.first_server,
            type(error).__name__,
            state.drops + 1,
            self.config.retries + 1,
        )
        if state.session is not None:
            state.session.close()
            state.session = None

    def _gave_up(self, state: _ReadState, retry: RetryCallState) -> Any:
        error = retry.outcome.exception() if retry.outcome else None
        what = type(error).__name__
        context = {"connector": self.connector_id, "partner": self.config.partner}
        message = (
            f"{state.first_server}: the connection dropped {state.drops + 1}"
            f" times ({what}); giving up"
        )
        if self.entries_read == 0:
            raise SourceUnavailable(message, **context) from error
        raise ReadIncomplete(
            f"{message} after {self.entries_read} entries; the read is not complete",
            **context,
        ) from error


def _by_name(raw: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
    """Raw values by case-folded attribute name (servers choose the spelling)."""
    return {name.casefold(): values for name, values in raw.items()}


def _first_value(source: dict[str, Any] | None, name: str) -> bytes | None:
    values = _all_values(source, name)
    return values[0] if values else None


def _all_values(source: dict[str, Any] | None, name: str) -> list[bytes]:
    """Raw values of ``name`` from an entry (or its raw attributes), any case."""
    if source is None:
        return []
    raw = source.get("raw_attributes", source)
    folded = name.casefold()
    found = raw.get(folded)
    if found is not None:
        # Already keyed by folded name (``_by_name``), or the server spelled it so.
        return list(found)
    for key, values in raw.items():
        if key.casefold() == folded:
            return list(values)
    return []
