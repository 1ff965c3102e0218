"""A chat webhook on 127.0.0.1 that keeps what it is sent, and projects whose
settings post alerts to it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import ProjectDir


class WebhookReceiver(ThreadingHTTPServer):
    """Answers POSTs as a Slack incoming webhook does: ``ok`` with 200, or the
    statuses queued in ``answers`` first (500, 429 with Retry-After, ...)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def next_answer(self) -> int:
        with self.lock:
            return self.answers.pop(0) if self.answers else 200


class _Handler(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        status = self.server.next_answer()
        with self.server.lock:
            self.server.posts.append(
                {
                    "status": status,
                    "content_type": self.headers.get("Content-Type"),
                    "body": json.loads(body),
                }
            )
            self.server.paths.append(self.path)
        # Slack's answers: "ok" in plain text, or a short error code.
        text = b"ok" if status == 200 else b"internal_error"
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()


def add_alerts(project: ProjectDir, webhook_entry: str, **settings: object) -> None:
    """Append an ``[alerts]`` section with one webhook to the project's settings."""
    values = {"repeat_minutes": 60, "backoff_seconds": 0.01, "timeout_seconds": 2}
    values.update(settings)
    lines = ["", "[alerts]"]
    lines += [f"{name} = {json.dumps(value)}" for name, value in values.items()]
    lines += ["", "[[alerts.webhooks]]", webhook_entry, ""]
    path = project.root / "config" / "settings.toml"
    with path.open("a", encoding="utf-8") as settings_file:
        settings_file.write("\n".join(lines))


@pytest.fixture
def alerting(project_dir: ProjectDir, webhook: WebhookReceiver) -> ProjectDir:
    """The repository's configuration, alerting to the local webhook."""
    add_alerts(project_dir, f'name = "ops-chat"\nurl = "{webhook.url}/hooks/ops"')
    return project_dir
