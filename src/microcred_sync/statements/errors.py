"""Errors of the statement builders: what in the input is wrong, and where.

The tree (each also a ``SyncError``, so it carries structured context)::

    StatementError          base: a statement or credential cannot be built
    ├── ScormDataError      the SCORM run-time data is invalid (field and value named);
    │                       skippable: the result is quarantined, the run goes on
    ├── StatementInputError the result or award lacks what the statement needs
    │                       (an email, a number, a timestamp with an offset);
    │                       skippable like ScormDataError
    └── SigningKeyError     the signing key secret is not an Ed25519 key in PEM or JWK
                            (also a ConfigError: fatal, nothing was written)

Messages name the field and, for SCORM data, the offending value (a status, a score,
a time: never personal data). They never hold an email, a number or a key.
"""

from __future__ import annotations

from ..errors import ConfigError, SyncError


class StatementError(SyncError):
    """A statement or credential cannot be built from this input."""


class ScormDataError(StatementError):
    """SCORM run-time data that is not what the SCORM data model allows."""

    def __init__(self, reason: str, *, field: str, value: str | None = None) -> None:
        shown = f" (got {value!r})" if value is not None else ""
        super().__init__(f"{field}: {reason}{shown}", field=field)
        self.reason = reason
        self.field = field
        self.value = value


class StatementInputError(StatementError):
    """A result or award that lacks, or holds a wrong, value the statement needs."""

    def __init__(self, reason: str, *, field: str, **context: object) -> None:
        super().__init__(f"{field}: {reason}", field=field, **context)
        self.reason = reason
        self.field = field


class SigningKeyError(StatementError, ConfigError):
    """The credential signing key cannot be used; the secret's text is never shown."""
