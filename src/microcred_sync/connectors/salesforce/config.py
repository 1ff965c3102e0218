"""The connector file of kind ``salesforce``: which org, how to log in, what to read
as the roster and what to write back.

One file serves both directions: ``roster`` makes it a source, ``writeback`` a sink;
a file may have both. Secrets are named (``password_secret: ...``), never held.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from simple_salesforce.format import format_soql

from ...outbox.facts import FactOrValue
from ..config import ConnectorBase, Retry, TlsSettings, is_loopback

#: An API name: ``Contact``, ``Membership_Level__c``.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: A field or a relation path: ``Account.Name``, ``Account.Owner.Email``.
_PATH = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")

#: Contacts with the membership fields an association usually keeps.
DEFAULT_FIELDS: tuple[str, ...] = (
    "FirstName",
    "LastName",
    "Email",
    "Member_Number__c",
    "Membership_Level__c",
    "Membership_Status__c",
    "Account.Name",
)

#: What the write-back knows about an award, by the name a field spec uses.
AWARD_FACTS: tuple[str, ...] = (
    "award_id",
    "credential_id",
    "program",
    "program_title",
    "issued_at",
    "learner_id",
    "contact_id",
    "email",
)

#: What the write-back knows about a result, by the name a field spec uses.
RESULT_FACTS: tuple[str, ...] = (
    "result_id",
    "program",
    "program_title",
    "activity_iri",
    "recorded_at",
    "completion",
    "success",
    "score_scaled",
    "score_raw",
    "score_min",
    "score_max",
    "duration",
    "learner_id",
    "contact_id",
    "email",
)

#: What the Contact's fields may name: the facts of the learner's latest award
#: (``program_title`` is the latest credential's), and what all of the learner's
#: awards add up to.
CONTACT_FACTS: tuple[str, ...] = (*AWARD_FACTS, "credits_earned", "awards_earned")

SoqlValue = str | int | float | bool | date | datetime | list[str | int | float]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _api_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a Salesforce API name")
    return value


class PasswordAuth(_Part):
    """Username, password and security token (SOAP login)."""

    type: Literal["password"]
    username: str = Field(min_length=1)
    password_secret: str = Field(min_length=1)
    security_token_secret: str | None = Field(
        default=None, description="none when the org trusts the caller's IP range"
    )


class JwtAuth(_Part):
    """OAuth 2.0 JWT bearer: a connected app's key signs an assertion for a user."""

    type: Literal["jwt"]
    username: str = Field(min_length=1)
    consumer_key_secret: str = Field(min_length=1)
    private_key_secret: str = Field(min_length=1, description="PEM of an RSA key")


class ClientCredentialsAuth(_Part):
    """OAuth 2.0 client credentials; works on My Domain login hosts only."""

    type: Literal["client_credentials"]
    consumer_key_secret: str = Field(min_length=1)
    consumer_secret_secret: str = Field(min_length=1)


Auth = Annotated[
    PasswordAuth | JwtAuth | ClientCredentialsAuth, Field(discriminator="type")
]


class Timeouts(_Part):
    """Seconds to wait for a connection and, then, for each read of an answer."""

    connect: float = Field(default=10.0, gt=0, le=120)
    read: float = Field(default=120.0, gt=0, le=900)


class IncrementalConfig(_Part):
    """Delta reads by ``SystemModstamp`` between full reads."""

    full_read_every_hours: float = Field(gt=0)
    overlap_seconds: int = Field(
        default=300, ge=0, le=86_400, description="read again before the cursor"
    )


class RosterConfig(_Part):
    """What is read as records: an object, its fields, a SOQL condition."""

    object: str = "Contact"
    fields: tuple[str, ...] = DEFAULT_FIELDS
    where: str | None = Field(
        default="Membership_Level__c != null",
        description="a SOQL condition; {name} placeholders take values, quoted",
    )
    values: dict[str, SoqlValue] = Field(default_factory=dict)
    page_size: int = Field(
        default=2000, ge=200, le=2000, description="asked for; the org may send less"
    )
    status_field: str = Field(
        default="Membership_Status__c",
        description="the field a deleted record's status is written to",
    )
    deleted_value: str = Field(default="Deleted", min_length=1)
    bulk_above: int | None = Field(
        default=None, ge=1, description="read with Bulk API 2.0 above this many"
    )
    bulk_page_size: int = Field(default=50_000, ge=1, le=100_000)
    bulk_poll_seconds: float = Field(default=5.0, gt=0, le=60)
    incremental: IncrementalConfig | None = None

    @field_validator("object")
    @classmethod
    def _object(cls, value: str) -> str:
        return _api_name(value)

    @field_validator("fields", "status_field")
    @classmethod
    def _paths(cls, value: Any) -> Any:
        for path in (value,) if isinstance(value, str) else value:
            if not _PATH.match(path):
                raise ValueError(f"{path!r} is not a field name or a relation path")
        return value

    @model_validator(mode="after")
    def _condition(self) -> RosterConfig:
        if self.where is not None:
            try:
                self.condition()
            except (KeyError, IndexError) as error:
                raise ValueError(
                    f"where: placeholder {error} has no entry in values"
                ) from None
            except ValueError as error:
                raise ValueError(f"where: {error}") from None
        return self

    def condition(self) -> str | None:
        """The ``where`` condition with its values quoted by simple-salesforce."""
        if self.where is None:
            return None
        return str(format_soql(self.where, **self.values))


class FieldValueSpec(FactOrValue):
    """One Salesforce field of a write-back: from a fact, or a fixed value.

    A field left out of ``fields`` is left unchanged; ``value: null`` clears it;
    ``value: ""`` writes an empty text. ``when_missing`` says what a fact that is
    unknown for an award does: ``leave`` the field, or ``clear`` it.
    """

    when_missing: Literal["leave", "clear"] = "leave"
    #: The field's Salesforce type, as describe() gives it (``date``,
    #: ``datetime``, ``string``...). When every field of an object says its type,
    #: the write-back asks no describe() of that object: one data call less.
    type: str | None = Field(default=None, pattern=r"^[a-z]+$")


def _check_fields(
    fields: dict[str, FieldValueSpec], known: tuple[str, ...], what: str
) -> dict[str, FieldValueSpec]:
    """Field names are API names; each ``from`` names one of the ``known`` facts."""
    for name, spec in fields.items():
        _api_name(name)
        if spec.from_ is not None and spec.from_ not in known:
            raise ValueError(
                f"{name}: unknown {what} fact {spec.from_!r}"
                f" (known: {', '.join(known)})"
            )
    return fields


class ContactUpdate(_Part):
    """Fields set on the learner's Contact (its Id is the learner's source key).

    The Contact is written as the learner's whole state (``CONTACT_FACTS``): its
    latest award and the credits of all of its awards, one outbox entry per
    learner that a newer state replaces, so a late resend never sets it back.
    """

    fields: dict[str, FieldValueSpec] = Field(min_length=1)

    @field_validator("fields")
    @classmethod
    def _names(cls, fields: dict[str, FieldValueSpec]) -> dict[str, FieldValueSpec]:
        return _check_fields(fields, CONTACT_FACTS, "Contact")


class _Upsert(_Part):
    """Records of ``object`` upserted by ``external_id``, its value the fact
    ``external_id_from``; each of ``fields`` from one of the ``facts``."""

    #: The facts its ``from`` may name, and what they are of (in errors).
    facts: ClassVar[tuple[str, ...]]
    described: ClassVar[str]

    object: str
    external_id: str
    external_id_from: str
    fields: dict[str, FieldValueSpec] = Field(default_factory=dict)

    @field_validator("object", "external_id")
    @classmethod
    def _names(cls, value: str) -> str:
        return _api_name(value)

    @field_validator("fields")
    @classmethod
    def _field_names(
        cls, fields: dict[str, FieldValueSpec]
    ) -> dict[str, FieldValueSpec]:
        return _check_fields(fields, cls.facts, cls.described)

    @field_validator("external_id_from")
    @classmethod
    def _fact(cls, value: str) -> str:
        if value not in cls.facts:
            raise ValueError(f"unknown {cls.described} fact {value!r}")
        return value


class ResultsWriteback(_Upsert):
    """Chosen results upserted as records of ``object`` keyed by ``external_id``.

    ``programs`` limits them to results of those programs (all when empty);
    ``only`` to the ``completed`` ones, the ``passed`` ones, or every result that
    reports something (``reported``: what an xAPI statement would be sent for).
    """

    facts = RESULT_FACTS
    described = "result"

    object: str = Field(description="e.g. Course_Result__c")
    external_id: str = Field(description="the external id field, e.g. Result_Id__c")
    external_id_from: str = Field(default="result_id", description="a result fact")
    programs: tuple[str, ...] = ()
    only: Literal["reported", "completed", "passed"] = "completed"


class WritebackConfig(_Upsert):
    """Awards upserted as records of ``object`` keyed by ``external_id``; chosen
    results too (``results``), and the learner's Contact (``contact``)."""

    facts = AWARD_FACTS
    described = "award"

    object: str = Field(description="e.g. Credential__c")
    external_id: str = Field(description="the external id field, e.g. Award_Id__c")
    external_id_from: str = Field(default="award_id", description="an award fact")
    contact: ContactUpdate | None = None
    results: ResultsWriteback | None = None
    batch_size: int = Field(default=200, ge=1, le=200)
    limit_pause_seconds: float = Field(
        default=3600.0, gt=0, le=86_400, description="after REQUEST_LIMIT_EXCEEDED"
    )


class SalesforceConnector(ConnectorBase, TlsSettings):
    """A connector file of kind ``salesforce``."""

    kind: Literal["salesforce"]
    login_url: str = Field(
        default="https://login.salesforce.com",
        description="login.salesforce.com, test.salesforce.com (sandboxes), or the"
        " org's My Domain (https://acme.my.salesforce.com)",
    )
    api_version: str = Field(default="59.0", pattern=r"^\d{2,3}\.0$")
    auth: Auth
    timeouts: Timeouts = Timeouts()
    retry: Retry = Retry()
    max_api_share: float = Field(
        default=0.9,
        gt=0,
        le=1,
        description="stop before the org's daily API requests pass this share",
    )
    deadline_seconds: float = Field(default=3600.0, gt=0, le=86_400)
    roster: RosterConfig | None = None
    writeback: WritebackConfig | None = None

    @field_validator("login_url")
    @classmethod
    def _login_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("the login URL is an https:// URL")
        if parts.path.strip("/") or parts.query or parts.fragment or parts.username:
            raise ValueError(
                "the login URL is a host only: https://login.salesforce.com"
            )
        host = parts.hostname
        if not (host.endswith(".salesforce.com") or is_loopback(host)):
            raise ValueError("the login host ends with .salesforce.com")
        if parts.port is not None and not is_loopback(host):
            raise ValueError("a Salesforce login host takes no port")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> SalesforceConnector:
        if self.roster is None and self.writeback is None:
            raise ValueError("give roster (a source), writeback (a sink), or both")
        host = urlsplit(self.login_url).hostname or ""
        if isinstance(self.auth, ClientCredentialsAuth) and host in (
            "login.salesforce.com",
            "test.salesforce.com",
        ):
            raise ValueError(
                "auth: client_credentials needs the org's My Domain as login_url"
            )
        return self

    @property
    def domain(self) -> str:
        """The login host as simple-salesforce's ``domain``, which it completes to
        ``https://{domain}.salesforce.com``. A loopback host (the test emulator)
        becomes ``127.0.0.1:8443/login``: the ``.salesforce.com`` then falls in
        the path, which the emulator ignores."""
        parts = urlsplit(self.login_url)
        host = parts.hostname or ""
        if is_loopback(host):
            return f"{parts.netloc}/login"
        return host.removesuffix(".salesforce.com")

    @property
    def batch_size(self) -> int:
        """Outbox entries taken per batch by the deliver flow."""
        return self.writeback.batch_size if self.writeback else 200
