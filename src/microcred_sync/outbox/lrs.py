"""Talking to an LRS: posting statement batches and reading statements back.

Protocol (what a response means) is kept apart from transport (the requests
session, which the caller may configure). Every request has (connect, read)
timeouts and carries ``X-Experience-API-Version``; a POST never follows a redirect,
so credentials and statements never go where the operator did not point them.

Ralph answers duplicates in its own ways, all of them "already stored": 204 with no
body for a batch of statements it holds, 200 listing only the new ids for a batch
partly held. So the ids an LRS returns are never paired with the statements sent
by position (xAPI 1.0.3 communication 2.1.2 does not promise an order either).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from pydantic import SecretStr
from requests.auth import AuthBase, HTTPBasicAuth

from ..secrets import read_secret
from .errors import (
    BatchTooLarge,
    DeliveryError,
    DeliveryStopped,
    DeliveryTemporary,
    StatementConflict,
    StatementsRejected,
)
from .retry import retry_after_seconds
from .sinks import BasicAuth, LrsSink

#: Statuses a later attempt may not meet (RFC 9110 15.5.9, 15.5.20, 15.6).
TEMPORARY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

#: The most of an LRS's reason kept in an error (and so in the outbox).
REASON_CHARS = 300

#: Pages read back at most (XA-05: a server whose ``more`` never ends).
MAX_PAGES = 1000

VOIDED = "http://adlnet.gov/expapi/verbs/voided"

_EMAIL = re.compile(r"[^\s\"'<>(),;:]+@[^\s\"'<>(),;]+")


class BearerToken(AuthBase):
    """``Authorization: Bearer <token>``; shows as ``[secure]``."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        return request

    def __repr__(self) -> str:
        return "BearerToken([secure])"


def lrs_auth(sink: LrsSink, secrets_dir: Path | None) -> AuthBase:
    """The sink's credentials, read from the secrets it names (ConfigError if one
    is missing, without any value)."""
    if isinstance(sink.auth, BasicAuth):
        password = read_secret(sink.auth.password_secret, secrets_dir)
        return HTTPBasicAuth(sink.auth.username, password.get_secret_value())
    return BearerToken(read_secret(sink.auth.token_secret, secrets_dir))


def lrs_session(sink: LrsSink, auth: AuthBase, root: Path) -> requests.Session:
    """A session for one sink: its auth, version header and TLS settings."""
    session = requests.Session()
    session.auth = auth
    session.headers["X-Experience-API-Version"] = sink.xapi_version
    session.headers["Accept"] = "application/json"
    # Proxies and .netrc from the environment would change where credentials go.
    session.trust_env = False
    session.verify = sink.tls_verify(root)
    return session


@dataclass(frozen=True)
class PostResult:
    """What an LRS said to a batch it took: how many of the sent ids it stored
    now, and how many it already held (Ralph: 204, or 200 with fewer ids)."""

    stored: int
    already_stored: int
    unknown_ids: int = 0


class LrsClient:
    """Posts batches to, and reads statements from, one LRS."""

    def __init__(
        self,
        sink: LrsSink,
        session: requests.Session,
        *,
        connector: str,
    ) -> None:
        self.sink, self.session, self.connector = sink, session, connector
        self.timeout = (sink.timeouts.connect, sink.timeouts.read)
        self.requests = 0

    def close(self) -> None:
        self.session.close()

    # -- posting --------------------------------------------------------------

    def post(self, body: bytes, sent_ids: Sequence[str]) -> PostResult:
        """POST one batch (a JSON array) once; raise the error its answer means."""
        self.requests += 1
        try:
            response = self.session.post(
                self.sink.statements_url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise self._transport_error(error) from None
        with response:
            return self._post_result(response, sent_ids)

    def _post_result(
        self, response: requests.Response, sent_ids: Sequence[str]
    ) -> PostResult:
        """Check the answer to a POST (xAPI 1.0.3 communication 2.1.2)."""
        status = response.status_code
        if 200 <= status < 300:
            returned = _returned_ids(response) if status != 204 else []
            sent = set(sent_ids)
            stored = sent.intersection(returned)
            return PostResult(
                stored=len(stored),
                already_stored=len(sent) - len(stored),
                unknown_ids=len(set(returned) - sent),
            )
        raise self._status_error(response)

    def _status_error(self, response: requests.Response) -> DeliveryError:
        status = response.status_code
        where = {"sink": self.connector, "partner": self.sink.partner, "status": status}
        reason = lrs_reason(response)
        if status in TEMPORARY_STATUSES:
            return DeliveryTemporary(
                f"the LRS answered {status}: {reason}",
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                sink=self.connector,
                partner=self.sink.partner,
                status=status,
            )
        if status in (400, 422):
            return StatementsRejected(f"the LRS rejected: {reason}", **where)
        if status == 409:
            return StatementConflict(f"conflict: {reason}", **where)
        if status == 413:
            return BatchTooLarge("the request is larger than the LRS takes", **where)
        if status in (401, 403):
            return DeliveryStopped(
                f"the LRS refused the credentials ({status}); check the sink's auth "
                "and its secret",
                **where,
            )
        if 300 <= status < 400:
            return DeliveryStopped(
                f"the LRS answered with a redirect ({status}); set the sink's "
                "endpoint to where it points",
                **where,
            )
        return DeliveryStopped(
            f"the LRS answered {status}: {reason}; check the sink's endpoint",
            **where,
        )

    def _transport_error(self, error: requests.RequestException) -> DeliveryError:
        sink, partner = self.connector, self.sink.partner
        if isinstance(error, requests.exceptions.SSLError):
            return DeliveryStopped(
                "the LRS's TLS certificate could not be verified; set ca_file",
                sink=sink,
                partner=partner,
            )
        if isinstance(error, requests.Timeout) or "timed out" in str(error).lower():
            return DeliveryTemporary(
                f"no answer from the LRS within {self.timeout[1]:g} s "
                f"(connect {self.timeout[0]:g} s)",
                sink=sink,
                partner=partner,
            )
        return DeliveryTemporary(
            f"the connection to the LRS failed ({_connection_cause(error)})",
            sink=sink,
            partner=partner,
        )

    # -- reading back ---------------------------------------------------------

    def statements(self, params: Mapping[str, str] | None = None) -> Iterator[Any]:
        """Every statement a query returns, page after page (XA-05): ``more`` is
        resolved against the endpoint, and reading stops on an empty, missing or
        repeated ``more``, or after ``MAX_PAGES`` pages."""
        url: str | None = self.sink.statements_url
        query: Mapping[str, str] | None = params
        seen: set[str] = set()
        for _page in range(MAX_PAGES):
            assert url is not None
            document = self._get(url, query)
            yield from document.get("statements") or []
            more = document.get("more")
            if not isinstance(more, str) or not more.strip():
                return
            url, query = urljoin(self.sink.endpoint + "/", more), None
            if url in seen:
                return
            seen.add(url)

    def _get(self, url: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        self.requests += 1
        try:
            response = self.session.get(
                url, params=params, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as error:
            raise self._transport_error(error) from None
        with response:
            if response.status_code != 200:
                raise self._status_error(response)
            document = response.json()
        if not isinstance(document, dict):
            raise DeliveryStopped(
                "the LRS answered a statement query with something other than a "
                "StatementResult",
                sink=self.connector,
            )
        return document


def read_back(
    client: LrsClient,
    *,
    since: datetime | None = None,
    include_voided: bool = False,
    **params: str,
) -> list[dict[str, Any]]:
    """Statements the LRS holds for a query, for reconciliation.

    Voiding statements and the statements they void are left out unless
    ``include_voided`` (XA-06). ``since`` must be timezone-aware; it is sent as
    RFC 3339 UTC with milliseconds (XA-03).
    """
    query = dict(params)
    if since is not None:
        query["since"] = format_instant(since)
    statements = [s for s in client.statements(query) if isinstance(s, dict)]
    if include_voided:
        return statements
    voided = {
        str(s["object"].get("id"))
        for s in statements
        if _is_voiding(s) and isinstance(s.get("object"), dict)
    }
    return [s for s in statements if not _is_voiding(s) and s.get("id") not in voided]


def format_instant(moment: datetime) -> str:
    """``2026-03-29T00:30:00.123Z``: RFC 3339, UTC, milliseconds (XA-03).

    Raises ValueError for a naive datetime, whose instant is unknown.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime has no instant; give it a time zone")
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def lrs_reason(response: requests.Response) -> str:
    """The LRS's own reason for an error, short and without email addresses.

    Ralph's validation errors echo the whole statement (``input``): only where
    (``loc``) and what (``msg``) are kept.
    """
    try:
        document = response.json()
    except ValueError:
        document = None
    detail = document.get("detail", document) if isinstance(document, dict) else None
    if isinstance(detail, list):
        parts = [
            ".".join(str(p) for p in entry.get("loc", ()) if p != "body")
            + f": {entry.get('msg', '')}"
            for entry in detail
            if isinstance(entry, dict)
        ]
        text = "; ".join(parts)
    elif isinstance(detail, str):
        text = detail
    elif isinstance(document, dict) and isinstance(document.get("message"), str):
        text = document["message"]
    else:
        lines = (response.text or response.reason or "").strip().splitlines()
        text = lines[0] if lines else ""
    text = _EMAIL.sub("[email]", text).strip() or f"HTTP {response.status_code}"
    if len(text) > REASON_CHARS:
        text = text[: REASON_CHARS - 3] + "..."
    return text


def _returned_ids(response: requests.Response) -> list[str]:
    try:
        document = response.json()
    except ValueError:
        return []
    if not isinstance(document, list):
        return []
    return [str(ident) for ident in document]


def _is_voiding(statement: Mapping[str, Any]) -> bool:
    verb = statement.get("verb")
    target = statement.get("object")
    return (
        isinstance(verb, dict)
        and verb.get("id") == VOIDED
        and isinstance(target, dict)
        and target.get("objectType") == "StatementRef"
    )


def _connection_cause(error: BaseException) -> str:
    """A short, URL-free cause of a connection failure."""
    text = str(error).lower()
    for needle, cause in (
        ("reset", "connection reset"),
        ("refused", "connection refused"),
        ("aborted", "connection aborted"),
        ("remote end closed", "connection closed by the LRS"),
        ("name or service", "host name not found"),
        ("broken pipe", "connection broken"),
    ):
        if needle in text:
            return cause
    return type(error).__name__
