"""The pydantic model every connector file (`connectors/*.yaml`) shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ConnectorBase(BaseModel):
    """Fields common to every connector file; each kind adds its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner: str = Field(description="the partner this connector belongs to")
    description: str | None = None
