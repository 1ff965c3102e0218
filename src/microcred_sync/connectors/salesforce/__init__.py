"""The ``salesforce`` connector kind: members in, credentials written back (issue 4).

Built on simple-salesforce, used as it is: ``client`` logs in and bounds
re-authentication, ``session`` brings timeouts and retries, ``source`` reads the
roster, ``deliveries`` builds what the results flow queues for the org (awards,
chosen results, learners' Contact states), ``writeback`` writes it in sObject
Collections batches.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError
from .config import SalesforceConnector as _Config
from .source import SalesforceSource


class SalesforceConnector(_Config):
    """A connector file of kind ``salesforce``; see ``config.SalesforceConnector``."""

    def open_source(self, connector_id: str, root: Path) -> SalesforceSource:
        """The roster source this file describes; nothing is opened yet.

        Raises ConfigError when the file has no ``roster`` (a write-back sink only).
        """
        if self.roster is None:
            raise ConfigError(
                f"connectors/{connector_id}.yaml: roster: a salesforce connector"
                " without roster is a sink, not a source",
                connector=connector_id,
            )
        return SalesforceSource(connector_id, root, self)


__all__ = ["SalesforceConnector", "SalesforceSource"]
