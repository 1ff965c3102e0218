"""Real directories for the ldap connector's tests, started once per session.

- ``openldap``: Debian's slapd with 5,000 invented people, nested and cyclic groups,
  the server's default size limit (500) for ordinary binds, StartTLS and ldaps
  with a CA made here (``examples/example_directory.py`` builds it).
- ``samba``: a throwaway Samba Active Directory domain controller, provisioned in
  a temporary folder, listening on 127.0.0.1 only, with a few hundred users and
  groups added over LDAP (``ad_directory.py``).

``scripts/test.sh`` installs both when missing; without them these tests skip,
except under CI, where they fail.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, ProjectDir

from . import ad_directory, certificates

sys.path.insert(0, str(REPO / "examples"))
import example_directory

PASSWORD_SECRET = "EXAMPLE_DIRECTORY_PASSWORD"
JOB = "example-directory-roster"


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed; scripts/test.sh installs it")
    pytest.skip(f"{what} not found (run scripts/test.sh)")


@pytest.fixture(scope="session")
def tls_files() -> Iterator[dict[str, Path]]:
    """A CA and a server certificate for 127.0.0.1 and localhost, made here."""
    with certificates.temporary_ca("microcred-tls-", under="/var/tmp") as files:
        yield files


@pytest.fixture(scope="session")
def openldap(tls_files: dict[str, Path]) -> Iterator[example_directory.Slapd]:
    """A running slapd with the example directory's 5,000 people."""
    if not example_directory.installed():
        _missing("slapd")
    folder = Path(tempfile.mkdtemp(prefix="microcred-slapd-", dir="/var/tmp"))
    slapd = example_directory.Slapd(folder, tls=tls_files)
    try:
        slapd.load(example_directory.people_ldif(5000))
        slapd.start()
        yield slapd
    finally:
        slapd.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def samba() -> Iterator[ad_directory.SambaDC]:
    """A running Samba AD DC with the test population."""
    if not ad_directory.installed():
        _missing("samba (samba-ad-dc)")
    folder = Path(tempfile.mkdtemp(prefix="microcred-samba-", dir="/var/tmp"))
    dc = ad_directory.SambaDC(folder)
    try:
        dc.provision()
        dc.start()
        dc.populate()
        yield dc
    finally:
        dc.stop()
        shutil.rmtree(folder, ignore_errors=True)


class DirectoryProject:
    """A project folder whose example-directory connector points at a test server."""

    def __init__(self, project: ProjectDir) -> None:
        self.project = project
        self.root = project.root

    def configure(
        self, mapping: dict[str, Any] | None = None, **connector: Any
    ) -> None:
        """Rewrite the connector file with ``connector`` over the example's, and
        the mapping file when given."""
        path = self.root / "connectors" / "example-directory.yaml"
        content = yaml.safe_load((REPO / "connectors" / path.name).read_text())
        content.update(connector)
        path.write_text(yaml.safe_dump(content, allow_unicode=True), encoding="utf-8")
        if mapping is not None:
            target = self.root / "mappings" / "example-directory.yaml"
            target.write_text(yaml.safe_dump(mapping, allow_unicode=True))

    def run(self, **options: Any) -> Any:
        return self.project.run(JOB, **options)

    def snapshot(self, key: str) -> tuple[str, list[str]] | None:
        """The stored status and programs of a learner, by source key."""
        connection = self.project.state()
        try:
            row = connection.execute(
                "select status, programs from snapshots where source_key = ?", (key,)
            ).fetchone()
        finally:
            connection.close()
        if row is None:
            return None
        return row[0], yaml.safe_load(row[1])


@pytest.fixture
def directory_project(
    project_dir: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> DirectoryProject:
    """The repository's configuration in tmp_path, the directory's password set."""
    monkeypatch.setenv(PASSWORD_SECRET, example_directory.PASSWORD)
    return DirectoryProject(project_dir)


@pytest.fixture
def ldap_admin(openldap: example_directory.Slapd) -> Iterator[Any]:
    """An ldap3 connection bound as the slapd's admin, for changing entries."""
    from ldap3 import Connection, Server

    connection = Connection(
        Server(openldap.url),
        example_directory.ADMIN_DN,
        example_directory.PASSWORD,
        auto_bind=True,
        raise_exceptions=True,
    )
    try:
        yield connection
    finally:
        connection.unbind()
