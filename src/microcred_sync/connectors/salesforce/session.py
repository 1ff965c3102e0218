"""The ``requests`` session every Salesforce call goes through, logins included.

simple-salesforce sends every request through the session it is given and sets
neither a timeout nor retries; this session brings both (HT-03, HT-01):

- every request gets (connect, read) timeouts unless the caller gave one;
- connection errors, timeouts and 5xx answers of idempotent calls (GET, PATCH
  upserts by external id, logins) are retried with tenacity, waiting the larger of
  our backoff (with jitter) and the server's ``Retry-After``, at most the cap; a
  longer ``Retry-After`` raises ``ServerBusy`` at once rather than block a worker;
- ``Sforce-Limit-Info: api-usage=used/total`` is read off every answer (SF-03);
- ``trust_env`` is off, so ``REQUESTS_CA_BUNDLE``, proxies and ``.netrc`` from the
  environment neither override ``verify`` nor change where credentials go.

Log lines name the URL path only: a query string holds SOQL and its values.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from tenacity import (
    RetryCallState,
)

from ...http import answer_retrying, asked_too_long, failed_attempt
from ..config import Retry
from .config import Timeouts

logger = logging.getLogger(__name__)


_LIMIT_INFO: Final = re.compile(r"api-usage=(\d+)/(\d+)")

#: Logins are POSTs that may be repeated: they create nothing.
_LOGIN_PATHS: Final = ("/services/oauth2/token", "/services/Soap/u/")


class ServerBusy(Exception):
    """Salesforce asked for a longer wait than a run waits (``Retry-After``)."""

    def __init__(self, status: int, retry_after: float, path: str) -> None:
        super().__init__(f"HTTP {status} with Retry-After {retry_after:g} s on {path}")
        self.status, self.retry_after, self.path = status, retry_after, path


@dataclass
class Counters:
    """Requests made, by kind, and the org's API usage as last reported."""

    logins: int = 0
    data_calls: int = 0
    retries: int = 0
    api_used: int | None = None
    api_total: int | None = None

    @property
    def api_share(self) -> float | None:
        """The share of the org's daily requests used, when the org said."""
        if self.api_used is None or not self.api_total:
            return None
        return self.api_used / self.api_total


def _is_login(path: str) -> bool:
    return any(marker in path for marker in _LOGIN_PATHS)


def _idempotent(method: str, path: str) -> bool:
    return method.upper() in ("GET", "HEAD", "PATCH", "PUT", "DELETE") or _is_login(
        path
    )


class SalesforceSession(requests.Session):
    """A session with timeouts, retries, TLS settings and usage counters."""

    def __init__(
        self,
        timeouts: Timeouts,
        retry: Retry,
        verify: bool | str = True,
        connector: str = "salesforce",
    ) -> None:
        super().__init__()
        self.trust_env = False
        self.verify = verify
        self.timeouts = (timeouts.connect, timeouts.read)
        self.retry_policy = retry
        self.connector = connector
        self.counters = Counters()

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """One call, retried as the module docstring says."""
        method_text = method.decode() if isinstance(method, bytes) else method
        url_text = url.decode() if isinstance(url, bytes) else url
        path = urlsplit(url_text).path
        kwargs.setdefault("timeout", self.timeouts)
        kwargs.setdefault("allow_redirects", False)
        if not _idempotent(method_text, path):
            return self._send(method_text, url_text, path, *args, **kwargs)
        controller = answer_retrying(
            self.retry_policy,
            (requests.ConnectionError, requests.Timeout),
            lambda state: self._log_retry(method_text, path, state),
        )
        response: requests.Response = controller(
            self._send, method_text, url_text, path, *args, **kwargs
        )
        return response

    def _send(
        self, method: str, url: str, path: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if _is_login(path):
            self.counters.logins += 1
        else:
            self.counters.data_calls += 1
        logger.debug("%s: %s %s", self.connector, method, path)
        response = super().request(method, url, *args, **kwargs)
        self._read_usage(response)
        asked = asked_too_long(self.retry_policy, response)
        if asked is not None:
            raise ServerBusy(response.status_code, asked, path)
        return response

    def _read_usage(self, response: requests.Response) -> None:
        info = response.headers.get("Sforce-Limit-Info")
        match = _LIMIT_INFO.search(info) if info else None
        if match is not None:
            self.counters.api_used = int(match.group(1))
            self.counters.api_total = int(match.group(2))

    def _log_retry(self, method: str, path: str, state: RetryCallState) -> None:
        self.counters.retries += 1
        what, wait = failed_attempt(state)
        logger.warning(
            "%s: %s %s failed (%s); attempt %d of %d in %.1f s",
            self.connector,
            method,
            path,
            what,
            state.attempt_number + 1,
            self.retry_policy.max_attempts,
            wait,
        )
