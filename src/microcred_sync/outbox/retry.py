"""Retries of temporary delivery failures, with tenacity.

A failed attempt is retried only when it is a ``DeliveryTemporary``. The wait is the
larger of our own exponential backoff (with jitter) and the sink's ``Retry-After``,
never longer than the policy's cap (HT-01): a sink that asks for more is not waited
for inside the run; the run stops and the statements are rescheduled instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable

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

from ..http import retry_after_seconds as retry_after_seconds
from .errors import DeliveryTemporary
from .sinks import RetryPolicy


def beyond_cap(error: BaseException, policy: RetryPolicy) -> bool:
    """Whether ``error`` asks for a longer wait than a run waits."""
    asked = getattr(error, "retry_after", None)
    return asked is not None and asked > policy.retry_after_cap


def held_back(
    error: BaseException, policy: RetryPolicy, sink: str
) -> tuple[float, str] | None:
    """When ``error`` asks for a longer wait than a run waits: the seconds until
    a later run tries (what the sink asked, at most ``reschedule_max``) and why,
    naming the ``sink`` (``the LRS``); None otherwise."""
    if not beyond_cap(error, policy):
        return None
    asked = float(getattr(error, "retry_after", None) or 0.0)
    why = (
        f"{sink} asked to wait {asked:g} s (Retry-After), longer than the "
        f"{policy.retry_after_cap:g} s a run waits"
    )
    return min(asked, policy.reschedule_max), why


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
