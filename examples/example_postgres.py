"""A throwaway PostgreSQL server, for the tests, the benchmarks and a look by hand.

    python examples/example_postgres.py [--max-connections 200] [--databases NAME...]

initialises Debian's PostgreSQL (``scripts/test.sh`` installs it when missing) in a
temporary folder, starts it on 127.0.0.1 on a free port with its socket in that
folder and ``fsync`` off, creates the ``--databases`` named and prints their URLs,
runs until Ctrl-C, then stops it and deletes everything.
PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user, from
a folder that user can reach (under ``/var/tmp``, not root's home). The tests
(``tests/databases.py``) and ``benchmarks/scheduler.py`` use ``throwaway_postgres``
and ``create_databases`` from here too.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def bindir() -> Path | None:
    """The newest installed server's ``bin`` folder, or None when none is here."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def throwaway_postgres(max_connections: int = 200) -> Iterator[str]:
    """A running server's base URL (``postgresql+psycopg://postgres@host:port``,
    database name to be appended); raises SystemExit when PostgreSQL is missing."""
    server_bin = bindir()
    if server_bin is None:
        raise SystemExit("PostgreSQL is not installed; scripts/test.sh installs it")
    base = Path(tempfile.mkdtemp(prefix="microcred-pg-", dir="/var/tmp"))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    data, port = base / "data", _free_port()
    initdb = [str(server_bin / "initdb"), "-D", str(data)]
    subprocess.run(
        _as_server_user([*initdb, "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off "
        f"-c max_connections={max_connections}"
    )
    pg_ctl = [str(server_bin / "pg_ctl"), "-D", str(data), "-l", str(base / "log")]
    subprocess.run(
        _as_server_user([*pg_ctl, "-w", "-o", options, "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_server_user([*pg_ctl, "-w", "-m", "fast", "stop"]),
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


def drop_databases(server: str, *names: str) -> None:
    """Drop databases ``names`` on ``server`` (closing their sessions), then write
    out the server's dirty pages: whatever runs next neither vacuums nor flushes
    what those databases left behind."""
    import psycopg

    admin = server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        for name in names:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute("CHECKPOINT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-connections", type=int, default=200)
    parser.add_argument("--databases", nargs="*", default=[], metavar="NAME")
    arguments = parser.parse_args()
    # A plain kill stops the server and deletes its folder too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with throwaway_postgres(arguments.max_connections) as server:
        for name, url in zip(
            arguments.databases,
            create_databases(server, *arguments.databases),
            strict=True,
        ):
            print(f"{name}: {url}")
        print(f"PostgreSQL on {server}/postgres; Ctrl-C stops it", flush=True)
        with suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
