"""The pydantic model every connector file (`connectors/*.yaml`) shares."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field


class ConnectorBase(BaseModel):
    """Fields common to every connector file; each kind adds its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner: str = Field(description="the partner this connector belongs to")
    description: str | None = None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine: plain http is allowed there only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
