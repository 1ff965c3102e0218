"""The write-back sink: awards upserted into the partner's org, and optionally the
learner's Contact updated.

Enqueuing (the results flow): ``writeback_delivery`` turns an award and the
learner's identity into one ``NewDelivery`` of kind ``writeback`` whose payload is
exactly what will be written: the object, its external id field and value, the
fields (built from the connector's ``writeback.fields``: a field left out is left
unchanged, ``value: null`` clears it, ``value: ""`` writes empty text) and the
Contact's fields. Its id is derived from the sink and the award, so enqueuing
twice stores it once, and a resend upserts the same record (the external id).

Delivering (``SalesforceWriter.write``, one outbox batch of up to 200): one sObject
Collections upsert (``PATCH composite/sobjects/{object}/{external id}``,
``allOrNone: false``), a lone record by the sObject upsert resource (201 created,
204 updated), then one Collections update of the Contacts. Each record's own
result goes back to its outbox row: field errors are dead-lettered with
Salesforce's message, other errors retried. Dates and datetimes are written as
the target fields' describe() types say (SF-05). ``REQUEST_LIMIT_EXCEEDED``, or the
org's usage past the connector's share, pauses the sink: the rows not written stay
queued until ``limit_pause_seconds`` later and the run stops (SF-03).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.format import format_external_id

from ...changes import derived_id
from ...outbox.errors import DeliveryStopped
from ...outbox.store import Delivery, NewDelivery, Outbox
from ...platform.sql import LearnerIdentityRow
from ...results.records import AwardRecord
from .client import (
    OrgClient,
    QuotaReached,
    SalesforceProblem,
    masked,
    read_credentials,
)
from .config import FieldValueSpec, SalesforceConnector, WritebackConfig
from .session import ServerBusy
from .source import open_session
from .values import write_value

logger = logging.getLogger(__name__)

#: Per-record errors a resend would meet again: the record is dead-lettered.
FIELD_ERRORS: Final = frozenset(
    {
        "REQUIRED_FIELD_MISSING",
        "INVALID_FIELD",
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "FIELD_INTEGRITY_EXCEPTION",
        "STRING_TOO_LONG",
        "INVALID_TYPE_ON_FIELD_IN_RECORD",
        "MALFORMED_ID",
        "INVALID_EMAIL_ADDRESS",
        "NUMBER_OUTSIDE_VALID_RANGE",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "DUPLICATE_VALUE",
        "DUPLICATE_EXTERNAL_ID",
        "JSON_PARSER_ERROR",
        "INVALID_CROSS_REFERENCE_KEY",
        "ENTITY_IS_DELETED",
        "INVALID_ID_FIELD",
    }
)

#: How long a retried record waits for the next run.
RETRY_DELAY: Final = timedelta(minutes=5)


def writeback_id(partner: str, sink: str, award_id: str) -> str:
    """The outbox id of an award's write-back to one sink."""
    return derived_id(f"writeback/{partner}/{sink}/{award_id}")


def award_facts(
    award: AwardRecord,
    learner: LearnerIdentityRow,
    *,
    program_title: str | None = None,
    credential_id: str | None = None,
) -> dict[str, Any]:
    """What a field spec's ``from`` may name, for one award (``AWARD_FACTS``)."""
    return {
        "award_id": award.id,
        "credential_id": credential_id,
        "program": award.program,
        "program_title": program_title,
        "issued_at": award.issued_at.isoformat(),
        "learner_id": award.learner_id,
        # The roster's key is the Contact's Id: the learner's source key.
        "contact_id": learner.external_key,
        "email": learner.email,
    }


def _fields(specs: dict[str, FieldValueSpec], facts: dict[str, Any]) -> dict[str, Any]:
    """Null, empty and "leave unchanged" kept apart: a field absent from the
    result is not sent at all."""
    written: dict[str, Any] = {}
    for name, spec in specs.items():
        if spec.from_ is None:
            written[name] = spec.value
            continue
        value = facts.get(spec.from_)
        if value is None and spec.when_missing == "leave":
            continue
        written[name] = value
    return written


def writeback_delivery(
    config: SalesforceConnector,
    sink: str,
    award: AwardRecord,
    learner: LearnerIdentityRow,
    *,
    program_title: str | None = None,
    credential_id: str | None = None,
    run_id: str | None = None,
) -> NewDelivery:
    """The outbox entry that writes ``award`` back to the sink ``sink``.

    Raises ValueError when the connector has no ``writeback`` section, or the award
    has no value for the external id.
    """
    writeback = config.writeback
    if writeback is None:
        raise ValueError(f"connector {sink!r} has no writeback section")
    facts = award_facts(
        award, learner, program_title=program_title, credential_id=credential_id
    )
    external = facts.get(writeback.external_id_from)
    if external is None or external == "":
        raise ValueError(f"the award has no {writeback.external_id_from}")
    contact = None
    if writeback.contact is not None and learner.external_key:
        contact = {
            "id": learner.external_key,
            "fields": _fields(writeback.contact.fields, facts),
        }
    payload = {
        "award_id": award.id,
        "object": writeback.object,
        "external_id_field": writeback.external_id,
        "external_id": str(external),
        "fields": _fields(writeback.fields, facts),
        "contact": contact,
    }
    return NewDelivery(
        id=writeback_id(config.partner, sink, award.id),
        partner=config.partner,
        sink=sink,
        payload=payload,
        kind="writeback",
        run_id=run_id,
    )


@dataclass
class WriteResult:
    """What one batch did, row by row (outbox ids)."""

    delivered: list[str] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    dead: list[tuple[str, str]] = field(default_factory=list)
    retry: list[tuple[str, str]] = field(default_factory=list)
    #: Rows left queued because the run stopped (paused until ``paused_until``).
    paused: list[str] = field(default_factory=list)
    paused_until: datetime | None = None
    stopped: DeliveryStopped | None = None


@dataclass
class _Row:
    delivery: Delivery
    payload: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)


class SalesforceWriter:
    """Writes outbox batches of write-backs to one org."""

    def __init__(
        self,
        config: SalesforceConnector,
        connector: str,
        root: Path,
        secrets_dir: Path | None,
    ) -> None:
        if config.writeback is None:
            raise ValueError(f"connector {connector!r} has no writeback section")
        self.config, self.connector = config, connector
        self.writeback: WritebackConfig = config.writeback
        credentials = read_credentials(config, secrets_dir)
        session = open_session(config, root, connector)
        self.org = OrgClient(config, credentials, session, connector)
        self._types: dict[str, dict[str, str]] = {}

    @property
    def requests(self) -> int:
        """Data calls made so far (logins not counted)."""
        return self.org.session.counters.data_calls

    def close(self) -> None:
        self.org.session.close()

    def write(self, batch: Sequence[Delivery]) -> WriteResult:
        """Write one batch; never raises for what Salesforce said (see
        ``WriteResult.stopped``)."""
        result = WriteResult()
        rows = [_Row(entry, orjson.loads(entry.payload)) for entry in batch]
        try:
            ready = self._prepare(rows, result)
            written = self._upsert(ready, result) if ready else []
            self._update_contacts(written, result)
        except QuotaReached as error:
            self._pause(rows, result, error.message)
        except ServerBusy as error:
            self._stop(rows, result, f"{error}", retry_after=error.retry_after)
        except SalesforceProblem as error:
            self._stop(rows, result, error.message, status=error.status)
        except requests.RequestException as error:
            # After the session's own retries: a later run tries again.
            self._stop(
                rows,
                result,
                f"cannot reach Salesforce ({type(error).__name__})",
                retry_after=RETRY_DELAY.total_seconds(),
            )
        return result

    # -- steps -------------------------------------------------------------------

    def _prepare(self, rows: list[_Row], result: WriteResult) -> list[_Row]:
        """Each row's record, its values typed as the object's fields take them."""
        ready: list[_Row] = []
        for row in rows:
            payload = row.payload
            types = self._field_types(str(payload["object"]))
            try:
                row.record = {
                    name: write_value(value, types.get(name.casefold()))
                    for name, value in payload["fields"].items()
                }
            except ValueError as error:
                result.dead.append((row.delivery.id, f"not sent: {error}"))
                continue
            row.record[str(payload["external_id_field"])] = payload["external_id"]
            ready.append(row)
        return ready

    def _upsert(self, rows: list[_Row], result: WriteResult) -> list[_Row]:
        """Upsert the rows' records; returns the rows written."""
        sobject = str(rows[0].payload["object"])
        external = str(rows[0].payload["external_id_field"])
        value = str(rows[0].payload["external_id"])
        if len(rows) == 1 and value not in (".", ".."):
            return self._upsert_one(rows[0], sobject, external, value, result)
        body = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": sobject}, **row.record} for row in rows
            ],
        }
        path = f"composite/sobjects/{sobject}/{external}"
        answers = self.org.call(lambda sf: _patch(sf, path, body))
        return self._sort(rows, answers, result, count=True)

    def _upsert_one(
        self, row: _Row, sobject: str, external: str, value: str, result: WriteResult
    ) -> list[_Row]:
        data = {k: v for k, v in row.record.items() if k != external}
        record_id = format_external_id(external, value)
        try:
            status = self.org.call(
                lambda sf: getattr(sf, sobject).upsert(record_id, data)
            )
        except SalesforceProblem as error:
            # A lone record's own error comes as the answer's status (400).
            if error.status != 400:
                raise
            result.dead.append((row.delivery.id, error.message))
            return []
        if int(status) == 201:
            result.created += 1
        else:
            result.updated += 1
        return [row]

    def _update_contacts(self, rows: list[_Row], result: WriteResult) -> None:
        """Set the Contacts' fields of the rows written; a row is delivered once
        both its writes succeeded."""
        with_contact = [
            row
            for row in rows
            if self.writeback.contact
            and row.payload.get("contact")
            and row.payload["contact"]["fields"]
        ]
        for row in rows:
            if row not in with_contact:
                result.delivered.append(row.delivery.id)
        if not with_contact:
            return
        types = self._field_types("Contact")
        records: list[dict[str, Any]] = []
        sendable: list[_Row] = []
        for row in with_contact:
            contact = row.payload["contact"]
            try:
                values = {
                    name: write_value(value, types.get(name.casefold()))
                    for name, value in contact["fields"].items()
                }
            except ValueError as error:
                result.dead.append((row.delivery.id, f"Contact not updated: {error}"))
                continue
            records.append(
                {"attributes": {"type": "Contact"}, "id": contact["id"], **values}
            )
            sendable.append(row)
        if not records:
            return
        body = {"allOrNone": False, "records": records}
        answers = self.org.call(lambda sf: _patch(sf, "composite/sobjects", body))
        for row in self._sort(sendable, answers, result, count=False):
            result.delivered.append(row.delivery.id)

    def _sort(
        self,
        rows: list[_Row],
        answers: Any,
        result: WriteResult,
        *,
        count: bool,
    ) -> list[_Row]:
        """Pair the per-record results with the rows (same order, per the
        Collections resource) and file each row's failure."""
        if not isinstance(answers, list) or len(answers) != len(rows):
            raise SalesforceProblem(
                "the Collections answer does not list one result per record", None, None
            )
        written: list[_Row] = []
        for row, answer in zip(rows, answers, strict=True):
            if answer.get("success"):
                written.append(row)
                if count:
                    if answer.get("created"):
                        result.created += 1
                    else:
                        result.updated += 1
                continue
            errors = answer.get("errors") or [{}]
            first = errors[0]
            code = str(first.get("statusCode") or first.get("errorCode") or "ERROR")
            text = f"{code}: {masked(str(first.get('message', '')))}"
            if first.get("fields"):
                text += f" (fields: {', '.join(map(str, first['fields']))})"
            if code in FIELD_ERRORS or first.get("fields"):
                result.dead.append((row.delivery.id, text))
            else:
                result.retry.append((row.delivery.id, text))
        return written

    def _field_types(self, sobject: str) -> dict[str, str]:
        declared = self._declared_types(sobject)
        if declared is not None:
            return declared
        if sobject not in self._types:
            described = self.org.call(lambda sf: getattr(sf, sobject).describe())
            self._types[sobject] = {
                entry["name"].casefold(): str(entry["type"])
                for entry in described.get("fields", ())
            }
        return self._types[sobject]

    def _declared_types(self, sobject: str) -> dict[str, str] | None:
        """The field types the connector file gives for ``sobject``'s fields, when
        it gives every one of them; None sends the writer to describe()."""
        if sobject == self.writeback.object:
            fields = self.writeback.fields
        elif sobject == "Contact" and self.writeback.contact is not None:
            fields = self.writeback.contact.fields
        else:
            return None
        if not fields or any(spec.type is None for spec in fields.values()):
            return None
        return {name.casefold(): str(spec.type) for name, spec in fields.items()}

    # -- stopping ----------------------------------------------------------------

    def _untouched(self, rows: list[_Row], result: WriteResult) -> list[str]:
        done = set(result.delivered) | {ident for ident, _ in result.dead}
        done |= {ident for ident, _ in result.retry}
        return [row.delivery.id for row in rows if row.delivery.id not in done]

    def _pause(self, rows: list[_Row], result: WriteResult, message: str) -> None:
        pause = timedelta(seconds=self.writeback.limit_pause_seconds)
        result.paused = self._untouched(rows, result)
        result.paused_until = datetime.now(UTC) + pause
        result.stopped = DeliveryStopped(
            f"{message}; {len(result.paused)} write-backs wait until"
            f" {result.paused_until:%Y-%m-%d %H:%M:%S} UTC",
            sink=self.connector,
            partner=self.config.partner,
            status=403,
        )

    def _stop(
        self,
        rows: list[_Row],
        result: WriteResult,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        result.paused = self._untouched(rows, result)
        if retry_after is not None:
            result.paused_until = datetime.now(UTC) + timedelta(seconds=retry_after)
        elif status is not None and status >= 500:
            result.paused_until = datetime.now(UTC) + RETRY_DELAY
        result.stopped = DeliveryStopped(
            f"Salesforce: {message}; {len(result.paused)} write-backs stay queued",
            sink=self.connector,
            partner=self.config.partner,
            status=status,
        )


def _patch(sf: Salesforce, path: str, body: dict[str, Any]) -> Any:
    return sf.restful(path, method="PATCH", data=orjson.dumps(body).decode())


def deliver_batch(
    writer: SalesforceWriter, outbox: Outbox, sink: str, batch: Sequence[Delivery]
) -> WriteResult:
    """Write ``batch`` and record each row's outcome in the outbox; the caller
    raises ``result.stopped`` when set (the rest waits for a later run)."""
    result = writer.write(batch)
    if result.delivered:
        outbox.mark_delivered(sink, result.delivered)
    for ident, reason in result.dead:
        outbox.dead_letter(sink, [ident], reason)
        logger.warning("%s: write-back %s dead-lettered: %s", sink, ident, reason)
    retry_at = datetime.now(UTC) + RETRY_DELAY
    for ident, reason in result.retry:
        outbox.record_failure(sink, [ident], reason, retry_at)
    if result.paused and result.paused_until is not None and result.stopped:
        outbox.record_failure(
            sink, result.paused, result.stopped.message, result.paused_until
        )
    return result
