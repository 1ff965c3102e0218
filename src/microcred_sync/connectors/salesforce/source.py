"""The ``salesforce`` source: the records of one object (Contacts by default).

One record per row of ``SELECT Id, SystemModstamp, <fields> FROM <object> WHERE
<where>``; values placed into the condition are quoted by simple-salesforce's
``format_soql``. Fields keep the names the connector file gives them; relation
fields (``Account.Name``) are flattened into the record; values are typed as
``values`` says, from the object's describe(). The record's key is ``Id``.

Pages (SF-01): ``nextRecordsUrl`` is followed until ``done`` is true, one page in
memory at a time; the end is never guessed from a page's size. A page that says
``done: false`` without a link, or a read whose count differs from ``totalSize``,
ends with ``ReadIncomplete``: the run deprovisions nobody.

Full reads use ``query``; above ``bulk_above`` records (a ``COUNT()`` first) a
Bulk API 2.0 query job, read page by page (``Sforce-Locator``); after an expired
session the same page is fetched again (SF-02), and a failed or aborted job ends
the read. Delta reads (``incremental``) use ``queryAll`` for rows whose
``SystemModstamp`` is after the cursor less ``overlap_seconds`` (clock skew),
deduplicated by Id; a deleted row (``IsDeleted``) becomes a record whose
``status_field`` is ``deleted_value``, which the mapping maps to a suspended
learner. The cursor (the newest
``SystemModstamp`` read) is saved by ``commit`` once the run applied the read.

Errors: ``SourceUnavailable`` before the first record (login refused, org down),
``ReadIncomplete`` after it; both name the connector and say what to do.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.bulk2 import (
    Operation,
    QueryResult,
    SFBulk2Handler,
    _Bulk2Client,
)
from simple_salesforce.exceptions import SalesforceOperationError
from simple_salesforce.format import format_soql

from ...errors import ReadIncomplete, SourceUnavailable
from ...state.cursors import CursorStore, full_read_due
from ..base import FieldValue, Record, Source
from .client import OrgClient, SalesforceProblem, read_credentials
from .config import RosterConfig, SalesforceConnector
from .session import SalesforceSession, ServerBusy
from .values import Reader, datetime_text, path_value, reader_for

logger = logging.getLogger(__name__)

#: Fields every read asks for, whatever the connector lists.
_KEY, _STAMP, _DELETED = "Id", "SystemModstamp", "IsDeleted"


def open_session(
    config: SalesforceConnector, root: Path, connector: str
) -> SalesforceSession:
    """The connector's session: its timeouts, retries and TLS settings."""
    if not config.verify_tls:
        logger.warning("%s: TLS certificate verification is OFF", connector)
    verify = config.tls_verify(root)
    return SalesforceSession(config.timeouts, config.retry, verify, connector)


@dataclass
class _Read:
    """One read's progress, for errors, the cursor and the log."""

    delta: bool
    yielded: int = 0
    newest: str | None = None
    seen: set[str] = field(default_factory=set)


class SalesforceSource(Source):
    """Reads one object's records from an org; see the module docstring."""

    kind: ClassVar[str] = "salesforce"

    def __init__(
        self, connector_id: str, root: Path, config: SalesforceConnector
    ) -> None:
        super().__init__(connector_id, root)
        if config.roster is None:
            raise ValueError("a salesforce connector without roster is no source")
        self.config = config
        self.roster: RosterConfig = config.roster
        self.now = datetime.now(UTC)
        self._full: bool | None = None
        self._pending: tuple[str, bool] | None = None
        self._types: dict[str, dict[str, dict[str, Any]]] = {}
        self.org: OrgClient | None = None
        #: Records yielded by the last read, for logs and the benchmark.
        self.records_read = 0

    def describe(self) -> str:
        """The connector, its object and its login host."""
        return f"{super().describe()} {self.roster.object} {self.config.login_url}"

    # -- full or delta ---------------------------------------------------------

    @property
    def full(self) -> bool:
        """A full read unless incremental reads are on, a cursor is saved and the
        last full read is recent enough; decided once."""
        if self._full is None:
            self._full = self._decide_full()
        return self._full

    def _decide_full(self) -> bool:
        incremental = self.roster.incremental
        return full_read_due(
            self.context.state_url,
            self.connector_id,
            self.config.login_url,
            incremental.full_read_every_hours if incremental else None,
            self.now,
        )

    def commit(self) -> None:
        """Save the cursor the last read took, now that the run applied it."""
        state_url = self.context.state_url
        if (
            self._pending is None
            or state_url is None
            or self.roster.incremental is None
        ):
            return
        value, full = self._pending
        CursorStore(state_url).save(
            self.connector_id, self.config.login_url, value, full=full, now=self.now
        )
        self._pending = None

    # -- reading ---------------------------------------------------------------

    def connect(self) -> OrgClient:
        """The org client (secrets read now: ``ConfigError`` if one is missing)."""
        if self.org is None:
            credentials = read_credentials(self.config, self.context.secrets_dir)
            session = open_session(self.config, self.root, self.connector_id)
            self.org = OrgClient(self.config, credentials, session, self.connector_id)
        return self.org

    def read(self) -> Iterator[Record]:
        """Yield one record per row; see the module docstring for errors."""
        since = None if self.full else self._since()
        state = _Read(delta=since is not None)
        org = self.connect()
        deadline = time.monotonic() + self.config.deadline_seconds
        try:
            yield from self._rows(org, state, since, deadline)
        except SalesforceProblem as error:
            raise self._failed(state, error.message) from None
        except ServerBusy as error:
            raise self._failed(
                state, f"{error}; the run waits for a later one"
            ) from None
        except requests.RequestException as error:
            raise self._failed(state, _transport(error, self.config)) from None
        finally:
            org.session.close()
        if state.newest is not None:
            self._pending = (state.newest, not state.delta)
        self.records_read = state.yielded
        logger.info(
            "%s: %s read of %d records (%d API calls, %d logins)",
            self.connector_id,
            "delta" if state.delta else "full",
            state.yielded,
            org.session.counters.data_calls,
            org.session.counters.logins,
        )

    def _since(self) -> str | None:
        if self.context.state_url is None or self.roster.incremental is None:
            return None
        saved = CursorStore(self.context.state_url).get(
            self.connector_id, self.config.login_url
        )
        if saved is None:
            return None
        overlap = timedelta(seconds=self.roster.incremental.overlap_seconds)
        moment = datetime.fromisoformat(saved.value) - overlap
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _failed(self, state: _Read, message: str) -> SourceUnavailable | ReadIncomplete:
        where = {"connector": self.connector_id, "partner": self.config.partner}
        if state.yielded == 0:
            return SourceUnavailable(f"Salesforce: {message}", **where)
        return ReadIncomplete(
            f"Salesforce: {message}, after {state.yielded} records; the read is not"
            " complete and nobody is suspended",
            **where,
        )

    def _rows(
        self, org: OrgClient, state: _Read, since: str | None, deadline: float
    ) -> Iterator[Record]:
        types = self._field_types(org)
        if since is None and self.roster.bulk_above is not None:
            count = org.call(lambda sf: sf.query(self.soql(count=True)))["totalSize"]
            if count > self.roster.bulk_above:
                yield from self._bulk(org, state, types, deadline)
                return
        yield from self._rest(org, state, since, types, deadline)

    # -- SOQL ------------------------------------------------------------------

    def soql(self, since: str | None = None, *, count: bool = False) -> str:
        """The query of a read: the roster's fields, its condition, and for a delta
        read ``SystemModstamp > since`` (a literal, not quoted: SOQL datetimes)."""
        roster = self.roster
        names = [_KEY, _STAMP, *(f for f in roster.fields if f not in (_KEY, _STAMP))]
        if since is not None:
            names.append(_DELETED)
        selected = "COUNT()" if count else ", ".join(names)
        conditions = [f"({c})" for c in (roster.condition(),) if c]
        if since is not None:
            conditions.append(format_soql("SystemModstamp > {:literal}", since))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"SELECT {selected} FROM {roster.object}{where}"

    # -- REST ------------------------------------------------------------------

    def _rest(
        self,
        org: OrgClient,
        state: _Read,
        since: str | None,
        types: dict[str, Reader],
        deadline: float,
    ) -> Iterator[Record]:
        query = self.soql(since)
        headers = {"Sforce-Query-Options": f"batchSize={self.roster.page_size}"}
        deleted = since is not None
        page = org.call(
            lambda sf: sf.query(query, include_deleted=deleted, headers=headers)
        )
        total, received = int(page.get("totalSize", 0)), 0
        paths = self._paths()
        while True:
            for row in page.get("records", ()):
                received += 1
                record = self._rest_record(row, paths, types, state)
                if record is not None:
                    state.yielded += 1
                    yield record
            if page.get("done", True):
                break
            link = page.get("nextRecordsUrl")
            if not isinstance(link, str) or not link.startswith("/services/data/"):
                raise SalesforceProblem(
                    f"a page said done: false but gave no nextRecordsUrl after"
                    f" {received} of {total} rows",
                    None,
                    None,
                )
            if time.monotonic() > deadline:
                raise SalesforceProblem("the run's deadline passed", None, None)
            page = org.call(_more(link, headers))
        if received != total:
            raise SalesforceProblem(
                f"{received} rows read where the query announced {total}", None, None
            )

    def _paths(self) -> list[tuple[str, tuple[str, ...]]]:
        names = [_KEY, _STAMP, *self.roster.fields]
        return [(name, tuple(name.split("."))) for name in dict.fromkeys(names)]

    def _rest_record(
        self,
        row: Mapping[str, Any],
        paths: list[tuple[str, tuple[str, ...]]],
        types: dict[str, Reader],
        state: _Read,
    ) -> Record | None:
        values = {
            name: row[name] if name in row else path_value(row, path)
            for name, path in paths
        }
        return self._record(values, types, state, row.get(_DELETED) is True)

    # -- Bulk API 2.0 ------------------------------------------------------------

    def _bulk(
        self, org: OrgClient, state: _Read, types: dict[str, Reader], deadline: float
    ) -> Iterator[Record]:
        """The rows of a Bulk API 2.0 query job, one result page in memory at a time.

        Each step (create the job, wait for it, fetch a page by its locator) is its
        own ``call``: after ``INVALID_SESSION_ID`` one new login repeats only that
        step, so an expired session between pages fetches the same page again
        (same job, same locator) and no row is read twice or missed. The run's
        deadline is checked between pages, as for REST reads.
        """
        roster = self.roster
        query = self.soql()
        logger.info("%s: reading with a Bulk API 2.0 query job", self.connector_id)
        try:
            job = org.call(
                lambda sf: _bulk2(sf, roster.object).create_job(Operation.query, query)
            )["id"]
            org.call(
                lambda sf: _bulk2(sf, roster.object).wait_for_job(
                    job, True, roster.bulk_poll_seconds
                )
            )
            locator = ""
            while True:
                if time.monotonic() > deadline:
                    raise SalesforceProblem("the run's deadline passed", None, None)
                page = org.call(
                    _results(roster.object, job, locator, roster.bulk_page_size)
                )
                for row in csv.DictReader(io.StringIO(page.get("records", ""))):
                    record = self._record(dict(row), types, state, False)
                    if record is not None:
                        state.yielded += 1
                        yield record
                # An empty locator (Salesforce sends "null") is the last page.
                locator = page.get("locator", "")
                if not locator:
                    break
        except SalesforceOperationError as error:
            raise SalesforceProblem(
                f"the Bulk API job failed: {error}"[:300], None, None
            ) from None

    # -- records -----------------------------------------------------------------

    def _record(
        self,
        values: Mapping[str, Any],
        types: dict[str, Reader],
        state: _Read,
        deleted: bool,
    ) -> Record | None:
        key = values.get(_KEY)
        if state.delta:
            if key in state.seen:
                return None
            state.seen.add(str(key))
        problem_text = None
        try:
            fields: dict[str, FieldValue] = {
                name: types.get(name, _untyped)(value) for name, value in values.items()
            }
        except ValueError:
            fields, problem_text = self._fields_one_by_one(values, types)
        stamp = fields.get(_STAMP)
        if isinstance(stamp, str) and (state.newest is None or stamp > state.newest):
            state.newest = stamp
        if deleted:
            fields[self.roster.status_field] = self.roster.deleted_value
        location = f"{self.connector_id}:{key if isinstance(key, str) else 'row'}"
        return Record(fields=fields, location=location, problem=problem_text)

    @staticmethod
    def _fields_one_by_one(
        values: Mapping[str, Any], types: dict[str, Reader]
    ) -> tuple[dict[str, FieldValue], str]:
        """The fields of a row with a value that cannot be read, and which one."""
        fields: dict[str, FieldValue] = {}
        problem_text = ""
        for name, value in values.items():
            try:
                fields[name] = types.get(name, _untyped)(value)
            except ValueError as error:
                fields[name] = None
                problem_text = f"field {name}: {error}"
        return fields, problem_text

    # -- describe ----------------------------------------------------------------

    def _field_types(self, org: OrgClient) -> dict[str, Reader]:
        """Each read field's reader, by its describe() type; relation paths through
        the related objects' describes (one call per object, cached)."""
        found: dict[str, Reader] = {}
        for name in (_KEY, _STAMP, *self.roster.fields):
            found[name] = reader_for(
                self._type_of(org, self.roster.object, name.split("."))
            )
        return found

    def _describe(self, org: OrgClient, name: str) -> dict[str, dict[str, Any]]:
        if name not in self._types:
            described = org.call(lambda sf: getattr(sf, name).describe())
            self._types[name] = {
                entry["name"].casefold(): entry for entry in described.get("fields", ())
            }
            for entry in described.get("fields", ()):
                relation = entry.get("relationshipName")
                if relation:
                    self._types[name].setdefault(f"@{relation.casefold()}", entry)
        return self._types[name]

    def _type_of(self, org: OrgClient, sobject: str, path: list[str]) -> str | None:
        fields = self._describe(org, sobject)
        if len(path) == 1:
            entry = fields.get(path[0].casefold())
            return str(entry["type"]) if entry else None
        relation = fields.get(f"@{path[0].casefold()}")
        targets = relation.get("referenceTo") if relation else None
        if not targets:
            return None
        return self._type_of(org, str(targets[0]), path[1:])


#: How a value of a field that describe() did not list is read.
_untyped = reader_for(None)


def _more(link: str, headers: dict[str, str]) -> Callable[[Salesforce], Any]:
    """The call that reads the page at ``link`` (a path the org gave)."""
    return lambda sf: sf.query_more(link, identifier_is_url=True, headers=headers)


def _bulk2(sf: Salesforce, sobject: str) -> _Bulk2Client:
    """simple-salesforce's own Bulk API 2.0 client (the one its ``query`` drives),
    on the client's current session id, built as ``sf.bulk2`` builds it."""
    handler = SFBulk2Handler(sf.session_id, sf.bulk2_url, session=sf.session)
    return _Bulk2Client(sobject, handler.bulk2_url, handler.headers, handler.session)


def _results(
    sobject: str, job: str, locator: str, page_size: int
) -> Callable[[Salesforce], QueryResult]:
    """The call that fetches the job's result page at ``locator`` ("" first)."""
    return lambda sf: _bulk2(sf, sobject).get_query_results(job, locator, page_size)


def _transport(error: requests.RequestException, config: SalesforceConnector) -> str:
    """A transport failure in words, without the URL's query."""
    if isinstance(error, requests.exceptions.SSLError):
        return "the TLS certificate could not be verified; set ca_file"
    if isinstance(error, requests.Timeout) or "timed out" in str(error).lower():
        timeouts = config.timeouts
        return (
            f"no answer within {timeouts.read:g} s (connect {timeouts.connect:g} s),"
            f" {config.retry.max_attempts} attempts"
        )
    return f"cannot reach Salesforce ({type(error).__name__}); check login_url"


#: Exported for the benchmark and the tests.
__all__ = ["SalesforceSource", "datetime_text", "open_session"]
