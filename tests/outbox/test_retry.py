"""Retry-After and backoff (HT-01), instants on the wire (XA-03), and what of an
LRS's error is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests
from tenacity import RetryCallState, Retrying

from microcred_sync.outbox.errors import DeliveryTemporary
from microcred_sync.outbox.lrs import format_instant, lrs_reason
from microcred_sync.outbox.retry import (
    RetryAfterWait,
    beyond_cap,
    reschedule_delay,
    retry_after_seconds,
)
from microcred_sync.outbox.sinks import RetryPolicy

NOW = datetime(2026, 10, 21, 7, 27, 0, tzinfo=UTC)
POLICY = RetryPolicy(backoff_base=1, backoff_max=30, retry_after_cap=120)


def _state(error: BaseException, attempt: int = 1) -> RetryCallState:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(error), error, None))
    return state


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    """HT-01 input: `7`, `Wed, 21 Oct 2026 07:28:00 GMT` and `86400` all parse."""
    assert retry_after_seconds("7", NOW) == 7
    assert retry_after_seconds("Wed, 21 Oct 2026 07:28:00 GMT", NOW) == 60
    assert retry_after_seconds("86400", NOW) == 86400


def test_retry_after_in_the_past_or_garbled_means_no_wait_asked() -> None:
    """A date already past asks for no wait; an unreadable header is ignored."""
    assert retry_after_seconds("Wed, 21 Oct 2026 07:00:00 GMT", NOW) == 0
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds("-5", NOW) is None
    assert retry_after_seconds(None, NOW) is None


def test_wait_is_the_larger_of_backoff_and_retry_after_within_the_cap() -> None:
    """`Retry-After: 7` on the first attempt waits 7 s (plus jitter), not 1 s;
    a long backoff wins over a short Retry-After; nothing waits past the cap."""
    wait = RetryAfterWait(POLICY)
    asked = wait(_state(DeliveryTemporary("429", retry_after=7)))
    assert 7 <= asked <= 8
    late = wait(_state(DeliveryTemporary("429", retry_after=1), attempt=5))
    assert 16 <= late <= 17
    assert wait(_state(DeliveryTemporary("503"), attempt=30)) <= POLICY.retry_after_cap


def test_retry_after_beyond_the_cap_is_not_waited_for() -> None:
    """`Retry-After: 86400` is not slept on inside a run: the run stops instead."""
    assert beyond_cap(DeliveryTemporary("429", retry_after=86400), POLICY)
    assert not beyond_cap(DeliveryTemporary("429", retry_after=7), POLICY)
    assert not beyond_cap(DeliveryTemporary("timeout"), POLICY)


def test_reschedule_delay_grows_and_is_capped() -> None:
    """A later run comes back sooner after one failure than after many, never
    later than the policy's longest wait."""
    assert reschedule_delay(POLICY, 1) <= 2
    assert reschedule_delay(POLICY, 40) <= POLICY.reschedule_max
    assert reschedule_delay(POLICY, 40) >= 0.8 * POLICY.reschedule_max


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (
            datetime(2026, 3, 29, 0, 30, 0, 123456, tzinfo=UTC),
            "2026-03-29T00:30:00.123Z",
        ),
        (
            datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=2))),
            "2026-03-29T00:30:00.000Z",
        ),
        (
            datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Paris")),
            "2026-03-29T01:30:00.000Z",
        ),
    ],
)
def test_instants_are_sent_as_utc_with_milliseconds(
    moment: datetime, expected: str
) -> None:
    """XA-03: RFC 3339 UTC, millisecond precision, whatever the offset given."""
    assert format_instant(moment) == expected


def test_a_naive_instant_is_refused() -> None:
    """XA-03: `2026-03-29 01:30:00` without a zone has no instant to send."""
    with pytest.raises(ValueError, match="naive"):
        format_instant(datetime(2026, 3, 29, 1, 30))


def _response(status: int, body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.encoding = "utf-8"
    return response


def test_reason_keeps_where_and_what_but_no_statement_or_email() -> None:
    """Ralph's 422 echoes the statement (`input`): only loc and msg are kept."""
    body = (
        b'{"detail":[{"type":"missing","loc":["body",3,"verb"],"msg":"Field required",'
        b'"input":{"actor":{"mbox":"mailto:dana@example.org"}}}]}'
    )
    assert lrs_reason(_response(422, body)) == "3.verb: Field required"


def test_reason_masks_emails_and_is_truncated() -> None:
    """A plain-text reason naming a person is masked; a long one is cut."""
    text = lrs_reason(_response(400, b"bad actor dana@example.org " + b"x" * 1000))
    assert "dana" not in text and "[email]" in text
    assert len(text) <= 300
