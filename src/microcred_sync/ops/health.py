"""The daemon's HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz`` for probes.

``/healthz`` answers 200 only when every check passes (the state store answers a
query, the scheduler is running), 503 otherwise, with the result of each check as a
small JSON object; a liveness or readiness probe reads the status code. The server
binds 127.0.0.1 unless the settings say otherwise: metrics name jobs and sinks.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from ..errors import ConfigError

logger = logging.getLogger(__name__)

#: Named checks, each returning whether it passed; none may raise.
Checks = Callable[[], Mapping[str, bool]]


class HealthServer:
    """``/metrics`` and ``/healthz`` on a port, served from a thread of its own."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, checks: Checks
    ) -> None:
        """Bind ``host``:``port`` (nothing served until ``start``); raises
        ConfigError naming the setting when the address cannot be bound."""
        self.registry, self.checks = registry, checks
        handler = type("_Handler", (_Handler,), {"endpoint": self})
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            raise ConfigError(_bind_problem(host, port, error)) from None
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="health-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The port served (the one the system chose when asked for port 0)."""
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()
        logger.info("serving /metrics and /healthz on port %d", self.port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(BaseHTTPRequestHandler):
    endpoint: HealthServer

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/metrics":
            self._metrics()
        elif path == "/healthz":
            self._health()
        else:
            self._answer(404, "text/plain; charset=utf-8", b"not found\n")

    def _metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        self._answer(200, content_type, encoder(self.endpoint.registry))

    def _health(self) -> None:
        checks = dict(self.endpoint.checks())
        healthy = bool(checks) and all(checks.values())
        body = json.dumps({"healthy": healthy, "checks": checks}).encode() + b"\n"
        self._answer(200 if healthy else 503, "application/json", body)

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes come every few seconds: not worth a line each.
        logger.debug("http %s", format % args)


def _bind_problem(host: str, port: int, error: OSError) -> str:
    """Which setting to fix when the endpoint cannot be bound, and how."""
    where = f"cannot serve /metrics and /healthz on {host}:{port}"
    why = error.strerror or str(error)
    if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
        # A name that does not resolve, or an address this machine does not have.
        return (
            f"daemon.http_host: {where}: {why}; set it to an address of this "
            "machine (127.0.0.1, or 0.0.0.0 for every interface)"
        )
    # Most often a second daemon on the same settings.
    return (
        f"daemon.http_port: {where}: {why}; stop what uses it (another daemon?) "
        "or set daemon.http_host and daemon.http_port (0 turns the endpoint off)"
    )
