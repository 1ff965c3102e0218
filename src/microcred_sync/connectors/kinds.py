"""Connector kinds: one module each, and the model every connector file is read as.

The sources live in this package; the sink kinds in ``outbox``. This registry of
them all is a module of its own, so that importing any one kind (a sink importing
``connectors.config``, say) never has to import every other one first.
"""

from __future__ import annotations

from typing import Annotated, cast

from pydantic import Field

from ..outbox.hris import HrisSink
from ..outbox.sinks import FileSink, LrsSink
from .csv import CsvConnector
from .http import HttpConnector
from .ldap import LdapConnector
from .salesforce import SalesforceConnector

#: Every kind: sources, then the sinks the deliver flow writes to (salesforce is
#: both).
_Kinds = (
    CsvConnector
    | HttpConnector
    | LdapConnector
    | SalesforceConnector
    | LrsSink
    | FileSink
    | HrisSink
)

#: A connector file, read as the kind its ``kind`` names.
ConnectorConfig = Annotated[_Kinds, Field(discriminator="kind")]

#: The connector kinds as one type, for ``files.validate``.
CONNECTOR_KINDS = cast(type[_Kinds], ConnectorConfig)

__all__ = [
    "CONNECTOR_KINDS",
    "ConnectorConfig",
    "CsvConnector",
    "FileSink",
    "HrisSink",
    "HttpConnector",
    "LdapConnector",
    "LrsSink",
    "SalesforceConnector",
]
