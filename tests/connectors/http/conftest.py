"""The vendor server, started once per session on 127.0.0.1 over TLS with a CA made
here, and connector files pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from microcred_sync.connectors.base import Record
from microcred_sync.connectors.http import HttpConnector, HttpSource
from tests.connectors.ldap.certificates import temporary_ca

from . import vendors

SECRETS = {
    "WD_PASSWORD": vendors.WORKDAY_PASSWORD,
    "BAMBOO_KEY": vendors.BAMBOO_KEY,
    "SF_PASSWORD": vendors.SF_PASSWORD,
    "CLIENT_SECRET": vendors.CLIENT_SECRET,
    "GENERIC_KEY": vendors.API_KEY,
}

#: The generic API's key, sent as the ``api_key`` query parameter (masked in errors).
QUERY_KEY_AUTH = {
    "type": "api_key",
    "in": "query",
    "name": "api_key",
    "key_secret": "GENERIC_KEY",
}


@pytest.fixture(scope="session")
def http_tls() -> Iterator[dict[str, Path]]:
    with temporary_ca("microcred-http-tls-") as files:
        yield files


@pytest.fixture(scope="session")
def http_server(http_tls: dict[str, Path]) -> Iterator[vendors.VendorServer]:
    running = vendors.VendorServer(http_tls["cert"], http_tls["key"]).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def vendor(
    http_server: vendors.VendorServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[vendors.State]:
    """The server's state, emptied; the secrets set in the environment."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    http_server.state.reset()
    yield http_server.state
    http_server.state.reset()


@pytest.fixture
def connector(
    http_server: vendors.VendorServer, http_tls: dict[str, Path]
) -> Callable[..., HttpConnector]:
    """A connector file's content at the server (``path`` joined to its URL)."""

    def make(path: str, **content: Any) -> HttpConnector:
        document: dict[str, Any] = {
            "kind": "http",
            "partner": "example-group",
            "url": http_server.base_url + path,
            "ca_file": str(http_tls["ca"]),
            "timeouts": {"connect": 2, "read": 2},
            "retry": {"max_attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05},
            **content,
        }
        return HttpConnector.model_validate(document)

    return make


def read_all(config: HttpConnector) -> list[Record]:
    """Every record of one read of ``config``."""
    return list(HttpSource("test-http", Path("."), config).read())
