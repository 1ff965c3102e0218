"""The ``file`` sink: statements appended to a file as JSON lines.

One line per statement, written once: the ids already in the file are read when a
run first writes to it, so a rerun (or a run after a crash between the write and
the outbox's mark) adds nothing twice. Each batch is flushed and fsync'd before the
outbox marks it delivered; a line cut by a crash is removed before appending.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import orjson

from .errors import DeliveryStopped
from .store import Delivery

logger = logging.getLogger(__name__)


class FileWriter:
    """Appends statements to one JSON-lines file, each id at most once."""

    def __init__(self, path: Path, *, connector: str) -> None:
        self.path, self.connector = path, connector
        self._known: set[str] | None = None

    def write(self, batch: Sequence[Delivery]) -> tuple[int, int]:
        """Append the statements of ``batch`` not yet in the file; returns how
        many were written and how many were there already.

        Raises DeliveryStopped when the file cannot be written.
        """
        try:
            known = self._ids()
            fresh = [entry for entry in batch if entry.id not in known]
            if fresh:
                self._append(b"".join(e.payload.encode() + b"\n" for e in fresh))
                known.update(entry.id for entry in fresh)
        except OSError as error:
            raise DeliveryStopped(
                f"cannot write {self.path}: {error.strerror or type(error).__name__}",
                sink=self.connector,
            ) from None
        return len(fresh), len(batch) - len(fresh)

    def _append(self, lines: bytes) -> None:
        new_file = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as stream:
            stream.write(lines)
            stream.flush()
            os.fsync(stream.fileno())
        if new_file:
            # The new name must be durable too, not only the file's content.
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def _ids(self) -> set[str]:
        """The statement ids in the file; a last line without its newline (cut
        by a crash, never marked delivered) is cut off."""
        if self._known is not None:
            return self._known
        known: set[str] = set()
        if self.path.exists():
            good_end = 0
            with self.path.open("rb") as stream:
                for line in stream:
                    if not line.endswith(b"\n"):
                        break
                    good_end += len(line)
                    ident = _statement_id(line)
                    if ident is None:
                        logger.warning("%s: a line that is not a statement", self.path)
                    else:
                        known.add(ident)
            if good_end != self.path.stat().st_size:
                logger.warning("%s: removing a line cut short", self.path)
                os.truncate(self.path, good_end)
        self._known = known
        return known


def _statement_id(line: bytes) -> str | None:
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    ident = document.get("id") if isinstance(document, dict) else None
    return ident if isinstance(ident, str) else None
