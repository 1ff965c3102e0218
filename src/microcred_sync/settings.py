"""Process settings: `config/settings.toml`, overridden by `MICROCRED_*` variables.

A nested setting has a variable of its own, the levels joined by ``__``
(``MICROCRED_DAEMON__HTTP_PORT=9465``), beside a JSON object for the whole
section (``MICROCRED_DAEMON='{"http_port": 9465}'``); the file's other keys of
that section still apply.

Settings name where things are (the state store, the platform database, the secrets
directory) and how the process behaves (logging, batch size). They never hold a
secret: secrets are read by name from the environment or the secrets directory, see
``secrets.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from .errors import ConfigError

SETTINGS_FILE = Path("config/settings.toml")
ENV_PREFIX = "MICROCRED_"
#: Joins the levels of a nested setting in its variable's name.
ENV_NESTED = "__"


class Webhook(BaseModel):
    """A chat webhook alerts are posted to (Slack or Mattermost incoming webhook).

    Its URL is usually a secret (a Slack one carries its token in the path): name
    the secret with ``url_secret``; ``url`` is for an endpoint that is no secret.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    url: str | None = None
    url_secret: str | None = None
    #: Slack Block Kit blocks beside the plain ``text`` (Mattermost ignores them).
    blocks: bool = True
    #: A CA bundle to verify the webhook's certificate with (default: the system's).
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _one_url(self) -> Webhook:
        if (self.url is None) == (self.url_secret is None):
            raise ValueError("give exactly one of url or url_secret")
        return self


class AlertSettings(BaseModel):
    """When and where failed runs, held runs and a stuck outbox are reported."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhooks: tuple[Webhook, ...] = ()
    #: An alert of one job is sent again at most once per this many minutes.
    repeat_minutes: int = Field(default=60, ge=1)
    #: A pending outbox row older than this many minutes raises an alert.
    outbox_age_minutes: int = Field(default=120, ge=1)
    #: Connect and read timeout of each POST, in seconds.
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    #: POSTs per webhook and alert, the first included.
    attempts: int = Field(default=4, ge=1, le=10)
    #: The first wait between two attempts, in seconds; doubled each time.
    backoff_seconds: float = Field(default=1.0, ge=0, le=60)

    @field_validator("webhooks")
    @classmethod
    def _unique_names(cls, webhooks: tuple[Webhook, ...]) -> tuple[Webhook, ...]:
        names = [webhook.name for webhook in webhooks]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"webhook name {name!r} is used twice")
        return webhooks


class DaemonSettings(BaseModel):
    """How `microcred-sync schedule` runs: workers, late runs, stopping, its port."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Runs of different jobs at the same time in one daemon.
    workers: int = Field(default=4, ge=1, le=64)
    #: How late a run may still start (a job's schedule may give its own).
    misfire_grace_seconds: int = Field(default=3600, ge=1)
    #: After SIGTERM or SIGINT, how long running batches get to finish.
    stop_seconds: float = Field(default=60.0, gt=0, le=3600)
    #: Where /metrics and /healthz are served; port 0 turns the endpoint off.
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=9464, ge=0, le=65535)


class Settings(BaseSettings):
    """Where the state store and platform live, and how runs behave."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED,
        extra="forbid",
        frozen=True,
        toml_file=None,
    )

    root: Path = Field(default=Path("."), description="the project folder")
    state_url: str = "sqlite:///var/state.db"
    platform_url: str = "sqlite:///var/platform.db"
    secrets_dir: Path | None = None
    batch_size: int = Field(default=5000, ge=1, le=50_000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    alerts: AlertSettings = AlertSettings()
    daemon: DaemonSettings = DaemonSettings()

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

    @field_validator("state_url", "platform_url")
    @classmethod
    def _database_url(cls, url: str) -> str:
        # Caught here, a typo names the setting; caught by create_engine, it would
        # surface in the middle of a run. The URL may hold a password: not shown.
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ValueError(
                "not a database URL (such as sqlite:///var/state.db or "
                "postgresql+psycopg://host/database)"
            ) from None
        try:
            parsed.get_dialect()
        except NoSuchModuleError:
            raise ValueError(
                f"unknown database kind {parsed.drivername!r} in the URL"
            ) from None
        return url

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
    given = init_settings().get("root") or os.environ.get("MICROCRED_ROOT") or "."
    return Path(given) / SETTINGS_FILE


def load_settings(root: Path | None = None) -> Settings:
    """Read the settings, or raise ConfigError naming where the bad value came from.

    The message starts with the environment variable when one set the failing
    field (``MICROCRED_BATCH_SIZE: ...``), otherwise with the settings file.
    """
    try:
        return Settings() if root is None else Settings(root=root)
    except ValidationError as exc:
        given = () if root is None else ("root",)
        raise ConfigError(_problem(exc.errors()[0], given)) from None
    except ValueError as exc:
        raise ConfigError(_parse_problem(exc)) from None


#: How pydantic-settings says a source's value would not parse (a variable of a
#: section, ``MICROCRED_DAEMON``, holds JSON).
_UNPARSED = re.compile(r'error parsing value for field "(\w+)" from source "(\w+)"')


def _parse_problem(exc: ValueError) -> str:
    """One line for a value that did not parse, headed by its variable when the
    environment gave it."""
    found = _UNPARSED.search(str(exc))
    if found is not None and found.group(2) == "EnvSettingsSource":
        variable = _variable_for([found.group(1)])
        if variable is not None:
            return (
                f"{variable}: not valid JSON (a section's variable holds a JSON "
                f"object); the variable sets {found.group(1)}"
            )
    return f"{SETTINGS_FILE}: {exc}"


def _problem(error: ErrorDetails, given: Collection[str]) -> str:
    """One line for a settings problem, headed by the variable or the file.

    A value passed by the caller (``given``) outranks the environment, so a
    variable set for that field is not where the bad value came from.
    """
    message = error["msg"].removeprefix("Value error, ")
    field = ".".join(str(part) for part in error["loc"])
    path = [str(part) for part in error["loc"]]
    variable = _variable_for(path) if path and path[0] not in given else None
    if variable is not None:
        return f"{variable}: {message}; the variable sets {field}"
    return f"{SETTINGS_FILE}: {field or '(top level)'}: {message}"


def _variable_for(path: Sequence[str]) -> str | None:
    """The ``MICROCRED_*`` variable that sets the field at ``path``, if one is set:
    the most nested one first (``MICROCRED_DAEMON__HTTP_PORT``), then those of
    the sections holding it (``MICROCRED_DAEMON``).

    Variable names are matched without regard to case, as pydantic-settings does.
    """
    for depth in range(len(path), 0, -1):
        wanted = (ENV_PREFIX + ENV_NESTED.join(path[:depth])).upper()
        found = next((name for name in os.environ if name.upper() == wanted), None)
        if found is not None:
            return found
    return None
