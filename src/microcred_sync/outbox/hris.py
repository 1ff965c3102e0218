"""The connector file of kind ``hris``: completions recorded in the partner's HRIS.

Two modes. ``bamboohr`` adds a training record to the employee in BambooHR (one
per award, of the training type the program maps to, completed on the award's
date in the sink's time zone). ``json_post`` posts one JSON body per completion to
a configured URL, built from named facts of the completion, for any other HRIS.

Which learners' HRIS ids: ``employee_id_from`` names the identity field (the
roster's source key, or the employee number). Secrets are named, never held;
URLs are https except on the loopback interface; TLS is verified unless
``verify_tls: false`` turns it off for this sink, which each run warns about.
"""

from __future__ import annotations

import string
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..connectors.config import is_loopback
from .facts import FactOrValue
from .sinks import BasicAuth, BearerAuth, _HttpSinkBase

__all__ = [
    "COMPLETION_FACTS",
    "ApiKeyAuth",
    "BambooHrConfig",
    "FactValue",
    "HrisSink",
    "JsonPostConfig",
]

#: What the write-back knows about a completion, by the name a field spec uses.
COMPLETION_FACTS: tuple[str, ...] = (
    "delivery_id",
    "award_id",
    "credential_id",
    "program",
    "program_title",
    "issued_at",
    "completed_on",
    "learner_id",
    "employee_id",
    "email",
)

#: Statuses a JSON endpoint may answer for "taken" (RFC 9110 15.3).
DEFAULT_SUCCESS: tuple[int, ...] = (200, 201, 202, 204)


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def https_url(url: str, what: str) -> str:
    """``url`` if it is https (or http on the loopback interface), holds no user
    or password and no fragment; raises ValueError saying which rule it breaks."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"the {what} is an https:// URL")
    if parts.username or parts.password:
        raise ValueError(f"the {what} holds no user or password; use auth")
    if parts.fragment:
        raise ValueError(f"the {what} has no fragment")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("plain http is allowed on the loopback interface only")
    return url


class ApiKeyAuth(_Part):
    """An API key sent in a header of its own (``X-API-Key`` unless named)."""

    type: Literal["api_key"]
    header: str = Field(default="X-API-Key", pattern=r"^[A-Za-z0-9-]+$")
    key_secret: str = Field(min_length=1)


class FactValue(FactOrValue):
    """One field of a JSON body: a fact of the completion, or a fixed value.

    A fact that is unknown for a completion (no email, no credential) leaves the
    field out unless ``when_missing: null`` sends it as null.
    """

    when_missing: Literal["leave", "null"] = "leave"

    @model_validator(mode="after")
    def _known_fact(self) -> FactValue:
        if self.from_ is not None and self.from_ not in COMPLETION_FACTS:
            raise ValueError(
                f"unknown completion fact {self.from_!r} "
                f"(known: {', '.join(COMPLETION_FACTS)})"
            )
        return self


class BambooHrConfig(_Part):
    """Training records in BambooHR: which company, which key, which types."""

    company_domain: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="the part before .bamboohr.com in the company's address",
    )
    api_key_secret: str = Field(
        min_length=1, description="the API key, sent as the basic-auth user"
    )
    endpoint: str | None = Field(
        default=None,
        description="the API's base; https://{company_domain}.bamboohr.com/api/v1"
        " unless given",
    )
    training_type: int | None = Field(
        default=None, ge=1, description="the training type id of every program"
    )
    training_types: dict[str, int] = Field(
        default_factory=dict, description="a training type id per program"
    )
    notes: str | None = Field(
        default="{program_title}",
        description="the record's notes: text with {fact} placeholders",
    )
    hours: float | None = Field(default=None, ge=0)
    credits: float | None = Field(default=None, ge=0)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, endpoint: str | None) -> str | None:
        if endpoint is None:
            return None
        if urlsplit(endpoint).query:
            raise ValueError("the endpoint has no query")
        return https_url(endpoint, "endpoint").rstrip("/")

    @field_validator("training_types")
    @classmethod
    def _type_ids(cls, types: dict[str, int]) -> dict[str, int]:
        for program, type_id in types.items():
            if type_id < 1:
                raise ValueError(f"training type of {program!r} is not an id")
        return types

    @field_validator("notes")
    @classmethod
    def _notes(cls, notes: str | None) -> str | None:
        if notes is None:
            return None
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(notes)]
        except ValueError as error:
            raise ValueError(f"notes: {error}") from None
        for name in names:
            if name is not None and name not in COMPLETION_FACTS:
                raise ValueError(f"notes: unknown completion fact {{{name}}}")
        return notes

    @model_validator(mode="after")
    def _some_type(self) -> BambooHrConfig:
        if self.training_type is None and not self.training_types:
            raise ValueError("give training_type, training_types, or both")
        return self

    @property
    def base_url(self) -> str:
        """Where the API's paths start (``.../api/v1``)."""
        return self.endpoint or f"https://{self.company_domain}.bamboohr.com/api/v1"

    def training_type_of(self, program: str) -> int | None:
        """The training type a program's completions are recorded as."""
        return self.training_types.get(program, self.training_type)


class JsonPostConfig(_Part):
    """One JSON POST per completion to ``url``."""

    url: str
    auth: Annotated[BasicAuth | BearerAuth | ApiKeyAuth, Field(discriminator="type")]
    fields: dict[str, FactValue] = Field(min_length=1)
    success_statuses: tuple[int, ...] = Field(
        default=DEFAULT_SUCCESS, min_length=1, description="the answers that mean taken"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        return https_url(url, "url")

    @field_validator("success_statuses")
    @classmethod
    def _statuses(cls, statuses: tuple[int, ...]) -> tuple[int, ...]:
        for status in statuses:
            if not 200 <= status < 300:
                raise ValueError(f"success status {status} is not a 2xx status")
        return statuses


class HrisSink(_HttpSinkBase):
    """A connector file of kind ``hris``."""

    kind: Literal["hris"]
    mode: Literal["bamboohr", "json_post"]
    bamboohr: BambooHrConfig | None = None
    json_post: JsonPostConfig | None = None
    employee_id_from: Literal["external_key", "employee_number"] = Field(
        default="external_key",
        description="the learner's identity field that is the HRIS employee id",
    )
    timezone: str = Field(
        default="UTC", description="the zone a completion's date is taken in"
    )
    batch_size: int = Field(default=50, ge=1, le=500)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}") from None
        return name

    @model_validator(mode="after")
    def _one_mode(self) -> HrisSink:
        given = {
            name
            for name in ("bamboohr", "json_post")
            if getattr(self, name) is not None
        }
        if given != {self.mode}:
            raise ValueError(
                f"mode {self.mode} takes a {self.mode} section and no other"
            )
        return self
