"""Alerts for failed and held runs and a stuck outbox, posted to a real local
webhook: once, not again within the repeat interval, again after it; retried on
5xx; never about a run that did not happen."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

import microcred_sync.outbox  # noqa: F401  (registers the outbox table)
from microcred_sync.errors import ConfigError
from microcred_sync.ops.alerts import Alert, after_run, check_outbox_age, post_alert
from microcred_sync.project import load_project
from microcred_sync.results.flow import run_results
from microcred_sync.settings import AlertSettings, Settings, Webhook
from tests.cli_runner import cli
from tests.conftest import ProjectDir, employee_row

from .conftest import WebhookReceiver, add_alerts

JOB = "example-corp-roster"
PARTNER = "example-corp"
DAF = "data-analytics-foundations"


def texts(webhook: WebhookReceiver) -> list[str]:
    return [post["body"]["text"] for post in webhook.posts]


def test_failed_run_from_the_command_line_alerts_once(
    alerting: ProjectDir, webhook: WebhookReceiver
) -> None:
    """`run` of a job whose export is missing fails and posts one alert naming the
    job, its partner and why; a second failure at once posts nothing more."""
    first = cli(alerting, "run", JOB)
    assert first.returncode == 1
    assert len(webhook.posts) == 1
    post = webhook.posts[0]
    assert post["content_type"] == "application/json"
    assert webhook.paths == ["/hooks/ops"]
    text = post["body"]["text"]
    assert f"job {JOB} of partner example-corp: run failed" in text
    assert "inbox" in text  # the reason: no export file where the connector looks
    # The same words as Block Kit blocks for Slack; Mattermost reads ``text``.
    section = post["body"]["blocks"][0]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert f"job {JOB}" in section["text"]["text"]

    second = cli(alerting, "run", JOB)
    assert second.returncode == 1
    assert len(webhook.posts) == 1
    assert "not repeated within 60 minutes" in second.stderr


def test_held_run_alerts_with_the_guards_reason_and_no_personal_data(
    alerting: ProjectDir,
    webhook: WebhookReceiver,
    employees: Callable[[int], list[str]],
) -> None:
    """15% of the roster gone is held by the guard: one alert says held and why,
    with counts, never a learner's name or email."""
    alerting.write_roster(employees(100))
    project = load_project(Settings(root=alerting.root))
    done = alerting.run()
    assert done.status == "done"
    assert not after_run(project, JOB, done)
    assert webhook.posts == []

    alerting.write_roster(employees(85))
    held = alerting.run()
    assert held.status == "held"
    assert after_run(project, JOB, held)
    [text] = texts(webhook)
    assert "run held" in text and "15 suspensions planned" in text
    assert held.run_id is not None and held.run_id in text
    assert "example-corp.com" not in text and "Given" not in text


@pytest.mark.both_databases
def test_alert_repeats_only_after_the_interval(
    alerting: ProjectDir, webhook: WebhookReceiver
) -> None:
    """Within repeat_minutes the same job's alert is not sent again; after it, it is;
    another job's alert is not held back by the first one's."""
    project = load_project(Settings(root=alerting.root))
    failed = alerting.run()
    assert failed.status == "failed"
    start = datetime.now(UTC)
    assert after_run(project, JOB, failed, now=start)
    assert not after_run(project, JOB, failed, now=start + timedelta(minutes=59))
    assert after_run(project, JOB, failed, now=start + timedelta(minutes=61))
    assert not after_run(project, JOB, failed, now=start + timedelta(minutes=90))
    assert after_run(project, "example-corp-deliver", failed, now=start)
    assert len(webhook.posts) == 3


@pytest.mark.both_databases
def test_replicas_alerting_at_once_send_one_alert(
    alerting: ProjectDir, webhook: WebhookReceiver
) -> None:
    """Four replicas that see the same failed run at the same moment: the alert
    slot in the state store lets one of them send it."""
    project = load_project(Settings(root=alerting.root))
    failed = alerting.run()
    now = datetime.now(UTC)
    with ThreadPoolExecutor(max_workers=4) as pool:
        sent = list(
            pool.map(lambda _: after_run(project, JOB, failed, now=now), range(4))
        )
    assert sent.count(True) == 1
    assert len(webhook.posts) == 1


def test_a_run_that_did_not_start_raises_no_alert(
    alerting: ProjectDir, webhook: WebhookReceiver
) -> None:
    """A run refused because another run holds the job's lock has no run id: no
    alert (the run in progress reports for itself)."""
    project = load_project(Settings(root=alerting.root))
    locked = alerting.run()
    locked.run_id = None
    assert not after_run(project, JOB, locked)
    assert webhook.posts == []


def test_webhook_500_is_retried_until_it_takes_the_alert(
    alerting: ProjectDir, webhook: WebhookReceiver
) -> None:
    """Two 500s and a 429 are retried; the fourth POST, the same body, is taken."""
    webhook.answers = [500, 500, 429]
    project = load_project(Settings(root=alerting.root))
    assert after_run(project, JOB, alerting.run())
    assert [post["status"] for post in webhook.posts] == [500, 500, 429, 200]
    assert len({str(post["body"]) for post in webhook.posts}) == 1


@pytest.mark.both_databases
def test_an_alert_no_webhook_took_is_sent_next_time(
    alerting: ProjectDir, webhook: WebhookReceiver
) -> None:
    """When every attempt fails the alert is not counted as sent: the next failed
    run's alert goes out, inside the repeat interval."""
    webhook.answers = [503] * 4
    project = load_project(Settings(root=alerting.root))
    failed = alerting.run()
    assert not after_run(project, JOB, failed)
    assert len(webhook.posts) == 4  # attempts = 4, then it gave up
    assert after_run(project, JOB, failed)
    assert len(webhook.posts) == 5 and webhook.posts[-1]["status"] == 200


def test_webhook_refusal_is_not_retried(
    alerting: ProjectDir, webhook: WebhookReceiver
) -> None:
    """A 404 (a revoked webhook) is not retried: one POST, no alert recorded."""
    webhook.answers = [404]
    project = load_project(Settings(root=alerting.root))
    assert not after_run(project, JOB, alerting.run())
    assert len(webhook.posts) == 1


def test_outbox_entries_waiting_too_long_alert_per_deliver_job(
    alerting: ProjectDir, webhook: WebhookReceiver
) -> None:
    """Statements queued and not delivered for longer than outbox_age_minutes raise
    one alert for the deliver job of their sink, then none until the interval."""
    project = load_project(Settings(root=alerting.root))
    _queue_statements(alerting)
    now = datetime.now(UTC)
    assert check_outbox_age(project, now=now) == []  # just queued

    later = now + timedelta(minutes=121)
    [alert] = check_outbox_age(project, now=later)
    assert alert.job == "example-corp-deliver" and alert.kind == "outbox"
    [text] = texts(webhook)
    assert "example-corp-statements: 2 pending, the oldest for 2 h" in text
    assert check_outbox_age(project, now=later + timedelta(minutes=5)) == []
    assert len(webhook.posts) == 1


def test_plain_http_is_refused_outside_the_loopback_interface() -> None:
    """A webhook URL on http:// to another host is refused before any request."""
    webhook = Webhook(name="chat", url="http://chat.example.org/hooks/1")
    alert = Alert(job="j", partner="p", kind="run", title="t", detail="d")
    with pytest.raises(ConfigError, match="must be https"):
        post_alert(webhook, alert, AlertSettings(webhooks=(webhook,)))


def test_webhook_settings_need_exactly_one_url(project_dir: ProjectDir) -> None:
    """A webhook with both url and url_secret is a configuration error naming it."""
    add_alerts(
        project_dir, 'name = "twice"\nurl = "https://a.example"\nurl_secret = "X"'
    )
    result = cli(project_dir, "check")
    assert result.returncode == 2
    assert "alerts" in result.stderr and "exactly one of url or url_secret" in (
        result.stderr
    )


def _queue_statements(project: ProjectDir) -> None:
    """A pass and an award on the platform, queued as two statements for the
    example's file sink by the results job."""
    project.write_roster([employee_row(4)])
    assert project.run().status == "done"
    path = project.root / "results.csv"
    path.write_text(
        "learner,program,recorded_at,cmi.core.lesson_status,cmi.core.score.raw\n"
        f"000004,{DAF},2026-11-30T09:00:00Z,passed,88\n",
        encoding="utf-8",
    )
    awards = project.root / "awards.jsonl"
    awards.write_text(
        json.dumps(
            {
                "kind": "award",
                "learner": "000004",
                "program": DAF,
                "issued_at": "2026-11-30T10:00:00Z",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    for file in (path, awards):
        imported = cli(project, "results", "import", str(file), "--partner", PARTNER)
        assert imported.returncode == 0, imported.stderr
    outcome = run_results(
        load_project(Settings(root=project.root)), "example-corp-results"
    )
    assert outcome.status == "done" and outcome.enqueued == 2, outcome.error


def test_a_secret_missing_when_the_source_connects_fails_the_run_and_alerts(
    alerting: ProjectDir, webhook: WebhookReceiver
) -> None:
    """The directory's password is read as its source connects, once the run has
    started: the run is recorded failed with the reason, alerted on, exit 2."""
    job = "example-directory-roster"
    result = cli(alerting, "run", job)
    assert result.returncode == 2
    why = "secret EXAMPLE_DIRECTORY_PASSWORD is not set"
    assert why in result.stdout + result.stderr
    assert len(webhook.posts) == 1
    assert f"job {job} of partner" in texts(webhook)[0]
    assert why in texts(webhook)[0]
    status, error = (
        alerting.state()
        .execute("select status, error from runs where job = ?", [job])
        .fetchone()
    )
    assert status == "failed"
    assert why in error
