"""Configuration mistakes caught at load time, each named where the operator made it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from microcred_sync.errors import ConfigError
from microcred_sync.files import load_model, read_yaml
from microcred_sync.project import load_project
from microcred_sync.scheduler.jobs import JobsFile, Schedule
from microcred_sync.settings import load_settings
from microcred_sync.sqlutil import make_engine
from tests.conftest import ProjectDir


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "source.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _root(tmp_path: Path, toml: str = "") -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.toml").write_text(toml, encoding="utf-8")
    return tmp_path


@pytest.fixture(autouse=True)
def _no_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings variables of the developer's shell do not leak into these tests."""
    for name in ("ROOT", "STATE_URL", "PLATFORM_URL", "BATCH_SIZE", "LOG_LEVEL"):
        monkeypatch.delenv(f"MICROCRED_{name}", raising=False)


# files.read_yaml


def test_duplicate_key_names_the_file_line_and_key(tmp_path: Path) -> None:
    """A key given twice in a mapping is an error at the second one's line."""
    path = _yaml(tmp_path, "kind: csv\npath: a.csv\npath: b.csv\n")
    with pytest.raises(ConfigError) as raised:
        read_yaml(path, "connectors/hris.yaml")
    assert str(raised.value) == "connectors/hris.yaml: line 3: duplicate key 'path'"


def test_duplicate_key_in_a_nested_mapping_is_an_error(tmp_path: Path) -> None:
    """Duplicates are caught at any depth, not only at the top level."""
    path = _yaml(tmp_path, "fields:\n  email: a\n  name: b\n  email: c\n")
    with pytest.raises(ConfigError, match=r"^m.yaml: line 4: duplicate key 'email'$"):
        read_yaml(path, "m.yaml")


def test_an_unclosed_quote_names_the_line_it_opens_on(tmp_path: Path) -> None:
    """The parser notices the mistake only where the text stops making sense; the
    error also names the line where the quoted text began."""
    text = 'jobs:\n  - id: a\n    schedule: {cron: "30 2 * * *, timezone: UTC}\n'
    path = _yaml(tmp_path, text + "  - id: b\n" * 5)
    with pytest.raises(ConfigError) as raised:
        read_yaml(path, "jobs.yaml")
    message = str(raised.value)
    assert message.startswith("jobs.yaml: line ")
    assert "that begins on line 3)" in message


def test_same_key_in_separate_mappings_is_allowed(tmp_path: Path) -> None:
    """Two list entries may each have their own `id`."""
    path = _yaml(tmp_path, "jobs:\n  - id: a\n  - id: b\n")
    assert read_yaml(path, "jobs.yaml") == {"jobs": [{"id": "a"}, {"id": "b"}]}


def test_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    """A key brought in by `<<:` may be set again in the mapping that merges it."""
    text = "base: &base {tz: UTC, cron: x}\njob:\n  <<: *base\n  tz: Europe/Paris\n"
    document = read_yaml(_yaml(tmp_path, text), "jobs.yaml")
    assert document["job"] == {"tz": "Europe/Paris", "cron": "x"}


def test_yaml_syntax_error_names_the_file_once(tmp_path: Path) -> None:
    """A syntax error reads `<file>: line N: ...` without a repeated file context."""
    path = _yaml(tmp_path, "a: [1, 2\nb: 3\n")
    with pytest.raises(ConfigError) as raised:
        read_yaml(path, "x.yaml")
    assert str(raised.value).startswith("x.yaml: line ")
    assert "file=" not in str(raised.value)


def test_missing_yaml_file_names_the_file_once(tmp_path: Path) -> None:
    """A missing file is reported once, without a `(file=...)` suffix."""
    with pytest.raises(ConfigError) as raised:
        read_yaml(tmp_path / "absent.yaml", "absent.yaml")
    assert str(raised.value) == "absent.yaml: file not found"


# settings


def test_bad_environment_override_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`MICROCRED_BATCH_SIZE=abc` is blamed on the variable, not on the file."""
    root = _root(tmp_path, "batch_size = 5000\n")
    monkeypatch.setenv("MICROCRED_BATCH_SIZE", "abc")
    with pytest.raises(ConfigError) as raised:
        load_settings(root)
    message = str(raised.value)
    assert message.startswith("MICROCRED_BATCH_SIZE: Input should be a valid integer")
    assert message.endswith("; the variable sets batch_size")
    assert "settings.toml" not in message and "file=" not in message


def test_bad_file_value_names_the_file_and_field(tmp_path: Path) -> None:
    """A bad value in settings.toml, not overridden, names the file and the key."""
    root = _root(tmp_path, "batch_size = 0\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(root)
    message = str(raised.value)
    assert message.startswith("config/settings.toml: batch_size: ")
    assert "file=" not in message


def test_invalid_database_url_names_the_setting(tmp_path: Path) -> None:
    """`state_url = "notaurl"` is a configuration error naming `state_url`."""
    root = _root(tmp_path, 'state_url = "notaurl"\n')
    with pytest.raises(ConfigError, match=r"settings.toml: state_url: not a database"):
        load_settings(root)


def test_invalid_platform_url_from_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A malformed `MICROCRED_PLATFORM_URL` is blamed on that variable."""
    monkeypatch.setenv("MICROCRED_PLATFORM_URL", "notaurl")
    with pytest.raises(ConfigError, match=r"^MICROCRED_PLATFORM_URL: not a database"):
        load_settings(_root(tmp_path))


def test_unknown_database_kind_is_rejected(tmp_path: Path) -> None:
    """A misspelt dialect (`sqllite://`) is caught before any engine is made."""
    root = _root(tmp_path, 'platform_url = "sqllite:///var/p.db"\n')
    with pytest.raises(ConfigError, match=r"platform_url: unknown database kind"):
        load_settings(root)


def test_invalid_url_error_does_not_show_the_url(tmp_path: Path) -> None:
    """The URL may hold a password, so the error does not repeat it."""
    root = _root(tmp_path, 'state_url = "nota:s3cret@url"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(root)
    assert "s3cret" not in str(raised.value)


def test_valid_database_urls_are_accepted(tmp_path: Path) -> None:
    """SQLite and PostgreSQL URLs pass, without the PostgreSQL driver installed."""
    toml = (
        'state_url = "sqlite:///var/s.db"\nplatform_url = "postgresql+psycopg://h/db"\n'
    )
    settings = load_settings(_root(tmp_path, toml))
    assert settings.platform_url == "postgresql+psycopg://h/db"


# sqlutil.make_engine


def test_missing_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PostgreSQL URL without psycopg installed says how to install it."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigError) as raised:
        make_engine("postgresql+psycopg://user:s3cret@db/x")
    assert str(raised.value) == (
        "the database URL needs the psycopg driver: "
        "pip install 'microcred-sync[postgres]'"
    )


def test_a_database_other_than_sqlite_or_postgresql_is_refused_by_name() -> None:
    """Not advice to install a driver for a database the project does not run on;
    the URL (maybe with a password) is not repeated."""
    with pytest.raises(ConfigError) as raised:
        make_engine("mysql+pymysql://user:s3cret@db/x")
    assert str(raised.value) == (
        "the database URL names mysql: microcred-sync keeps its state and the sql "
        "platform on SQLite or PostgreSQL"
    )


def test_a_database_url_that_is_no_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"^the database URL is not a URL"):
        make_engine("state.db")


def test_unknown_driver_is_a_configuration_error() -> None:
    """A driver name SQLAlchemy does not know is a ConfigError, not a crash."""
    with pytest.raises(ConfigError, match=r"unknown database or driver 'postgresql"):
        make_engine("postgresql+nosuchdriver://db/x")


# scheduler/jobs.py Schedule


def test_unknown_time_zone_is_rejected() -> None:
    """A misspelt zone (`Europe/Pariss`) fails validation with its name."""
    with pytest.raises(ValidationError, match=r"unknown time zone 'Europe/Pariss'"):
        Schedule(cron="30 2 * * *", timezone="Europe/Pariss")


@pytest.mark.parametrize("zone", ["", "../etc/passwd", "Europe", "zone.tab"])
def test_time_zone_that_is_not_a_zone_is_rejected(zone: str) -> None:
    """Empty, path-like, folder and non-zone-file names are unknown zones too."""
    with pytest.raises(ValidationError, match=r"unknown time zone"):
        Schedule(cron="30 2 * * *", timezone=zone)


@pytest.mark.parametrize(
    "cron",
    [
        "30 2 * * *",
        "*/15 * * * *",
        "0 8-18/2 * * 1-5",
        "0,30 6 1,15 jan,jul mon-fri",
        "0 0 31 12 7",
        "0 0 1 DEC SUN",
    ],
)
def test_usual_cron_expressions_are_accepted(cron: str) -> None:
    """Numbers, lists, ranges, steps and month or day names all pass."""
    assert Schedule(cron=cron).cron == cron


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("30 2 * *", "has 5 fields"),
        ("0 30 2 * * *", "has 5 fields"),
        ("60 2 * * *", "minute 60 is out of range 0-59"),
        ("0 24 * * *", "hour 24 is out of range 0-23"),
        ("0 0 0 * *", "day 0 is out of range 1-31"),
        ("0 0 1 13 *", "month 13 is out of range 1-12"),
        ("0 0 * * 8", "weekday 8 is out of range 0-7"),
        ("0 0-25 * * *", "hour 25 is out of range 0-23"),
        ("0 2 * * funday", "the weekday field 'funday' is not valid"),
        ("0 2 * mon *", "the month field 'mon' is not valid"),
        ("0 2 ? * *", "the day field '?' is not valid"),
        ("*/x 2 * * *", "the minute field '*/x' is not valid"),
    ],
)
def test_wrong_cron_expressions_are_rejected(cron: str, problem: str) -> None:
    """A wrong field count, an impossible number or an unknown name fails early."""
    with pytest.raises(ValidationError, match=re.escape(problem)):
        Schedule(cron=cron)


def test_jobs_file_error_names_the_field_path(tmp_path: Path) -> None:
    """Loaded from a file, a bad zone reads `<file>: <field path>: <problem>`."""
    path = _yaml(
        tmp_path,
        "jobs:\n  - id: nightly\n    flow: results\n    partner: example-corp\n"
        "    schedule: {cron: '30 2 * * *', timezone: Europe/Pariss}\n",
    )
    with pytest.raises(ConfigError) as raised:
        load_model(path, JobsFile, "scheduler/jobs.yaml")
    assert str(raised.value) == (
        "scheduler/jobs.yaml: jobs.0.schedule.timezone: "
        "unknown time zone 'Europe/Pariss'"
    )


def test_interval_schedule_needs_no_cron() -> None:
    """An interval schedule is still valid without a cron expression."""
    assert Schedule(interval_minutes=5, timezone="Europe/Paris").cron is None


# project files


def test_a_connector_file_without_kind_lists_the_kinds(project_dir: ProjectDir) -> None:
    (project_dir.root / "connectors" / "extra.yaml").write_text(
        "partner: example-corp\npath: inbox/*.csv\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as raised:
        load_project(load_settings(project_dir.root))
    assert str(raised.value).startswith(
        "connectors/extra.yaml: kind: missing (known: csv, http, ldap, salesforce,"
    )


def test_a_yml_file_among_the_connectors_is_named_not_skipped(
    project_dir: ProjectDir,
) -> None:
    """Skipped, its job would only say there is no connectors/NAME.yaml."""
    (project_dir.root / "connectors" / "payroll.yml").write_text(
        "kind: csv\npartner: example-corp\npath: inbox/*.csv\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as raised:
        load_project(load_settings(project_dir.root))
    assert str(raised.value) == (
        "connectors/payroll.yml: files in connectors/ end in .yaml; "
        "rename it payroll.yaml"
    )
