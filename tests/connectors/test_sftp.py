"""SFTP pickup of CSV drops, against OpenSSH's sshd on 127.0.0.1."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import tracemalloc
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from microcred_sync.connectors.base import SourceContext
from microcred_sync.connectors.csv import CsvConnector, CsvSource
from microcred_sync.errors import ReadError, ReadIncomplete, SourceUnavailable
from tests.conftest import HEADER, ProjectDir, employee_row

from .sftp_password_server import PasswordSftp
from .sftp_server import Sshd, make_key

# paramiko's own prefetch thread may be sending its next request when a test drops
# the session: that thread then dies with "Socket is closed", possibly only while
# the next test starts (the read itself fails, which is what the test is about).
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*_prefetch_thread:pytest.PytestUnhandledThreadExceptionWarning"
)

KEY_SECRET = "TEST_SFTP_KEY"


def roster(numbers: range) -> bytes:
    """An HRIS export (the example's columns) with employees ``numbers``."""
    rows = [employee_row(number) for number in numbers]
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode("utf-8")


@dataclass
class Drop:
    """A drop folder with its archive and rejected folders, served by sshd."""

    server: Sshd
    folder: Path
    secrets: Path
    state_url: str

    @property
    def archive(self) -> Path:
        return self.folder / "archive"

    @property
    def rejected(self) -> Path:
        return self.folder / "rejected"

    def sftp_section(self, **overrides: Any) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.server.port,
            "username": self.server.user,
            "key_secret": KEY_SECRET,
            "host_keys": [self.server.host_key_line],
            "directory": str(self.folder),
            "pattern": "hris-*.csv",
            "archive_directory": str(self.archive),
            "rejected_directory": str(self.rejected),
            "ready": {"stable_seconds": 0.2},
            "timeout_seconds": 10,
            **overrides,
        }

    def source(self, **overrides: Any) -> CsvSource:
        """A csv source reading this drop, attached to its secrets and state."""
        config = CsvConnector.model_validate(
            {
                "kind": "csv",
                "partner": "acme",
                "required_columns": ["employee_id"],
                "sftp": self.sftp_section(**overrides),
            }
        )
        source = config.open_source("hris-sftp", self.folder)
        source.attach(SourceContext(self.secrets, self.state_url))
        return source

    def put(self, name: str, content: bytes, age: float = 0) -> Path:
        """Drop ``content`` as ``name``, modified ``age`` seconds ago."""
        path = self.folder / name
        path.write_bytes(content)
        moment = time.time() - age
        os.utime(path, (moment, moment))
        return path

    def names(self, folder: Path | None = None) -> list[str]:
        return sorted(p.name for p in (folder or self.folder).iterdir() if p.is_file())

    def outcomes(self) -> list[tuple[str, str]]:
        """The files the state store remembers, oldest first."""
        path = self.state_url.removeprefix("sqlite:///")
        with closing(sqlite3.connect(path)) as database:
            tables = database.execute("select name from sqlite_master").fetchall()
            if ("processed_files",) not in tables:
                return []
            rows = database.execute(
                "select name, outcome from processed_files order by processed_at"
            ).fetchall()
        return [(name, outcome) for name, outcome in rows]


@pytest.fixture
def drop(sshd: Sshd, tmp_path: Path) -> Drop:
    """An empty drop folder; the client key in the secrets folder."""
    folder = tmp_path / "outgoing"
    for path in (folder, folder / "archive", folder / "rejected"):
        path.mkdir()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / KEY_SECRET).write_text(sshd.client_key, encoding="utf-8")
    return Drop(sshd, folder, secrets, f"sqlite:///{tmp_path / 'state.db'}")


def keys(source: CsvSource) -> list[str | None]:
    return [str(record.fields["employee_id"]) for record in source.read()]


# -- reading ------------------------------------------------------------------


def test_key_auth_reads_the_newest_file_and_archives_after_commit(drop: Drop) -> None:
    """Key login; the newest match is read; commit archives it and the older one."""
    drop.put("hris-0101.csv", roster(range(1, 3)), age=3600)
    drop.put("hris-0102.csv", roster(range(1, 5)), age=60)
    drop.put("notes.txt", b"not an export", age=0)
    source = drop.source()

    assert keys(source) == ["000001", "000002", "000003", "000004"]
    assert drop.names() == ["hris-0101.csv", "hris-0102.csv", "notes.txt"]

    source.commit()
    assert drop.names() == ["notes.txt"]
    assert drop.names(drop.archive) == ["hris-0101.csv", "hris-0102.csv"]
    assert drop.outcomes() == [("hris-0102.csv", "archived")]


def test_a_file_still_growing_is_not_read_until_stable(drop: Drop) -> None:
    """A file being appended to is read only once it stops changing, in full."""
    path = drop.put("hris-0103.csv", roster(range(1, 2)))

    def keep_writing() -> None:
        for number in range(2, 21):
            time.sleep(0.1)
            with path.open("ab") as export:
                export.write((employee_row(number) + "\r\n").encode())

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        read = keys(drop.source(ready={"stable_seconds": 0.5, "wait_seconds": 20}))
    finally:
        writer.join()

    assert read == [f"{number:06d}" for number in range(1, 21)]


def test_a_file_still_growing_after_the_wait_fails_the_read(drop: Drop) -> None:
    """Past ``wait_seconds`` the read fails before any record; the file stays."""
    path = drop.put("hris-0103.csv", roster(range(1, 2)))
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.wait(0.05):
            with path.open("ab") as export:
                export.write((employee_row(7) + "\r\n").encode())

    writer = threading.Thread(target=keep_writing)
    writer.start()
    source = drop.source(ready={"stable_seconds": 0.3, "wait_seconds": 0.5})
    try:
        with pytest.raises(SourceUnavailable, match=r"hris-0103\.csv is not complete"):
            next(source.read())
    finally:
        stop.set()
        writer.join()
    source.reject()
    assert drop.names() == ["hris-0103.csv"]


def test_a_marker_file_says_when_the_drop_is_complete(drop: Drop) -> None:
    """Without its marker the file is not read; with it, it is, and both archive."""
    drop.put("hris-0104.csv", roster(range(1, 4)))
    source = drop.source(ready={"marker": "{name}.done"})

    with pytest.raises(SourceUnavailable, match=r"marker hris-0104\.csv\.done"):
        next(source.read())

    drop.put("hris-0104.csv.done", b"")
    assert keys(source) == ["000001", "000002", "000003"]
    source.commit()
    assert drop.names(drop.archive) == ["hris-0104.csv", "hris-0104.csv.done"]
    assert drop.names() == []


# -- trust --------------------------------------------------------------------


def test_a_wrong_host_key_is_refused_naming_host_and_fingerprints(
    drop: Drop, tmp_path: Path
) -> None:
    """A server whose key is not the configured one: nothing is read or moved."""
    make_key(tmp_path / "other")
    other = " ".join((tmp_path / "other.pub").read_text().split()[:2])
    drop.put("hris-0105.csv", roster(range(1, 3)))
    source = drop.source(host_keys=[other])

    with pytest.raises(SourceUnavailable) as refused:
        next(source.read())

    message = str(refused.value)
    assert f"127.0.0.1:{drop.server.port}" in message
    served = " ".join(
        (drop.server.folder / "host_ed25519_key.pub").read_text().split()[:2]
    )
    assert _fingerprint(served) in message and _fingerprint(other) in message
    source.reject()
    assert drop.names() == ["hris-0105.csv"] and drop.outcomes() == []


def test_a_host_key_of_another_type_is_refused(drop: Drop, tmp_path: Path) -> None:
    """Only an ECDSA key configured, the server has Ed25519: refused, not trusted."""
    make_key(tmp_path / "ecdsa", kind="ecdsa")
    other = " ".join((tmp_path / "ecdsa.pub").read_text().split()[:2])
    drop.put("hris-0105.csv", roster(range(1, 3)))

    with pytest.raises(SourceUnavailable, match="is not the configured one"):
        next(drop.source(host_keys=[other]).read())


def test_no_key_material_in_errors_of_a_refused_login(drop: Drop) -> None:
    """A key the server does not accept: the error names the user, not the key."""
    (drop.secrets / "OTHER_KEY").write_text(_new_private_key(drop), encoding="utf-8")
    drop.put("hris-0106.csv", roster(range(1, 3)))

    with pytest.raises(SourceUnavailable, match="refused the login") as refused:
        next(drop.source(key_secret="OTHER_KEY").read())

    assert "PRIVATE KEY" not in str(refused.value)


def test_password_auth_against_an_ssh_library_server(
    drop: Drop, tmp_path: Path
) -> None:
    """Password login (paramiko's server mode: sshd as root would need a system
    user); a wrong password is refused without showing it."""
    make_key(tmp_path / "password-host")
    server = PasswordSftp(tmp_path / "password-host", "hris", "correct-horse-42")
    host_key = " ".join((tmp_path / "password-host.pub").read_text().split()[:2])
    (drop.secrets / "SFTP_PASSWORD").write_text("correct-horse-42", encoding="utf-8")
    login = {
        "port": server.port,
        "username": "hris",
        "key_secret": None,
        "password_secret": "SFTP_PASSWORD",
        "host_keys": [host_key],
    }
    drop.put("hris-0106.csv", roster(range(1, 4)))
    try:
        source = drop.source(**login)
        assert keys(source) == ["000001", "000002", "000003"]
        source.commit()
        assert drop.names(drop.archive) == ["hris-0106.csv"]

        drop.put("hris-0107.csv", roster(range(1, 3)))
        (drop.secrets / "SFTP_PASSWORD").write_text("wrong-horse-43", encoding="utf-8")
        with pytest.raises(SourceUnavailable, match="refused the login") as refused:
            next(drop.source(**login).read())
        assert "wrong-horse-43" not in str(refused.value)
    finally:
        server.close()


def test_the_file_is_streamed_not_loaded(drop: Drop) -> None:
    """A 12 MB drop is read with well under its size in memory."""
    drop.put("hris-0114.csv", roster(range(1, 120_001)))
    source = drop.source()
    size = (drop.folder / "hris-0114.csv").stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for _ in source.read())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 120_000
    assert size > 12_000_000 and peak < 0.6 * size


# -- files read once ----------------------------------------------------------


def test_a_file_that_appears_twice_is_read_once(drop: Drop) -> None:
    """The same content under another name, or re-uploaded, is skipped."""
    content = roster(range(1, 4))
    drop.put("hris-0107.csv", content, age=120)
    first = drop.source()
    assert len(keys(first)) == 3
    first.commit()

    drop.put("hris-0107 (1).csv", content, age=60)
    again = drop.source()
    with pytest.raises(
        SourceUnavailable, match=r"skipped hris-0107 \(1\)\.csv"
    ) as skip:
        next(again.read())
    assert "same content as hris-0107.csv" in str(skip.value)
    again.reject()
    assert drop.names() == []

    # Re-uploaded under its first name after it was archived: still skipped.
    drop.put("hris-0107.csv", content)
    with pytest.raises(SourceUnavailable, match=r"skipped hris-0107\.csv"):
        next(drop.source().read())
    assert drop.outcomes() == [
        ("hris-0107.csv", "archived"),
        ("hris-0107 (1).csv", "duplicate"),
    ]


def test_an_unreadable_file_goes_to_the_rejected_folder(drop: Drop) -> None:
    """A file failing on its own content is rejected after the run, not archived."""
    drop.put("hris-0108.csv", b"first_name,last_name\r\nAnn,Lee\r\n")
    source = drop.source()

    with pytest.raises(ReadError, match="required column"):
        list(source.read())
    source.reject()

    assert drop.names() == [] and drop.names(drop.rejected) == ["hris-0108.csv"]
    assert drop.outcomes() == [("hris-0108.csv", "rejected")]


def test_an_archived_name_taken_gets_a_stamped_name(drop: Drop) -> None:
    """A second export under a name already archived is archived beside it."""
    (drop.archive / "hris-0109.csv").write_bytes(b"older")
    drop.put("hris-0109.csv", roster(range(1, 3)))
    source = drop.source()
    list(source.read())
    source.commit()

    archived = drop.names(drop.archive)
    assert len(archived) == 2 and "hris-0109.csv" in archived
    assert (drop.archive / "hris-0109.csv").read_bytes() == b"older"


# -- the connection -----------------------------------------------------------


def test_a_dropped_connection_fails_the_read_and_leaves_the_file(drop: Drop) -> None:
    """Sessions killed mid-read: ReadIncomplete naming host and path; no move."""
    drop.put("hris-0110.csv", roster(range(1, 150_001)))
    source = drop.source(timeout_seconds=5)
    records = source.read()
    next(records)

    assert drop.server.drop_sessions() > 0
    with pytest.raises(ReadIncomplete) as dropped:
        for _ in records:
            pass

    message = str(dropped.value)
    assert f"127.0.0.1:{drop.server.port}" in message
    assert str(drop.folder / "hris-0110.csv") in message
    source.reject()
    assert drop.names() == ["hris-0110.csv"] and drop.outcomes() == []


def test_an_unreachable_server_is_unavailable(drop: Drop) -> None:
    """Nobody listening on the port: the read fails before any record."""
    drop.put("hris-0111.csv", roster(range(1, 3)))
    with pytest.raises(SourceUnavailable, match=r"cannot connect to 127\.0\.0\.1:1: "):
        next(drop.source(port=1).read())


def test_a_missing_archive_folder_fails_before_reading(drop: Drop) -> None:
    """The folders are checked before anything is read."""
    drop.put("hris-0112.csv", roster(range(1, 3)))
    with pytest.raises(SourceUnavailable, match="archive_directory"):
        next(drop.source(archive_directory=str(drop.folder / "nowhere")).read())


# -- configuration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"key_secret": None}, "key_secret or password_secret"),
        ({"host_keys": []}, "at least 1"),
        ({"host_keys": ["|1|abc= ssh-ed25519 AAAA"]}, "hashed"),
        ({"pattern": "in/*.csv"}, "without /"),
        ({"ready": {"marker": "done"}}, "{name} or {stem}"),
    ],
)
def test_bad_sftp_sections_are_refused(
    drop: Drop, change: dict[str, Any], problem: str
) -> None:
    """Sections that cannot work are refused when the connector file is read."""
    with pytest.raises(ValidationError, match=problem.replace("{", "\\{")):
        drop.source(**change)


def test_a_known_hosts_line_for_another_host_is_refused(drop: Drop) -> None:
    """A known_hosts line must name the configured host."""
    line = f"other.example.com {drop.server.host_key_line}"
    with pytest.raises(ValidationError, match=r"not 127\.0\.0\.1"):
        drop.source(host_keys=[line])
    named = f"[127.0.0.1]:{drop.server.port} {drop.server.host_key_line}"
    drop.put("hris-0113.csv", roster(range(1, 3)))
    assert len(keys(drop.source(host_keys=[named]))) == 2


def test_path_and_sftp_together_are_refused() -> None:
    """A csv connector reads a local path or an SFTP drop, not both."""
    with pytest.raises(ValidationError, match="either `path`"):
        CsvConnector.model_validate({"kind": "csv", "partner": "acme"})


# -- the roster flow ------------------------------------------------------------


def test_roster_runs_end_to_end_from_sftp(
    project_dir: ProjectDir, drop: Drop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Provisioned from a drop; then no file, a duplicate and a wrong host key all
    fail the run without suspending anyone."""
    _point_example_at(project_dir, drop)
    monkeypatch.setenv(KEY_SECRET, drop.server.client_key)
    drop.put("hris-1201.csv", roster(range(1, 41)), age=60)

    first = project_dir.run()
    assert first.status == "done", first.error
    assert _active(project_dir) == 40
    assert drop.names(drop.archive) == ["hris-1201.csv"]

    missing = project_dir.run()
    assert missing.status == "failed" and "no file" in (missing.error or "")

    drop.put("hris-1202.csv", roster(range(1, 41)))
    duplicate = project_dir.run()
    assert duplicate.status == "failed" and "skipped" in (duplicate.error or "")
    assert drop.names(drop.archive) == ["hris-1201.csv", "hris-1202.csv"]

    drop.put("hris-1203.csv", roster(range(1, 11)))
    _point_example_at(project_dir, drop, host_key=_other_host_key(drop))
    refused = project_dir.run()
    assert refused.status == "failed" and "host key" in (refused.error or "")
    assert _active(project_dir) == 40
    assert drop.names() == ["hris-1203.csv"]


def _point_example_at(
    project_dir: ProjectDir, drop: Drop, host_key: str | None = None
) -> None:
    """Rewrite the example connector to read the drop over SFTP."""
    import yaml

    path = project_dir.root / "connectors" / "example-corp-hris.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config.pop("path", None)
    config["sftp"] = drop.sftp_section()
    if host_key is not None:
        config["sftp"]["host_keys"] = [host_key]
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def _active(project_dir: ProjectDir) -> int:
    query = "select count(*) from learners where status = 'active'"
    return int(project_dir.scalar("platform", query))  # type: ignore[call-overload]


def _other_host_key(drop: Drop) -> str:
    folder = drop.folder.parent / "other-host"
    folder.mkdir(exist_ok=True)
    make_key(folder / "key")
    return " ".join((folder / "key.pub").read_text().split()[:2])


def _new_private_key(drop: Drop) -> str:
    folder = drop.folder.parent / "other-client"
    folder.mkdir(exist_ok=True)
    make_key(folder / "key")
    return (folder / "key").read_text(encoding="utf-8")


def _fingerprint(line: str) -> str:
    """``ssh-keygen -l``'s SHA256 fingerprint of a public key line."""
    import subprocess

    shown = subprocess.run(
        ["ssh-keygen", "-l", "-f", "-"],
        input=line,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return shown.split()[1]
