"""A local HTTPS server answering as Workday RaaS, BambooHR and SAP SuccessFactors
document their APIs, plus generic JSON endpoints for every pagination style and an
OAuth 2.0 token endpoint, for tests.

What each vendor answers, after its documentation:

- Workday RaaS: ``GET /ccx/service/customreport2/<tenant>/<owner>/<report>?format=json``
  with HTTP Basic: ``{"Report_Entry": [...]}``; reference columns as
  ``{"descriptor": ..., "id": ...}``, dates as ``2019-03-04-08:00`` or
  ``2019-03-04``, booleans ``"1"`` / ``"0"``;
- BambooHR (``/api/gateway.php/<company>/v1/``), Basic with the API key as user:
  ``employees/directory`` (``{"fields": [...], "employees": [...]}``), POST
  ``reports/custom?format=JSON`` (``{"title", "fields", "employees"}``),
  ``employees/changed?since=`` (``{"latest", "employees": {"<id>": {"id",
  "action", "lastChanged"}}}``) and ``employees/<id>?fields=``;
- SuccessFactors OData v2 (``/odata/v2/User``): ``{"d": {"results": [...],
  "__next": "...$skiptoken=..."}}``, ``__metadata``, deferred navigation,
  ``/Date(ms)/`` and ``/Date(ms+0000)/``, ``$select``, ``$filter`` on
  ``lastModifiedDateTime gt datetimeoffset'...'``, ``customPageSize``.

``faults`` holds misbehaviour for the next matching requests (429, 500, a body cut
short, an HTML sign-in page, a stall).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.local_server import LocalServer, QuietHandler

WORKDAY_PATH = "/ccx/service/customreport2/examplegroup/ISU_Learning/Learning_Roster"
WORKDAY_USER, WORKDAY_PASSWORD = "ISU_Learning@examplegroup", "workday-password"
BAMBOO_ROOT = "/api/gateway.php/examplegroup/v1/"
BAMBOO_KEY = "bamboo0123456789abcdef"
SF_PATH = "/odata/v2/User"
SF_USER, SF_PASSWORD = "microcred-api@examplegroupT1", "sf-password"
CLIENT_ID, CLIENT_SECRET = "microcred-client", "client-secret-value"
API_KEY = "generic-api-key-123"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Person:
    """One invented employee, as every vendor here renders them."""

    number: int
    department: str = "Analytics"
    title: str = "Analyst"
    active: bool = True
    modified: datetime = field(
        default_factory=lambda: datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    )

    @property
    def ident(self) -> str:
        return f"{self.number:05d}"

    @property
    def hired(self) -> date:
        return date(2019, 1, 1) + timedelta(days=self.number)

    def workday(self) -> dict[str, Any]:
        hired = self.hired.isoformat()
        return {
            "Employee_ID": self.ident,
            "Legal_First_Name": f"Given{self.number}",
            "Legal_Last_Name": f"Family{self.number}",
            "Work_Email": f"person{self.number}@example-group.com",
            "Supervisory_Organization": {
                "descriptor": self.department,
                "id": f"SUP-{self.department[:3].upper()}",
            },
            "Job_Profile": {"descriptor": self.title, "id": f"JP-{self.number % 7}"},
            "Location": {"descriptor": "Lyon", "id": "LOC-LYS"},
            # Odd numbers have the zone on the date, as some tenants send it.
            "Hire_Date": f"{hired}-08:00" if self.number % 2 else hired,
            "Last_Updated": "2026-03-01T01:00:00.000-08:00",
            "Active": "1" if self.active else "0",
            "Worker_Groups": [
                {"descriptor": "Learners", "id": "WG-1"},
                {
                    "descriptor": f"Site {self.number % 3}",
                    "id": f"WG-S{self.number % 3}",
                },
            ],
            "FTE": 1 if self.number % 4 else 0.5,
        }

    def bamboo(self) -> dict[str, Any]:
        return {
            "id": str(self.number),
            "employeeNumber": self.ident,
            "firstName": f"Given{self.number}",
            "lastName": f"Family{self.number}",
            "displayName": f"Given{self.number} Family{self.number}",
            "workEmail": f"person{self.number}@example-group.com",
            "department": self.department,
            "jobTitle": self.title,
            "location": "Lyon",
            "status": "Active" if self.active else "Inactive",
            "hireDate": self.hired.isoformat(),
        }

    def successfactors(self, base: str) -> dict[str, Any]:
        hired = datetime.combine(self.hired, datetime.min.time(), UTC)
        uri = f"{base}{SF_PATH}('{self.ident}')"
        return {
            "__metadata": {"uri": uri, "type": "SFOData.User"},
            "userId": self.ident,
            "firstName": f"Given{self.number}",
            "lastName": f"Family{self.number}",
            "email": f"person{self.number}@example-group.com",
            "department": self.department,
            "title": self.title,
            "location": "Lyon",
            "status": "t" if self.active else "f",
            "hireDate": f"/Date({_ms(hired)})/",
            "lastModifiedDateTime": f"/Date({_ms(self.modified)}+0000)/",
            "manager": {"__deferred": {"uri": f"{uri}/manager"}},
        }


def _ms(moment: datetime) -> int:
    return int((moment - _EPOCH).total_seconds() * 1000)


@dataclass
class Fault:
    """Misbehaviour for the next request whose path (and query) starts with
    ``path``."""

    kind: str  # "status", "truncated", "html", "html_as_json", "not_json", "stall"
    path: str = "/"
    status: int = 500
    retry_after: str | None = None


@dataclass
class State:
    """What the server holds and what it was asked."""

    people: list[Person] = field(default_factory=list)
    deleted: dict[str, datetime] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)
    token_requests: int = 0
    token_lifetime: int = 3600
    sf_page_size: int = 1000
    generic_records: int = 250
    generic_cap: int = 1000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.people.clear()
            self.deleted.clear()
            self.faults.clear()
            self.calls.clear()
            self.bodies.clear()
            self.tokens.clear()
            self.token_requests = 0
            self.token_lifetime = 3600
            self.sf_page_size = 1000
            self.generic_records = 250
            self.generic_cap = 1000

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if path.startswith(fault.path):
                    self.faults.remove(fault)
                    return fault
        return None


class Handler(QuietHandler):
    server: VendorServer

    # -- plumbing -------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with state.lock:
            state.calls.append((method, self.path))
        fault = state.take_fault(self.path)
        if fault is not None and self._fault(fault):
            return
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        route = self._route(parts.path)
        if route is None:
            self._json(404, {"error": "not found"})
            return
        route(method, parts.path, query, raw)

    def _route(
        self, path: str
    ) -> Callable[[str, str, dict[str, str], bytes], None] | None:
        if path == WORKDAY_PATH:
            return self._workday
        if path.startswith(BAMBOO_ROOT):
            return self._bamboo
        if path == SF_PATH:
            return self._successfactors
        if path == "/oauth/token":
            return self._token
        if path.startswith("/generic/"):
            return self._generic
        return None

    def _fault(self, fault: Fault) -> bool:
        if fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            self._json(fault.status, {"error": "temporarily unavailable"}, headers)
        elif fault.kind == "truncated":
            # Content-Length promises more than is sent, then the connection closes.
            body = b'{"Report_Entry": [{"Employee_ID": "00001", "Legal_First'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + 500))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        elif fault.kind == "not_json":
            body = b'{"Report_Entry": [{"Employee_ID": "00001", "Legal_First_Name": "Gi'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        elif fault.kind == "html":
            page = (
                b"<!DOCTYPE html><html><head><title>Sign In</title></head>"
                b"<body><form action='/login'>Sign in to continue</form></body></html>"
            )
            self._send(200, page, "text/html; charset=utf-8")
        elif fault.kind == "html_as_json":
            # A gateway's sign-in page sent with the API's content type.
            page = b"\r\n  <html><body>Session expired: sign in again</body></html>"
            self._send(200, page, "application/json")
        elif fault.kind == "stall":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.flush()
            time.sleep(3)
            self.close_connection = True
        else:
            return False
        return True

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Date", format_datetime(datetime.now(UTC), usegmt=True))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(
        self, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _basic(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user, password

    def _unauthorized(self, realm: str) -> None:
        self._json(
            401,
            {"error": "Unauthorized"},
            {"WWW-Authenticate": f'Basic realm="{realm}"'},
        )

    # -- Workday --------------------------------------------------------------------

    def _workday(
        self, method: str, path: str, query: dict[str, str], raw: bytes
    ) -> None:
        if self._basic() != (WORKDAY_USER, WORKDAY_PASSWORD):
            self._unauthorized("Workday")
            return
        if query.get("format") != "json":
            self._send(200, b"<wd:Report_Data/>", "application/xml")
            return
        entries = [person.workday() for person in self.server.state.people]
        self._json(200, {"Report_Entry": entries})

    # -- BambooHR -------------------------------------------------------------------

    def _bamboo(
        self, method: str, path: str, query: dict[str, str], raw: bytes
    ) -> None:
        if self._basic() is None or self._basic()[0] != BAMBOO_KEY:
            self._unauthorized("BambooHR")
            return
        state = self.server.state
        rest = path.removeprefix(BAMBOO_ROOT)
        people = {str(person.number): person for person in state.people}
        if rest == "employees/directory":
            rows = [p.bamboo() for p in state.people if p.active]
            fields = (
                [{"id": name, "type": "text", "name": name} for name in rows[0]]
                if rows
                else []
            )
            self._json(200, {"fields": fields, "employees": rows})
        elif rest == "reports/custom" and method == "POST":
            asked = json.loads(raw or b"{}")
            state.bodies.append(asked)
            names = asked.get("fields") or []
            rows = [
                {"id": p.bamboo()["id"], **{n: p.bamboo().get(n) for n in names}}
                for p in state.people
            ]
            fields = [{"id": n, "type": "text", "name": n} for n in names]
            self._json(
                200, {"title": asked.get("title"), "fields": fields, "employees": rows}
            )
        elif rest == "employees/changed":
            since = datetime.fromisoformat(query["since"])
            changed: dict[str, Any] = {}
            latest = since
            for person in state.people:
                if person.modified > since:
                    changed[str(person.number)] = {
                        "id": str(person.number),
                        "action": "Updated",
                        "lastChanged": person.modified.isoformat(),
                    }
                    latest = max(latest, person.modified)
            for ident, moment in state.deleted.items():
                if moment > since:
                    changed[ident] = {
                        "id": ident,
                        "action": "Deleted",
                        "lastChanged": moment.isoformat(),
                    }
                    latest = max(latest, moment)
            self._json(200, {"latest": latest.isoformat(), "employees": changed or []})
        elif rest.startswith("employees/") and rest.count("/") == 1:
            person = people.get(rest.split("/")[1])
            if person is None:
                self._json(404, {"error": "no such employee"})
                return
            names = [n for n in query.get("fields", "").split(",") if n]
            row = person.bamboo()
            self._json(200, {"id": row["id"], **{n: row.get(n) for n in names}})
        else:
            self._json(404, {"error": "not found"})

    # -- SuccessFactors ---------------------------------------------------------------

    def _successfactors(
        self, method: str, path: str, query: dict[str, str], raw: bytes
    ) -> None:
        if self._basic() != (SF_USER, SF_PASSWORD):
            self._json(
                401,
                {
                    "error": {
                        "code": "LGN0022",
                        "message": {"lang": "en-US", "value": "Unauthorized"},
                    }
                },
            )
            return
        state = self.server.state
        people = list(state.people)
        since = re.search(
            r"lastModifiedDateTime gt datetimeoffset'([^']+)'", query.get("$filter", "")
        )
        if since is not None:
            moment = datetime.fromisoformat(since.group(1))
            people = [p for p in people if p.modified > moment]
        if "status in 't','f'" not in query.get("$filter", ""):
            people = [p for p in people if p.active]
        start = int(query.get("$skiptoken", "0"))
        size = int(query.get("customPageSize", state.sf_page_size))
        base = self.server.base_url
        rows = [p.successfactors(base) for p in people[start : start + size]]
        selected = [n for n in query.get("$select", "").split(",") if n]
        if selected:
            rows = [
                {k: v for k, v in row.items() if k in selected or k == "__metadata"}
                for row in rows
            ]
        body: dict[str, Any] = {"results": rows}
        if start + size < len(people):
            following = {k: v for k, v in query.items() if k != "$skiptoken"}
            following["$skiptoken"] = str(start + size)
            # As SuccessFactors does: the full URL, default port spelled out.
            body["__next"] = f"{base}{SF_PATH}?{urlencode(following)}"
        self._json(200, {"d": body})

    # -- OAuth 2.0 and generic APIs ---------------------------------------------------

    def _token(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        state = self.server.state
        form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        if (
            self._basic() != (CLIENT_ID, CLIENT_SECRET)
            or form.get("grant_type") != "client_credentials"
        ):
            self._json(401, {"error": "invalid_client"})
            return
        token = secrets.token_urlsafe(16)
        with state.lock:
            state.token_requests += 1
            state.tokens[token] = time.monotonic() + state.token_lifetime
        self._json(
            200,
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": state.token_lifetime,
            },
        )

    def _generic_auth(self, style: str) -> bool:
        state = self.server.state
        if style == "oauth":
            header = self.headers.get("Authorization", "")
            expires = state.tokens.get(header.removeprefix("Bearer "))
            if expires is None or expires < time.monotonic():
                self._json(401, {"error": "invalid_token"})
                return False
            return True
        if self.headers.get("X-API-Key") == API_KEY:
            return True
        if parse_qs(urlsplit(self.path).query).get("api_key") == [API_KEY]:
            return True
        self._json(401, {"message": "missing or wrong API key"})
        return False

    def _generic(
        self, method: str, path: str, query: dict[str, str], raw: bytes
    ) -> None:
        state = self.server.state
        style = path.removeprefix("/generic/")
        if not self._generic_auth(style):
            return
        records = [
            {"id": f"G{n:05d}", "name": f"Person {n}", "score": n / 4, "on": n % 2 == 0}
            for n in range(1, state.generic_records + 1)
        ]
        base = self.server.base_url
        if style in ("link", "oauth"):
            page = int(query.get("page", "1"))
            chunk = records[(page - 1) * 100 : page * 100]
            headers = {}
            if page * 100 < len(records):
                # Relative and absolute links, as servers give both (XA-05).
                target = f"/generic/{style}?page={page + 1}"
                if page % 2:
                    target = base + target
                headers["Link"] = (
                    f'<{target}>; rel="next", </generic/{style}?page=1>; rel="first"'
                )
            self._json(200, {"items": chunk}, headers)
        elif style == "cursor":
            start = int(query.get("after") or 0)
            chunk = records[start : start + 100]
            following = str(start + 100) if start + 100 < len(records) else None
            self._json(200, {"data": chunk, "meta": {"next_cursor": following}})
        elif style in ("offset", "offset_total"):
            offset, limit = (
                int(query["offset"]),
                min(int(query["limit"]), state.generic_cap),
            )
            body: dict[str, Any] = {"results": records[offset : offset + limit]}
            if style == "offset_total":
                body["total"] = len(records)
            self._json(200, body)
        elif style == "page":
            number, size = int(query["page"]), int(query["per_page"])
            chunk = records[(number - 1) * size : number * size]
            pages = -(-len(records) // size)
            self._json(200, {"users": chunk, "total_pages": pages})
        elif style == "loop":
            self._json(200, {"items": records[:10], "next": "/generic/loop?again=1"})
        elif style == "elsewhere":
            self._json(
                200, {"items": records[:10], "next": "https://elsewhere.example.com/x"}
            )
        else:
            self._json(404, {"error": "unknown style"})


class VendorServer(LocalServer):
    """The server, in a thread, over TLS when given a certificate."""

    def __init__(self, cert: Path | None = None, key: Path | None = None) -> None:
        super().__init__(Handler, cert, key)
        self.state = State()
