"""The ``http`` source: the records of a JSON API, page by page.

One record per JSON object at ``records`` (JMESPath) in each page's answer,
flattened by ``values.Flattener`` (dotted names, lists as tuples, every value as
text); its key is the field ``key``, its location ``<connector>:<key>``. A record
that is not an object, has no key or holds a value that cannot be read is
quarantined; the read goes on. Pages are fetched as ``pagination`` says, one in
memory at a time (``pagination.Pager``).

Delta reads (``incremental``): between full reads, when a cursor is saved, the
cursor less ``overlap_seconds`` goes to the API (``since_param``, or the preset's
own way: see ``presets``), records are deduplicated by key, and the new cursor is
kept by ``commit`` once the run applied the read. A delta read never suspends
the absent.

Errors: ``SourceUnavailable`` before the first record (the API unreachable, auth
refused, an HTML page or a body that is not JSON), ``ReadIncomplete`` after it;
both name the connector, the URL (credentials masked) and what to do. Neither is
ever an empty roster.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from ...errors import ReadIncomplete, SourceUnavailable
from ...secrets import read_secret
from ...state.cursors import CursorStore, full_read_due
from ..base import FieldValue, Record, Source
from .config import (
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    HttpConnector,
    OAuthClientCredentials,
)
from .pagination import Pager, Request
from .presets import (
    SF_MODIFIED,
    bamboohr_api_root,
    successfactors_delta_filter,
)
from .session import (
    ApiProblem,
    ApiSession,
    ClientCredentialsToken,
    HeaderAuth,
    QueryKeyAuth,
    UnexpectedAnswer,
)
from .values import Flattener, parse_moment, utc_text

logger = logging.getLogger(__name__)

#: The password sent with a BambooHR API key, which BambooHR does not read.
BAMBOOHR_PASSWORD = "x"


def open_session(
    config: HttpConnector, root: Path, connector: str, secrets_dir: Path | None
) -> ApiSession:
    """The connector's session: timeouts, retries, TLS settings and auth (secrets
    read now: ``ConfigError`` naming a missing one, never its value)."""
    if not config.verify_tls:
        logger.warning("%s: TLS certificate verification is OFF", connector)
    verify = config.tls_verify(root)
    api = ApiSession(config.timeouts, config.retry, verify, connector, config.headers)
    api.auth = _auth(config, api, secrets_dir)
    if isinstance(config.auth, ApiKeyAuth) and config.auth.in_ == "query":
        api.secret_params = frozenset({config.auth.name})
    return api


def _auth(
    config: HttpConnector, api: ApiSession, secrets_dir: Path | None
) -> AuthBase | None:
    auth = config.auth

    def secret(name: str) -> str:
        return read_secret(name, secrets_dir).get_secret_value()

    if isinstance(auth, BasicAuth):
        user = auth.username or secret(auth.username_secret or "")
        password = (
            secret(auth.password_secret) if auth.password_secret else BAMBOOHR_PASSWORD
        )
        return HTTPBasicAuth(user, password)
    if isinstance(auth, BearerAuth):
        return HeaderAuth("Authorization", f"Bearer {secret(auth.token_secret)}")
    if isinstance(auth, ApiKeyAuth):
        key = secret(auth.key_secret)
        if auth.in_ == "query":
            return QueryKeyAuth(auth.name, key)
        return HeaderAuth(auth.name, key)
    if isinstance(auth, OAuthClientCredentials):
        client_id = auth.client_id or secret(auth.client_id_secret or "")
        return ClientCredentialsToken(
            auth, client_id, secret(auth.client_secret_secret), api
        )
    return None


@dataclass
class _Read:
    """One read's progress, for errors, the cursor and the log."""

    delta: bool
    yielded: int = 0
    newest: datetime | None = None
    server_date: str | None = None
    latest: str | None = None
    seen: set[str] = field(default_factory=set)


class HttpSource(Source):
    """Reads a roster from a JSON API; see the module docstring."""

    kind: ClassVar[str] = "http"

    def __init__(self, connector_id: str, root: Path, config: HttpConnector) -> None:
        super().__init__(connector_id, root)
        self.config = config
        self.flattener = Flattener(config.values)
        self.cursor_field = self._cursor_field()
        self.now = datetime.now(UTC)
        parts = urlsplit(config.url)
        #: Where cursors are kept: the URL without its query.
        self.server = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self._full: bool | None = None
        self._pending: tuple[str, bool] | None = None
        self.api: ApiSession | None = None
        #: Records yielded by the last read, for logs and the benchmark.
        self.records_read = 0

    def describe(self) -> str:
        """The connector, its preset and its URL without the query."""
        preset = f" {self.config.preset}" if self.config.preset else ""
        return f"{super().describe()}{preset} {self.server}"

    # -- full or delta -------------------------------------------------------------

    @property
    def full(self) -> bool:
        """A full read unless incremental reads are on, a cursor is saved and the
        last full read is recent enough; decided once."""
        if self._full is None:
            incremental = self.config.incremental
            self._full = full_read_due(
                self.context.state_url,
                self.connector_id,
                self.server,
                incremental.full_read_every_hours if incremental else None,
                self.now,
            )
        return self._full

    def commit(self) -> None:
        """Save the cursor the last read took, now that the run applied it."""
        state_url = self.context.state_url
        if self._pending is None or state_url is None:
            return
        value, full = self._pending
        CursorStore(state_url).save(
            self.connector_id, self.server, value, full=full, now=self.now
        )
        self._pending = None

    def _since(self) -> str | None:
        incremental = self.config.incremental
        if self.context.state_url is None or incremental is None:
            return None
        saved = CursorStore(self.context.state_url).get(self.connector_id, self.server)
        moment = parse_moment(saved.value) if saved is not None else None
        if moment is None:
            return None
        moment -= timedelta(seconds=incremental.overlap_seconds)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- reading -------------------------------------------------------------------

    def connect(self) -> ApiSession:
        """The API session (secrets read now: ``ConfigError`` if one is missing)."""
        if self.api is None:
            self.api = open_session(
                self.config, self.root, self.connector_id, self.context.secrets_dir
            )
        return self.api

    def read(self) -> Iterator[Record]:
        """Yield one record per JSON object; see the module docstring for errors."""
        since = None if self.full else self._since()
        state = _Read(delta=since is not None)
        api = self.connect()
        deadline = time.monotonic() + self.config.deadline_seconds
        try:
            if since is not None and self.config.preset == "bamboohr":
                yield from self._bamboohr_delta(api, state, since, deadline)
            else:
                yield from self._paged(api, state, since, deadline)
        except ApiProblem as error:
            raise self._failed(state, error.message) from None
        except requests.RequestException as error:
            raise self._failed(state, self._transport(error)) from None
        finally:
            api.close()
            self.api = None
        self.records_read = state.yielded
        self._keep_cursor(state)
        logger.info(
            "%s: %s read of %d records (%d requests, %d retries)",
            self.connector_id,
            "delta" if state.delta else "full",
            state.yielded,
            api.counters["requests"],
            api.counters["retries"],
        )

    def _paged(
        self, api: ApiSession, state: _Read, since: str | None, deadline: float
    ) -> Iterator[Record]:
        config = self.config
        params = dict(config.params)
        if since is not None and config.preset == "successfactors":
            params["$filter"] = successfactors_delta_filter(config.filter, since)
        elif since is not None and config.incremental is not None:
            params[config.incremental.since_param or "since"] = since
        pager = Pager(
            api,
            config.records,
            config.pagination,
            max_pages=config.max_pages,
            deadline=deadline,
        )
        request = Request(config.method, config.url, params, config.body)
        for page in pager.pages(request):
            if page.number == 1:
                state.server_date = page.answer.headers.get("Date")
            where = f"page {page.number}"
            for index, raw in enumerate(page.records, start=1):
                record = self._record(raw, state, where, index)
                if record is not None:
                    state.yielded += 1
                    yield record

    def _bamboohr_delta(
        self, api: ApiSession, state: _Read, since: str, deadline: float
    ) -> Iterator[Record]:
        """Employees changed since the cursor, then each one's fields."""
        config = self.config
        root = bamboohr_api_root(config.url)
        answer = api.fetch("GET", f"{root}employees/changed", {"since": since})
        body = answer.body if isinstance(answer.body, dict) else {}
        changed = body.get("employees")
        # PHP-made JSON: an empty set of employees may come as [].
        if isinstance(changed, dict):
            entries = list(changed.values())
        elif changed == []:
            entries = []
        else:
            raise UnexpectedAnswer(
                f"no employees in the answer from {api.shown(answer.url)}"
            )
        latest = body.get("latest")
        state.latest = str(latest) if latest else None
        asked = {"fields": ",".join(config.fields)}
        for entry in entries:
            if time.monotonic() > deadline:
                raise ApiProblem("the read's deadline passed")
            ident = str(entry.get("id", "")) if isinstance(entry, dict) else ""
            if not ident:
                continue
            if str(entry.get("action", "")).casefold() == "deleted":
                raw: Any = {
                    config.key: ident,
                    config.status_field: config.deleted_value,
                }
            else:
                raw = api.fetch("GET", f"{root}employees/{quote(ident)}", asked).body
                if isinstance(raw, dict):
                    raw.setdefault(config.key, ident)
            record = self._record(raw, state, f"employee {ident}")
            if record is not None:
                state.yielded += 1
                yield record

    # -- records -------------------------------------------------------------------

    def _record(
        self, raw: Any, state: _Read, where: str, index: int | None = None
    ) -> Record | None:
        """One record; ``where`` (and ``index`` on the page) locates one that has
        no key, spelled out only then: this runs once per record of a read."""
        if not isinstance(raw, dict):
            return Record(
                fields={},
                location=self._location(where, index),
                problem="the record is not a JSON object",
            )
        problem = None
        try:
            fields: dict[str, FieldValue] = self.flattener.flatten(raw)
        except ValueError as error:
            fields, problem = Flattener("plain").flatten(raw), str(error)
        key = fields.get(self.config.key)
        if not isinstance(key, str) or not key.strip():
            return Record(
                fields=fields,
                location=self._location(where, index),
                problem=problem or f"no {self.config.key} (the record's key)",
            )
        if state.delta:
            if key in state.seen:
                return None
            state.seen.add(key)
        if self.cursor_field is not None:
            self._track(fields, state)
        return Record(
            fields=fields, location=f"{self.connector_id}:{key}", problem=problem
        )

    def _location(self, where: str, index: int | None) -> str:
        spot = where if index is None else f"{where} #{index}"
        return f"{self.connector_id}:{spot}"

    def _cursor_field(self) -> str | None:
        incremental = self.config.incremental
        if incremental is None:
            return None
        if incremental.cursor_field is not None:
            return incremental.cursor_field
        return SF_MODIFIED if self.config.preset == "successfactors" else None

    def _track(self, fields: dict[str, FieldValue], state: _Read) -> None:
        name = self.cursor_field
        if name is None:
            return
        value = fields.get(name)
        if isinstance(value, str):
            moment = parse_moment(value)
            if moment is not None and (state.newest is None or moment > state.newest):
                state.newest = moment

    def _keep_cursor(self, state: _Read) -> None:
        """What the next delta read starts from, kept by ``commit``."""
        if self.config.incremental is None:
            return
        moment: datetime | None = None
        if state.latest is not None:
            moment = parse_moment(state.latest)
        elif self.cursor_field is not None:
            moment = state.newest
        elif state.server_date is not None:
            try:
                moment = parsedate_to_datetime(state.server_date)
            except (TypeError, ValueError):
                moment = None
        if moment is None and not state.delta:
            moment = self.now
        if moment is not None:
            self._pending = (utc_text(moment), not state.delta)

    # -- errors --------------------------------------------------------------------

    def _failed(self, state: _Read, message: str) -> SourceUnavailable | ReadIncomplete:
        where = {"connector": self.connector_id, "partner": self.config.partner}
        if state.yielded == 0:
            return SourceUnavailable(f"{self.kind}: {message}", **where)
        return ReadIncomplete(
            f"{self.kind}: {message}, after {state.yielded} records; the read is not"
            " complete and nobody is suspended",
            **where,
        )

    def _transport(self, error: requests.RequestException) -> str:
        """A transport failure in words, with the URL's host only."""
        host = urlsplit(self.config.url).hostname
        attempts = self.config.retry.max_attempts
        if isinstance(error, requests.exceptions.SSLError):
            return f"the TLS certificate of {host} could not be verified; set ca_file"
        if isinstance(error, requests.Timeout) or "timed out" in str(error).lower():
            timeouts = self.config.timeouts
            return (
                f"no answer from {host} within {timeouts.read:g} s (connect"
                f" {timeouts.connect:g} s), {attempts} attempts"
            )
        if isinstance(error, requests.exceptions.ChunkedEncodingError):
            return (
                f"the answer from {host} was cut short (fewer bytes than it"
                f" announced), {attempts} attempts"
            )
        return f"cannot reach {host} ({type(error).__name__}); check url"


__all__ = ["HttpSource", "open_session"]
