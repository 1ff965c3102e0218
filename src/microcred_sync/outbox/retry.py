"""Retries of temporary delivery failures, with tenacity.

A failed attempt is retried only when it is a ``DeliveryTemporary``. The wait is the
larger of our own exponential backoff (with jitter) and the sink's ``Retry-After``,
never longer than the policy's cap (HT-01): a sink that asks for more is not waited
for inside the run; the run stops and the statements are rescheduled instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from .errors import DeliveryTemporary
from .sinks import RetryPolicy


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


def beyond_cap(error: BaseException, policy: RetryPolicy) -> bool:
    """Whether ``error`` asks for a longer wait than a run waits."""
    asked = getattr(error, "retry_after", None)
    return asked is not None and asked > policy.retry_after_cap


class RetryAfterWait(wait_base):
    """Our backoff, or the sink's ``Retry-After`` when longer; at most the cap."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.backoff = wait_exponential(
            multiplier=policy.backoff_base, max=policy.backoff_max
        ) + wait_random(0, policy.backoff_base)

    def __call__(self, retry_state: RetryCallState) -> float:
        ours = float(self.backoff(retry_state))
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        asked = getattr(error, "retry_after", None)
        if asked is not None:
            # A little jitter on the server's wait too, so clients do not return
            # all at once at the second it named.
            ours = max(ours, asked + random.uniform(0, self.policy.backoff_base))
        return min(ours, self.policy.retry_after_cap)


def reschedule_delay(policy: RetryPolicy, attempts: int) -> float:
    """Seconds until a later run tries an entry that has failed ``attempts`` times."""
    exponent = min(attempts, 30)
    delay = policy.backoff_base * 2.0**exponent
    return min(delay, policy.reschedule_max) * random.uniform(0.8, 1.0)


def retrying(
    policy: RetryPolicy,
    remaining: float,
    before_sleep: Callable[[RetryCallState], None],
) -> Retrying:
    """A tenacity controller for one request: temporary errors only, at most
    ``policy.max_attempts`` tries, none that would start after ``remaining``
    seconds; the last error is re-raised."""
    return Retrying(
        retry=retry_if_exception(
            lambda error: (
                isinstance(error, DeliveryTemporary) and not beyond_cap(error, policy)
            )
        ),
        stop=stop_after_attempt(policy.max_attempts)
        | stop_before_delay(max(remaining, 0.0)),
        wait=RetryAfterWait(policy),
        before_sleep=before_sleep,
        reraise=True,
    )
