"""The connector file of kind ``http``: which JSON API, how to log in, where the
records are in an answer and how its pages follow each other.

A ``preset`` (``workday_raas``, ``bamboohr``, ``successfactors``) fills the fields a
vendor always answers the same way; the file gives the rest and may override any
of them (see ``presets``). Secrets are named (``password_secret: ...``), never
held; a query parameter that looks like a credential is refused in ``url`` and
``params`` (use ``auth: {type: api_key, in: query}``), so it never shows in logs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config import ConnectorBase, Retry, TlsSettings, is_loopback

#: Query parameter names that carry a credential: masked in errors and logs.
CREDENTIAL_PARAM: Final = re.compile(
    r"(^|[_-])(api[_-]?key|apikey|key|token|access[_-]?token|password|passwd|"
    r"secret|client[_-]?secret|signature|sig|auth|code)$",
    re.IGNORECASE,
)

#: Headers a file may not set: credentials belong in ``auth``.
_SECRET_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})

Preset = Literal["workday_raas", "bamboohr", "successfactors"]
ParamValue = str | int | float | bool


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def check_jmespath(expression: str) -> str:
    """``expression`` if it compiles as JMESPath, else ``ValueError``."""
    try:
        jmespath.compile(expression)
    except JMESPathError as error:
        raise ValueError(
            f"{expression!r} is not a JMESPath expression ({error})"
        ) from None
    return expression


def check_endpoint(url: str) -> str:
    """An https URL (plain http on the loopback interface only), without userinfo,
    fragment or credentials in its query."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("an https:// URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("plain http is allowed on the loopback interface only")
    if parts.username or parts.password:
        raise ValueError("the URL holds no user or password; use auth")
    if parts.fragment:
        raise ValueError("the URL has no #fragment")
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if CREDENTIAL_PARAM.search(name):
            raise ValueError(
                f"query parameter {name!r} looks like a credential; name a secret"
                " with auth: {type: api_key, in: query, name: ...}"
            )
    return url


class BasicAuth(_Part):
    """HTTP Basic (RFC 7617): a user (or a secret holding one) and a password secret.

    Under the ``bamboohr`` preset the user is the API key (``username_secret``) and
    the password may be left out: BambooHR ignores it, ``x`` is sent.
    """

    type: Literal["basic"]
    username: str | None = Field(default=None, min_length=1)
    username_secret: str | None = Field(default=None, min_length=1)
    password_secret: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_user(self) -> BasicAuth:
        if (self.username is None) == (self.username_secret is None):
            raise ValueError("give exactly one of username and username_secret")
        return self


class BearerAuth(_Part):
    """A fixed bearer token (RFC 6750) from a secret."""

    type: Literal["bearer"]
    token_secret: str = Field(min_length=1)


class ApiKeyAuth(_Part):
    """An API key sent in a header (default ``X-API-Key``) or a query parameter."""

    type: Literal["api_key"]
    in_: Literal["header", "query"] = Field(default="header", alias="in")
    name: str = Field(default="X-API-Key", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    key_secret: str = Field(min_length=1)


class OAuthClientCredentials(_Part):
    """OAuth 2.0 client credentials (RFC 6749 section 4.4).

    The token is asked of ``token_url`` with the client authenticated by HTTP Basic
    (section 2.3.1; ``client_auth: body`` sends it in the form instead), cached
    until ``expires_in`` runs out, and asked again once when an answer is 401.
    """

    type: Literal["oauth_client_credentials"]
    token_url: str
    client_id: str | None = Field(default=None, min_length=1)
    client_id_secret: str | None = Field(default=None, min_length=1)
    client_secret_secret: str = Field(min_length=1)
    scope: str | None = None
    client_auth: Literal["basic", "body"] = "basic"

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, url: str) -> str:
        return check_endpoint(url)

    @model_validator(mode="after")
    def _one_client(self) -> OAuthClientCredentials:
        if (self.client_id is None) == (self.client_id_secret is None):
            raise ValueError("give exactly one of client_id and client_id_secret")
        return self


Auth = Annotated[
    BasicAuth | BearerAuth | ApiKeyAuth | OAuthClientCredentials,
    Field(discriminator="type"),
]


class NoPages(_Part):
    """One answer holds every record."""

    style: Literal["none"]


class NextLinkPages(_Part):
    """The next page's URL: at ``path`` (JMESPath) in the body, or in the ``Link``
    header (RFC 8288, ``rel="next"``) when ``path`` is not given."""

    style: Literal["next_link"]
    path: str | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else check_jmespath(value)


class CursorPages(_Part):
    """The body gives a cursor at ``path``; the next page asks ``param=<cursor>``.
    A missing, null or empty cursor ends the read."""

    style: Literal["cursor"]
    path: str
    param: str = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_jmespath(value)


class OffsetPages(_Part):
    """``offset`` and ``limit`` parameters. With ``total_path`` the read ends at the
    announced total (and must reach it); without, at the first empty page (never
    at a short one: a server may cap ``limit`` lower than asked)."""

    style: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = Field(default=100, ge=1, le=100_000)
    start: int = Field(default=0, ge=0)
    total_path: str | None = None

    @field_validator("total_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else check_jmespath(value)


class PageNumberPages(_Part):
    """A page number parameter (from ``first``), and a page size one if given. With
    ``total_pages_path`` the read ends at the announced last page; without, at the
    first empty page."""

    style: Literal["page"]
    page_param: str = "page"
    size_param: str | None = "per_page"
    size: int = Field(default=100, ge=1, le=100_000)
    first: int = Field(default=1, ge=0)
    total_pages_path: str | None = None

    @field_validator("total_pages_path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else check_jmespath(value)


Pagination = Annotated[
    NoPages | NextLinkPages | CursorPages | OffsetPages | PageNumberPages,
    Field(discriminator="style"),
]


class Timeouts(_Part):
    """Seconds to wait for a connection and, then, for each read of an answer."""

    connect: float = Field(default=10.0, gt=0, le=120)
    read: float = Field(default=60.0, gt=0, le=900)


class IncrementalConfig(_Part):
    """Delta reads between full reads, from a cursor kept in the state store.

    Generic APIs: ``since_param`` is the query parameter given the cursor (UTC,
    ``2026-03-01T08:00:00Z``), less ``overlap_seconds``. The next cursor is the
    greatest value of ``cursor_field`` read, or without one the server's ``Date``
    when the read began. Presets read deltas their vendor's way (see ``presets``).
    """

    full_read_every_hours: float = Field(gt=0)
    overlap_seconds: int = Field(default=300, ge=0, le=86_400)
    since_param: str | None = Field(default=None, min_length=1)
    cursor_field: str | None = Field(default=None, min_length=1)


class HttpConnector(ConnectorBase, TlsSettings):
    """A connector file of kind ``http``: a roster read from a JSON API."""

    kind: Literal["http"]
    preset: Preset | None = None
    url: str = Field(description="the first page's URL")
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, ParamValue] = Field(default_factory=dict)
    body: dict[str, Any] | None = Field(
        default=None, description="a JSON body, for method POST"
    )
    headers: dict[str, str] = Field(default_factory=dict)
    auth: Auth | None = None
    records: str = Field(description="JMESPath to the list of records in an answer")
    key: str = Field(min_length=1, description="the (dotted) field keying a record")
    pagination: Pagination = NoPages(style="none")
    values: Literal["plain", "workday", "odata"] = Field(
        default="plain", description="how vendor-specific values are read"
    )
    fields: tuple[str, ...] = Field(
        default=(), description="fields asked for (BambooHR, SuccessFactors $select)"
    )
    filter: str | None = Field(default=None, description="SuccessFactors $filter")
    status_field: str = Field(
        default="status", description="where a deleted record's status is written"
    )
    deleted_value: str = Field(default="Deleted", min_length=1)
    incremental: IncrementalConfig | None = None
    timeouts: Timeouts = Timeouts()
    retry: Retry = Retry()
    deadline_seconds: float = Field(default=3600.0, gt=0, le=86_400)
    max_pages: int = Field(default=100_000, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        from .presets import apply_preset

        return apply_preset(data)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return check_endpoint(url)

    @field_validator("records")
    @classmethod
    def _records(cls, value: str) -> str:
        return check_jmespath(value)

    @field_validator("params")
    @classmethod
    def _params(cls, params: dict[str, ParamValue]) -> dict[str, ParamValue]:
        for name in params:
            if CREDENTIAL_PARAM.search(name):
                raise ValueError(
                    f"{name!r} looks like a credential; name a secret with"
                    " auth: {type: api_key, in: query, name: ...}"
                )
        return params

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if name.casefold() in _SECRET_HEADERS:
                raise ValueError(f"header {name!r} carries a credential; use auth")
        return headers

    @model_validator(mode="after")
    def _consistent(self) -> HttpConnector:
        if self.body is not None and self.method != "POST":
            raise ValueError("body: a JSON body goes with method: POST")
        auth = self.auth
        if (
            isinstance(auth, BasicAuth)
            and auth.password_secret is None
            and self.preset != "bamboohr"
        ):
            raise ValueError("auth.password_secret: missing")
        if self.incremental is not None and self.preset == "bamboohr":
            if not self.fields:
                raise ValueError(
                    "fields: a BambooHR delta read asks each changed employee for"
                    " these fields; list them"
                )
        elif (
            self.incremental is not None
            and self.preset is None
            and self.incremental.since_param is None
        ):
            raise ValueError("incremental.since_param: missing")
        return self
