"""The Salesforce emulator, started once per session on 127.0.0.1 with a
certificate from a CA made here, and connector configurations pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from microcred_sync.connectors.salesforce import SalesforceConnector
from tests.conftest import ProjectDir
from tests.connectors.ldap.certificates import temporary_ca

from . import emulator

SECRETS = {
    "SF_PASSWORD": emulator.PASSWORD,
    "SF_TOKEN": emulator.SECURITY_TOKEN,
    "SF_CONSUMER_KEY": emulator.CONSUMER_KEY,
    "SF_CONSUMER_SECRET": emulator.CONSUMER_SECRET,
}


@pytest.fixture(scope="session")
def tls_folder() -> Iterator[dict[str, Path]]:
    with temporary_ca("microcred-sf-tls-") as files:
        yield files


@pytest.fixture(scope="session")
def jwt_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def server(
    tls_folder: dict[str, Path], jwt_key: rsa.RSAPrivateKey
) -> Iterator[emulator.EmulatorServer]:
    """The emulator, for the whole session."""
    public = jwt_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    org = emulator.Org(jwt_public_key=public)
    running = emulator.EmulatorServer(
        org, tls_folder["cert"], tls_folder["key"]
    ).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def org(server: emulator.EmulatorServer) -> Iterator[emulator.Org]:
    """The emulated org, its contacts and credentials emptied, faults off."""
    for name in emulator.SCHEMA:
        server.org.clear(name)
    server.org.reset()
    yield server.org
    server.org.reset()


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch, jwt_key: rsa.RSAPrivateKey) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    pem = jwt_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    monkeypatch.setenv("SF_PRIVATE_KEY", pem.decode())


@pytest.fixture
def association(
    project_dir: ProjectDir,
    server: emulator.EmulatorServer,
    tls_folder: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> ProjectDir:
    """The repository's configuration, its Salesforce connector at the emulator."""
    path = project_dir.root / "connectors" / "example-association.yaml"
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    content.update(login_url=server.base_url, ca_file=str(tls_folder["ca"]))
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    monkeypatch.setenv("EXAMPLE_ASSOCIATION_SF_PASSWORD", emulator.PASSWORD)
    monkeypatch.setenv("EXAMPLE_ASSOCIATION_SF_TOKEN", emulator.SECURITY_TOKEN)
    return project_dir


def connector(
    server: emulator.EmulatorServer, tls: dict[str, Path], **overrides: Any
) -> SalesforceConnector:
    """A connector file's content pointing at the emulator, with ``overrides``."""
    content: dict[str, Any] = {
        "kind": "salesforce",
        "partner": "example-association",
        "login_url": server.base_url,
        "ca_file": str(tls["ca"]),
        "auth": {
            "type": "password",
            "username": emulator.USERNAME,
            "password_secret": "SF_PASSWORD",
            "security_token_secret": "SF_TOKEN",
        },
        "timeouts": {"connect": 2, "read": 2},
        "retry": {"max_attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05},
        "roster": {"bulk_poll_seconds": 0.01},
    }
    content.update(overrides)
    return SalesforceConnector.model_validate(content)
