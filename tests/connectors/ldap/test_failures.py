"""Failing safe: dropped and stalled connections, failover, bad configuration."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from microcred_sync.connectors.ldap import LdapConnector
from microcred_sync.errors import ConfigError, ReadIncomplete, SourceUnavailable
from microcred_sync.project import load_project
from microcred_sync.settings import Settings

from .conftest import DirectoryProject, example_directory

PEOPLE = example_directory.PEOPLE


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_DIRECTORY_PASSWORD", example_directory.PASSWORD)


def _source(servers: list[str], **config: Any) -> Any:
    content = {
        "kind": "ldap",
        "partner": "example-directory",
        "servers": servers,
        "bind_dn": example_directory.READER_DN,
        "password_secret": "EXAMPLE_DIRECTORY_PASSWORD",
        "base_dns": [PEOPLE],
        **config,
    }
    return LdapConnector.model_validate(content).open_source("test", Path("."))


class CuttingProxy:
    """A loopback TCP proxy to the directory that cuts its first ``cuts``
    connections once ``after`` bytes have come back from the server (LD-06)."""

    def __init__(self, target_port: int, after: int, cuts: int) -> None:
        self.target_port, self.after, self.cuts = target_port, after, cuts
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            cut = self.connections <= self.cuts
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(
                target=self._pipe, args=(client, server, None), daemon=True
            ).start()
            limit = self.after if cut else None
            threading.Thread(
                target=self._pipe, args=(server, client, limit), daemon=True
            ).start()

    def _pipe(
        self, source: socket.socket, target: socket.socket, limit: int | None
    ) -> None:
        sent = 0
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                if limit is not None and sent + len(chunk) > limit:
                    target.sendall(chunk[: limit - sent])
                    break
                target.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.stopped = True
        self.listener.close()


@pytest.fixture
def proxy(openldap: Any) -> Iterator[Any]:
    made: list[CuttingProxy] = []

    def make(after: int, cuts: int) -> CuttingProxy:
        made.append(CuttingProxy(openldap.port, after, cuts))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_dropped_connection_is_reopened_and_nothing_is_read_twice(
    proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The socket drops mid-search; the read reconnects, starts the search over,
    skips what it already gave, and ends with every person once."""
    cutting = proxy(after=60_000, cuts=1)
    source = _source(
        [f"ldap://127.0.0.1:{cutting.port}"],
        page_size=50,
        filter="(uid=p01*)",
        attributes=["uid"],
    )
    with caplog.at_level(logging.WARNING):
        records = list(source.read())
    uids = [record.fields["uid"] for record in records]
    assert len(uids) == 1000 and len(set(uids)) == 1000
    assert cutting.connections == 2
    assert "lost" in caplog.text and "reconnecting" in caplog.text


def test_connection_that_keeps_dropping_ends_the_read_as_incomplete(proxy: Any) -> None:
    """After the configured retries the read fails; it never looks complete."""
    cutting = proxy(after=60_000, cuts=100)
    source = _source(
        [f"ldap://127.0.0.1:{cutting.port}"],
        page_size=50,
        filter="(uid=p01*)",
        attributes=["uid"],
        retries=2,
    )
    read: list[Any] = []
    with pytest.raises(ReadIncomplete, match="dropped 3 times"):
        read.extend(source.read())
    assert read  # what came before is kept; the planner suspends nobody


def test_server_that_never_answers_times_out() -> None:
    """A server that accepts TCP but never replies fails within the timeouts."""
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        source = _source(
            [f"ldap://127.0.0.1:{port}"],
            connect_timeout=1,
            operation_timeout=1,
            retries=0,
        )
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match=f"127.0.0.1:{port}"):
            list(source.read())
        assert time.monotonic() - started < 10
    finally:
        silent.close()


def test_failover_to_the_next_server(openldap: Any) -> None:
    """A server that is down is skipped for the next one in the list."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    source = _source(
        [f"ldap://127.0.0.1:{dead}", openldap.url],
        base_dns=[f"ou=Équipe Réseau,{PEOPLE}"],
        connect_timeout=2,
    )
    assert len(list(source.read())) == 1


def test_wrong_password_is_refused_before_any_record(
    openldap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused bind names the server and the bind DN, never the password."""
    monkeypatch.setenv("EXAMPLE_DIRECTORY_PASSWORD", "not-the-password")
    with pytest.raises(SourceUnavailable) as raised:
        list(_source([openldap.url]).read())
    message = str(raised.value)
    assert openldap.url in message and "cn=reader" in message
    assert "not-the-password" not in message


def test_missing_secret_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The secret is named; nothing is connected to."""
    monkeypatch.delenv("EXAMPLE_DIRECTORY_PASSWORD")
    with pytest.raises(ConfigError, match="EXAMPLE_DIRECTORY_PASSWORD"):
        list(_source(["ldap://127.0.0.1:1"]).read())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"servers": ["http://dc1"]},
            "servers: 'http://dc1': a server is an ldap:// or ldaps:// URL",
        ),
        (
            {"base_dns": ["not a dn"]},
            "base_dns: Value error, 'not a dn' is not a distinguished name",
        ),
        (
            {"filter": "objectClass=user"},
            "filter: Value error, a search filter is enclosed in parentheses",
        ),
        ({"kind": "ldapp"}, "kind: unknown kind 'ldapp' (known: csv, http, ldap,"),
        ({"page_size": 0}, "page_size: Input should be greater than or equal to 1"),
        (
            {"password_secret": None},
            "give both bind_dn and password_secret, or neither",
        ),
    ],
)
def test_bad_connector_file_is_one_line_naming_file_field_problem(
    directory_project: DirectoryProject, change: dict[str, Any], problem: str
) -> None:
    """`microcred-sync check` stops on a bad ldap connector file with one line."""
    directory_project.configure(**change)
    with pytest.raises(ConfigError) as raised:
        load_project(Settings(root=directory_project.root))
    message = str(raised.value)
    assert message.startswith("connectors/example-directory.yaml: ")
    assert problem.replace("Value error, ", "") in message
    assert "\n" not in message
