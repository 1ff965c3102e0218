"""Connector kinds: one module each, and the model every connector file is read as."""

from __future__ import annotations

from .csv import CsvConnector

#: A connector file, read by its ``kind``; further kinds join this as a union.
ConnectorConfig = CsvConnector

__all__ = ["ConnectorConfig", "CsvConnector"]
