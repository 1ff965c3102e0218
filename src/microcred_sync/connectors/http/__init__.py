"""The ``http`` connector kind: rosters from JSON APIs (issue 7).

``config`` is the connector file, ``presets`` what Workday RaaS, BambooHR and SAP
SuccessFactors always do, ``session`` auth, retries and the check of every answer,
``pagination`` the pages of a read, ``values`` JSON values as record text, and
``source`` the roster source.
"""

from __future__ import annotations

from pathlib import Path

from .config import HttpConnector as _Config
from .source import HttpSource


class HttpConnector(_Config):
    """A connector file of kind ``http``; see ``config.HttpConnector``."""

    def open_source(self, connector_id: str, root: Path) -> HttpSource:
        """The roster source this file describes; nothing is opened yet."""
        return HttpSource(connector_id, root, self)


__all__ = ["HttpConnector", "HttpSource"]
