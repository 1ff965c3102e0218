"""The ``ldap`` connector kind: OpenLDAP and Active Directory rosters (issue 3)."""

from __future__ import annotations

from pathlib import Path

from .config import LdapConnector as _Config
from .source import LdapSource


class LdapConnector(_Config):
    """A connector file of kind ``ldap``; see ``config.LdapConnector``."""

    def open_source(self, connector_id: str, root: Path) -> LdapSource:
        """Return the source this connector file describes; nothing is opened yet."""
        return LdapSource(connector_id, root, self)


__all__ = ["LdapConnector", "LdapSource"]
