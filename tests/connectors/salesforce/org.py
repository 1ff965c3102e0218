"""The emulated org's data, sessions, faults and answer shapes (``emulator`` serves
them): the objects' fields, records, describe answers from the real template in
``fixtures/``, and how a stored record reads in REST and Bulk answers."""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"

USERNAME = "integration@example-association.org"
PASSWORD = "emulator-password"
SECURITY_TOKEN = "emulatorToken123"
CONSUMER_KEY = "3MVG9emulatorConsumerKey"
CONSUMER_SECRET = "emulator-consumer-secret"
ORG_ID = "00DEM0000000001AAA"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


#: Field types by object: name -> (type, extra describe keys).
SCHEMA: dict[str, dict[str, dict[str, Any]]] = {
    "Contact": {
        "Id": {"type": "id"},
        "IsDeleted": {"type": "boolean"},
        "FirstName": {"type": "string"},
        "LastName": {"type": "string"},
        "Email": {"type": "email"},
        "Member_Number__c": {"type": "string", "externalId": True},
        "Membership_Level__c": {"type": "picklist"},
        "Membership_Status__c": {"type": "picklist"},
        "Join_Date__c": {"type": "date"},
        "Renewed_At__c": {"type": "datetime"},
        "Interests__c": {"type": "multipicklist"},
        "CE_Credits__c": {"type": "double"},
        "Latest_Credential__c": {"type": "string"},
        "Latest_Credential_On__c": {"type": "date"},
        "Credits_Earned__c": {"type": "double"},
        "AccountId": {
            "type": "reference",
            "referenceTo": ["Account"],
            "relationshipName": "Account",
        },
        "SystemModstamp": {"type": "datetime"},
    },
    "Account": {
        "Id": {"type": "id"},
        "Name": {"type": "string"},
        "SystemModstamp": {"type": "datetime"},
    },
    "Credential__c": {
        "Id": {"type": "id"},
        "Award_Id__c": {"type": "string", "externalId": True},
        "Contact__c": {
            "type": "reference",
            "referenceTo": ["Contact"],
            "relationshipName": "Contact__r",
        },
        "Program__c": {"type": "string"},
        "Program_Name__c": {"type": "string"},
        "Issued_On__c": {"type": "date"},
        "Issued_At__c": {"type": "datetime"},
        "Notes__c": {"type": "textarea"},
        "SystemModstamp": {"type": "datetime"},
    },
    "Course_Result__c": {
        "Id": {"type": "id"},
        "Result_Id__c": {"type": "string", "externalId": True},
        "Contact__c": {
            "type": "reference",
            "referenceTo": ["Contact"],
            "relationshipName": "Contact__r",
        },
        "Program__c": {"type": "string"},
        "Activity__c": {"type": "url"},
        "Completed__c": {"type": "boolean"},
        "Passed__c": {"type": "boolean"},
        "Score__c": {"type": "double"},
        "Recorded_At__c": {"type": "datetime"},
        "SystemModstamp": {"type": "datetime"},
    },
}

_PREFIX = {
    "Contact": "003",
    "Account": "001",
    "Credential__c": "a01",
    "Course_Result__c": "a02",
}

#: Types whose JSON value is a number, as Salesforce's JSON parser takes them.
_NUMBERS = frozenset({"double", "percent", "currency", "int"})


def sf_datetime(moment: datetime) -> str:
    """A datetime as REST answers spell it: ``2011-07-07T00:37:00.000+0000``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


@dataclass
class Faults:
    """Misbehaviour for the next calls; tests set and reset these."""

    #: Invalidate every session once this many more data calls have been served.
    expire_after: int | None = None
    #: Answer every data call 401 INVALID_SESSION_ID, even right after a login.
    reject_sessions: bool = False
    #: Turn ``reject_sessions`` on once this many more data calls have been served.
    reject_after: int | None = None
    #: Answer 403 REQUEST_LIMIT_EXCEEDED once this many more data calls were served.
    limit_after: int | None = None
    #: Answers served instead of the next data calls: (status, Retry-After or None).
    server_errors: list[tuple[int, str | None]] = field(default_factory=list)
    #: Per-record failures by external id (or Contact Id): (statusCode, message,
    #: fields).
    fail_records: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)
    #: Send the next data call's headers and part of its body, then stall.
    stall_next: float | None = None
    #: Page size of query answers whatever the client asks (1000: SF-01).
    page_size: int | None = None
    #: This page (1-based) says done: false but has no nextRecordsUrl.
    drop_link_on_page: int | None = None
    #: Polls of a Bulk job before it completes.
    bulk_polls: int = 1
    #: The state a Bulk job ends in instead of JobComplete (Failed, Aborted).
    bulk_job_state: str | None = None


class Org:
    """The emulated org's data, sessions and counters."""

    def __init__(self, jwt_public_key: bytes | None = None) -> None:
        self.lock = threading.RLock()
        self.records: dict[str, dict[str, dict[str, Any]]] = {
            name: {} for name in SCHEMA
        }
        self.tokens: set[str] = set()
        self.faults = Faults()
        self.jwt_public_key = jwt_public_key
        self.logins = 0
        self.data_calls = 0
        self.calls: list[tuple[str, str]] = []
        self.api_used, self.api_total = 0, 1_000_000
        self._ids = itertools.count(1)
        self._locators: dict[str, tuple[list[dict[str, Any]], list[str], str]] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self.clock = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

    # -- data --------------------------------------------------------------------

    def new_id(self, sobject: str) -> str:
        number = next(self._ids)
        return f"{_PREFIX.get(sobject, 'a00')}EM{number:010d}AAA"[:18]

    def tick(self) -> str:
        self.clock += timedelta(minutes=1)
        return sf_datetime(self.clock)

    def add(self, sobject: str, **values: Any) -> dict[str, Any]:
        """Store a record (``Account`` as ``{"Name": ...}`` for relations)."""
        with self.lock:
            record = {"Id": self.new_id(sobject), "IsDeleted": False, **values}
            record["SystemModstamp"] = values.get("SystemModstamp") or self.tick()
            self.records[sobject][record["Id"]] = record
            return record

    def update(self, sobject: str, ident: str, **values: Any) -> None:
        with self.lock:
            self.records[sobject][ident].update(values, SystemModstamp=self.tick())

    def delete(self, sobject: str, ident: str) -> None:
        with self.lock:
            self.records[sobject][ident].update(
                IsDeleted=True, SystemModstamp=self.tick()
            )

    def clear(self, sobject: str) -> None:
        with self.lock:
            self.records[sobject].clear()

    def reset(self) -> None:
        """Faults off, counters at zero, sessions kept."""
        with self.lock:
            self.faults = Faults()
            self.logins = self.data_calls = 0
            self.calls.clear()
            self.api_used = 0

    def find(self, sobject: str, field_name: str, value: str) -> dict[str, Any] | None:
        for record in self.records[sobject].values():
            if record.get(field_name) == value and not record.get("IsDeleted"):
                return record
        return None

    # -- logins --------------------------------------------------------------------

    def new_session(self) -> str:
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(24)}"
        with self.lock:
            self.tokens.add(token)
            self.logins += 1
        return token


def lookup(row: dict[str, Any], path: str) -> Any:
    """A field or relation path of a stored record, without regard to case."""
    current: Any = row
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        folded = part.casefold()
        current = next((v for k, v in current.items() if k.casefold() == folded), None)
    return current


def field_type(sobject: str, path: str) -> str | None:
    schema = SCHEMA.get(sobject, {})
    head, _, tail = path.partition(".")
    folded = head.casefold()
    for name, spec in schema.items():
        if not tail and name.casefold() == folded:
            return str(spec["type"])
        if tail and str(spec.get("relationshipName", "")).casefold() == folded:
            return field_type(spec["referenceTo"][0], tail)
    return None


def rest_row(
    sobject: str, row: dict[str, Any], fields: Iterable[str], version: str
) -> dict[str, Any]:
    """A stored record as a query answers it: attributes, then the fields asked
    for, relations as nested records (or null)."""
    answer: dict[str, Any] = {
        "attributes": {
            "type": sobject,
            "url": f"/services/data/v{version}/sobjects/{sobject}/{row['Id']}",
        }
    }
    for path in fields:
        parts = path.split(".")
        if len(parts) == 1:
            answer[_spelled(sobject, parts[0])] = lookup(row, path)
            continue
        relation = lookup(row, parts[0])
        key = parts[0]
        if relation is None:
            answer[key] = None
            continue
        nested = answer.setdefault(
            key,
            {
                "attributes": {
                    "type": "Account",
                    "url": f"/services/data/v{version}/sobjects/Account/001EM",
                }
            },
        )
        nested[parts[1]] = lookup(relation, parts[1])
    return answer


def _spelled(sobject: str, name: str) -> str:
    """The field's name as describe spells it (answers use that, not the query's)."""
    folded = name.casefold()
    return next(
        (known for known in SCHEMA.get(sobject, {}) if known.casefold() == folded), name
    )


def csv_value(value: Any) -> str:
    """A value as Bulk API 2.0 CSV results spell it; null is an empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", value
    ):
        return value.replace("+0000", "Z")
    return str(value)


def describe(sobject: str, version: str) -> dict[str, Any]:
    """A describe answer in the shape of the real one (``fixtures``), with this
    object's fields."""
    template = fixture("sobject/sobject_describe_success_response.json")
    model_field = template["fields"][0]
    fields = []
    for name, spec in SCHEMA[sobject].items():
        entry = dict(model_field)
        entry.update(
            name=name,
            label=name.replace("__c", "").replace("_", " "),
            type=spec["type"],
            externalId=bool(spec.get("externalId")),
            idLookup=name == "Id" or bool(spec.get("externalId")),
            referenceTo=spec.get("referenceTo", []),
            relationshipName=spec.get("relationshipName"),
            nillable=name not in ("Id", "IsDeleted", "SystemModstamp"),
            createable=name not in ("Id", "IsDeleted", "SystemModstamp"),
            updateable=name not in ("Id", "IsDeleted", "SystemModstamp"),
            custom=name.endswith("__c"),
        )
        fields.append(entry)
    template.update(
        name=sobject,
        label=sobject.replace("__c", ""),
        custom=sobject.endswith("__c"),
        keyPrefix=_PREFIX.get(sobject, "a00"),
        fields=fields,
    )
    template["urls"] = {
        "sobject": f"/services/data/v{version}/sobjects/{sobject}",
        "describe": f"/services/data/v{version}/sobjects/{sobject}/describe",
        "rowTemplate": f"/services/data/v{version}/sobjects/{sobject}/{{ID}}",
    }
    return template


def seed_members(org: Org, count: int, *, start: int = 1) -> None:
    """Invented association members: levels, statuses, an account each."""
    levels = ["Student", "Associate", "Professional", "Fellow"]
    statuses = ["Active", "Active", "Active", "Lapsed"]
    accounts = [{"Name": f"Example Employer {n}"} for n in range(1, 21)]
    with org.lock:
        for number in range(start, start + count):
            org.add(
                "Contact",
                FirstName=f"Given{number}",
                LastName=f"Family{number}",
                Email=f"member{number}@example-association.org",
                Member_Number__c=f"M{number:07d}",
                Membership_Level__c=levels[number % 4],
                Membership_Status__c=statuses[number % 4 if number % 7 else 3],
                Join_Date__c="2021-03-05",
                CE_Credits__c=float(number % 40),
                Account=accounts[number % 20] if number % 10 else None,
            )


def check_values(sobject: str, values: dict[str, Any]) -> dict[str, Any] | None:
    """A per-record error for values Salesforce would refuse, or None."""
    for name, value in values.items():
        kind = field_type(sobject, name)
        if kind is None:
            return {
                "statusCode": "INVALID_FIELD",
                "message": f"No such column '{name}' on sobject of type {sobject}",
                "fields": [],
            }
        if value is None:
            continue
        if (kind in _NUMBERS and not _is_number(value)) or (
            kind == "boolean" and value not in (True, False, "true", "false")
        ):
            return {
                "statusCode": "JSON_PARSER_ERROR",
                "message": f"Cannot deserialize instance of {kind} from"
                f" {type(value).__name__} value {value}",
                "fields": [name],
            }
        if not isinstance(value, str):
            continue
        if kind == "date" and not re.fullmatch(r"\d{4}-\d\d-\d\d", value):
            return {
                "statusCode": "JSON_PARSER_ERROR",
                "message": "Cannot deserialize instance of date from"
                f" VALUE_STRING value {value}",
                "fields": [name],
            }
        if kind == "datetime" and not re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)", value
        ):
            return {
                "statusCode": "JSON_PARSER_ERROR",
                "message": "Cannot deserialize instance of datetime from"
                f" VALUE_STRING value {value}",
                "fields": [name],
            }
    return None


def _is_number(value: Any) -> bool:
    """A JSON number, or text that reads as one (the parser takes both)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value) is not None


def soap_result(token: str, base: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope'
        ' xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns="urn:partner.soap.sforce.com"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><loginResponse><result>"
        f"<metadataServerUrl>{base}/services/Soap/m/59.0/{ORG_ID}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
        f"<serverUrl>{base}/services/Soap/u/59.0/{ORG_ID}</serverUrl>"
        f"<sessionId>{token}</sessionId><userId>005EM0000000001AAA</userId>"
        "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )


def soap_fault() -> str:
    message = "Invalid username, password, security token; or user locked out."
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope'
        ' xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:sf="urn:fault.partner.soap.sforce.com"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><soapenv:Fault><faultcode>sf:INVALID_LOGIN</faultcode>"
        f"<faultstring>INVALID_LOGIN: {message}</faultstring><detail>"
        '<sf:LoginFault xsi:type="sf:LoginFault">'
        "<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>"
        f"<sf:exceptionMessage>{message}</sf:exceptionMessage>"
        "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
