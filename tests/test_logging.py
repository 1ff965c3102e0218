"""Log lines: redaction on every handler, run context, JSON when configured."""

from __future__ import annotations

import json
import logging

import pytest

from microcred_sync.errors import ConfigError
from microcred_sync.logging import configure, redact, run_logger


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("login with password=hunter2 failed", "hunter2"),
        ("GET https://svc:s3cr3t@hris.example.com/api", "s3cr3t"),
        ("Authorization: Bearer eyJhbGciOi.abc.def", "eyJhbGciOi.abc.def"),
        ("token=abc123&page=2", "abc123"),
    ],
)
def test_credentials_are_masked(line: str, secret: str) -> None:
    """Anything that looks like a credential becomes [secure]."""
    cleaned = redact(line)
    assert secret not in cleaned and "[secure]" in cleaned


def test_json_lines_carry_run_context_and_are_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In JSON mode each event is one object with run id, job and partner."""
    configure("INFO", "json")
    try:
        log = run_logger("microcred_sync.test", run_id="r1", job="j1", partner="p1")
        log.warning("retrying after password=%s", "topsecret")
    finally:
        logging.getLogger("microcred_sync").handlers.clear()
        logging.getLogger("microcred_sync").propagate = True
    event = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert event["run_id"] == "r1" and event["job"] == "j1" and event["partner"] == "p1"
    assert "topsecret" not in event["message"] and event["level"] == "WARNING"


def test_an_error_naming_a_secret_reads_whole_in_the_log() -> None:
    """The name of a secret is no secret: an error that names one is logged as
    written, its context in its parentheses."""
    error = ConfigError(
        "secret EXAMPLE_DIRECTORY_PASSWORD is not set in the environment",
        secret_name="EXAMPLE_DIRECTORY_PASSWORD",
    )
    assert redact(f"job x could not run: {error}") == f"job x could not run: {error}"
    assert str(error).endswith("(secret_name=EXAMPLE_DIRECTORY_PASSWORD)")
