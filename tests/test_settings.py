"""Settings from `config/settings.toml` and the environment; secrets by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from microcred_sync.errors import ConfigError
from microcred_sync.secrets import read_secret
from microcred_sync.settings import load_settings


def _root(tmp_path: Path, toml: str) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.toml").write_text(toml, encoding="utf-8")
    return tmp_path


def test_file_values_are_read_and_environment_overrides_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value in settings.toml is used unless MICROCRED_<KEY> says otherwise."""
    root = _root(tmp_path, 'batch_size = 250\nlog_format = "json"\n')
    monkeypatch.delenv("MICROCRED_BATCH_SIZE", raising=False)
    assert load_settings(root).batch_size == 250
    monkeypatch.setenv("MICROCRED_BATCH_SIZE", "40")
    settings = load_settings(root)
    assert settings.batch_size == 40 and settings.log_format == "json"


def test_unknown_setting_is_a_configuration_error(tmp_path: Path) -> None:
    """A misspelt key in settings.toml names the file and the key."""
    root = _root(tmp_path, "batch_sise = 10\n")
    with pytest.raises(ConfigError, match=r"config/settings.toml: batch_sise"):
        load_settings(root)


def test_relative_sqlite_urls_are_taken_from_the_root(tmp_path: Path) -> None:
    """`sqlite:///var/state.db` lands under the project folder, wherever we run."""
    settings = load_settings(_root(tmp_path, ""))
    url = settings.database_url(settings.state_url)
    assert url == f"sqlite:///{tmp_path}/var/state.db"
    assert (
        settings.database_url("postgresql+psycopg://db/x")
        == "postgresql+psycopg://db/x"
    )


def test_secret_comes_from_environment_then_secrets_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A named secret is read from the environment, else from its file."""
    (tmp_path / "HRIS_TOKEN").write_text("from-file\n", encoding="utf-8")
    monkeypatch.delenv("HRIS_TOKEN", raising=False)
    assert read_secret("HRIS_TOKEN", tmp_path).get_secret_value() == "from-file"
    monkeypatch.setenv("HRIS_TOKEN", "from-env")
    secret = read_secret("HRIS_TOKEN", tmp_path)
    assert secret.get_secret_value() == "from-env"
    assert "from-env" not in repr(secret) and "from-env" not in str(secret)


def test_missing_secret_names_it_without_any_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An absent secret is a configuration error naming the secret only."""
    monkeypatch.delenv("LDAP_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="secret LDAP_PASSWORD is not set"):
        read_secret("LDAP_PASSWORD", tmp_path)


def test_nested_settings_have_variables_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MICROCRED_DAEMON__HTTP_PORT and MICROCRED_ALERTS__REPEAT_MINUTES set one key
    of their section; the file's other keys of that section still apply."""
    root = _root(tmp_path, "[daemon]\nworkers = 3\nhttp_port = 9000\n")
    monkeypatch.setenv("MICROCRED_DAEMON__HTTP_PORT", "9465")
    monkeypatch.setenv("MICROCRED_ALERTS__REPEAT_MINUTES", "15")
    settings = load_settings(root)
    assert settings.daemon.http_port == 9465 and settings.daemon.workers == 3
    assert settings.alerts.repeat_minutes == 15
    assert settings.alerts.outbox_age_minutes == 120


def test_a_bad_nested_variable_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nested variable with a bad value is the one the message starts with."""
    root = _root(tmp_path, "")
    monkeypatch.setenv("MICROCRED_DAEMON__HTTP_PORT", "70000")
    with pytest.raises(ConfigError) as raised:
        load_settings(root)
    message = str(raised.value)
    assert message.startswith("MICROCRED_DAEMON__HTTP_PORT: "), message
    assert "the variable sets daemon.http_port" in message


def test_a_section_variable_that_is_not_json_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not blamed on the settings file: the variable is where the bad value is."""
    root = _root(tmp_path, "")
    monkeypatch.setenv("MICROCRED_DAEMON", "{bad json")
    with pytest.raises(ConfigError) as raised:
        load_settings(root)
    assert str(raised.value) == (
        "MICROCRED_DAEMON: not valid JSON (a section's variable holds a JSON "
        "object); the variable sets daemon"
    )
