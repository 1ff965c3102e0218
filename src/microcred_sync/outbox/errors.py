"""What can go wrong delivering from the outbox, by what the deliver flow does next.

The tree::

    SyncError                       microcred_sync.errors
    └── DeliveryError               base; carries sink, partner, HTTP status
        ├── OutboxEntryInvalid      a caller enqueued something undeliverable
        │                           (no id, no timestamp, naive time); nothing stored
        ├── DeliveryRefused         the sink will never take these statements as sent
        │   ├── StatementsRejected  400 or 422: bad statements; split until found,
        │   │                       then dead-lettered with the sink's reason
        │   ├── StatementConflict   409: another statement holds the id; dead-lettered
        │   └── BatchTooLarge       413: split; a single one too large is dead-lettered
        ├── DeliveryTemporary       429, 5xx, timeout, connection reset: retried with
        │                           backoff; after the budget the items stay pending
        └── DeliveryStopped         the run stops here, the items wait for a later run:
                                    bad credentials, wrong endpoint, a Retry-After
                                    beyond the cap, the run's deadline

Messages hold the HTTP status and the sink's own reason, truncated and with email
addresses masked; never a statement, a response body or a secret.
"""

from __future__ import annotations

from ..errors import SyncError


class DeliveryError(SyncError):
    """Base of the outbox's delivery errors."""


class OutboxEntryInvalid(DeliveryError):
    """An entry cannot be enqueued as given; nothing of the call was stored."""


class DeliveryRefused(DeliveryError):
    """The sink refused what was sent, for a reason a resend would not change."""

    #: Whether the batch is split to find the statements at fault.
    split = True


class StatementsRejected(DeliveryRefused):
    """The sink found statements in the batch invalid (HTTP 400 or 422)."""


class StatementConflict(DeliveryRefused):
    """A different statement with the same id is already stored (HTTP 409)."""


class BatchTooLarge(DeliveryRefused):
    """The request was larger than the sink takes (HTTP 413)."""


class DeliveryTemporary(DeliveryError):
    """A failure a later attempt may not meet: retried, never dropped.

    ``retry_after`` is the wait the sink asked for, in seconds, when it said one.
    """

    def __init__(
        self, message: str, *, retry_after: float | None = None, **context: object
    ) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class DeliveryStopped(DeliveryError):
    """The run stops delivering; what is left stays pending for a later run."""
