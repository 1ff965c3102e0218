"""Process settings: `config/settings.toml`, overridden by `MICROCRED_*` variables.

Settings name where things are (the state store, the platform database, the secrets
directory) and how the process behaves (logging, batch size). They never hold a
secret: secrets are read by name from the environment or the secrets directory, see
``secrets.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .errors import ConfigError

SETTINGS_FILE = Path("config/settings.toml")


class Settings(BaseSettings):
    """Where the state store and platform live, and how runs behave."""

    model_config = SettingsConfigDict(
        env_prefix="MICROCRED_", extra="forbid", frozen=True, toml_file=None
    )

    root: Path = Field(default=Path("."), description="the project folder")
    state_url: str = "sqlite:///var/state.db"
    platform_url: str = "sqlite:///var/platform.db"
    secrets_dir: Path | None = None
    batch_size: int = Field(default=5000, ge=1, le=50_000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _toml_path(init_settings)
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_file)
        return (init_settings, env_settings, toml)

    def resolve(self, path: Path | str) -> Path:
        """A path from a configuration file, taken relative to the project root."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.root / candidate

    def database_url(self, url: str) -> str:
        """A SQLite URL with a relative path made relative to the project root."""
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            relative = url.removeprefix(prefix)
            if relative and relative != ":memory:":
                return prefix + str(self.resolve(relative))
        return url


def _toml_path(init_settings: PydanticBaseSettingsSource) -> Path:
    """The settings file under the root given by the caller or the environment."""
    import os

    given = init_settings().get("root") or os.environ.get("MICROCRED_ROOT") or "."
    return Path(given) / SETTINGS_FILE


def load_settings(root: Path | None = None) -> Settings:
    """Read the settings, or raise ConfigError naming the file and the field."""
    try:
        if root is None:
            return Settings()
        return Settings(root=root)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise ConfigError(
            f"{SETTINGS_FILE}: {field}: {error['msg']}", file=str(SETTINGS_FILE)
        ) from None
    except ValueError as exc:
        raise ConfigError(f"{SETTINGS_FILE}: {exc}", file=str(SETTINGS_FILE)) from None
