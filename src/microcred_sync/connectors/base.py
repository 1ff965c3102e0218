"""What every source connector yields, and the interface it implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

#: A record's field value: text, a list of texts (a multi-valued directory
#: attribute, a person's groups), or ``None`` for an explicit null. A field that is
#: absent from ``Record.fields`` was not in the source at all (a missing column).
FieldValue = str | tuple[str, ...] | None


@dataclass(frozen=True)
class SourceContext:
    """What a source may need from the process around it.

    ``secrets_dir`` is where named secrets are read from besides the environment;
    ``state_url`` is the state store, where cursors of incremental reads are kept.
    """

    secrets_dir: Path | None = None
    state_url: str | None = None


@dataclass(slots=True)
class Record:
    """One raw row, entry or object read from a source.

    ``location`` says where it came from (``hris.csv:17``) for quarantine and errors.
    ``problem`` is set when the source could not read this one record properly
    (wrong number of cells, say); the record is then quarantined, the read goes on.
    """

    fields: Mapping[str, FieldValue]
    location: str
    line: int | None = None
    problem: str | None = None


class Source(ABC):
    """A connector that reads records.

    ``read()`` yields records as it reads them, so memory does not grow with the
    roster. It raises ``SourceUnavailable`` before the first record when the source
    is not there, and ``ReadIncomplete`` after the last good record when the read
    ended early. ``full`` says whether a completed read is the whole roster (a full
    read may deprovision the absent; a delta read never does).
    """

    kind: ClassVar[str]

    def __init__(self, connector_id: str, root: Path) -> None:
        self.connector_id = connector_id
        self.root = root
        self.context = SourceContext()

    def attach(self, context: SourceContext) -> None:
        """Give the source the process's secrets and state store, before ``full``
        and ``read`` are used."""
        self.context = context

    def commit(self) -> None:
        """Called once a run has applied everything this source's read gave; an
        incremental source keeps its new cursor here. Nothing by default."""
        return None

    def reject(self) -> None:
        """Called once a run that read this source has failed (never after a dry
        run); a file source sets aside a file it could not read. Nothing by
        default."""
        return None

    @property
    def full(self) -> bool:
        return True

    @abstractmethod
    def read(self) -> Iterator[Record]:
        """Yield the source's records in source order."""

    def describe(self) -> str:
        """A short, secret-free description of what is read (for logs and plans)."""
        return f"{self.kind}:{self.connector_id}"
