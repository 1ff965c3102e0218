"""No secret in a log line, an error message, an alert or the state database: the
example jobs run with their secrets set (from the environment and from the secrets
folder), against the Salesforce emulator and a local webhook, successes and
failures alike, and everything they wrote is searched for the secrets."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cli_runner import cli
from tests.conftest import ProjectDir, employee_row
from tests.connectors.salesforce import emulator
from tests.connectors.salesforce.conftest import (  # noqa: F401  (fixtures)
    jwt_key,
    server,
    tls_folder,
)

from .conftest import WebhookReceiver, add_alerts

DIRECTORY_PASSWORD = "dir-Secret-4c1f9a"
WEBHOOK_TOKEN = "hook-Token-9d2e7b"
WRONG_SF_PASSWORD = "wrong-Pass-77aa51"


@pytest.fixture
def secured(
    project_dir: ProjectDir,
    webhook: WebhookReceiver,
    server: emulator.EmulatorServer,  # noqa: F811
    tls_folder: dict[str, Path],  # noqa: F811
) -> Iterator[ProjectDir]:
    """The example project with its connectors' secrets set, the Salesforce one at
    the emulator, and alerts to a webhook whose URL is itself a secret."""
    path = project_dir.root / "connectors" / "example-association.yaml"
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    content.update(login_url=server.base_url, ca_file=str(tls_folder["ca"]))
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    secrets = project_dir.root / "secrets"
    secrets.mkdir()
    (secrets / "EXAMPLE_DIRECTORY_PASSWORD").write_text(DIRECTORY_PASSWORD + "\n")
    (secrets / "OPS_CHAT_WEBHOOK_URL").write_text(
        f"{webhook.url}/hooks/T0001/B0001/{WEBHOOK_TOKEN}\n"
    )
    add_alerts(project_dir, 'name = "ops-chat"\nurl_secret = "OPS_CHAT_WEBHOOK_URL"')
    for name in emulator.SCHEMA:
        server.org.clear(name)
    server.org.reset()
    for number in range(3):
        server.org.add(
            "Contact",
            FirstName=f"Given{number}",
            LastName=f"Family{number}",
            Email=f"member{number}@example-association.org",
            Member_Number__c=f"M{number:05d}",
            Membership_Level__c="Fellow",
            Membership_Status__c="Active",
            Account={"Name": "Example Employer"},
        )
    project_dir.write_roster([employee_row(number) for number in range(1, 6)])
    yield project_dir
    server.org.reset()


def run(
    project: ProjectDir, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    secrets = {
        "MICROCRED_SECRETS_DIR": str(project.root / "secrets"),
        "MICROCRED_LOG_FORMAT": "json",
        "MICROCRED_LOG_LEVEL": "DEBUG",
        "EXAMPLE_ASSOCIATION_SF_PASSWORD": emulator.PASSWORD,
        "EXAMPLE_ASSOCIATION_SF_TOKEN": emulator.SECURITY_TOKEN,
    }
    return cli(project, *args, env={**secrets, **env})


def test_no_secret_in_logs_errors_alerts_or_state(
    secured: ProjectDir, webhook: WebhookReceiver
) -> None:
    """Every example job, and two that fail with a secret in hand (a directory that
    is not there, a refused Salesforce password): the secrets are nowhere."""
    outputs: list[str] = []
    expected = {
        ("run", "example-corp-roster"): 0,
        ("run", "example-corp-results"): 0,
        ("run", "example-corp-deliver"): 0,
        ("run", "example-association-roster"): 0,
        ("run", "example-association-results"): 0,
        ("run", "example-association-writeback"): 0,
        # Nothing listens on the example directory's port: the run fails.
        ("run", "example-directory-roster"): 1,
        ("status",): 0,
    }
    for args, code in expected.items():
        result = run(secured, *args)
        outputs += [result.stdout, result.stderr]
        assert result.returncode == code, (args, result.stderr[-2000:])
    refused = run(
        secured,
        "run",
        "example-association-roster",
        EXAMPLE_ASSOCIATION_SF_PASSWORD=WRONG_SF_PASSWORD,
    )
    outputs += [refused.stdout, refused.stderr]
    assert refused.returncode == 1

    # The failed runs alerted, through the URL only the secret holds.
    assert webhook.paths and all(WEBHOOK_TOKEN in path for path in webhook.paths)
    alerts = [str(post["body"]) for post in webhook.posts]
    assert any("example-directory-roster" in text for text in alerts)

    secrets = [
        DIRECTORY_PASSWORD,
        WEBHOOK_TOKEN,
        WRONG_SF_PASSWORD,
        emulator.PASSWORD,
        emulator.SECURITY_TOKEN,
    ]
    stored = [
        path.read_bytes()
        for path in (secured.root / "var").rglob("*")
        if path.is_file()
    ]
    assert stored  # the state store, the platform, the file sink's statements
    for secret in secrets:
        for text in outputs + alerts:
            assert secret not in text
        for content in stored:
            assert secret.encode() not in content
    # The logs said what happened, by webhook name, without its URL.
    assert any("webhook ops-chat" in text or "1 webhooks" in text for text in outputs)
    assert not any("/hooks/T0001" in text for text in outputs)
