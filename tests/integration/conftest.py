"""A throwaway PostgreSQL server for the tests, started once per session.

It is Debian's PostgreSQL (``scripts/test.sh`` installs it when missing), initialised
in a temporary folder, listening on 127.0.0.1 on a free port, stopped afterwards.
PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user, with
its folder where that user can reach it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    return (
        ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL of a running PostgreSQL (database name to be appended)."""
    bindir = _bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; scripts/test.sh installs it")
        pytest.skip("PostgreSQL server binaries not found (run scripts/test.sh)")
    base = Path(tempfile.mkdtemp(prefix="microcred-pg-", dir="/var/tmp"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    data, port = base / "data", _free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run(_as_server_user(initdb), check=True, capture_output=True)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w"]
    subprocess.run(
        _as_server_user([*pg_ctl, "-o", options, "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_server_user([*pg_ctl, "-m", "fast", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_databases(postgres_server: str) -> tuple[str, str]:
    """Two fresh databases on the server: the state store's and the platform's."""
    import psycopg

    names = [f"state_{uuid.uuid4().hex[:8]}", f"platform_{uuid.uuid4().hex[:8]}"]
    admin = postgres_server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        for name in names:
            connection.execute(f'CREATE DATABASE "{name}"')
    return f"{postgres_server}/{names[0]}", f"{postgres_server}/{names[1]}"
