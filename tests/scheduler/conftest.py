"""Daemons as real child processes on a project folder of their own, and the run
history they leave in the state store."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, select, text

from microcred_sync.state.tables import runs
from tests.conftest import HEADER, REPO, employee_row

ROSTER_JOB = "example-corp-roster"
#: The example's roster job, as a jobs.yaml entry (a test adds its schedule).
ROSTER = {
    "id": ROSTER_JOB,
    "flow": "roster",
    "partner": "example-corp",
    "source": "example-corp-hris",
    "mapping": "example-corp-hris",
}

#: Where the committed connector reads exports; the tests' project reads its own.
EXAMPLE_EXPORTS = "examples/example-corp/inbox/hris-export-*.csv"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class RunRow:
    """One run of the history, as the state store keeps it."""

    id: str
    job: str
    status: str
    started_at: datetime
    finished_at: datetime | None


class SchedulerProject:
    """A project folder with its own jobs file, settings and HRIS export."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for folder in ("config", "connectors", "mappings", "scheduler"):
            shutil.copytree(REPO / folder, root / folder)
        connector = root / "connectors" / "example-corp-hris.yaml"
        text_ = connector.read_text(encoding="utf-8")
        connector.write_text(
            text_.replace(EXAMPLE_EXPORTS, "inbox/*.csv"),
            encoding="utf-8",
        )
        (root / "inbox").mkdir()
        self.env: dict[str, str] = {}

    def write_roster(self, count: int) -> None:
        rows = [employee_row(number) for number in range(1, count + 1)]
        text_ = "\r\n".join([HEADER, *rows]) + "\r\n"
        (self.root / "inbox" / "hris-export.csv").write_text(text_, encoding="utf-8")

    def write_jobs(self, *jobs: dict[str, Any]) -> None:
        document = {"jobs": list(jobs)}
        (self.root / "scheduler" / "jobs.yaml").write_text(
            yaml.safe_dump(document), encoding="utf-8"
        )

    def write_settings(self, **daemon: object) -> None:
        """``config/settings.toml`` with these ``[daemon]`` settings."""
        lines = ['log_level = "INFO"', "batch_size = 500", "", "[daemon]"]
        lines += [f"{name} = {_toml(value)}" for name, value in daemon.items()]
        (self.root / "config" / "settings.toml").write_text(
            "\n".join(lines) + "\n", encoding="utf-8"
        )

    def use_databases(self, state_url: str, platform_url: str) -> None:
        self.env = {
            "MICROCRED_STATE_URL": state_url,
            "MICROCRED_PLATFORM_URL": platform_url,
        }

    @property
    def state_url(self) -> str:
        return self.env.get(
            "MICROCRED_STATE_URL", f"sqlite:///{self.root / 'var' / 'state.db'}"
        )

    def runs(self, job: str = ROSTER_JOB) -> list[RunRow]:
        """The job's runs, oldest first."""
        engine = create_engine(self.state_url)
        try:
            with engine.connect() as connection:
                rows = connection.execute(
                    select(runs).where(runs.c.job == job).order_by(runs.c.started_at)
                ).all()
        finally:
            engine.dispose()
        return [
            RunRow(r.id, r.job, r.status, _aware(r.started_at), _aware(r.finished_at))
            for r in rows
        ]

    def scalar(self, sql: str, url: str | None = None) -> Any:
        engine = create_engine(url or self.state_url)
        try:
            with engine.connect() as connection:
                return connection.execute(text(sql)).scalar()
        finally:
            engine.dispose()

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "microcred_sync", "--root", str(self.root), *args]

    def environment(self) -> dict[str, str]:
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("MICROCRED_")
        }
        env.update(self.env)
        env["PYTHONPATH"] = str(REPO / "src")
        return env


class DaemonProcess:
    """`microcred-sync schedule` in a child process, its log in a file."""

    def __init__(self, project: SchedulerProject, name: str, port: int) -> None:
        self.project, self.name, self.port = project, name, port
        self.log = project.root / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int | None = None) -> DaemonProcess:
        env = self.project.environment()
        env["MICROCRED_DAEMON"] = (
            f'{{"http_port": {self.port}, "stop_seconds": 30, "workers": 2}}'
        )
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.project.command("schedule"),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        return self

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` on the daemon's port: status and body."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def wait_serving(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.text()
            try:
                if self.get("/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} never became healthy:\n{self.text()}")

    def signal(self, number: int) -> None:
        assert self.process is not None
        self.process.send_signal(number)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def scheduler_project(tmp_path: Path) -> SchedulerProject:
    root = tmp_path / "project"
    root.mkdir()
    return SchedulerProject(root)


@pytest.fixture
def daemons(
    scheduler_project: SchedulerProject,
) -> Iterator[Callable[[str], DaemonProcess]]:
    """Starts named daemons on the project; stops those still running afterwards."""
    started: list[DaemonProcess] = []

    def start(name: str) -> DaemonProcess:
        daemon = DaemonProcess(scheduler_project, name, free_port()).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, step: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def overlapping(history: list[RunRow]) -> list[tuple[str, str]]:
    """Pairs of runs whose spans overlap (a run still going spans until now)."""
    now = datetime.now(UTC)
    spans = sorted((run.started_at, run.finished_at or now, run.id) for run in history)
    return [
        (first[2], second[2])
        for first, second in itertools.pairwise(spans)
        if second[0] < first[1]
    ]


def metric(body: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus text exposition, if present."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in body.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        sample, _, value = line.rpartition(" ")
        head, _, rest = sample.partition("{")
        if head != name:
            continue
        found = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if found == wanted:
            return float(value)
    return None


def _toml(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return str(value).lower() if isinstance(value, bool) else str(value)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
