"""A throwaway PostgreSQL for a benchmark: Debian's server (``scripts/test.sh``
installs it), initialised in a temporary folder, on 127.0.0.1 on a free port, with
its socket in that folder, stopped and removed afterwards. As root it runs as the
``postgres`` user, from a folder that user can reach (not under root's home)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def throwaway_postgres(max_connections: int = 200) -> Iterator[str]:
    """A running server's base URL (``postgresql+psycopg://postgres@host:port``)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise SystemExit("PostgreSQL is not installed; scripts/test.sh installs it")
    bindir = Path(found[-1]).parent
    base = Path(tempfile.mkdtemp(prefix="microcred-bench-pg-", dir="/var/tmp"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    data, port = base / "data", _free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run(_as_server_user(initdb), check=True, capture_output=True)
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off "
        f"-c max_connections={max_connections}"
    )
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


def create_databases(server: str, *names: str) -> list[str]:
    """Create empty databases ``names`` on ``server``; their URLs."""
    import psycopg

    admin = server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        for name in names:
            connection.execute(f'CREATE DATABASE "{name}"')
    return [f"{server}/{name}" for name in names]
