"""The connector file of kind ``ldap``: which directory, how to reach it, what to read
from it."""

from __future__ import annotations

from typing import Literal

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..config import ConnectorBase

#: The directories the connector knows the ways of.
Directory = Literal["openldap", "active_directory"]

#: The filter of people when a connector gives none (LD-07 for AD: contacts have
#: no userAccountControl, so a "not disabled" test alone would match them).
DEFAULT_PEOPLE_FILTER: dict[str, str] = {
    "openldap": "(objectClass=inetOrgPerson)",
    "active_directory": "(&(objectCategory=person)(objectClass=user))",
}

DEFAULT_GROUP_FILTER: dict[str, str] = {
    "openldap": "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
    "active_directory": "(objectClass=group)",
}

#: The immutable identifier of an entry on each directory (issue 3, correlation).
ID_ATTRIBUTE: dict[str, str] = {
    "openldap": "entryUUID",
    "active_directory": "objectGUID",
}


def _check_dn(value: str) -> str:
    try:
        parse_dn(value, strip=True)
    except LDAPInvalidDnError as error:
        raise ValueError(f"{value!r} is not a distinguished name ({error})") from None
    return value


def _check_filter(value: str) -> str:
    # ldap3 checks filters only when searching; catch the usual slip now.
    text = value.strip()
    if not (text.startswith("(") and text.endswith(")")):
        raise ValueError("a search filter is enclosed in parentheses: (attr=value)")
    if text.count("(") != text.count(")"):
        raise ValueError("the search filter's parentheses do not balance")
    return text


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GroupsConfig(_Part):
    """Where the groups are, for enrollment rules that test membership."""

    base_dns: tuple[str, ...] = Field(min_length=1)
    filter: str | None = Field(
        default=None, description="groups to consider; default: the directory's kind"
    )
    nesting: Literal["in_chain", "expand"] | None = Field(
        default=None,
        description="in_chain: AD's matching rule 1.2.840.113556.1.4.1941;"
        " expand: read every group's members and follow groups within groups;"
        " default: in_chain on Active Directory, expand elsewhere",
    )
    member_range: int | None = Field(
        default=None,
        ge=1,
        description="ask for member values in ranges of this many"
        " (member;range=0-N), as Active Directory does beyond 1,500",
    )

    @field_validator("base_dns")
    @classmethod
    def _dns(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_dn(value) for value in values)

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: str | None) -> str | None:
        return None if value is None else _check_filter(value)


class IncrementalConfig(_Part):
    """Delta reads between full ones; the cursor is kept per server."""

    full_read_every_hours: float = Field(
        gt=0, description="a full read (which finds deletions) at least this often"
    )


class LdapConnector(ConnectorBase):
    """A connector file of kind ``ldap``: servers, bind, what to read."""

    kind: Literal["ldap"]
    directory: Directory = "openldap"
    servers: tuple[str, ...] = Field(
        min_length=1, description="ldap:// or ldaps:// URLs, tried in order"
    )
    start_tls: bool = Field(default=False, description="StartTLS on ldap:// URLs")
    ca_file: str | None = Field(
        default=None, description="CA bundle (PEM), relative to the project root"
    )
    verify_tls: bool = Field(
        default=True,
        description="false turns certificate checks off (a warning each run)",
    )
    bind_dn: str | None = Field(
        default=None, description="a DN, or user@domain on Active Directory"
    )
    password_secret: str | None = Field(
        default=None, description="the secret holding the bind password"
    )
    connect_timeout: float = Field(default=10, gt=0, le=300)
    operation_timeout: int = Field(default=60, ge=1, le=3600, description="seconds")
    follow_referrals: bool = False
    retries: int = Field(
        default=3, ge=0, le=10, description="reconnects after a dropped connection"
    )
    base_dns: tuple[str, ...] = Field(min_length=1)
    scope: Literal["subtree", "one"] = "subtree"
    filter: str | None = Field(default=None, description="default: the directory's")
    attributes: tuple[str, ...] = Field(
        default=(), description="read as text (the first value, if several)"
    )
    list_attributes: tuple[str, ...] = Field(
        default=(), description="read as lists of text (memberOf, proxyAddresses)"
    )
    page_size: int = Field(default=500, ge=1, le=5000)
    groups: GroupsConfig | None = None
    incremental: IncrementalConfig | None = None

    @field_validator("servers")
    @classmethod
    def _urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not url.lower().startswith(("ldap://", "ldaps://")):
                raise ValueError(f"{url!r}: a server is an ldap:// or ldaps:// URL")
        return urls

    @field_validator("base_dns")
    @classmethod
    def _dns(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_dn(value) for value in values)

    @field_validator("filter")
    @classmethod
    def _filter(cls, value: str | None) -> str | None:
        return None if value is None else _check_filter(value)

    @model_validator(mode="after")
    def _consistent(self) -> LdapConnector:
        if (self.bind_dn is None) != (self.password_secret is None):
            raise ValueError("give both bind_dn and password_secret, or neither")
        if self.start_tls and any(
            u.lower().startswith("ldaps://") for u in self.servers
        ):
            raise ValueError("start_tls is for ldap:// URLs; ldaps:// is TLS already")
        names = [name.casefold() for name in (*self.attributes, *self.list_attributes)]
        if len(names) != len(set(names)):
            raise ValueError(
                "an attribute is listed twice (attributes, list_attributes)"
            )
        nesting = self.groups.nesting if self.groups is not None else None
        if nesting == "in_chain" and self.directory != "active_directory":
            raise ValueError("groups.nesting in_chain works on Active Directory only")
        return self

    @property
    def people_filter(self) -> str:
        """The filter of the entries read as records."""
        return self.filter or DEFAULT_PEOPLE_FILTER[self.directory]

    @property
    def id_attribute(self) -> str:
        """The entry's immutable identifier, read with every entry."""
        return ID_ATTRIBUTE[self.directory]

    @property
    def nesting(self) -> str:
        """How nested groups are found (see ``GroupsConfig.nesting``)."""
        if self.groups is not None and self.groups.nesting is not None:
            return self.groups.nesting
        return "in_chain" if self.directory == "active_directory" else "expand"

    @property
    def group_filter(self) -> str:
        """The filter of the groups considered."""
        chosen = self.groups.filter if self.groups is not None else None
        return chosen or DEFAULT_GROUP_FILTER[self.directory]
