"""Connector files of the sink kinds: ``lrs`` (an xAPI Learning Record Store) and
``file`` (statements as JSON lines, for trying things out with no LRS).

A sink names its secrets (``password_secret: EXAMPLE_LRS_PASSWORD``); it never holds
one. Endpoints are https, except on the loopback interface; TLS is verified unless
``verify_tls: false`` turns it off for this one sink, which each run warns about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..connectors.base import Source
from ..connectors.config import ConnectorBase, TlsSettings, is_loopback
from ..errors import ConfigError

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "FileSink",
    "LrsSink",
    "RetryPolicy",
    "SinkConfig",
    "Timeouts",
]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BasicAuth(_Part):
    """HTTP basic authentication: a user name and the secret holding its password."""

    type: Literal["basic"]
    username: str = Field(min_length=1)
    password_secret: str = Field(min_length=1)


class BearerAuth(_Part):
    """A bearer token, read from the secret it names."""

    type: Literal["bearer"]
    token_secret: str = Field(min_length=1)


class Timeouts(_Part):
    """Seconds to wait for a connection and, then, for each read of the answer."""

    connect: float = Field(default=5.0, gt=0, le=120)
    read: float = Field(default=30.0, gt=0, le=600)


class RetryPolicy(_Part):
    """How temporary failures are retried within a run (seconds throughout).

    Waits grow exponentially from ``backoff_base`` to ``backoff_max``, with jitter;
    a ``Retry-After`` the sink sends is honoured up to ``retry_after_cap``; beyond
    it the run stops and the statements wait for when the sink asked.
    """

    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_base: float = Field(default=1.0, gt=0, le=600)
    backoff_max: float = Field(default=30.0, gt=0, le=3600)
    retry_after_cap: float = Field(default=120.0, gt=0, le=3600)
    #: The longest a statement waits for a later run after a run ran out of tries.
    reschedule_max: float = Field(default=3600.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.backoff_base > self.backoff_max:
            raise ValueError("backoff_base is larger than backoff_max")
        return self


class _SinkBase(ConnectorBase):
    """What every sink shares; a sink is never read from."""

    def open_source(self, connector_id: str, root: Path) -> Source:
        """Sinks are not sources; ``load_project`` stops a roster job naming one."""
        raise ConfigError(
            f"connector {connector_id!r} is a sink, not a source",
            connector=connector_id,
        )


class _HttpSinkBase(_SinkBase, TlsSettings):
    """What every sink reached over https shares: timeouts, TLS, retries and the
    longest a run delivers to it."""

    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy = RetryPolicy()
    deadline_seconds: float = Field(
        default=900.0, gt=0, le=86_400, description="the longest one run delivers"
    )


class LrsSink(_HttpSinkBase):
    """A connector file of kind ``lrs``: where the LRS is and how to talk to it."""

    kind: Literal["lrs"]
    endpoint: str = Field(
        description="the LRS's base URL; statements go to {endpoint}/statements"
    )
    auth: Annotated[BasicAuth | BearerAuth, Field(discriminator="type")]
    xapi_version: Literal["1.0.3", "2.0.0"] = "1.0.3"
    batch_size: int = Field(default=100, ge=1, le=1000)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("the endpoint is an https:// URL")
        if parts.username or parts.password:
            raise ValueError("the endpoint holds no user or password; use auth")
        if parts.query or parts.fragment:
            raise ValueError("the endpoint has no query or fragment")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError("plain http is allowed on the loopback interface only")
        return endpoint.rstrip("/")

    @property
    def statements_url(self) -> str:
        """Where statements are posted and read (xAPI communication 2.1)."""
        return f"{self.endpoint}/statements"


class FileSink(_SinkBase):
    """A connector file of kind ``file``: statements appended as JSON lines."""

    kind: Literal["file"]
    path: str = Field(
        min_length=1,
        description="the file, relative to the project root unless absolute",
    )
    batch_size: int = Field(default=1000, ge=1, le=50_000)


#: The sink kinds, as the deliver flow takes them.
SinkConfig = LrsSink | FileSink
