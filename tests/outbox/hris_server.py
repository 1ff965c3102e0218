"""A local HTTP server answering as BambooHR's training API documents, and as a
generic JSON endpoint that takes one completion per POST.

BambooHR (``/api/v1/...``): the API key is the basic-auth user (any password);
``GET /training/type`` lists the training types, ``GET /training/record/employee/
{id}`` an employee's records (an object keyed by record id; an empty JSON array
when there is none; ``trainingTypeId`` filters), ``POST`` on the same path adds
one (201 with the record; 400 with ``X-BambooHR-Error-Message`` when ``completed``
is not yyyy-mm-dd or ``type`` is no training type; 404 for an unknown employee).
Errors come with the reason in that header, as BambooHR's API details say.

The JSON endpoint (``POST /hris/completions``): a bearer token; the
``Idempotency-Key`` header keys the completion; a key it holds gets 409.

Faults are scripted: ``fail(status, ...)`` answers the next requests (of one
method) with an error; ``lose_answer()`` stores the next POST and then closes the
connection without answering; ``hang_after_store()`` stores it and holds the
answer back until ``release()``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "bamboo-api-key-0f3c9a"
TOKEN = "hris-json-token-7d21"

#: The company's training types (BambooHR's TrainingType shape).
TYPES = {
    7: {"id": 7, "name": "Data Analytics Foundations", "renewable": False},
    8: {"id": 8, "name": "Applied Machine Learning", "renewable": False},
}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RECORDS = re.compile(r"^/api/v1/training/record/employee/([^/]+)$")


@dataclass
class Fault:
    """One scripted answer: ``status`` with ``headers``, to ``method`` or any."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    body: bytes = b""


class FakeHris:
    """The server, its state and its script; ``url`` is where it listens."""

    def __init__(self, employees: set[str]) -> None:
        self.employees = set(employees)
        self.records: dict[str, dict[int, dict[str, Any]]] = {}
        self.completions: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.lose_next_answer = False
        self.hang_next_answer = False
        self.stored = threading.Event()
        self.released = threading.Event()
        self.lock = threading.Lock()
        self._next_id = 100
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    # -- script ---------------------------------------------------------------

    def fail(
        self,
        status: int,
        *,
        times: int = 1,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> None:
        for _ in range(times):
            self.faults.append(Fault(status, dict(headers or {}), method, body))

    def lose_answer(self) -> None:
        self.lose_next_answer = True

    def hang_after_store(self) -> None:
        self.hang_next_answer = True

    def release(self) -> None:
        self.released.set()

    # -- state ----------------------------------------------------------------

    def records_of(self, employee: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.records.get(employee, {}).values())

    def posts(self) -> int:
        return sum(1 for method, _ in self.requests if method == "POST")

    def next_fault(self, method: str) -> Fault | None:
        with self.lock:
            for position, fault in enumerate(self.faults):
                if fault.method in (None, method):
                    return self.faults.pop(position)
        return None

    def add_record(self, employee: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._next_id += 1
            record = {
                "id": self._next_id,
                "employeeId": int(employee) if employee.isdigit() else employee,
                "completed": body["completed"],
                # BambooHR gives ids and numbers back as text.
                "type": str(body["type"]),
                "notes": body.get("notes"),
                "instructor": body.get("instructor"),
                "hours": None if body.get("hours") is None else str(body["hours"]),
                "credits": None
                if body.get("credits") is None
                else str(body["credits"]),
                "cost": None,
            }
            self.records.setdefault(employee, {})[self._next_id] = record
            return record


def _handler(hris: FakeHris) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read the server's state instead."""

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        # -- dispatch ---------------------------------------------------------

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            hris.requests.append((method, parts.path))
            fault = hris.next_fault(method)
            if fault is not None:
                self._send(fault.status, fault.body, fault.headers)
                return
            if parts.path == "/hris/completions" and method == "POST":
                self._json_endpoint(raw)
                return
            if not self._bamboo_auth():
                self._error(401, "Invalid API key")
                return
            if parts.path == "/api/v1/training/type" and method == "GET":
                self._json(200, {str(key): value for key, value in TYPES.items()})
                return
            match = _RECORDS.match(parts.path)
            if match is None:
                self._error(404, "Bad request url")
                return
            employee = match.group(1)
            if employee not in hris.employees:
                self._error(404, "Employee not found")
                return
            if method == "GET":
                self._list(employee, parse_qs(parts.query))
            else:
                self._add(employee, raw)

        # -- BambooHR ---------------------------------------------------------

        def _bamboo_auth(self) -> bool:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return False
            user = base64.b64decode(header[6:]).decode().partition(":")[0]
            return user == API_KEY

        def _list(self, employee: str, query: dict[str, list[str]]) -> None:
            records = hris.records_of(employee)
            wanted = query.get("trainingTypeId")
            if wanted:
                records = [r for r in records if r["type"] == wanted[0]]
            if not records:
                self._json(200, [])  # PHP's empty array: no records at all
                return
            self._json(200, {str(record["id"]): record for record in records})

        def _add(self, employee: str, raw: bytes) -> None:
            try:
                body = json.loads(raw)
            except ValueError:
                self._error(400, "Malformed JSON")
                return
            completed = str(body.get("completed", ""))
            if not _DATE.match(completed):
                self._error(400, "Completed is a required field in yyyy-mm-dd format")
                return
            if body.get("type") not in TYPES:
                self._error(400, "Type must be an existing training type id")
                return
            record = hris.add_record(employee, body)
            if self._held_back():
                return
            self._json(201, record)

        def _held_back(self) -> bool:
            """Lose or delay the answer to a POST that was stored, if scripted."""
            if hris.lose_next_answer:
                hris.lose_next_answer = False
                self.close_connection = True
                self.connection.close()
                return True
            if hris.hang_next_answer:
                hris.hang_next_answer = False
                hris.stored.set()
                hris.released.wait(60)
            return False

        # -- the JSON endpoint ------------------------------------------------

        def _json_endpoint(self, raw: bytes) -> None:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._json(401, {"message": "bad token"})
                return
            key = self.headers.get("Idempotency-Key")
            if not key:
                self._json(400, {"message": "Idempotency-Key is required"})
                return
            body = json.loads(raw)
            if not body.get("employee"):
                self._json(422, {"message": "employee is required"})
                return
            with hris.lock:
                if key in hris.completions:
                    self._json(409, {"message": "already recorded"})
                    return
                hris.completions[key] = body
            if self._held_back():
                return
            self._json(201, {"id": key})

        # -- answers ----------------------------------------------------------

        def _error(self, status: int, message: str) -> None:
            self._send(status, b"", {"X-BambooHR-Error-Message": message})

        def _json(self, status: int, document: Any) -> None:
            self._send(
                status,
                json.dumps(document).encode(),
                {"Content-Type": "application/json"},
            )

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler
