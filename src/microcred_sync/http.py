"""What the requests sessions of the source connectors share: which answers are
retried, how long to wait before the next attempt, and what a retry's log says;
and reading a ``Retry-After`` header, which the sinks' clients do too.

A wait is the larger of our exponential backoff (with jitter) and the server's
``Retry-After`` (seconds or an HTTP-date, RFC 9110 section 10.2.3), never longer
than the connector's ``retry_after_cap`` (HT-01).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
)

if TYPE_CHECKING:
    from .connectors.config import Retry

#: Answers a later attempt may not meet (RFC 9110 15.5.20, 15.6).
TEMPORARY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds, or None.

    RFC 9110 section 10.2.3: either delay-seconds or an HTTP-date; a date in the
    past means no wait. Anything else is ignored (None).
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def answer_retrying(
    policy: Retry,
    errors: tuple[type[BaseException], ...],
    before_sleep: Callable[[RetryCallState], None],
) -> Retrying:
    """A tenacity controller for calls that return a ``requests.Response``:
    ``errors`` and answers with a temporary status are tried again, at most
    ``policy.max_attempts`` times in all, waiting as ``retry_wait`` says; after the
    last attempt, its answer (for the caller to check) or its error."""
    return Retrying(
        retry=retry_if_exception_type(errors)
        | retry_if_result(lambda answer: answer.status_code in TEMPORARY_STATUSES),
        stop=stop_after_attempt(policy.max_attempts),
        wait=lambda state: retry_wait(policy, state),
        before_sleep=before_sleep,
        retry_error_callback=last_outcome,
    )


def asked_too_long(policy: Retry, response: requests.Response) -> float | None:
    """The ``Retry-After`` of a temporary answer when it asks for longer than
    ``retry_after_cap`` (a run does not wait that long), else None."""
    if response.status_code not in TEMPORARY_STATUSES:
        return None
    asked = retry_after_seconds(response.headers.get("Retry-After"))
    return asked if asked is not None and asked > policy.retry_after_cap else None


def retry_wait(policy: Retry, state: RetryCallState) -> float:
    """Seconds before the next attempt of a call that failed ``state``'s way."""
    exponent = min(state.attempt_number - 1, 20)
    ours = min(policy.backoff_base * 2.0**exponent, policy.backoff_max)
    ours += random.uniform(0, policy.backoff_base)
    outcome = state.outcome
    if outcome is not None and not outcome.failed:
        asked = retry_after_seconds(outcome.result().headers.get("Retry-After"))
        if asked is not None:
            # Jitter on the server's wait too: clients do not all return at once.
            ours = max(ours, asked + random.uniform(0, policy.backoff_base))
    return min(ours, policy.retry_after_cap)


def failed_attempt(state: RetryCallState) -> tuple[str, float]:
    """How the last attempt failed (an exception's name or ``HTTP 503``), and the
    seconds until the next one, for the retry's log line."""
    outcome = state.outcome
    if outcome is not None and outcome.failed:
        what = type(outcome.exception()).__name__
    else:
        what = f"HTTP {outcome.result().status_code}" if outcome else "?"
    return what, state.next_action.sleep if state.next_action else 0.0


def last_outcome(state: RetryCallState) -> Any:
    """After the last attempt: its answer (the caller checks it), or its error."""
    assert state.outcome is not None
    return state.outcome.result()
