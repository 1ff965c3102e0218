"""Completions recorded in an HRIS: the outbox entry of one, and sending it.

Enqueuing (the results flow): ``hris_delivery`` turns an award and the learner's
identity into one ``NewDelivery`` of kind ``writeback`` whose payload is exactly
what will be sent: the employee id and the BambooHR training record, or the JSON
body. Its id is derived from the sink and the award, so enqueuing twice stores it
once.

Sending (``HrisClient.send``, one entry per request): BambooHR's POST of a
training record is not idempotent, so the employee's records of that training
type are read first and a record with the same completion date counts as this
completion, sent before an answer was lost or a run crashed. A ``json_post``
endpoint gets the delivery id as ``Idempotency-Key``; a 409 means it holds it.
Every request has (connect, read) timeouts and never follows a redirect.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

import orjson
import requests
from requests.auth import AuthBase, HTTPBasicAuth
from tenacity import RetryCallState

from ..changes import derived_id
from ..errors import ConfigError
from ..platform.sql import LearnerIdentityRow
from ..results.records import AwardRecord
from ..secrets import read_secret
from .errors import DeliveryError, DeliveryRefused, DeliveryStopped, DeliveryTemporary
from .facts import award_facts, field_values, utc
from .hris import ApiKeyAuth, HrisSink
from .lrs import TEMPORARY_STATUSES, BearerToken, lrs_reason
from .retry import held_back, reschedule_delay, retry_after_seconds, retrying
from .sinks import BasicAuth, RetryPolicy
from .store import Delivery, NewDelivery, Outbox

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]

#: What a sent completion came to: a new record, or one the HRIS already held.
Sent = Literal["stored", "held"]

#: BambooHR's own reason for an error (its API details, "Standard HTTP Responses").
BAMBOO_ERROR_HEADER = "X-BambooHR-Error-Message"

#: The most of a reason kept in an error (and so in the outbox).
REASON_CHARS = 300


def hris_id(partner: str, sink: str, award_id: str) -> str:
    """The outbox id of an award's completion record in one HRIS sink."""
    return derived_id(f"hris/{partner}/{sink}/{award_id}")


def completion_facts(
    config: HrisSink,
    sink: str,
    award: AwardRecord,
    learner: LearnerIdentityRow,
    *,
    program_title: str | None = None,
    credential_id: str | None = None,
) -> dict[str, Any]:
    """What a field spec or the notes may name, for one completion."""
    employee = (
        learner.external_key
        if config.employee_id_from == "external_key"
        else learner.employee_number
    )
    shared = award_facts(
        award, learner, program_title=program_title, credential_id=credential_id
    )
    issued = utc(award.issued_at)
    return {
        "delivery_id": hris_id(config.partner, sink, award.id),
        **shared,
        "issued_at": issued.isoformat(),
        # The day it happened where the partner is (XA-03: the instant first).
        "completed_on": issued.astimezone(ZoneInfo(config.timezone)).date().isoformat(),
        "employee_id": employee or None,
    }


def hris_delivery(
    config: HrisSink,
    sink: str,
    award: AwardRecord,
    learner: LearnerIdentityRow,
    *,
    program_title: str | None = None,
    credential_id: str | None = None,
    run_id: str | None = None,
) -> NewDelivery:
    """The outbox entry that records ``award`` in the HRIS sink ``sink``.

    Raises ValueError when the learner has no HRIS employee id, or (BambooHR) the
    program has no training type.
    """
    facts = completion_facts(
        config,
        sink,
        award,
        learner,
        program_title=program_title,
        credential_id=credential_id,
    )
    employee = facts["employee_id"]
    if employee is None:
        raise ValueError(
            f"the learner has no {config.employee_id_from.replace('_', ' ')}"
        )
    payload: dict[str, Any] = {
        "mode": config.mode,
        "award_id": award.id,
        "employee_id": str(employee),
    }
    if config.bamboohr is not None:
        payload["record"] = _training_record(config, facts)
    else:
        assert config.json_post is not None
        payload["body"] = field_values(config.json_post.fields, facts)
    return NewDelivery(
        id=facts["delivery_id"],
        partner=config.partner,
        sink=sink,
        payload=payload,
        kind="writeback",
        run_id=run_id,
    )


def _training_record(config: HrisSink, facts: dict[str, Any]) -> dict[str, Any]:
    """A BambooHR training record: ``completed`` as yyyy-mm-dd and ``type`` an
    existing training type id (AddNewEmployeeTrainingRecordRequest)."""
    bamboo = config.bamboohr
    assert bamboo is not None
    type_id = bamboo.training_type_of(facts["program"])
    if type_id is None:
        raise ValueError(f"no BambooHR training type for program {facts['program']}")
    record: dict[str, Any] = {"completed": facts["completed_on"], "type": type_id}
    if bamboo.notes is not None:
        known = {name: "" if value is None else value for name, value in facts.items()}
        record["notes"] = bamboo.notes.format_map(known)
    if bamboo.hours is not None:
        record["hours"] = bamboo.hours
    if bamboo.credits is not None:
        record["credits"] = bamboo.credits
    return record


def hris_auth(config: HrisSink, secrets_dir: Path | None) -> AuthBase:
    """The sink's credentials from the secrets it names (ConfigError, without any
    value, when one is missing)."""
    if config.bamboohr is not None:
        # BambooHR: the API key is the basic-auth user; the password is ignored.
        key = read_secret(config.bamboohr.api_key_secret, secrets_dir)
        return HTTPBasicAuth(key.get_secret_value(), "x")
    assert config.json_post is not None
    auth = config.json_post.auth
    if isinstance(auth, BasicAuth):
        password = read_secret(auth.password_secret, secrets_dir)
        return HTTPBasicAuth(auth.username, password.get_secret_value())
    if isinstance(auth, ApiKeyAuth):
        return _ApiKey(auth.header, read_secret(auth.key_secret, secrets_dir))
    return BearerToken(read_secret(auth.token_secret, secrets_dir))


class _ApiKey(AuthBase):
    """An API key in a header of its own; shows as ``[secure]``."""

    def __init__(self, header: str, key: Any) -> None:
        self._header, self._key = header, key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self._header] = self._key.get_secret_value()
        return request

    def __repr__(self) -> str:
        return f"ApiKey({self._header}: [secure])"


def hris_session(config: HrisSink, auth: AuthBase, root: Path) -> requests.Session:
    """A session for one sink: its auth and TLS settings, nothing from the
    environment (proxies and .netrc would change where credentials go)."""
    session = requests.Session()
    session.auth = auth
    session.headers["Accept"] = "application/json"
    session.trust_env = False
    session.verify = config.tls_verify(root)
    return session


class HrisClient:
    """Sends completion records, one per request, to one HRIS sink."""

    def __init__(
        self, config: HrisSink, session: requests.Session, *, connector: str
    ) -> None:
        self.config, self.session, self.connector = config, session, connector
        self.timeout = (config.timeouts.connect, config.timeouts.read)
        self.vendor = "BambooHR" if config.mode == "bamboohr" else "the HRIS"
        self.requests = 0

    @classmethod
    def open(
        cls, config: HrisSink, connector: str, root: Path, secrets_dir: Path | None
    ) -> HrisClient:
        """The client of a sink, its secrets read (ConfigError naming the file)."""
        try:
            auth = hris_auth(config, secrets_dir)
        except ConfigError as exc:
            raise ConfigError(f"connectors/{connector}.yaml: {exc}") from None
        return cls(config, hris_session(config, auth, root), connector=connector)

    def close(self) -> None:
        self.session.close()

    def send(self, ident: str, payload_text: str) -> Sent:
        """Send one outbox entry once; raise the error its answer means."""
        payload = orjson.loads(payload_text)
        if payload.get("mode") == "bamboohr":
            return self._bamboohr(payload)
        return self._json_post(ident, payload)

    # -- BambooHR -------------------------------------------------------------

    def _bamboohr(self, payload: dict[str, Any]) -> Sent:
        bamboo = self.config.bamboohr
        if bamboo is None:
            raise DeliveryRefused(
                "a BambooHR record queued for a sink no longer in bamboohr mode",
                sink=self.connector,
            )
        employee = str(payload["employee_id"])
        url = f"{bamboo.base_url}/training/record/employee/{quote(employee, safe='')}"
        record = payload["record"]
        existing = self._training_records(url, employee, record["type"])
        if any(_same_record(found, record) for found in existing):
            return "held"
        response = self._request("POST", url, employee, json=record)
        with response:
            if response.status_code in (200, 201):
                return "stored"
            raise self._status_error(response, employee)

    def _training_records(
        self, url: str, employee: str, type_id: int
    ) -> list[dict[str, Any]]:
        """The employee's records of one type (List Employee Trainings): an object
        keyed by record id, or an empty JSON array when there is none."""
        response = self._request(
            "GET", url, employee, params={"trainingTypeId": str(type_id)}
        )
        with response:
            if response.status_code != 200:
                raise self._status_error(response, employee)
            try:
                document = response.json()
            except ValueError:
                document = None
        if isinstance(document, dict):
            return [rec for rec in document.values() if isinstance(rec, dict)]
        if isinstance(document, list):
            return [rec for rec in document if isinstance(rec, dict)]
        raise DeliveryStopped(
            "BambooHR answered the training list with something other than JSON "
            f"records ({response.headers.get('Content-Type', 'no content type')}); "
            "check the sink's company_domain and endpoint",
            sink=self.connector,
            partner=self.config.partner,
            status=response.status_code,
        )

    # -- a JSON endpoint ------------------------------------------------------

    def _json_post(self, ident: str, payload: dict[str, Any]) -> Sent:
        post = self.config.json_post
        if post is None:
            raise DeliveryRefused(
                "a JSON body queued for a sink no longer in json_post mode",
                sink=self.connector,
            )
        employee = str(payload["employee_id"])
        response = self._request(
            "POST",
            post.url,
            employee,
            data=orjson.dumps(payload["body"]),
            headers={"Content-Type": "application/json", "Idempotency-Key": ident},
        )
        with response:
            if response.status_code in post.success_statuses:
                return "stored"
            if response.status_code == 409:
                # The endpoint holds a completion under this key already.
                return "held"
            raise self._status_error(response, employee)

    # -- transport ------------------------------------------------------------

    def _request(
        self, method: str, url: str, employee: str, **arguments: Any
    ) -> requests.Response:
        self.requests += 1
        try:
            return self.session.request(
                method, url, timeout=self.timeout, allow_redirects=False, **arguments
            )
        except requests.RequestException as error:
            raise self._transport_error(error) from None

    def _status_error(
        self, response: requests.Response, employee: str
    ) -> DeliveryError:
        status = response.status_code
        where: dict[str, object] = {
            "sink": self.connector,
            "partner": self.config.partner,
        }
        reason = self._reason(response)
        if status in TEMPORARY_STATUSES:
            return DeliveryTemporary(
                f"{self.vendor} answered {status}: {reason}",
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
                status=status,
                **where,
            )
        if status in (400, 422):
            return DeliveryRefused(
                f"{self.vendor} refused the record ({status}): {reason}",
                status=status,
                **where,
            )
        if status == 404 and self.config.mode == "bamboohr":
            return DeliveryRefused(
                f"BambooHR knows no employee {employee} (404: {reason})",
                status=status,
                **where,
            )
        if status in (401, 403):
            return DeliveryStopped(
                f"{self.vendor} refused the credentials ({status}: {reason}); check "
                "the sink's auth and its secret",
                status=status,
                **where,
            )
        if 300 <= status < 400:
            return DeliveryStopped(
                f"{self.vendor} answered with a redirect ({status}); set the sink's "
                "URL to where it points",
                status=status,
                **where,
            )
        return DeliveryStopped(
            f"{self.vendor} answered {status}: {reason}; check the sink's URL",
            status=status,
            **where,
        )

    def _reason(self, response: requests.Response) -> str:
        header = response.headers.get(BAMBOO_ERROR_HEADER)
        if header and self.config.mode == "bamboohr":
            text = header.strip()
            if len(text) > REASON_CHARS:
                text = text[: REASON_CHARS - 3] + "..."
            return text
        return lrs_reason(response)

    def _transport_error(self, error: requests.RequestException) -> DeliveryError:
        where = {"sink": self.connector, "partner": self.config.partner}
        if isinstance(error, requests.exceptions.SSLError):
            return DeliveryStopped(
                f"the TLS certificate of {self.vendor} could not be verified; set "
                "ca_file",
                **where,
            )
        if isinstance(error, requests.Timeout) or "timed out" in str(error).lower():
            return DeliveryTemporary(
                f"no answer from {self.vendor} within {self.timeout[1]:g} s "
                f"(connect {self.timeout[0]:g} s)",
                sink=self.connector,
                partner=self.config.partner,
            )
        return DeliveryTemporary(
            f"the connection to {self.vendor} failed ({type(error).__name__})",
            sink=self.connector,
            partner=self.config.partner,
        )


def _same_record(found: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether a record BambooHR holds is this completion: same type, same day.
    BambooHR sends ids as numbers or as text, so both are compared as text."""
    return str(found.get("type")) == str(record["type"]) and str(
        found.get("completed")
    ) == str(record["completed"])


@dataclass
class HrisBatch:
    """What one batch did, entry by entry (outbox ids)."""

    stored: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)
    #: Failed attempts that were retried.
    retried: int = 0
    #: Set when the run stops at this batch; what was not sent stays queued.
    stopped: DeliveryStopped | None = None


def deliver_batch(
    client: HrisClient,
    outbox: Outbox,
    sink: str,
    batch: Sequence[Delivery],
    *,
    deadline: float,
    log: Log,
) -> HrisBatch:
    """Send ``batch`` entry by entry, each outcome recorded in the outbox as soon
    as it is known (a crash loses at most one answer, which the next run finds in
    the HRIS). Never raises for what the HRIS said: see ``HrisBatch.stopped``."""
    result = HrisBatch()
    policy = client.config.retry
    for position, entry in enumerate(batch):
        try:
            sent = _send(client, outbox, sink, entry, deadline, log, result)
        except DeliveryRefused as refused:
            outbox.dead_letter(sink, [entry.id], refused.message)
            result.dead.append((entry.id, refused.message))
            log.warning("completion %s dead-lettered: %s", entry.id, refused.message)
            continue
        except DeliveryStopped as stopped:
            result.stopped = stopped
            return result
        except DeliveryTemporary as error:
            # Out of tries, or asked to wait longer than a run waits (a quota):
            # this entry and the rest of the batch pause until then.
            waiting = [queued.id for queued in batch[position:]]
            result.stopped = _pause(outbox, sink, waiting, error, policy, entry)
            return result
        outbox.mark_delivered(sink, [entry.id])
        (result.stored if sent == "stored" else result.held).append(entry.id)
    return result


def _send(
    client: HrisClient,
    outbox: Outbox,
    sink: str,
    entry: Delivery,
    deadline: float,
    log: Log,
    result: HrisBatch,
) -> Sent:
    """One entry with retries of temporary failures (HT-01: Retry-After honoured
    up to the cap); the last error is raised."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        message = getattr(error, "message", type(error).__name__)
        retry_at = datetime.now(UTC) + timedelta(seconds=wait)
        outbox.record_failure(sink, [entry.id], message, retry_at)
        result.retried += 1
        log.warning(
            "attempt %d for completion %s failed: %s; retrying in %.1f s",
            state.attempt_number,
            entry.id,
            message,
            wait,
        )

    controller = retrying(
        client.config.retry, deadline - time.monotonic(), before_sleep
    )
    return controller(client.send, entry.id, entry.payload)


def _pause(
    outbox: Outbox,
    sink: str,
    waiting: list[str],
    error: DeliveryTemporary,
    policy: RetryPolicy,
    entry: Delivery,
) -> DeliveryStopped:
    """Reschedule ``waiting`` for when the HRIS asked (or our backoff says), and
    the stop that ends this sink's run."""
    held = held_back(error, policy, "the HRIS")
    if held is not None:
        delay, why = held
    else:
        delay = reschedule_delay(policy, entry.attempts + policy.max_attempts)
        why = error.message
    retry_at = datetime.now(UTC) + timedelta(seconds=delay)
    outbox.record_failure(sink, waiting, error.message, retry_at)
    return DeliveryStopped(
        f"{why}; {len(waiting)} completions wait until "
        f"{retry_at:%Y-%m-%d %H:%M:%S} UTC",
        sink=sink,
        status=error.context.get("status"),
    )
