"""Reading statements back page by page (XA-05), against a small HTTP server that
answers with the `more` links LRSs have been seen to send."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.auth import HTTPBasicAuth

from microcred_sync.outbox.lrs import LrsClient, lrs_auth, lrs_session
from microcred_sync.outbox.sinks import LrsSink


class Pages:
    """A statement query answered from a table of pages by path and query."""

    def __init__(self) -> None:
        self.pages: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str | None, str | None]] = []
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                pages.requests.append(
                    (
                        self.path,
                        self.headers.get("Authorization"),
                        self.headers.get("X-Experience-API-Version"),
                    )
                )
                body = json.dumps(pages.pages.get(self.path, {"statements": []}))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pages() -> Iterator[Pages]:
    server = Pages()
    try:
        yield server
    finally:
        server.close()


def _client(endpoint: str) -> LrsClient:
    sink = LrsSink.model_validate(
        {
            "kind": "lrs",
            "partner": "acme",
            "endpoint": endpoint,
            "auth": {"type": "basic", "username": "u", "password_secret": "X"},
        }
    )
    session = lrs_session(sink, HTTPBasicAuth("u", "p"), root=Path("."))
    return LrsClient(sink, session, connector="acme-lrs")


def _page(*ids: str, more: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {"statements": [{"id": ident} for ident in ids]}
    if more is not None:
        page["more"] = more
    return page


def test_more_relative_absolute_and_empty(pages: Pages) -> None:
    """XA-05: a relative `more`, then an absolute one, then an empty one; every
    page carries the auth and version headers."""
    pages.pages = {
        "/xapi/statements": _page("s1", "s2", more="/xapi/statements?cursor=abc"),
        "/xapi/statements?cursor=abc": _page(
            "s3", more=f"{pages.base}/xapi/statements?cursor=def"
        ),
        "/xapi/statements?cursor=def": _page("s4", more=""),
    }
    client = _client(f"{pages.base}/xapi")
    assert [s["id"] for s in client.statements()] == ["s1", "s2", "s3", "s4"]
    assert len(pages.requests) == 3
    assert all(auth and auth.startswith("Basic ") for _, auth, _ in pages.requests)
    assert {version for _, _, version in pages.requests} == {"1.0.3"}


def test_a_repeated_more_stops_the_read(pages: Pages) -> None:
    """XA-05 variant: the same `more` again ends the read instead of looping."""
    pages.pages = {
        "/xapi/statements": _page("s1", more="/xapi/statements?cursor=abc"),
        "/xapi/statements?cursor=abc": _page("s2", more="/xapi/statements?cursor=abc"),
    }
    client = _client(f"{pages.base}/xapi")
    assert [s["id"] for s in client.statements()] == ["s1", "s2"]
    assert len(pages.requests) == 2


def test_a_missing_more_ends_the_read_and_query_is_sent(pages: Pages) -> None:
    """No `more` at all: one page; the query's parameters go on the first page."""
    pages.pages = {"/xapi/statements?limit=5": _page("s1")}
    client = _client(f"{pages.base}/xapi")
    assert [s["id"] for s in client.statements({"limit": "5"})] == ["s1"]


def test_requests_have_a_timeout_and_no_redirects(pages: Pages) -> None:
    """HT-03: every call is bounded; the session does not read proxies from the
    environment (credentials go only where the sink points)."""
    client = _client(f"{pages.base}/xapi")
    assert client.timeout == (5.0, 30.0)
    assert client.session.trust_env is False
    assert isinstance(client.session, requests.Session)


def _sink(endpoint: str, **extra: object) -> LrsSink:
    return LrsSink.model_validate(
        {
            "kind": "lrs",
            "partner": "acme",
            "endpoint": endpoint,
            "auth": {"type": "bearer", "token_secret": "ACME_LRS_TOKEN"},
            **extra,
        }
    )


def test_bearer_token_and_xapi_2_header_on_every_page(
    pages: Pages, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`auth: bearer` sends the token read from its secret; `xapi_version: 2.0.0`
    is the header; the auth object never shows the token."""
    monkeypatch.setenv("ACME_LRS_TOKEN", "tok-123-secret")
    sink = _sink(f"{pages.base}/xapi", xapi_version="2.0.0")
    auth = lrs_auth(sink, None)
    assert "tok-123" not in repr(auth)
    pages.pages = {"/xapi/statements": _page("s1", more="/xapi/statements?p=2")}
    client = LrsClient(sink, lrs_session(sink, auth, Path(".")), connector="acme-lrs")
    assert [s["id"] for s in client.statements()] == ["s1"]
    assert {(auth, version) for _, auth, version in pages.requests} == {
        ("Bearer tok-123-secret", "2.0.0")
    }


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("http://lrs.example.org/xAPI", "loopback"),
        ("ftp://lrs.example.org/xAPI", "https://"),
        ("https://user:pw@lrs.example.org/xAPI", "no user or password"),
        ("https://lrs.example.org/xAPI?x=1", "no query"),
    ],
)
def test_unsafe_endpoints_are_refused(endpoint: str, problem: str) -> None:
    """https by default; plain http only on the loopback interface."""
    with pytest.raises(ValueError, match=problem):
        _sink(endpoint)


def test_loopback_http_and_defaults_are_accepted() -> None:
    """Defaults: xAPI 1.0.3, TLS verified, batches of 100, timeouts set."""
    for endpoint in ("http://127.0.0.1:8100/xAPI/", "http://localhost/xAPI"):
        sink = _sink(endpoint)
        assert not sink.endpoint.endswith("/")
        assert (sink.xapi_version, sink.verify_tls, sink.batch_size) == (
            "1.0.3",
            True,
            100,
        )
