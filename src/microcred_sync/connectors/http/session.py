"""Calling a JSON API: auth, timeouts, retries, and a check of every answer.

Every call of the ``http`` source goes through ``ApiSession.fetch``:

- (connect, read) timeouts on every request (HT-03); ``trust_env`` off, so
  ``REQUESTS_CA_BUNDLE``, proxies and ``.netrc`` neither override ``verify`` nor
  change where credentials go; redirects are not followed (a credential never
  goes to another origin; a redirect to a login page is an error to show);
- connection errors, timeouts, bodies cut short, 429 and 5xx are retried with
  tenacity, waiting the larger of our backoff (with jitter) and ``Retry-After``
  (seconds or an HTTP-date, RFC 9110 section 10.2.3), at most the cap; a longer
  ``Retry-After`` raises ``ServerBusy`` at once rather than block a worker (HT-01);
- OAuth 2.0 client credentials: the token is cached until it expires; a 401 asks
  for a new one once and repeats the call; a second 401 is ``AuthRejected``;
- an answer is JSON or an error: a redirect, an HTML page (a login or error
  page), another content type or a body that does not parse (cut short) raise
  ``UnexpectedAnswer`` with the URL (credentials masked) and a short excerpt.

The errors, turned into ``SourceUnavailable`` or ``ReadIncomplete`` by the source::

    ApiProblem               a call failed: HTTP status, masked URL, excerpt
    ├── AuthRejected         401/403, or the token endpoint refused: check auth
    ├── ServerBusy           Retry-After beyond the cap: a later run tries again
    └── UnexpectedAnswer     not the JSON the connector expects
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import requests
from requests.auth import AuthBase, HTTPBasicAuth
from requests.structures import CaseInsensitiveDict
from tenacity import (
    RetryCallState,
)

from ...http import answer_retrying, asked_too_long, failed_attempt
from ..config import Retry
from .config import CREDENTIAL_PARAM, OAuthClientCredentials, Timeouts

logger = logging.getLogger(__name__)


#: Transport failures worth another attempt; ``ChunkedEncodingError`` is a body
#: shorter than its ``Content-Length`` (urllib3's ``IncompleteRead``).
TEMPORARY_ERRORS: Final = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)

#: The most of an answer's body an error quotes.
EXCERPT_CHARS: Final = 160

#: A token is asked again this long before it expires.
TOKEN_MARGIN_SECONDS: Final = 30.0

_EMAIL: Final = re.compile(r"[^\s\"'<>(),;:]+@[^\s\"'<>(),;]+")

#: A JSON string, and the colon after it when it is a key (``shape_excerpt``).
_JSON_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"(\s*:)?')
_OPEN_STRING: Final = re.compile(r'(?<=[:\[,])(\s*)"[^"]*$')

#: A body that starts as an HTML page does, after any white space.
_HTML_START: Final = re.compile(rb"\s*<(?:!doctype|html)", re.IGNORECASE)


class ApiProblem(Exception):
    """A call failed; ``message`` is safe to show (no secret, no whole body)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class AuthRejected(ApiProblem):
    """The API or its token endpoint refused the credentials."""


class ServerBusy(ApiProblem):
    """The server asked for a longer wait than a run waits."""


class UnexpectedAnswer(ApiProblem):
    """An answer that is not the JSON the connector expects."""


def mask_url(url: str, secret_params: frozenset[str] = frozenset()) -> str:
    """``url`` with credential-like query values shown as ``[secure]``."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (name, "[secure]")
        if CREDENTIAL_PARAM.search(name) or name in secret_params
        else (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit(
        (parts.scheme, netloc, parts.path, urlencode(query, safe="$,'[]"), "")
    )


def excerpt(content: bytes) -> str:
    """The start of a body on one line, email addresses masked."""
    text = content[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    line = _EMAIL.sub("[email]", " ".join(text.split()))
    return line if len(line) <= EXCERPT_CHARS else line[: EXCERPT_CHARS - 1] + "…"


def shape_excerpt(content: bytes) -> str:
    """The start of a JSON-looking body with its text values left out: the keys
    show its shape, no person's data is quoted."""
    text = content[: EXCERPT_CHARS * 8].decode("utf-8", errors="replace")
    shape = _JSON_STRING.sub(
        lambda match: match.group(0) if match.group(1) else '"…"', text
    )
    # A value cut off in the middle, at the very end.
    shape = _OPEN_STRING.sub('"…', shape)
    return excerpt(shape.encode())


@dataclass(frozen=True)
class Answer:
    """One checked answer: its parsed body, headers and where it came from."""

    url: str
    body: Any
    headers: CaseInsensitiveDict[str]
    links: Mapping[str, Mapping[str, str]]


class HeaderAuth(AuthBase):
    """A fixed header: a bearer token or an API key."""

    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self.name] = self.value
        return request


class QueryKeyAuth(AuthBase):
    """An API key as a query parameter (masked wherever a URL is shown)."""

    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.prepare_url(request.url or "", {self.name: self.value})
        return request


class ClientCredentialsToken(AuthBase):
    """A bearer token from an OAuth 2.0 token endpoint, cached until it expires."""

    def __init__(
        self,
        config: OAuthClientCredentials,
        client_id: str,
        client_secret: str,
        api: ApiSession,
    ) -> None:
        self.config, self.api = config, api
        self._client = (client_id, client_secret)
        self._token: str | None = None
        self._expires = 0.0

    def invalidate(self) -> None:
        """Forget the token: the next request asks for a new one."""
        self._token = None

    def token(self) -> str:
        """The cached token, or a new one (``AuthRejected`` if refused)."""
        if self._token is None or time.monotonic() >= self._expires:
            self._token, lifetime = self._ask()
            self._expires = time.monotonic() + max(lifetime - TOKEN_MARGIN_SECONDS, 1)
        return self._token

    def _ask(self) -> tuple[str, float]:
        # RFC 6749 section 4.4.2: a form POST; the client authenticates with Basic
        # (section 2.3.1) unless the server takes it in the body.
        form = {"grant_type": "client_credentials"}
        if self.config.scope:
            form["scope"] = self.config.scope
        auth: AuthBase | None = HTTPBasicAuth(*self._client)
        if self.config.client_auth == "body":
            form.update(client_id=self._client[0], client_secret=self._client[1])
            auth = None
        response = self.api.send("POST", self.config.token_url, data=form, auth=auth)
        self.api.counters["token_requests"] += 1
        shown = mask_url(self.config.token_url)
        if response.status_code != 200:
            raise AuthRejected(
                f"the token endpoint {shown} answered HTTP {response.status_code}"
                f" ({_oauth_error(response)}); check auth's client and secret",
                response.status_code,
            )
        try:
            body = orjson.loads(response.content)
            token = str(body["access_token"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UnexpectedAnswer(
                f"the token endpoint {shown} gave no access_token:"
                f" {excerpt(response.content)!r}"
            ) from None
        lifetime = body.get("expires_in")
        return token, float(lifetime) if isinstance(lifetime, int | float) else 3600.0

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request


def _oauth_error(response: requests.Response) -> str:
    """The ``error`` code of an RFC 6749 section 5.2 answer, nothing else."""
    try:
        code = orjson.loads(response.content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return "no error code"
    return str(code)[:60] if code else "no error code"


class ApiSession:
    """One connector's requests session, its auth, retries and counters."""

    def __init__(
        self,
        timeouts: Timeouts,
        retry: Retry,
        verify: bool | str,
        connector: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = verify
        self.session.headers.update(headers or {})
        self.timeouts = (timeouts.connect, timeouts.read)
        self.retry_policy = retry
        self.connector = connector
        self.auth: AuthBase | None = None
        self.secret_params: frozenset[str] = frozenset()
        self.counters = {"requests": 0, "retries": 0, "token_requests": 0}
        # One controller for every call: each call keeps its own attempt state.
        self.retrying = answer_retrying(retry, TEMPORARY_ERRORS, self._log_retry)

    def close(self) -> None:
        self.session.close()

    def shown(self, url: str) -> str:
        """``url`` as errors show it."""
        return mask_url(url, self.secret_params)

    # -- one call ------------------------------------------------------------------

    def fetch(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Answer:
        """One page: sent, retried, re-authenticated once, checked and parsed."""
        options: dict[str, Any] = {"params": params, "auth": self.auth}
        if body is not None:
            options["json"] = body
        response = self.send(method, url, **options)
        if response.status_code == 401 and isinstance(
            self.auth, ClientCredentialsToken
        ):
            logger.info("%s: token refused (401); asking for a new one", self.connector)
            self.auth.invalidate()
            response = self.send(method, url, **options)
            if response.status_code == 401:
                raise AuthRejected(
                    f"HTTP 401 again with a new token from {self.shown(response.url)};"
                    " check the client's grants and scope",
                    401,
                )
        return self._checked(method, response)

    def send(self, method: str, url: str, **options: Any) -> requests.Response:
        """A request with timeouts and retries; the last answer, whatever it is."""
        options.setdefault("timeout", self.timeouts)
        options["allow_redirects"] = False
        response: requests.Response = self.retrying(self._send, method, url, **options)
        return response

    def _send(self, method: str, url: str, **options: Any) -> requests.Response:
        self.counters["requests"] += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s: %s %s", self.connector, method, urlsplit(url).path)
        response = self.session.request(method, url, **options)
        asked = asked_too_long(self.retry_policy, response)
        if asked is not None:
            raise ServerBusy(
                f"HTTP {response.status_code} with Retry-After {asked:g} s from"
                f" {self.shown(response.url)}, longer than retry_after_cap"
                f" ({self.retry_policy.retry_after_cap:g} s); a later run tries"
                " again",
                response.status_code,
            )
        return response

    def _log_retry(self, state: RetryCallState) -> None:
        self.counters["retries"] += 1
        method, url = state.args
        what, wait = failed_attempt(state)
        logger.warning(
            "%s: %s %s failed (%s); attempt %d of %d in %.1f s",
            self.connector,
            method,
            urlsplit(url).path,
            what,
            state.attempt_number + 1,
            self.retry_policy.max_attempts,
            wait,
        )

    # -- the answer ------------------------------------------------------------------

    def _checked(self, method: str, response: requests.Response) -> Answer:
        """The parsed body of a 2xx JSON answer, or the error that says why not."""
        status = response.status_code
        # Masked and spelled out only for an error: this runs once per page.
        where = _Where(method, response.url, self)
        if 300 <= status < 400:
            target = self.shown(response.headers.get("Location", "nowhere"))
            raise UnexpectedAnswer(
                f"HTTP {status} from {where}: redirected to {target}; set url to the"
                " API itself (a redirect to a sign-in page means the URL or the"
                " credentials are wrong)",
                status,
            )
        if status in (401, 403):
            raise AuthRejected(
                f"HTTP {status} from {where}: {excerpt(response.content)!r}; check"
                " auth and its secrets",
                status,
            )
        if not 200 <= status < 300:
            raise ApiProblem(
                f"HTTP {status} from {where}: {excerpt(response.content)!r}", status
            )
        content_type = response.headers.get("Content-Type", "")
        content = response.content
        if "html" in content_type.casefold() or _HTML_START.match(content):
            raise UnexpectedAnswer(
                f"an HTML page where JSON was expected from {where} (a sign-in or"
                f" error page?): {excerpt(content)!r}",
                status,
            )
        if "json" not in content_type.casefold():
            raise UnexpectedAnswer(
                f"content type {content_type or 'none'!r} where JSON was expected"
                f" from {where}: {shape_excerpt(content)!r}",
                status,
            )
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError as error:
            raise UnexpectedAnswer(
                f"the body from {where} is not valid JSON ({error.msg} at character"
                f" {error.pos} of {len(content)}: cut short?):"
                f" {shape_excerpt(content)!r}",
                status,
            ) from None
        return Answer(response.url, body, response.headers, response.links)


@dataclass(frozen=True)
class _Where:
    """``GET <masked URL>`` in an error message, masked when it is shown."""

    method: str
    url: str
    api: ApiSession

    def __str__(self) -> str:
        return f"{self.method} {self.api.shown(self.url)}"
