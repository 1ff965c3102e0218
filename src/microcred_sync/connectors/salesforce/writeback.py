"""The write-back sink: outbox batches of write-backs written to the partner's org.

What the results flow enqueues is built in ``deliveries``: upserts of awards'
and chosen results' records by external id, and updates of learners' Contacts
(whole states, replaced in the outbox by newer ones).

Delivering (``SalesforceWriter.write``, one outbox batch of up to 200): one sObject
Collections upsert (``PATCH composite/sobjects/{object}/{external id}``,
``allOrNone: false``) per object in the batch, a lone record by the sObject
upsert resource (201 created, 204 updated), then one Collections update
(``PATCH composite/sobjects``) of the batch's Contacts. Each record's own result
goes back to its outbox row: field errors are dead-lettered with Salesforce's
message, other errors retried. A Contact's row is settled only if it still holds
the state that was sent (``Outbox.record_sent``): one replaced meanwhile stays
pending with the newer state. Dates and datetimes are written as the target
fields' describe() types say (SF-05). ``REQUEST_LIMIT_EXCEEDED``, or the org's
usage past the connector's share, pauses the sink: the rows not written stay
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

from ...outbox.errors import DeliveryStopped
from ...outbox.store import Delivery, Outbox, Status
from .client import (
    OrgClient,
    QuotaReached,
    SalesforceProblem,
    masked,
    read_credentials,
)
from .config import FieldValueSpec, SalesforceConnector, WritebackConfig
from .deliveries import is_state
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
    #: Rows whose payload is a whole state (a Contact's): settled only if unchanged.
    states: set[str] = field(default_factory=set)
    #: Records of Contacts updated.
    contacts: int = 0


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
        result.states = {row.delivery.id for row in rows if is_state(row.payload)}
        try:
            upserts, updates = self._prepare(rows, result)
            for group in _by_target(upserts):
                self._upsert(group, result)
            self._update(updates, result)
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

    def _prepare(
        self, rows: list[_Row], result: WriteResult
    ) -> tuple[list[_Row], list[_Row]]:
        """Each row's record, its values typed as the object's fields take them;
        returns the upserts and the updates (by Id)."""
        upserts: list[_Row] = []
        updates: list[_Row] = []
        for row in rows:
            payload = row.payload
            sobject = str(payload["object"])
            types = self._field_types(sobject)
            try:
                row.record = {
                    name: write_value(value, types.get(name.casefold()))
                    for name, value in payload["fields"].items()
                }
            except ValueError as error:
                result.dead.append((row.delivery.id, f"not sent: {error}"))
                continue
            if is_state(payload):
                if not row.record:
                    # Every field left unchanged: nothing to write.
                    result.delivered.append(row.delivery.id)
                    continue
                row.record = {
                    "attributes": {"type": sobject},
                    "id": payload["id"],
                    **row.record,
                }
                updates.append(row)
                continue
            row.record[str(payload["external_id_field"])] = payload["external_id"]
            upserts.append(row)
        return upserts, updates

    def _upsert(self, rows: list[_Row], result: WriteResult) -> None:
        """Upsert the rows' records, all of one object and external id field."""
        sobject = str(rows[0].payload["object"])
        external = str(rows[0].payload["external_id_field"])
        value = str(rows[0].payload["external_id"])
        if len(rows) == 1 and value not in (".", ".."):
            self._upsert_one(rows[0], sobject, external, value, result)
            return
        body = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": sobject}, **row.record} for row in rows
            ],
        }
        path = f"composite/sobjects/{sobject}/{external}"
        answers = self.org.call(lambda sf: _patch(sf, path, body))
        self._sort(rows, answers, result, count=True)

    def _upsert_one(
        self, row: _Row, sobject: str, external: str, value: str, result: WriteResult
    ) -> None:
        data = {k: v for k, v in row.record.items() if k != external}
        record_id = format_external_id(external, value)
        try:
            status = self.org.call(
                lambda sf: getattr(sf, sobject).upsert(record_id, data)
            )
        except SalesforceProblem as error:
            # A lone record's own error comes as the answer's status (400), its
            # code telling a field error (dead) from a passing one (a lock).
            if error.status != 400:
                raise
            filed = result.dead if error.code in FIELD_ERRORS else result.retry
            filed.append((row.delivery.id, error.message))
            return
        if int(status) == 201:
            result.created += 1
        else:
            result.updated += 1
        result.delivered.append(row.delivery.id)

    def _update(self, rows: list[_Row], result: WriteResult) -> None:
        """Update the rows' records by Id (the Contacts), in one Collections call;
        the resource takes up to 200 records, of any objects."""
        if not rows:
            return
        body = {"allOrNone": False, "records": [row.record for row in rows]}
        answers = self.org.call(lambda sf: _patch(sf, "composite/sobjects", body))
        before = len(result.delivered)
        self._sort(rows, answers, result, count=False)
        result.contacts += len(result.delivered) - before

    def _sort(
        self,
        rows: list[_Row],
        answers: Any,
        result: WriteResult,
        *,
        count: bool,
    ) -> None:
        """Pair the per-record results with the rows (same order, per the
        Collections resource) and file each row under what became of it."""
        if not isinstance(answers, list) or len(answers) != len(rows):
            raise SalesforceProblem(
                "the Collections answer does not list one result per record", None, None
            )
        for row, answer in zip(rows, answers, strict=True):
            if answer.get("success"):
                result.delivered.append(row.delivery.id)
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
        fields = _specs_of(self.writeback, sobject)
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


def _by_target(rows: list[_Row]) -> list[list[_Row]]:
    """The rows by object and external id field, in the order they came: the
    Collections upsert takes one of each per call."""
    groups: dict[tuple[str, str], list[_Row]] = {}
    for row in rows:
        target = (str(row.payload["object"]), str(row.payload["external_id_field"]))
        groups.setdefault(target, []).append(row)
    return list(groups.values())


def _specs_of(writeback: WritebackConfig, sobject: str) -> dict[str, FieldValueSpec]:
    """Every field spec the connector file writes to ``sobject``."""
    specs: dict[str, FieldValueSpec] = {}
    if sobject == writeback.object:
        specs.update(writeback.fields)
    if writeback.results is not None and sobject == writeback.results.object:
        specs.update(writeback.results.fields)
    if sobject == "Contact" and writeback.contact is not None:
        specs.update(writeback.contact.fields)
    return specs


def deliver_batch(
    writer: SalesforceWriter, outbox: Outbox, sink: str, batch: Sequence[Delivery]
) -> WriteResult:
    """Write ``batch`` and record each row's outcome in the outbox; the caller
    raises ``result.stopped`` when set (the rest waits for a later run)."""
    result = writer.write(batch)
    settle = _Settle(outbox, sink, [e for e in batch if e.id in result.states])
    settle(result.delivered, "delivered")
    for ident, reason in result.dead:
        settle([ident], "dead", reason)
        logger.warning("%s: write-back %s dead-lettered: %s", sink, ident, reason)
    retry_at = datetime.now(UTC) + RETRY_DELAY
    for ident, reason in result.retry:
        settle([ident], "pending", reason, retry_at)
    if result.paused and result.paused_until is not None and result.stopped:
        settle(result.paused, "pending", result.stopped.message, result.paused_until)
    return result


class _Settle:
    """Records outcomes in the outbox: a whole state (a Contact's) only while its
    row still holds the payload sent; a newer one stays pending as it is."""

    def __init__(self, outbox: Outbox, sink: str, states: list[Delivery]) -> None:
        self.outbox, self.sink = outbox, sink
        self.states = {entry.id: entry for entry in states}

    def __call__(
        self,
        ids: Sequence[str],
        status: Status,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        plain = [ident for ident in ids if ident not in self.states]
        sent = [self.states[ident] for ident in ids if ident in self.states]
        if sent:
            self.outbox.record_sent(
                self.sink, sent, status, error=error, retry_at=retry_at
            )
        if not plain:
            return
        if status == "delivered":
            self.outbox.mark_delivered(self.sink, plain)
        elif status == "dead":
            self.outbox.dead_letter(self.sink, plain, error or "refused")
        else:
            assert retry_at is not None
            self.outbox.record_failure(self.sink, plain, error or "failed", retry_at)
