"""Alerts: a failed or held run, or outbox entries waiting too long, posted to the
chat webhooks of the settings (``[alerts]``).

The daemon calls ``after_run`` after each run and ``check_outbox_age`` now and
then; `microcred-sync run` calls ``after_run`` too, so a failed run alerts however
it was started. An alert of a job repeats at most once per ``repeat_minutes``: the
``alerts`` table of the state store says when it was last sent, and a replica
claims the slot there before sending, so two replicas do not both send it.

The POST body is what Slack and Mattermost incoming webhooks accept: ``text``
(Slack mrkdwn), and, unless a webhook turns them off, Block Kit ``blocks`` with the
same words. Alerts name jobs, partners, sinks, run ids and counts; never a learner's
name or email, never a secret (the text goes through ``redact``), never the
webhook's URL (it may be a secret; logs name the webhook).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from ..connectors.config import is_loopback
from ..errors import ConfigError, SyncError
from ..logging import redact
from ..outbox.retry import retry_after_seconds
from ..project import Project
from ..secrets import read_secret
from ..settings import AlertSettings, Webhook
from ..state.store import StateStore
from ..state.tables import alerts
from .status import Backlog, outbox_backlog

logger = logging.getLogger(__name__)

#: Run outcomes that raise an alert.
ALERTING = frozenset({"failed", "held"})

#: The longest a webhook's ``Retry-After`` (or our backoff) makes us wait, seconds.
WAIT_CAP = 30.0

#: Slack cuts a section's text at 3000 characters; ours stays well under.
TEXT_LIMIT = 2500


class Outcome(Protocol):
    """What ``after_run`` reads of a run's outcome (any flow's)."""

    @property
    def status(self) -> str: ...

    @property
    def run_id(self) -> str | None: ...

    @property
    def error(self) -> str | None: ...


@dataclass(frozen=True)
class Alert:
    """One alert: which job it is about, of which kind, and what it says."""

    job: str
    partner: str
    #: ``run`` (a failed or held run) or ``outbox`` (entries waiting too long).
    kind: str
    title: str
    detail: str
    run_id: str | None = None


class WebhookFailed(SyncError):
    """A webhook did not take an alert (after retries, or refused it for good)."""


class _Temporary(Exception):
    """A webhook answer worth trying again: 429 or 5xx, maybe with Retry-After."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.retry_after = status, retry_after


def after_run(
    project: Project, job: str, outcome: Outcome, now: datetime | None = None
) -> bool:
    """Alert on a failed or held run of ``job``; returns whether an alert went out.

    A run that never started (its job was locked by another run) raises none.
    Never raises for a webhook or the state store: alerting must not fail a run.
    """
    if outcome.status not in ALERTING or outcome.run_id is None:
        return False
    partner = project.job(job).partner
    held_reason = getattr(outcome, "held_reason", None)
    why = held_reason if outcome.status == "held" else outcome.error
    alert = Alert(
        job=job,
        partner=partner,
        kind="run",
        title=f"job {job} of partner {partner}: run {outcome.status}",
        detail=why or "no reason recorded",
        run_id=outcome.run_id,
    )
    return _raise(project, alert, now or datetime.now(UTC))


def check_outbox_age(project: Project, now: datetime | None = None) -> list[Alert]:
    """Alert for every deliver job whose sinks hold a pending entry older than
    ``outbox_age_minutes``; returns the alerts that went out."""
    now = now or datetime.now(UTC)
    settings = project.settings
    limit = timedelta(minutes=settings.alerts.outbox_age_minutes)
    sent: list[Alert] = []
    try:
        store = StateStore(settings.database_url(settings.state_url))
    except SQLAlchemyError:
        logger.exception("outbox age not checked: the state store is not usable")
        return sent
    try:
        for job in project.jobs.values():
            if job.flow != "deliver":
                continue
            late = [
                entry
                for entry in outbox_backlog(store.engine, job.sinks).values()
                if entry.oldest_at is not None and now - entry.oldest_at > limit
            ]
            if not late:
                continue
            alert = _outbox_alert(job.id, job.partner, late, now)
            if _raise(project, alert, now, store.engine):
                sent.append(alert)
    except SQLAlchemyError:
        logger.exception("outbox age not checked: the state store is not usable")
    finally:
        store.close()
    return sent


def _outbox_alert(
    job: str, partner: str, late: Sequence[Backlog], now: datetime
) -> Alert:
    parts = [
        f"{entry.sink}: {entry.pending} pending, the oldest for "
        f"{_duration(entry.age_seconds(now) or 0.0)}"
        for entry in late
    ]
    return Alert(
        job=job,
        partner=partner,
        kind="outbox",
        title=f"job {job} of partner {partner}: outbox entries waiting too long",
        detail="; ".join(parts),
    )


def _raise(
    project: Project, alert: Alert, now: datetime, engine: Engine | None = None
) -> bool:
    """Send ``alert`` unless one of its kind went out for the job lately."""
    settings = project.settings.alerts
    if not settings.webhooks:
        return False
    store = None
    try:
        if engine is None:
            state = project.settings
            store = StateStore(state.database_url(state.state_url))
            store.create_schema()
            engine = store.engine
        return _claim_and_send(engine, settings, project, alert, now)
    except SQLAlchemyError:
        logger.exception(
            "alert for job %s not sent: the state store is not usable", alert.job
        )
        return False
    finally:
        if store is not None:
            store.close()


def _claim_and_send(
    engine: Engine,
    settings: AlertSettings,
    project: Project,
    alert: Alert,
    now: datetime,
) -> bool:
    """Claim the job's alert slot, send, and give the slot back if nothing took it."""
    previous = _claim(engine, alert, now, timedelta(minutes=settings.repeat_minutes))
    if previous is False:
        logger.info(
            "alert for job %s (%s) not repeated within %d minutes",
            alert.job,
            alert.kind,
            settings.repeat_minutes,
        )
        return False
    delivered = 0
    for webhook in settings.webhooks:
        try:
            post_alert(webhook, alert, settings, project.settings.secrets_dir)
            delivered += 1
        except (WebhookFailed, ConfigError) as exc:
            logger.error(
                "alert for job %s not taken by webhook %s: %s",
                alert.job,
                webhook.name,
                exc,
            )
    if delivered == 0:
        _unclaim(engine, alert, previous)
        return False
    logger.info(
        "alert for job %s (%s) sent to %d webhooks", alert.job, alert.kind, delivered
    )
    return True


def _claim(
    engine: Engine, alert: Alert, now: datetime, repeat: timedelta
) -> datetime | bool | None:
    """Take the job's alert slot: the time of the alert before (None: the first),
    or False when an alert of this kind went out less than ``repeat`` ago.

    A conditional update (or an insert for the first one) makes the look and the
    take one step, so two replicas cannot both take the slot.
    """
    key = (alerts.c.job == alert.job) & (alerts.c.kind == alert.kind)
    with engine.begin() as connection:
        before = connection.execute(select(alerts.c.sent_at).where(key)).scalar()
        if before is not None:
            before = _aware(before)
            if now - before < repeat:
                return False
            taken = connection.execute(
                update(alerts)
                .where(key, alerts.c.sent_at == before)
                .values(sent_at=now, run_id=alert.run_id)
            ).rowcount
            return before if taken else False
    # The first alert of its kind: an insert in a transaction of its own, which a
    # replica that inserted first makes fail (PostgreSQL aborts the transaction).
    try:
        with engine.begin() as connection:
            connection.execute(
                alerts.insert().values(
                    job=alert.job, kind=alert.kind, sent_at=now, run_id=alert.run_id
                )
            )
    except IntegrityError:
        return False
    return None


def _unclaim(engine: Engine, alert: Alert, previous: datetime | bool | None) -> None:
    """Give back a slot whose alert no webhook took, so the next one is sent."""
    key = (alerts.c.job == alert.job) & (alerts.c.kind == alert.kind)
    with engine.begin() as connection:
        if isinstance(previous, datetime):
            connection.execute(update(alerts).where(key).values(sent_at=previous))
        else:
            connection.execute(delete(alerts).where(key))


def payload(alert: Alert, *, blocks: bool = True) -> dict[str, Any]:
    """The JSON body for a Slack- or Mattermost-compatible incoming webhook."""
    where = (
        f"run {alert.run_id} on {socket.gethostname()}"
        if alert.run_id
        else (f"checked on {socket.gethostname()}")
    )
    title = _escape(redact(alert.title))
    detail = _escape(redact(alert.detail))[:TEXT_LIMIT]
    body: dict[str, Any] = {"text": f"microcred-sync: {title}\n{detail}\n({where})"}
    if blocks:
        body["blocks"] = [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*microcred-sync: {title}*\n{detail}",
                },
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": where}]},
        ]
    return body


def post_alert(
    webhook: Webhook,
    alert: Alert,
    settings: AlertSettings,
    secrets_dir: Path | None = None,
) -> None:
    """POST ``alert`` to ``webhook``, retrying 429, 5xx, timeouts and refused
    connections with a bounded backoff; raises WebhookFailed when it gave up.

    Raises ConfigError when the URL's secret is missing or the URL is not https
    (plain http is allowed on the loopback interface only).
    """
    url = _url(webhook, secrets_dir)
    session = requests.Session()
    session.verify = str(webhook.ca_file) if webhook.ca_file else True
    body = payload(alert, blocks=webhook.blocks)
    retrying = Retrying(
        stop=stop_after_attempt(settings.attempts),
        wait=lambda state: _wait(state, settings.backoff_seconds),
        retry=retry_if_exception_type(
            (_Temporary, requests.ConnectionError, requests.Timeout)
        ),
        before_sleep=lambda state: _log_retry(webhook, state),
        reraise=True,
    )
    try:
        retrying(_post, session, url, body, settings.timeout_seconds)
    except _Temporary as exc:
        raise WebhookFailed(
            f"answered {exc} after {settings.attempts} attempts", webhook=webhook.name
        ) from None
    except requests.RequestException as exc:
        raise WebhookFailed(
            f"unreachable after {settings.attempts} attempts ({type(exc).__name__})",
            webhook=webhook.name,
        ) from None
    finally:
        session.close()


def _post(
    session: requests.Session, url: str, body: dict[str, Any], timeout: float
) -> None:
    """One POST; a webhook does not redirect, so a redirect is a refusal."""
    response = session.post(url, json=body, timeout=timeout, allow_redirects=False)
    status = response.status_code
    response.close()
    if status == 429 or status >= 500:
        raise _Temporary(
            status, retry_after_seconds(response.headers.get("Retry-After"))
        )
    if not 200 <= status < 300:
        # The body may echo the request (or the token): only the status is kept.
        raise WebhookFailed(
            f"refused the alert with HTTP {status}; check the webhook's URL"
        )


def _url(webhook: Webhook, secrets_dir: Path | None) -> str:
    if webhook.url_secret is not None:
        url = read_secret(webhook.url_secret, secrets_dir).get_secret_value()
    else:
        assert webhook.url is not None
        url = webhook.url
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return url
    raise ConfigError(
        f"alerts.webhooks.{webhook.name}: the URL must be https (plain http only "
        "on the loopback interface)"
    )


def _wait(state: RetryCallState, base: float) -> float:
    """Doubling backoff from ``base``, or the webhook's Retry-After when longer;
    never more than WAIT_CAP."""
    backoff = base * 2.0 ** (state.attempt_number - 1)
    error = state.outcome.exception() if state.outcome else None
    asked = error.retry_after if isinstance(error, _Temporary) else None
    return min(WAIT_CAP, max(backoff, asked or 0.0))


def _log_retry(webhook: Webhook, state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    what = str(error) if isinstance(error, _Temporary) else type(error).__name__
    logger.warning(
        "webhook %s: attempt %d failed (%s); retrying in %.1fs",
        webhook.name,
        state.attempt_number,
        what,
        state.upcoming_sleep,
    )


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def _escape(text: str) -> str:
    """Slack reads ``&``, ``<`` and ``>`` as markup (``<!channel>`` pings a whole
    channel), so they are escaped as its message formatting rules say."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
