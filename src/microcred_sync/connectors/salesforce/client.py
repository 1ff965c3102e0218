"""Logging in to an org and calling it, with re-authentication bounded here.

The login is simple-salesforce's own (``SalesforceLogin``: SOAP for a password and
security token, OAuth 2.0 for JWT bearer and client credentials). The client is
then built from the session id and the instance the login returned (SF-02: never
a hand-built instance URL), so simple-salesforce never logs in by itself: with a
username, JWT or client-credential client, a 401 that persists makes its sObject
calls log in again and again until a ``RecursionError``. Here a call that meets
``INVALID_SESSION_ID`` logs in once more and is repeated once; a second one stops
with ``SessionRejected``. Only idempotent calls go through ``call`` (queries,
describes, upserts by external id).

simple-salesforce puts whole response bodies in its exception text; ``problem``
turns one into a short line (status, errorCode, a message cut short, emails
masked), and that is all that is logged or raised.

The connector's own errors, turned into ``ReadError`` (source) or
``DeliveryStopped`` (sink) at its boundary::

    SalesforceProblem          a call failed: HTTP status, errorCode, message
    ├── LoginFailed            the org refused the login: check auth and secrets
    ├── SessionRejected        INVALID_SESSION_ID right after a new login: stop
    └── QuotaReached           REQUEST_LIMIT_EXCEEDED, or past max_api_share: pause
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from pydantic import SecretStr
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
)
from simple_salesforce.login import SalesforceLogin

from ...secrets import read_secret
from .config import ClientCredentialsAuth, JwtAuth, PasswordAuth, SalesforceConnector
from .session import SalesforceSession

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: The most of Salesforce's own message kept in an error.
MESSAGE_CHARS: Final = 300

_EMAIL = re.compile(r"[^\s\"'<>(),;:]+@[^\s\"'<>(),;]+")

#: errorCodes that mean the org's daily API allowance is used up (SF-03).
LIMIT_CODES: Final = frozenset({"REQUEST_LIMIT_EXCEEDED", "TXN_SECURITY_API_LIMIT"})


class SalesforceProblem(Exception):
    """A call failed; ``status`` and ``code`` say how, ``message`` is safe to show."""

    def __init__(self, message: str, status: int | None, code: str | None) -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class LoginFailed(SalesforceProblem):
    """The org refused the login (credentials, connected app, login host)."""


class SessionRejected(SalesforceProblem):
    """``INVALID_SESSION_ID`` again right after a fresh login."""


class QuotaReached(SalesforceProblem):
    """The org's API allowance is used up, or past the connector's share."""


def masked(text: str) -> str:
    """``text`` cut short, on one line, with email addresses masked."""
    line = " ".join(text.split())
    line = _EMAIL.sub("[email]", line)
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 1] + "…"


def error_code(error: SalesforceError) -> tuple[str | None, str]:
    """The first ``errorCode`` and message of a REST error body."""
    content = error.content
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return first.get("errorCode"), str(first.get("message", ""))
    if isinstance(content, dict):
        return content.get("errorCode"), str(content.get("message", ""))
    return None, ""


def problem(error: SalesforceError) -> SalesforceProblem:
    """Our error for one of simple-salesforce's, without the response body."""
    if isinstance(error, SalesforceAuthenticationFailed):
        code = str(error.code) if error.code is not None else None
        return LoginFailed(
            f"login refused ({code or 'no code'}: {masked(error.auth_message)}); "
            "check the connector's auth, its secrets and login_url",
            None,
            code,
        )
    code, message = error_code(error)
    status = int(error.status) if error.status else None
    text = f"HTTP {status} {code or 'error'}: {masked(message)}".rstrip(": ")
    if code in LIMIT_CODES:
        return QuotaReached(
            f"{text}; the org's API requests are used up until its 24-hour window"
            " moves on",
            status,
            code,
        )
    return SalesforceProblem(text, status, code)


@dataclass(frozen=True)
class Credentials:
    """What ``SalesforceLogin`` is called with; secrets stay ``SecretStr``."""

    username: str | None = None
    password: SecretStr | None = None
    security_token: SecretStr | None = None
    consumer_key: SecretStr | None = None
    consumer_secret: SecretStr | None = None
    private_key: SecretStr | None = None

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, [secure])"


def read_credentials(
    config: SalesforceConnector, secrets_dir: Path | None
) -> Credentials:
    """The connector's credentials from the secrets it names (``ConfigError``
    naming the secret, never its value, when one is missing)."""
    auth = config.auth
    if isinstance(auth, PasswordAuth):
        token = auth.security_token_secret
        return Credentials(
            username=auth.username,
            password=read_secret(auth.password_secret, secrets_dir),
            security_token=read_secret(token, secrets_dir) if token else None,
        )
    if isinstance(auth, JwtAuth):
        return Credentials(
            username=auth.username,
            consumer_key=read_secret(auth.consumer_key_secret, secrets_dir),
            private_key=read_secret(auth.private_key_secret, secrets_dir),
        )
    assert isinstance(auth, ClientCredentialsAuth)
    return Credentials(
        consumer_key=read_secret(auth.consumer_key_secret, secrets_dir),
        consumer_secret=read_secret(auth.consumer_secret_secret, secrets_dir),
    )


def _plain(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


class OrgClient:
    """A logged-in simple-salesforce client for one connector, logged in lazily."""

    def __init__(
        self,
        config: SalesforceConnector,
        credentials: Credentials,
        session: SalesforceSession,
        connector: str,
    ) -> None:
        self.config, self.credentials = config, credentials
        self.session, self.connector = session, connector
        self._client: Salesforce | None = None

    @property
    def client(self) -> Salesforce:
        """The client, logging in first if need be."""
        if self._client is None:
            self._client = self._login()
        return self._client

    def _login(self) -> Salesforce:
        credentials = self.credentials
        options: dict[str, Any] = {
            "session": self.session,
            "domain": self.config.domain,
            "sf_version": self.config.api_version,
        }
        if isinstance(self.config.auth, PasswordAuth):
            # SOAP login needs a security token argument; "" when the org trusts
            # the caller's IP range.
            options["security_token"] = _plain(credentials.security_token) or ""
            options.update(username=credentials.username)
            options["password"] = _plain(credentials.password)
        elif isinstance(self.config.auth, JwtAuth):
            options.update(username=credentials.username)
            options["consumer_key"] = _plain(credentials.consumer_key)
            options["privatekey"] = _plain(credentials.private_key)
        else:
            options["consumer_key"] = _plain(credentials.consumer_key)
            options["consumer_secret"] = _plain(credentials.consumer_secret)
        try:
            session_id, instance = SalesforceLogin(**options)
        except SalesforceError as error:
            raise problem(error) from None
        logger.debug("%s: logged in; instance %s", self.connector, instance)
        return Salesforce(
            session_id=session_id,
            instance=instance,
            session=self.session,
            version=self.config.api_version,
            object_pairs_hook=dict,
        )

    def check_quota(self) -> None:
        """Raise ``QuotaReached`` once the org's usage passes the connector's share."""
        counters = self.session.counters
        share = counters.api_share
        if share is not None and share >= self.config.max_api_share:
            raise QuotaReached(
                f"the org has used {counters.api_used} of its {counters.api_total}"
                f" daily API requests, past this connector's share"
                f" ({self.config.max_api_share:.0%}); the rest waits for the next run",
                None,
                "API_SHARE",
            )

    def call(self, operation: Callable[[Salesforce], T]) -> T:
        """``operation(client)``; after ``INVALID_SESSION_ID``, one new login and
        one more try. Raises ``SalesforceProblem`` (or a subclass)."""
        self.check_quota()
        try:
            return operation(self.client)
        except SalesforceExpiredSession:
            logger.info("%s: session expired; logging in again", self.connector)
        except SalesforceError as error:
            raise problem(error) from None
        self._client = None
        try:
            return operation(self.client)
        except SalesforceExpiredSession as error:
            code, _ = error_code(error)
            raise SessionRejected(
                f"HTTP 401 {code or 'INVALID_SESSION_ID'} again right after a new"
                " login; check the integration user's session settings and IP"
                " restrictions",
                401,
                code,
            ) from None
        except SalesforceError as error:
            raise problem(error) from None
