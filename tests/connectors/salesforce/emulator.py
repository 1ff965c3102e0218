"""A local HTTPS server that answers as Salesforce's REST API documents, for tests.

What it implements is what the ``salesforce`` connector uses, with the answers'
shapes taken from real response bodies (``fixtures/``):

- logins: SOAP ``login`` (username, password and security token) and the OAuth 2.0
  token endpoint (JWT bearer, client credentials, username-password). Login URLs
  arrive as ``/<host>.salesforce.com/services/...`` (simple-salesforce builds
  ``https://{domain}.salesforce.com``); the first segment is ignored;
- ``query`` and ``queryAll`` with ``nextRecordsUrl`` pages (``Sforce-Query-Options:
  batchSize``), ``COUNT()``, describe, sObject upsert by external id (201 created,
  204 updated), sObject Collections upsert and update with per-record results;
- Bulk API 2.0 query jobs with CSV result pages (``Sforce-Locator``);
- error bodies: 401 ``INVALID_SESSION_ID``, 403 ``REQUEST_LIMIT_EXCEEDED``, 400
  ``MALFORMED_QUERY``, ``INVALID_FIELD``, field errors, 500; ``Sforce-Limit-Info``.

``Faults`` switches misbehaviour on for the next calls. Run by hand::

    python -m tests.connectors.salesforce.emulator --port 8443 --folder var/sf-emulator

which seeds the example association's members and writes ``ca.pem`` there.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import io
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt

from tests.local_server import LocalServer, QuietHandler

from . import soql
from .org import (
    CONSUMER_KEY,
    CONSUMER_SECRET,
    ORG_ID,
    PASSWORD,
    SCHEMA,
    SECURITY_TOKEN,
    USERNAME,
    Faults,
    Org,
    check_values,
    csv_value,
    describe,
    field_type,
    fixture,
    lookup,
    rest_row,
    seed_members,
    sf_datetime,
    soap_fault,
    soap_result,
)

__all__ = [
    "CONSUMER_KEY",
    "CONSUMER_SECRET",
    "PASSWORD",
    "SCHEMA",
    "SECURITY_TOKEN",
    "USERNAME",
    "EmulatorServer",
    "Faults",
    "Org",
    "seed_members",
    "sf_datetime",
]

_LOGIN_HOST = re.compile(r"^/[^/]+\.salesforce\.com(/.*)$")


class Handler(QuietHandler):
    """One request to the emulated org."""

    server: EmulatorServer

    @property
    def org(self) -> Org:
        return self.server.org

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # -- plumbing ------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: Any = None,
        content_type: str = "application/json;charset=UTF-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        if body is None:
            payload = b""
        elif isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode("utf-8")
        else:
            payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header(
            "Sforce-Limit-Info", f"api-usage={self.org.api_used}/{self.org.api_total}"
        )
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, [{"message": message, "errorCode": code}])

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        raw_path = parts.path
        login = _LOGIN_HOST.match(raw_path)
        if login:
            raw_path = login.group(1)
        body = self._body()
        try:
            if method == "POST" and raw_path.startswith("/services/Soap/u/"):
                return self._soap_login(body)
            if method == "POST" and raw_path == "/services/oauth2/token":
                return self._oauth(body)
            match = re.match(r"^/services/data/v\d+\.\d/(.*)$", raw_path)
            if match is None:
                return self._error(
                    404, "NOT_FOUND", "The requested resource does not exist"
                )
            if not self._admit(method, raw_path):
                return
            self._route(method, match.group(1), parse_qs(parts.query), body)
        except soql.MalformedQuery as error:
            self._error(400, "MALFORMED_QUERY", str(error))
        except (BrokenPipeError, ConnectionResetError):
            return

    def _admit(self, method: str, path: str) -> bool:
        """Session, quota and injected faults, before a data call is served."""
        org, faults = self.org, self.org.faults
        header = self.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        with org.lock:
            org.calls.append((method, path))
            if faults.expire_after is not None:
                if faults.expire_after <= 0:
                    org.tokens.clear()
                    faults.expire_after = None
                else:
                    faults.expire_after -= 1
            if faults.reject_after is not None:
                if faults.reject_after <= 0:
                    faults.reject_sessions = True
                    faults.reject_after = None
                else:
                    faults.reject_after -= 1
            if faults.reject_sessions or token not in org.tokens:
                self._send(401, fixture("expired_session_response.json"))
                return False
            org.data_calls += 1
            org.api_used += 1
            if faults.limit_after is not None:
                if faults.limit_after <= 0:
                    self._error(
                        403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
                    )
                    return False
                faults.limit_after -= 1
            if faults.server_errors:
                status, retry_after = faults.server_errors.pop(0)
                headers = {"Retry-After": retry_after} if retry_after else {}
                self._send(
                    status,
                    [
                        {
                            "message": "An unexpected error occurred. Please include"
                            " this ErrorId"
                            " if you contact support: 1234567-89 (-1)",
                            "errorCode": "UNKNOWN_EXCEPTION",
                        }
                    ],
                    headers=headers,
                )
                return False
            stall, faults.stall_next = faults.stall_next, None
        if stall is not None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'{"totalSize": 1, ')
            self.wfile.flush()
            time.sleep(stall)
            self.close_connection = True
            return False
        return True

    # -- logins --------------------------------------------------------------------

    def _soap_login(self, body: bytes) -> None:
        text = body.decode("utf-8")
        username = re.search(r"<[\w:]*username>(.*?)</", text, re.DOTALL)
        password = re.search(r"<[\w:]*password>(.*?)</", text, re.DOTALL)
        given = html.unescape(password.group(1)) if password else ""
        if (
            username is None
            or html.unescape(username.group(1)) != USERNAME
            or given not in (PASSWORD + SECURITY_TOKEN,)
        ):
            return self._send(500, soap_fault(), content_type="text/xml;charset=UTF-8")
        token = self.org.new_session()
        base = self.server.base_url
        self._send(200, soap_result(token, base), content_type="text/xml;charset=UTF-8")

    def _oauth(self, body: bytes) -> None:
        form = {
            key: values[0] for key, values in parse_qs(body.decode("utf-8")).items()
        }
        grant = form.get("grant_type")
        accepted = False
        if grant == "password":
            accepted = (
                form.get("client_id") == CONSUMER_KEY
                and form.get("client_secret") == CONSUMER_SECRET
                and form.get("username") == USERNAME
                and form.get("password") == PASSWORD
            )
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            accepted = self._jwt_ok(form.get("assertion", ""))
        elif grant == "client_credentials":
            expected = base64.b64encode(
                f"{CONSUMER_KEY}:{CONSUMER_SECRET}".encode()
            ).decode()
            accepted = self.headers.get("Authorization") == f"Basic {expected}"
        if not accepted:
            return self._send(400, fixture("auth_error_response.json"))
        answer = fixture("auth_success_response.json")
        answer["access_token"] = self.org.new_session()
        answer["instance_url"] = self.server.base_url
        answer["id"] = f"{self.server.base_url}/id/{ORG_ID}/005EM0000000001AAA"
        self._send(200, answer)

    def _jwt_ok(self, assertion: str) -> bool:
        key = self.org.jwt_public_key
        if key is None:
            return False
        try:
            claims = jwt.decode(
                assertion, key, algorithms=["RS256"], options={"verify_aud": False}
            )
        except jwt.PyJWTError:
            return False
        return claims.get("iss") == CONSUMER_KEY and claims.get("sub") == USERNAME

    # -- REST ----------------------------------------------------------------------

    def _route(
        self, method: str, rest: str, query: dict[str, list[str]], body: bytes
    ) -> None:
        segments = [unquote(part) for part in rest.split("/")]
        if method == "GET" and segments[0] in ("query", "queryAll"):
            if len(segments) == 2 and segments[1]:
                return self._more(segments[1])
            return self._query(query.get("q", [""])[0], segments[0] == "queryAll")
        if method == "GET" and segments[0] == "sobjects" and segments[-1] == "describe":
            return self._describe(segments[1])
        if method == "PATCH" and segments[0] == "sobjects" and len(segments) == 4:
            return self._upsert_one(segments[1], segments[2], segments[3], body)
        if method == "PATCH" and segments[:2] == ["composite", "sobjects"]:
            records = json.loads(body)["records"]
            if len(records) > 200:
                return self._error(
                    400,
                    "EXCEEDED_ID_LIMIT",
                    "record limit reached. cannot submit more than 200 records"
                    " into this call",
                )
            if len(segments) == 4:
                return self._send(
                    200, [self._upsert(segments[2], segments[3], r) for r in records]
                )
            return self._send(200, [self._update(r) for r in records])
        if segments[:2] == ["jobs", "query"]:
            return self._bulk(method, segments[2:], query, body)
        self._error(404, "NOT_FOUND", "The requested resource does not exist")

    def _query(self, text: str, include_deleted: bool) -> None:
        parsed = soql.parse(text, lookup)
        if parsed.sobject not in SCHEMA:
            return self._error(
                400,
                "INVALID_TYPE",
                f"sObject type '{parsed.sobject}' is not supported.",
            )
        for name in parsed.fields or ():
            if field_type(parsed.sobject, name) is None:
                return self._error(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{name}' on entity '{parsed.sobject}'.",
                )
        with self.org.lock:
            rows = [
                row
                for row in self.org.records[parsed.sobject].values()
                if (include_deleted or not row.get("IsDeleted")) and parsed.where(row)
            ]
        if parsed.fields is None:
            return self._send(
                200, {"totalSize": len(rows), "done": True, "records": []}
            )
        locator = f"01gEM{secrets.token_hex(6)}"
        with self.org.lock:
            self.org._locators[locator] = (rows, parsed.fields, parsed.sobject)
        self._page(locator, 0, 1)

    def _more(self, identifier: str) -> None:
        locator, _, offset = identifier.rpartition("-")
        if locator not in self.org._locators or not offset.isdigit():
            return self._error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        size = self._page_size()
        self._page(locator, int(offset), int(offset) // size + 1)

    def _page_size(self) -> int:
        if self.org.faults.page_size is not None:
            return self.org.faults.page_size
        options = self.headers.get("Sforce-Query-Options", "")
        match = re.search(r"batchSize=(\d+)", options)
        return min(max(int(match.group(1)), 200), 2000) if match else 2000

    def _page(self, locator: str, offset: int, number: int) -> None:
        rows, fields, sobject = self.org._locators[locator]
        size = self._page_size()
        chunk = rows[offset : offset + size]
        done = offset + size >= len(rows)
        answer: dict[str, Any] = {"totalSize": len(rows), "done": done}
        if not done and self.org.faults.drop_link_on_page != number:
            answer["nextRecordsUrl"] = (
                f"/services/data/v{self.server.version}/query/{locator}-{offset + size}"
            )
        answer["records"] = [
            rest_row(sobject, row, fields, self.server.version) for row in chunk
        ]
        if done:
            self.org._locators.pop(locator, None)
        self._send(200, answer)

    def _describe(self, sobject: str) -> None:
        if sobject not in SCHEMA:
            return self._send(
                404, fixture("sobject/sobject_describe_error_response.json")
            )
        self._send(200, describe(sobject, self.server.version))

    # -- writes ------------------------------------------------------------------

    def _upsert(
        self, sobject: str, external: str, record: dict[str, Any]
    ) -> dict[str, Any]:
        values = {k: v for k, v in record.items() if k != "attributes"}
        value = str(values.get(external, ""))
        failure = self.org.faults.fail_records.get(value)
        if failure is not None:
            code, message, fields = failure
            return {
                "success": False,
                "errors": [{"statusCode": code, "message": message, "fields": fields}],
            }
        problem = check_values(sobject, values)
        if problem is not None:
            return {"success": False, "errors": [problem]}
        with self.org.lock:
            existing = self.org.find(sobject, external, value)
            if existing is not None:
                self.org.update(sobject, existing["Id"], **values)
                return {
                    "id": existing["Id"],
                    "success": True,
                    "errors": [],
                    "created": False,
                }
            created = self.org.add(sobject, **values)
        return {"id": created["Id"], "success": True, "errors": [], "created": True}

    def _update(self, record: dict[str, Any]) -> dict[str, Any]:
        sobject = record.get("attributes", {}).get("type", "")
        ident = record.get("id") or record.get("Id")
        values = {
            k: v for k, v in record.items() if k not in ("attributes", "id", "Id")
        }
        failure = self.org.faults.fail_records.get(str(ident))
        if failure is not None:
            code, message, fields = failure
            return {
                "success": False,
                "errors": [{"statusCode": code, "message": message, "fields": fields}],
            }
        if sobject not in SCHEMA or ident not in self.org.records[sobject]:
            return {
                "success": False,
                "errors": [
                    {
                        "statusCode": "ENTITY_IS_DELETED",
                        "message": "entity is deleted",
                        "fields": [],
                    }
                ],
            }
        problem = check_values(sobject, values)
        if problem is not None:
            return {"success": False, "errors": [problem]}
        self.org.update(sobject, str(ident), **values)
        return {"id": ident, "success": True, "errors": []}

    def _upsert_one(self, sobject: str, external: str, value: str, body: bytes) -> None:
        values = json.loads(body or b"{}")
        if field_type(sobject, external) is None:
            return self._send(
                404,
                [
                    {
                        "message": "Provided external ID field does not exist or"
                        f" is not accessible: {external}",
                        "errorCode": "NOT_FOUND",
                    }
                ],
            )
        answer = self._upsert(sobject, external, {**values, external: value})
        if not answer["success"]:
            error = answer["errors"][0]
            return self._send(
                400,
                [
                    {
                        "message": error["message"],
                        "errorCode": error["statusCode"],
                        "fields": error["fields"],
                    }
                ],
            )
        if answer["created"]:
            return self._send(
                201,
                {"id": answer["id"], "success": True, "errors": [], "created": True},
            )
        self._send(204)

    # -- Bulk API 2.0 --------------------------------------------------------------

    def _bulk(
        self, method: str, rest: list[str], query: dict[str, list[str]], body: bytes
    ) -> None:
        jobs = self.org._jobs
        if method == "POST" and not rest:
            request = json.loads(body)
            parsed = soql.parse(request["query"], lookup)
            job_id = f"750EM{secrets.token_hex(5)}"
            deleted = request.get("operation") == "queryAll"
            with self.org.lock:
                rows = [
                    r
                    for r in self.org.records[parsed.sobject].values()
                    if (deleted or not r.get("IsDeleted")) and parsed.where(r)
                ]
            jobs[job_id] = {
                "rows": rows,
                "fields": parsed.fields or [],
                "polls": self.org.faults.bulk_polls,
            }
            return self._send(
                200,
                {
                    "id": job_id,
                    "operation": request.get("operation"),
                    "object": parsed.sobject,
                    "state": "UploadComplete",
                    "concurrencyMode": "Parallel",
                    "contentType": "CSV",
                    "apiVersion": float(self.server.version),
                    "lineEnding": "LF",
                    "columnDelimiter": "COMMA",
                },
            )
        job = jobs.get(rest[0]) if rest else None
        if job is None:
            return self._error(
                404, "NOT_FOUND", "The requested resource does not exist"
            )
        if method == "GET" and len(rest) == 1:
            job["polls"] -= 1
            state = "JobComplete" if job["polls"] <= 0 else "InProgress"
            info: dict[str, Any] = {
                "id": rest[0],
                "operation": "query",
                "state": state,
                "numberRecordsProcessed": len(job["rows"]),
            }
            final = self.org.faults.bulk_job_state
            if final is not None and state == "JobComplete":
                info["state"] = final
                info["errorMessage"] = (
                    "InvalidBatch : Failed to process query: QUERY_TIMEOUT: Your"
                    " query request was running for too long."
                    if final == "Failed"
                    else None
                )
            return self._send(200, info)
        if method == "GET" and rest[1:] == ["results"]:
            size = int(query.get("maxRecords", ["50000"])[0])
            start = int(query.get("locator", ["0"])[0] or 0)
            chunk = job["rows"][start : start + size]
            following = start + size
            locator = str(following) if following < len(job["rows"]) else "null"
            stream = io.StringIO()
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(job["fields"])
            for row in chunk:
                writer.writerow(
                    [csv_value(lookup(row, name)) for name in job["fields"]]
                )
            return self._send(
                200,
                stream.getvalue(),
                content_type="text/csv",
                headers={
                    "Sforce-Locator": locator,
                    "Sforce-NumberOfRecords": str(len(chunk)),
                },
            )
        self._error(404, "NOT_FOUND", "The requested resource does not exist")


class EmulatorServer(LocalServer):
    """The HTTPS server; ``base_url`` is what logins give as the instance."""

    allow_reuse_address = True

    def __init__(
        self, org: Org, cert: Path, key: Path, port: int = 0, version: str = "59.0"
    ) -> None:
        super().__init__(Handler, cert, key, port)
        self.org, self.version = org, version


def main() -> None:
    """Start an emulator by hand, with the example association's members."""
    from tests.connectors.ldap.certificates import make_ca_and_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--folder", type=Path, default=Path("var/salesforce-emulator"))
    parser.add_argument("--contacts", type=int, default=200)
    arguments = parser.parse_args()
    arguments.folder.mkdir(parents=True, exist_ok=True)
    files = make_ca_and_server(arguments.folder)
    org = Org()
    seed_members(org, arguments.contacts)
    server = EmulatorServer(org, files["cert"], files["key"], arguments.port)
    print(f"listening on {server.base_url}; CA {files['ca']}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


if __name__ == "__main__":
    main()
