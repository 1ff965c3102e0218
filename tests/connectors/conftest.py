"""Servers the connector tests share: OpenSSH's sshd for the SFTP pickup.

``scripts/test.sh`` installs openssh-server when missing; without it the SFTP
tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .sftp_server import SSHD, Sshd, start_sshd


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """One sshd on 127.0.0.1 for the session, in its own configuration."""
    if not SSHD.is_file():
        if os.environ.get("CI"):
            pytest.fail("openssh-server is not installed; scripts/test.sh installs it")
        pytest.skip("sshd not found (run scripts/test.sh)")
    server = start_sshd(Path(tmp_path_factory.mktemp("sshd")))
    try:
        yield server
    finally:
        server.stop()
