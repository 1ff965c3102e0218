"""Every error microcred-sync raises on purpose, ordered by phase and by what to do.

The tree::

    SyncError                      base; carries structured context, never a secret
    ├── ConfigError                fatal, before anything is written (exit code 2)
    ├── ReadError                  the source could not be read as a whole roster
    │   ├── SourceUnavailable      retriable: the source was not there (file, server)
    │   └── ReadIncomplete         the read ended early; what was read is kept,
    │                              nothing is suspended
    ├── RecordRejected             skippable: one record is quarantined, the run goes on
    ├── ApplyError                 fatal for the run: the platform refused a batch
    ├── RunStopped                 a shutdown asked the run to stop between batches
    └── StateError                 fatal: the state store is not usable

An error's message says what happened and what to do next. Its ``context`` holds the
connector, partner, record location or key, never a whole record or a secret.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The exit code of a configuration error, found before a run or during it.
EXIT_CONFIG = 2


class SyncError(Exception):
    """Base of microcred-sync's errors; ``context`` names where it happened."""

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context: Mapping[str, object] = {
            name: value for name, value in context.items() if value is not None
        }

    def __str__(self) -> str:
        if not self.context:
            return self.message
        where = ", ".join(f"{name}={value}" for name, value in self.context.items())
        return f"{self.message} ({where})"


class ConfigError(SyncError):
    """A configuration file or setting is invalid; nothing has been written."""


class ReadError(SyncError):
    """A source could not be read as a whole; the run must not deprovision."""


class SourceUnavailable(ReadError):
    """The source was not reachable or not there; a later run may succeed."""


class ReadIncomplete(ReadError):
    """The read ended before the end of the roster; records so far are usable."""


class RecordRejected(SyncError):
    """One record cannot become a learner; it is quarantined with this reason."""

    def __init__(
        self, reason: str, *, key: str | None = None, field: str | None = None
    ):
        super().__init__(reason, key=key, field=field)
        self.reason = reason
        self.key = key
        self.field = field


class ApplyError(SyncError):
    """The platform refused a batch of changes; the batch was rolled back."""


class RunStopped(SyncError):
    """A shutdown (SIGTERM, SIGINT) stopped the run between two batches.

    Every batch applied so far is recorded; nothing is half-done, and the next run
    of the job goes on from there.
    """


class StateError(SyncError):
    """The state store cannot be used (missing, locked, or from a newer version)."""


def recorded(error: BaseException) -> str:
    """What the state store keeps of an error that ended a run: the message of one
    of ours (written to name where and what, never a secret's value), the class
    name of any other (its text may hold anything)."""
    return str(error) if isinstance(error, SyncError) else type(error).__name__
