"""Fixtures of the outbox tests: a project folder with sinks, a real Ralph LRS
(started once per session) and a fault proxy in front of it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from microcred_sync.outbox import Outbox
from microcred_sync.outbox.deliver import DeliverOutcome, run_deliver
from microcred_sync.outbox.lrs import LrsClient, lrs_auth, lrs_session, read_back
from microcred_sync.outbox.sinks import LrsSink
from microcred_sync.project import Project, load_project
from microcred_sync.settings import Settings
from microcred_sync.state.store import StateStore

from .fault_proxy import FaultProxy
from .ralph_server import LrsUser, Ralph

ACME = LrsUser("acme", "acme-lrs-pass-1", "mailto:lrs-acme@example.org")
GLOBEX = LrsUser("globex", "globex-lrs-pass-2", "mailto:lrs-globex@example.org")

PARTNERS = {
    "partners": [
        {"id": "acme", "name": "Acme Learning"},
        {"id": "globex", "name": "Globex Association"},
    ]
}

#: Retries quick enough for tests; the shape is the production one.
FAST_RETRY = {
    "max_attempts": 6,
    "backoff_base": 0.05,
    "backoff_max": 0.3,
    "retry_after_cap": 3,
}


class SinkProject:
    """A project folder with two partners, sinks and deliver jobs, no sources."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.monkeypatch = root, monkeypatch
        for folder in ("config", "connectors", "mappings", "scheduler"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        self._dump(root / "config" / "partners.yaml", PARTNERS)
        (root / "config" / "settings.toml").write_text(
            'state_url = "sqlite:///var/state.db"\n', encoding="utf-8"
        )
        self.connectors: dict[str, dict[str, Any]] = {}
        self.jobs: list[dict[str, Any]] = []

    @staticmethod
    def _dump(path: Path, document: Any) -> None:
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")

    def lrs_sink(
        self, name: str, partner: str, endpoint: str, user: LrsUser, **extra: Any
    ) -> None:
        """An ``lrs`` sink with basic auth and a deliver job ``<name>-deliver``."""
        secret = f"{name.upper().replace('-', '_')}_PASSWORD"
        self.monkeypatch.setenv(secret, user.password)
        document = {
            "kind": "lrs",
            "partner": partner,
            "endpoint": endpoint,
            "auth": {
                "type": "basic",
                "username": user.username,
                "password_secret": secret,
            },
            "retry": FAST_RETRY,
            **extra,
        }
        self.add(name, document)

    def file_sink(self, name: str, partner: str, path: str, **extra: Any) -> None:
        self.add(name, {"kind": "file", "partner": partner, "path": path, **extra})

    def add(self, name: str, document: dict[str, Any]) -> None:
        self.connectors[name] = document
        self._dump(self.root / "connectors" / f"{name}.yaml", document)
        partner = document["partner"]
        self.jobs.append(
            {
                "id": f"{name}-deliver",
                "flow": "deliver",
                "partner": partner,
                "sinks": [name],
            }
        )
        self._dump(self.root / "scheduler" / "jobs.yaml", {"jobs": self.jobs})

    def project(self) -> Project:
        return load_project(Settings(root=self.root))

    def deliver(self, job: str) -> DeliverOutcome:
        return run_deliver(self.project(), job)

    def store(self) -> StateStore:
        store = StateStore(f"sqlite:///{self.root / 'var' / 'state.db'}")
        store.create_schema()
        return store

    def outbox(self) -> Outbox:
        return Outbox(self.store().engine)

    def client(self, sink: str) -> LrsClient:
        config = self.project().connectors[sink]
        assert isinstance(config, LrsSink)
        session = lrs_session(config, lrs_auth(config, None), self.root)
        return LrsClient(config, session, connector=sink)

    def read_back(
        self, sink: str, activity: str, **params: str
    ) -> list[dict[str, Any]]:
        """What the LRS holds for ``activity``, read with the sink's credentials.

        Ralph 5.1.0's file-system backend matches no statement on an ``activity``
        query, so the statements are read whole and picked here.
        """
        client = self.client(sink)
        try:
            statements = read_back(client, **params)
        finally:
            client.close()
        return [s for s in statements if s.get("object", {}).get("id") == activity]


@pytest.fixture
def sink_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SinkProject:
    for name in list(os.environ):
        if name.startswith("MICROCRED_"):
            monkeypatch.delenv(name)
    return SinkProject(tmp_path / "project", monkeypatch)


@pytest.fixture(scope="session")
def ralph() -> Iterator[Ralph]:
    """A running Ralph with the users ``acme`` and ``globex``."""
    if not Ralph.available():
        if os.environ.get("CI"):
            pytest.fail("Ralph is not installed; scripts/test.sh installs it")
        pytest.skip("Ralph's virtualenv .venv-ralph is missing (run scripts/test.sh)")
    server = Ralph([ACME, GLOBEX])
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def proxy(ralph: Ralph) -> Iterator[FaultProxy]:
    """A fault proxy in front of Ralph, with an empty script."""
    fault_proxy = FaultProxy(ralph.endpoint)
    try:
        yield fault_proxy
    finally:
        fault_proxy.close()


@pytest.fixture
def activity(request: pytest.FixtureRequest) -> str:
    """An activity IRI of this test alone, to read back only its statements."""
    return f"https://courses.example.org/{request.node.name}/{uuid.uuid4().hex[:8]}"
