"""One connection to a directory: open (with failover), bind, search in pages.

ldap3 is used as it is. It reports a size limit, a time limit or a referral as a
result code rather than an exception, even with ``raise_exceptions=True``, and its
paged search simply stops there; ``check_result`` is the one place every result is
looked at, and anything but success ends the read (LD-01, issue 3 "fail safe").
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from ldap3 import BASE, LEVEL, NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import (
    LDAPBindError,
    LDAPCommunicationError,
    LDAPException,
    LDAPInvalidCredentialsResult,
    LDAPOperationResult,
    LDAPResponseTimeoutError,
    LDAPStartTLSError,
)
from ldap3.utils.config import set_config_parameter
from pydantic import SecretStr

from ...errors import ReadIncomplete, SourceUnavailable

logger = logging.getLogger(__name__)

#: The Simple Paged Results control (RFC 2696).
PAGED_RESULTS: Final = "1.2.840.113556.1.4.319"

#: Errors after which a new connection may succeed: the socket dropped or stalled.
DROPPED: Final = (LDAPCommunicationError, LDAPResponseTimeoutError)

#: Result codes (RFC 4511 section 4.1.9) that end a read, with what they mean.
_FAILED_RESULTS: Final = {
    3: "the server's time limit was hit",
    4: "the server's size limit was hit",
    9: "the result is partial",
    10: "the server returned a referral, which is not followed",
    11: "an administrative limit was hit",
}

SCOPES: Final[dict[str, Literal["BASE", "LEVEL", "SUBTREE"]]] = {
    "subtree": SUBTREE,
    "one": LEVEL,
    "base": BASE,
}


@dataclass(frozen=True)
class Endpoint:
    """How to reach and bind to the directory; the password stays a ``SecretStr``."""

    connector: str
    partner: str
    start_tls: bool
    tls: Tls
    bind_dn: str | None
    password: SecretStr | None
    connect_timeout: float
    operation_timeout: int
    follow_referrals: bool


def make_tls(verify: bool, ca_file: str | None) -> Tls:
    """TLS settings: certificates verified against ``ca_file`` (or the system's)."""
    if not verify:
        return Tls(validate=ssl.CERT_NONE)
    return Tls(
        validate=ssl.CERT_REQUIRED,
        ca_certs_file=ca_file,
        version=ssl.PROTOCOL_TLS_CLIENT,
    )


class Session:
    """An open, bound connection to one server, and the searches made on it."""

    def __init__(self, endpoint: Endpoint, url: str, connection: Connection) -> None:
        self.endpoint = endpoint
        self.url = url
        self.connection = connection

    @classmethod
    def open(cls, endpoint: Endpoint, urls: Sequence[str]) -> Session:
        """Connect and bind to the first server of ``urls`` that answers.

        Raises ``SourceUnavailable`` naming each server and why when none does,
        and at once when a bind is refused (the next server would refuse it too).
        """
        problems: list[str] = []
        for url in urls:
            try:
                return cls._open_one(endpoint, url)
            except (LDAPInvalidCredentialsResult, LDAPBindError) as error:
                raise SourceUnavailable(
                    f"{url}: bind as {endpoint.bind_dn or 'anonymous'} was refused"
                    f" ({_describe(error)}); check the bind DN and its password secret",
                    connector=endpoint.connector,
                    partner=endpoint.partner,
                ) from None
            except LDAPException as error:
                problems.append(f"{url}: {_describe(error)}")
                logger.warning("%s: cannot use %s: %s", endpoint.connector, url, error)
        raise SourceUnavailable(
            "no directory server could be reached: " + "; ".join(problems),
            connector=endpoint.connector,
            partner=endpoint.partner,
        )

    @classmethod
    def _open_one(cls, endpoint: Endpoint, url: str) -> Session:
        # Entries' attributes in plain dicts: ldap3's case-insensitive ones cost a
        # fifth of a large read, and the source keys every name by its case-folded
        # spelling itself (``source._by_name``). The setting is ldap3's own and
        # process-wide; nothing else here reads entries by attribute name.
        set_config_parameter("CASE_INSENSITIVE_ATTRIBUTE_NAMES", False)
        server = Server(
            url,
            tls=endpoint.tls,
            connect_timeout=endpoint.connect_timeout,
            get_info=NONE,
        )
        password = endpoint.password.get_secret_value() if endpoint.password else None
        connection = Connection(
            server,
            user=endpoint.bind_dn,
            password=password,
            authentication=SIMPLE if endpoint.bind_dn else "ANONYMOUS",
            raise_exceptions=True,
            read_only=True,
            receive_timeout=endpoint.operation_timeout,
            auto_referrals=endpoint.follow_referrals,
            # Values sent in ranges (member;range=0-1499) are asked for to the end.
            auto_range=True,
        )
        try:
            connection.open()
            if endpoint.start_tls:
                connection.start_tls()
            connection.bind()
        except BaseException:
            _close(connection)
            raise
        logger.debug("%s: bound to %s", endpoint.connector, url)
        return cls(endpoint, url, connection)

    def close(self) -> None:
        """Unbind; a connection that is already gone is fine."""
        _close(self.connection)

    # -- searching -------------------------------------------------------------

    def read_entry(self, dn: str, attributes: Sequence[str]) -> dict[str, Any] | None:
        """One entry's raw attributes by DN, or ``None`` if it is not there."""
        found = self.search_page(dn, "(objectClass=*)", attributes, "base", None, None)
        return found[0][0] if found[0] else None

    def paged(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str],
        scope: str,
        page_size: int,
    ) -> Iterator[list[dict[str, Any]]]:
        """The entries under ``base``, one page at a time, the cookie followed to
        its end; every page's result is checked."""
        cookie: bytes | None = None
        while True:
            entries, cookie = self.search_page(
                base, search_filter, attributes, scope, page_size, cookie
            )
            yield entries
            if not cookie:
                return

    def search_page(
        self,
        base: str,
        search_filter: str,
        attributes: Sequence[str],
        scope: str,
        page_size: int | None,
        cookie: bytes | None,
    ) -> tuple[list[dict[str, Any]], bytes | None]:
        """One search request: its entries and the cookie for the next page."""
        try:
            self.connection.search(
                base,
                search_filter,
                search_scope=SCOPES[scope],
                attributes=list(attributes),
                paged_size=page_size,
                paged_cookie=cookie,
            )
        except LDAPOperationResult as error:
            # noSuchObject for a base read is "not there"; anything else fails.
            if scope == "base" and error.result == 32:
                return [], None
            self.check_result(base, {"result": error.result}, page_size)
            raise self._failed(base, _describe(error)) from None
        result = self.connection.result
        self.check_result(base, result, page_size)
        entries = [
            response
            for response in self.connection.response or ()
            if response.get("type") == "searchResEntry"
        ]
        references = sum(
            1
            for response in self.connection.response or ()
            if response.get("type") == "searchResRef"
        )
        if references and not self.endpoint.follow_referrals:
            raise self._failed(
                base,
                f"the server returned {references} continuation reference(s), which"
                " are not followed; narrow base_dns or set follow_referrals",
            )
        controls = result.get("controls") or {}
        next_cookie = controls.get(PAGED_RESULTS, {}).get("value", {}).get("cookie")
        if page_size is not None and PAGED_RESULTS not in controls:
            raise self._failed(base, "the server ignored the paged-results control")
        return entries, next_cookie or None

    def check_result(
        self, base: str, result: dict[str, Any], page_size: int | None
    ) -> None:
        """Raise ``ReadIncomplete`` unless the search succeeded in full."""
        code = int(result.get("result") or 0)
        if code == 0:
            return
        if code == 32:
            # A base that is not there is a wrong connector file, not a short read:
            # the run fails (nobody is suspended) rather than waiting on the guard.
            raise SourceUnavailable(
                f"{self.url}: the search base {base!r} does not exist on the server"
                " (noSuchObject); check base_dns in the connector file",
                connector=self.endpoint.connector,
                partner=self.endpoint.partner,
                server=self.url,
            )
        meaning = _FAILED_RESULTS.get(code, f"result {result.get('description')}")
        paging = f", page size {page_size}" if page_size else ""
        raise self._failed(
            base, f"{meaning} (result code {code}{paging}); the read is not complete"
        )

    def _failed(self, base: str, problem: str) -> ReadIncomplete:
        return ReadIncomplete(
            f"{self.url}: search under {base!r}: {problem}",
            connector=self.endpoint.connector,
            partner=self.endpoint.partner,
            server=self.url,
        )


def _describe(error: BaseException) -> str:
    """An ldap3 error without anything it may echo back from a request."""
    if isinstance(error, LDAPOperationResult):
        return f"{error.description or 'error'} (result code {error.result})"
    if isinstance(error, LDAPStartTLSError):
        return f"StartTLS failed: {error} (check the certificate and ca_file)"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:300]


def _close(connection: Connection) -> None:
    with contextlib.suppress(LDAPException, OSError):
        connection.unbind()
    # After a failed TLS handshake ldap3 leaves its socket open; close it here.
    sock = getattr(connection, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
