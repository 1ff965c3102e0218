"""A fault proxy: a real HTTP server on 127.0.0.1 in front of the LRS.

Each request takes the next fault of the proxy's script (then ``pass`` once the
script is used up), or the fault ``every`` names for all of them:

- ``pass``: forward to the LRS and relay its answer;
- ``429:S`` / ``503:S``: answer that status with ``Retry-After: S`` seconds;
- ``503:date:S``: the same with an HTTP-date S seconds ahead;
- ``413``: answer 413 without forwarding;
- ``reset``: reset the connection before forwarding;
- ``reset-after``: forward (the LRS stores the batch), then reset, answer lost;
- ``delay:S``: forward, then wait S seconds before answering;
- ``stall:S``: send the status line and headers, then nothing for S seconds.

``max_body`` answers 413 to any body larger than that many bytes (a real LRS's
request size limit); ``on_request`` is called with the request's number before it
is handled (to stop the LRS in the middle of a delivery).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

FORWARDED_HEADERS = ("Authorization", "Content-Type", "X-Experience-API-Version")


class FaultProxy:
    """The proxy; ``endpoint`` is what a sink points at instead of the LRS."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.prefix = parts.path
        self.script: list[str] = []
        self.every: str | None = None
        self.max_body: int | None = None
        self.on_request: Callable[[int], None] | None = None
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.prefix}"

    def reset(self, *script: str, every: str | None = None) -> None:
        with self.lock:
            self.script, self.every, self.seen = list(script), every, []
            self.max_body, self.on_request = None, None

    def next_fault(self) -> tuple[int, str]:
        with self.lock:
            fault = self.every or (self.script.pop(0) if self.script else "pass")
            self.seen.append(fault)
            return len(self.seen), fault

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self._handle(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._handle(self.rfile.read(length))

        def _handle(self, body: bytes) -> None:
            number, fault = proxy.next_fault()
            if proxy.on_request is not None:
                proxy.on_request(number)
            if proxy.max_body is not None and len(body) > proxy.max_body:
                fault = "413"
            kind, _, argument = fault.partition(":")
            if kind in ("429", "503"):
                self._answer(
                    int(kind), b'{"detail":"slow down"}', _retry_after(argument)
                )
            elif kind == "413":
                self._answer(413, b'{"detail":"Request Entity Too Large"}')
            elif kind == "reset":
                self._reset()
            elif kind == "stall":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.flush()
                time.sleep(float(argument))
                self._reset()
            else:
                status, headers, answer = self._forward(body)
                if kind == "reset-after":
                    self._reset()
                    return
                if kind == "delay":
                    time.sleep(float(argument))
                self._answer(status, answer, headers)

        def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
            connection = http.client.HTTPConnection(
                proxy.upstream_host, proxy.upstream_port, timeout=30
            )
            headers = {
                name: value
                for name in FORWARDED_HEADERS
                if (value := self.headers.get(name)) is not None
            }
            try:
                connection.request(self.command, self.path, body or None, headers)
                response = connection.getresponse()
                answer = response.read()
                kept = {
                    name: value
                    for name, value in response.getheaders()
                    if name.lower() in ("content-type", "retry-after")
                }
                return response.status, kept, answer
            except OSError:
                return 502, {}, b'{"detail":"the LRS is not reachable"}'
            finally:
                connection.close()

        def _answer(
            self, status: int, body: bytes, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if status != 204:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 204:
                self.wfile.write(body)

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout: close() sends RST, not FIN.
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.close_connection = True
            self.connection.close()

        def finish(self) -> None:
            with contextlib.suppress(OSError, ValueError):
                super().finish()

    return Handler


def _retry_after(argument: str) -> dict[str, str]:
    if argument.startswith("date:"):
        moment = time.time() + float(argument.removeprefix("date:"))
        return {"Retry-After": formatdate(moment, usegmt=True)}
    return {"Retry-After": argument} if argument else {}
