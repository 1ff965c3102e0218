"""Shared fixtures: a throwaway project folder with its own files and databases."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from microcred_sync.project import load_project
from microcred_sync.settings import Settings
from microcred_sync.state.store import StateStore
from microcred_sync.sync.roster import RunOptions, RunOutcome, run_roster

if TYPE_CHECKING:
    from microcred_sync.results.importer import ImportReport

    from .databases import Databases, DbConnection

#: Database fixtures and the ``both_databases`` marker (imported by pytest first,
#: so that its asserts are rewritten).
pytest_plugins = ["tests.databases"]

REPO = Path(__file__).resolve().parents[1]

HEADER = (
    "Employee ID,First Name,Last Name,Preferred Name,Work Email,Department,"
    "Job Title,Job Level,Manager ID,Location,Employment Status,Hire Date,"
    "Termination Date"
)


def employee_row(number: int, **overrides: str) -> str:
    """One HRIS export row for an invented employee ``number``."""
    cells = {
        "id": f"{number:06d}",
        "first": f"Given{number}",
        "last": f"Family{number}",
        "preferred": "",
        "email": f"person{number}@example-corp.com",
        "department": ["Analytics", "Engineering", "Sales", "Finance"][number % 4],
        "title": "Analyst",
        "level": str(1 + number % 7),
        "manager": "",
        "location": "Lyon",
        "status": "Active",
        "hired": "03-02-2019",
        "left": "",
    }
    cells.update(overrides)
    return ",".join(cells.values())


class ProjectDir:
    """A project folder in tmp_path: the repository's config, its own inbox, and
    its databases (SQLite under var/ by default, or those the settings name)."""

    def __init__(self, root: Path, databases: Databases | None = None) -> None:
        from .databases import Databases

        self.root = root
        self.databases = databases or Databases(
            "sqlite",
            f"sqlite:///{root / 'var' / 'state.db'}",
            f"sqlite:///{root / 'var' / 'platform.db'}",
        )
        self.inbox = root / "inbox"
        self.inbox.mkdir()

    def write_roster(self, rows: list[str], name: str = "hris-export.csv") -> Path:
        path = self.inbox / name
        text = "\r\n".join([HEADER, *rows]) + "\r\n"
        path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        return path

    def run(self, job: str = "example-corp-roster", **options: Any) -> RunOutcome:
        """One run of ``job`` in this folder, through the library."""
        project = load_project(Settings(root=self.root))
        return run_roster(project, job, RunOptions(**options))

    def import_results(self, path: Path, partner: str) -> ImportReport:
        """The results and awards of the file at ``path`` stored for ``partner``
        in this folder's platform database, through the library."""
        from microcred_sync.platform.sql import SqlPlatform
        from microcred_sync.results.importer import import_rows, read_rows

        project = load_project(Settings(root=self.root))
        settings = project.settings
        platform = SqlPlatform(settings.database_url(settings.platform_url))
        try:
            programs = project.programs_of(partner)
            return import_rows(read_rows(path), partner, programs, platform)
        finally:
            platform.close()

    def state_store(self) -> StateStore:
        """The state store the settings name (SQLite under var/ by default)."""
        settings = Settings(root=self.root)
        return StateStore(settings.database_url(settings.state_url))

    def platform(self) -> DbConnection:
        return self.databases.connect("platform")

    def state(self) -> DbConnection:
        return self.databases.connect("state")

    def scalar(self, database: str, query: str, *args: object) -> object:
        connection = self.platform() if database == "platform" else self.state()
        try:
            return connection.execute(query, args).fetchone()[0]
        finally:
            connection.close()


@pytest.fixture
def project_dir(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database_backend: str,
    request: pytest.FixtureRequest,
) -> ProjectDir:
    """A copy of the repository's configuration, reading `inbox/*.csv`; its
    databases on PostgreSQL when the test runs there (``both_databases``)."""
    root = tmp_path / "project"
    root.mkdir()
    for folder in ("config", "connectors", "mappings", "scheduler"):
        shutil.copytree(REPO / folder, root / folder)
    connector = root / "connectors" / "example-corp-hris.yaml"
    text = connector.read_text(encoding="utf-8")
    text = text.replace("examples/example-corp/inbox/hris-export-*.csv", "inbox/*.csv")
    connector.write_text(text, encoding="utf-8")
    for name in ("MICROCRED_ROOT", "MICROCRED_STATE_URL", "MICROCRED_PLATFORM_URL"):
        monkeypatch.delenv(name, raising=False)
    if database_backend == "sqlite":
        return ProjectDir(root)
    databases: Databases = request.getfixturevalue("databases")
    monkeypatch.setenv("MICROCRED_STATE_URL", databases.state_url)
    monkeypatch.setenv("MICROCRED_PLATFORM_URL", databases.platform_url)
    return ProjectDir(root, databases)


@pytest.fixture
def employees() -> Callable[[int], list[str]]:
    """``n`` valid, active employee rows."""
    return lambda n: [employee_row(number) for number in range(1, n + 1)]
