"""xAPI statements for results and awards, and the voiding statement that revokes one.

Pure functions over plain dataclasses: no I/O, no clock unless none is given. What
every statement carries, and why:

- ``id``: UUID v5 over the partner, the result or award id and the verb, so the
  same fact always has the same id and a resend is a duplicate, never a copy.
- ``actor``: exactly one identifier, chosen per partner (``StatementContext``):
  ``mbox`` (``mailto:`` + the lower-cased email) or ``account`` (the partner's
  ``homePage`` and the employee or member number). No name: names are personal
  data the LRS does not need.
- ``object``: the activity (IRI, name, type) from configuration.
- ``context``: ``registration`` (the enrollment id), the program as a ``grouping``
  activity (unless the object is the program), ``platform`` and ``language``.
- ``timestamp``: when it happened, in UTC with millisecond precision and ``Z``
  (RFC 3339). A naive time is refused, and so is a time in the future: a statement
  must be the same every time it is built (a resend with other content is a 409
  conflict at the LRS), so it is never clamped to "now"; the result waits for a
  later run, when its time has passed.
- no ``version``: the ``X-Experience-API-Version`` header carries it
  (``XapiVersion.header``).

xAPI 1.0.3 is the default; 2.0 (IEEE 9274.1.1) is an option per partner. What
differs for what these builders write is the version header only: 2.0 requires a
timezone offset in timestamps (always written here), forbids none of the
properties used, and adds ``contextAgents`` and ``contextGroups``, which these
statements do not need. The award statement's credential id goes in
``result.extensions`` under the Open Badges xAPI vocabulary's "badge assertion"
key, as ``{"@id": <credential id>}``: ``result`` describes the outcome of the
experience, and the credential is that outcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import Any, Final, Literal
from urllib.parse import urljoin

from ..changes import derived_id
from .errors import StatementInputError
from .scorm import Outcome
from .vocabulary import (
    COURSE,
    CREDENTIAL_EXTENSION,
    EARNED,
    VOIDED,
    Verb,
)

Statement = dict[str, Any]


class XapiVersion(StrEnum):
    """The xAPI version a partner's LRS speaks; its value is the header's."""

    V1_0_3 = "1.0.3"
    V2_0_0 = "2.0.0"

    @property
    def header(self) -> dict[str, str]:
        """The request header that carries the version (statements carry none)."""
        return {"X-Experience-API-Version": self.value}


IdentityMode = Literal["mbox", "account"]
IDENTITY_MODES: Final = ("mbox", "account")

# RFC 5646 language tag, by its token lengths (what LRSs check).
_LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
_IRI = re.compile(r"^[a-z][a-z0-9+.-]*:\S+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


@dataclass(frozen=True, slots=True)
class StatementContext:
    """A partner's statement settings: identity mode, platform, language, version.

    ``identity`` is exactly one of ``mbox`` or ``account``; ``account`` needs the
    partner's ``home_page``. Raises StatementInputError (field ``identity``, ...)
    for anything else, when constructed.
    """

    partner: str
    identity: IdentityMode
    platform: str
    language: str = "en"
    home_page: str | None = None
    version: XapiVersion = XapiVersion.V1_0_3
    award_verb: Verb = EARNED

    def __post_init__(self) -> None:
        if self.identity not in IDENTITY_MODES:
            raise StatementInputError(
                f"must be exactly one of {', '.join(IDENTITY_MODES)} "
                f"(xAPI allows one identifier per agent), not {self.identity!r}",
                field="identity",
                partner=self.partner,
            )
        if self.identity == "account" and not (
            self.home_page and _IRI.match(self.home_page)
        ):
            raise StatementInputError(
                "account identity needs the partner's home page (an IRL)",
                field="home_page",
                partner=self.partner,
            )
        if not _LANGUAGE.match(self.language):
            raise StatementInputError(
                f"not an RFC 5646 language tag: {self.language!r}",
                field="language",
                partner=self.partner,
            )


@dataclass(frozen=True, slots=True)
class LearnerIdentity:
    """What identifies a learner to the partner's LRS: an email, a number, or both
    (the partner's identity mode picks one)."""

    learner_id: str
    email: str | None = None
    #: The employee or member number the partner knows the learner by.
    number: str | None = None


@dataclass(frozen=True, slots=True)
class ActivityRef:
    """An activity as configured: its IRI, name and type."""

    iri: str
    name: str
    type: str = COURSE
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ResultFact:
    """A result to report: who, on what, in which enrollment, when, and the outcome.

    ``activity`` is what was done (a course or a SCO); ``program`` is the program it
    belongs to, written as the ``grouping`` context activity.
    """

    result_id: str
    learner: LearnerIdentity
    activity: ActivityRef
    program: ActivityRef
    enrollment_id: str
    happened_at: datetime
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class AwardFact:
    """An award to report: the credential issued to a learner for a program."""

    award_id: str
    learner: LearnerIdentity
    program: ActivityRef
    enrollment_id: str
    issued_at: datetime
    #: The achievement as an activity (type ``vocabulary.BADGE``): its own IRI,
    #: not the program's, so one IRI never has two activity definitions.
    achievement: ActivityRef
    #: The credential's id (``urn:uuid:...``, from ``badges.credential_id``).
    credential_id: str


def statement_id(partner: str, fact_id: str, verb: Verb) -> str:
    """The statement id of a fact: UUID v5 over partner, fact id and verb IRI."""
    return derived_id(f"statement/{partner}/{fact_id}/{verb.id}")


def result_statement(
    context: StatementContext, fact: ResultFact, now: datetime | None = None
) -> Statement:
    """The statement of a result; raises StatementInputError if the outcome has no
    verb (nothing to report) or the learner or time do not fit (field named)."""
    verb = fact.outcome.verb
    if verb is None:
        raise StatementInputError(
            "the outcome reports nothing (no completion or success)",
            field="outcome",
            result=fact.result_id,
        )
    statement = _statement(
        context,
        fact_id=fact.result_id,
        verb=verb,
        learner=fact.learner,
        activity=fact.activity,
        happened_at=fact.happened_at,
        now=now,
    )
    result = fact.outcome.to_result()
    if result:
        statement["result"] = result
    statement["context"] = _context(
        context, fact.enrollment_id, fact.activity, fact.program
    )
    return statement


def award_statement(
    context: StatementContext, award: AwardFact, now: datetime | None = None
) -> Statement:
    """The statement that the learner earned the award's credential (the partner's
    award verb), carrying the credential id in ``result.extensions``."""
    achievement = award.achievement
    if not _IRI.match(award.credential_id):
        raise StatementInputError(
            "credential id is not an IRI", field="credential_id", award=award.award_id
        )
    statement = _statement(
        context,
        fact_id=award.award_id,
        verb=context.award_verb,
        learner=award.learner,
        activity=achievement,
        happened_at=award.issued_at,
        now=now,
    )
    statement["result"] = {
        "completion": True,
        "extensions": {CREDENTIAL_EXTENSION: {"@id": award.credential_id}},
    }
    statement["context"] = _context(
        context, award.enrollment_id, achievement, award.program
    )
    return statement


def voiding_statement(
    context: StatementContext,
    target_id: str,
    learner: LearnerIdentity,
    voided_at: datetime,
    now: datetime | None = None,
) -> Statement:
    """The statement that voids ``target_id`` (a revoked award or a result sent in
    error): verb ``voided``, object a ``StatementRef``. Statements are never deleted
    (xAPI 1.0.3 section 2.3.2). Its actor is the learner's, as on the target."""
    return {
        "id": derived_id(f"void/{context.partner}/{target_id}"),
        "actor": actor(context, learner),
        "verb": VOIDED.to_json(),
        "object": {"objectType": "StatementRef", "id": target_id},
        "timestamp": timestamp(voided_at, now),
    }


def actor(context: StatementContext, learner: LearnerIdentity) -> dict[str, Any]:
    """The learner as an xAPI Agent with the partner's one identifier."""
    if context.identity == "mbox":
        email = (learner.email or "").strip().lower()
        if not _EMAIL.match(email):
            raise StatementInputError(
                "the learner has no usable email for an mbox identity",
                field="email",
                partner=context.partner,
                learner=learner.learner_id,
            )
        return {"objectType": "Agent", "mbox": f"mailto:{email}"}
    number = (learner.number or "").strip()
    if not number:
        raise StatementInputError(
            "the learner has no employee or member number for an account identity",
            field="number",
            partner=context.partner,
            learner=learner.learner_id,
        )
    return {
        "objectType": "Agent",
        "account": {"homePage": context.home_page, "name": number},
    }


def timestamp(moment: datetime, now: datetime | None = None) -> str:
    """``moment`` in UTC as RFC 3339 with milliseconds (truncated) and ``Z``.

    Raises StatementInputError for a naive datetime (its zone is unknown) and for
    one after ``now`` (default: the current time).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise StatementInputError(
            "a time without a UTC offset cannot be placed (see to_utc)",
            field="timestamp",
        )
    current = now or datetime.now(UTC)
    if moment > current:
        raise StatementInputError(
            f"{moment.isoformat()} is in the future (now {current.isoformat()})",
            field="timestamp",
        )
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def to_utc(value: datetime | str, source_zone: tzinfo | None = None) -> datetime:
    """An aware UTC datetime from an ISO 8601 text or a datetime.

    A value without an offset is placed in ``source_zone`` (the source's configured
    zone); without one, or when the wall time does not exist or happens twice there
    (a DST change), StatementInputError. Fractions beyond microseconds are cut.
    """
    moment = _parse(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        if source_zone is None:
            raise StatementInputError(
                f"{moment.isoformat()} has no UTC offset and the source has no zone",
                field="timestamp",
            )
        early = moment.replace(tzinfo=source_zone, fold=0)
        late = moment.replace(tzinfo=source_zone, fold=1)
        if early.utcoffset() != late.utcoffset():
            raise StatementInputError(
                f"{moment.isoformat()} does not exist or is ambiguous in "
                f"{source_zone} (a daylight-saving change)",
                field="timestamp",
            )
        moment = early
    return moment.astimezone(UTC)


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _parse(text: str) -> datetime:
    try:
        return datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()))
    except ValueError:
        raise StatementInputError(
            f"not an ISO 8601 date and time: {text!r}", field="timestamp"
        ) from None


def _statement(
    context: StatementContext,
    *,
    fact_id: str,
    verb: Verb,
    learner: LearnerIdentity,
    activity: ActivityRef,
    happened_at: datetime,
    now: datetime | None,
) -> Statement:
    return {
        "id": statement_id(context.partner, fact_id, verb),
        "actor": actor(context, learner),
        "verb": verb.to_json(),
        "object": _activity(context, activity),
        "timestamp": timestamp(happened_at, now),
    }


def _activity(context: StatementContext, activity: ActivityRef) -> dict[str, Any]:
    if not _IRI.match(activity.iri) or not _IRI.match(activity.type):
        raise StatementInputError(
            "activity id and type must be IRIs", field="activity", iri=activity.iri
        )
    definition: dict[str, Any] = {
        "name": {context.language: activity.name},
        "type": activity.type,
    }
    if activity.description:
        definition["description"] = {context.language: activity.description}
    return {"objectType": "Activity", "id": activity.iri, "definition": definition}


def _context(
    context: StatementContext,
    enrollment_id: str,
    activity: ActivityRef,
    program: ActivityRef,
) -> dict[str, Any]:
    written: dict[str, Any] = {
        "registration": enrollment_id,
        "platform": context.platform,
        "language": context.language,
    }
    # The program groups the activity; a statement about the program itself needs
    # no grouping of it.
    if program.iri != activity.iri:
        written["contextActivities"] = {"grouping": [_activity(context, program)]}
    return written


VOIDED_VERB: Final = VOIDED.id


def drop_voided(
    statements: Iterable[Mapping[str, Any]], keep_voided: bool = False
) -> list[Mapping[str, Any]]:
    """Statements read back from an LRS without voiding statements and their targets
    (unless ``keep_voided``), so reports and reconciliation do not count revoked
    results. Order is kept."""
    read = list(statements)
    if keep_voided:
        return read
    voided = {
        statement["object"].get("id")
        for statement in read
        if statement.get("verb", {}).get("id") == VOIDED_VERB
        and statement.get("object", {}).get("objectType") == "StatementRef"
    }
    return [
        statement
        for statement in read
        if statement.get("verb", {}).get("id") != VOIDED_VERB
        and statement.get("id") not in voided
    ]


def next_page(endpoint: str, more: str | None, visited: set[str]) -> str | None:
    """The URL of the next page of a statement query, or None when paging ends.

    ``more`` is resolved against the LRS endpoint (it may be relative or absolute);
    an empty or missing ``more`` ends paging, and so does a link already followed
    (``visited`` is updated). The caller caps the number of pages.
    """
    if not more:
        return None
    url = urljoin(endpoint, more)
    if url in visited:
        return None
    visited.add(url)
    return url
