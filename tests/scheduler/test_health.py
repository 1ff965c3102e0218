"""/metrics and /healthz of a daemon running in this process, on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from microcred_sync.outbox import NewDelivery, Outbox
from microcred_sync.project import load_project
from microcred_sync.scheduler.daemon import Daemon
from microcred_sync.settings import DaemonSettings, Settings
from microcred_sync.state.store import StateStore
from tests.outbox.statements import statement
from tests.scheduler.conftest import (
    ROSTER_JOB,
    DaemonProcess,
    SchedulerProject,
    free_port,
    metric,
    wait_for,
)

DELIVER_JOB = "example-corp-deliver"
SINK = "example-corp-statements"
ACTIVITY = "https://courses.example.org/data-analytics-foundations"


def _deliveries(first: int, count: int) -> list[NewDelivery]:
    return [
        NewDelivery(
            id=(payload := statement(ACTIVITY, number))["id"],
            partner="example-corp",
            sink=SINK,
            payload=payload,
        )
        for number in range(first, first + count)
    ]


@pytest.fixture
def running_daemon(
    scheduler_project: SchedulerProject, postgres_databases: tuple[str, str]
) -> Iterator[tuple[Daemon, DaemonProcess]]:
    """A daemon with a deliver job that runs at start and a roster job that waits
    for a cron slot; three statements wait in the outbox when it starts."""
    project = scheduler_project
    project.write_roster(10)
    project.write_jobs(
        {
            "id": DELIVER_JOB,
            "flow": "deliver",
            "partner": "example-corp",
            "sinks": [SINK],
            "schedule": {"interval_minutes": 60},
        },
        {
            "id": ROSTER_JOB,
            "flow": "roster",
            "partner": "example-corp",
            "source": "example-corp-hris",
            "mapping": "example-corp-hris",
            "schedule": {"cron": "0 3 1 1 *", "timezone": "Europe/Paris"},
        },
    )
    state_url, platform_url = postgres_databases
    store = StateStore(state_url)
    store.create_schema()
    Outbox(store.engine).enqueue(_deliveries(1, 3))
    store.close()
    settings = Settings(
        root=project.root,
        state_url=state_url,
        platform_url=platform_url,
        daemon=DaemonSettings(http_port=free_port()),
    )
    daemon = Daemon(load_project(settings))
    daemon.start()
    client = DaemonProcess(project, "in-process", settings.daemon.http_port)
    try:
        yield daemon, client
    finally:
        daemon.shutdown(10)


def test_metrics_count_runs_deliveries_and_the_outbox_backlog(
    running_daemon: tuple[Daemon, DaemonProcess], postgres_databases: tuple[str, str]
) -> None:
    """After the deliver job's first run: one done run, three deliveries and their
    latencies, an empty backlog; entries enqueued 90 s ago show as backlog and age
    at the next scrape, read from the state store."""
    _daemon, client = running_daemon

    def delivered() -> str | None:
        body = client.get("/metrics")[1]
        done = metric(body, "microcred_runs_total", job=DELIVER_JOB, outcome="done")
        return body if done == 1 else None

    body = wait_for(delivered, 30, "the deliver job's first run", step=0.2)
    assert (
        metric(body, "microcred_deliveries_total", job=DELIVER_JOB, result="delivered")
        == 3
    )
    latencies = metric(
        body, "microcred_delivery_latency_seconds_count", job=DELIVER_JOB
    )
    assert latencies == 3
    labels = {"sink": SINK, "partner": "example-corp"}
    assert metric(body, "microcred_outbox_backlog", **labels) == 0
    assert metric(body, "microcred_runs_total", job=ROSTER_JOB, outcome="done") is None
    last = metric(body, "microcred_last_success_timestamp_seconds", job=DELIVER_JOB)
    assert last is not None and last <= datetime.now(UTC).timestamp()

    store = StateStore(postgres_databases[0])
    try:
        earlier = datetime.now(UTC) - timedelta(seconds=90)
        Outbox(store.engine).enqueue(_deliveries(10, 2), now=earlier)
    finally:
        store.close()
    body = client.get("/metrics")[1]
    assert metric(body, "microcred_outbox_backlog", **labels) == 2
    age = metric(body, "microcred_outbox_oldest_age_seconds", **labels)
    assert age is not None and 90 <= age < 120
    assert metric(body, "microcred_state_store_up") == 1


def test_healthz_is_ready_only_while_the_database_answers_and_the_scheduler_runs(
    running_daemon: tuple[Daemon, DaemonProcess], postgres_databases: tuple[str, str]
) -> None:
    """200 while both hold; 503 naming the scheduler while it is paused, and the
    database once it is gone; /metrics still answers, saying the store is down."""
    daemon, client = running_daemon
    status, body = client.get("/healthz")
    assert (status, json.loads(body)["checks"]) == (
        200,
        {"database": True, "scheduler": True},
    )
    daemon.scheduler.pause()
    status, body = client.get("/healthz")
    assert (status, json.loads(body)["checks"]["scheduler"]) == (503, False)
    daemon.scheduler.resume()
    assert client.get("/healthz")[0] == 200

    server, _, name = postgres_databases[0].rpartition("/")
    admin = server.replace("postgresql+psycopg", "postgresql") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    status, body = client.get("/healthz")
    assert (status, json.loads(body)["checks"]) == (
        503,
        {"database": False, "scheduler": True},
    )
    status, body = client.get("/metrics")
    assert status == 200 and metric(body, "microcred_state_store_up") == 0
