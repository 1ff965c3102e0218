"""The pydantic model every connector file (`connectors/*.yaml`) shares."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ConnectorBase(BaseModel):
    """Fields common to every connector file; each kind adds its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner: str = Field(description="the partner this connector belongs to")
    description: str | None = None


class TlsSettings(BaseModel):
    """How a connector that talks https checks the other side's certificate."""

    verify_tls: bool = Field(
        default=True, description="false turns certificate checks off (a warning)"
    )
    ca_file: str | None = Field(
        default=None, description="CA bundle (PEM), relative to the project root"
    )

    def tls_verify(self, root: Path) -> bool | str:
        """What a requests session's ``verify`` takes: False when checks are off,
        the CA bundle's path (relative ones below ``root``), or True."""
        if not self.verify_tls:
            return False
        if self.ca_file is None:
            return True
        ca_path = Path(self.ca_file)
        return str(ca_path if ca_path.is_absolute() else root / ca_path)


class Retry(BaseModel):
    """Retries of a source's temporary failures within one read (seconds).

    A ``Retry-After`` is honoured up to ``retry_after_cap``; a longer one stops the
    read at once rather than block a worker (HT-01). Which failures are temporary
    is the connector kind's own (its session's docstring says).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=4, ge=1, le=10)
    backoff_base: float = Field(default=1.0, gt=0, le=60)
    backoff_max: float = Field(default=30.0, gt=0, le=600)
    retry_after_cap: float = Field(default=120.0, gt=0, le=3600)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine: plain http is allowed there only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
