"""The results flow: new results and awards on the platform become xAPI statements
(and Open Badges credentials) in the outbox of the partner's sinks.

A run reads the partner's results and awards stored since its cursor, a little
before it (``OVERLAP``) so that one stored while the last run was reading is not
missed; everything it builds has an id derived from what it describes, so what is
read twice is stored once. Per page, the statements go into the outbox and the
awards' completions into the state store (the roster flow's rules and stacked
programs see them), then the cursor moves. A result that cannot be turned into a
statement (bad SCORM data, a learner without the identifier the partner uses) is
quarantined with its id and the reason, and the run goes on. Nothing here talks
to a sink: the ``deliver`` flow does.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson

from ..changes import enrollment_id
from ..connectors.salesforce import SalesforceConnector
from ..connectors.salesforce.deliveries import (
    contact_delivery,
    result_writeback_delivery,
    writeback_delivery,
)
from ..errors import ConfigError, RunStopped, SyncError
from ..logging import run_context, run_logger
from ..mappings.spec import StatementsSpec
from ..outbox.hris import HrisSink
from ..outbox.hrisclient import hris_delivery
from ..outbox.store import NewDelivery, Outbox
from ..partners import Program
from ..platform.sql import LearnerIdentityRow, SqlPlatform
from ..project import Project
from ..secrets import read_secret
from ..state.cursors import CursorStore
from ..state.locks import JobLock, JobLocked
from ..state.store import StateStore
from ..statements import badges, scorm, xapi
from ..statements.vocabulary import BADGE, Verb
from .records import AwardRecord, ResultRecord

logger = logging.getLogger(__name__)

#: How far before its cursor a run starts reading again.
OVERLAP = timedelta(minutes=5)

#: Results or awards read (and enqueued) at a time.
PAGE = 500

#: The cursor's "server": the platform the results come from.
_CURSOR_SERVER = "platform"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class ResultsOutcome:
    """What a results run did."""

    job: str
    partner: str
    status: str = "done"
    run_id: str | None = None
    results: int = 0
    awards: int = 0
    enqueued: int = 0
    quarantined: int = 0
    error: str | None = None
    reasons: list[str] = field(default_factory=list)
    #: Another run held the job's lock: this one did not start.
    locked: bool = False

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "done" else 1


def run_results(
    project: Project,
    job_id: str,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> ResultsOutcome:
    """Run one results job to its end; raises ConfigError before writing anything
    when the job cannot run. Once ``stop`` is set, the run ends after the page in
    hand (its cursor stays where it was: the next run reads those pages again)."""
    job = project.job(job_id)
    if job.flow != "results":
        raise ConfigError(f"job {job.id} is a {job.flow} job, not a results job")
    if not job.sinks:
        raise ConfigError(f"jobs.{job.id}.sinks: a results job needs a sink")
    partner = project.partners[job.partner]
    spec = project.mappings[job.mapping].statements if job.mapping else StatementsSpec()
    builder = _Builder(project, partner.id, spec, now)
    settings = project.settings
    state_url = settings.database_url(settings.state_url)
    store = StateStore(state_url)
    platform = SqlPlatform(settings.database_url(settings.platform_url))
    outcome = ResultsOutcome(job.id, partner.id)
    run_id = uuid.uuid4().hex
    try:
        store.create_schema()
        lock = JobLock(store.engine, job.id, run_id)
        try:
            lock.acquire()
        except JobLocked as exc:
            outcome.status, outcome.error = "failed", str(exc)
            outcome.locked = True
            return outcome
        try:
            platform.create_schema()
            outcome.run_id = run_id
            run = _Run(
                job.id,
                run_id,
                partner.id,
                _Sinks.of(project, job.sinks),
                builder,
                store,
                platform,
            )
            run.stop = stop
            with run_context(run_id=run_id, job=job.id, partner=partner.id):
                run.execute(CursorStore(state_url), outcome, lock)
        finally:
            lock.release()
    finally:
        store.close()
        platform.close()
    return outcome


class _Builder:
    """Turns the platform's results and awards into statements and credentials."""

    def __init__(
        self,
        project: Project,
        partner: str,
        spec: StatementsSpec,
        now: datetime | None,
    ) -> None:
        self.partner = partner
        self.spec = spec
        self.now = now
        self.programs: dict[str, Program] = dict(project.programs_of(partner))
        verb = (
            Verb(spec.award_verb, spec.award_verb.rstrip("/").rsplit("/", 1)[-1])
            if spec.award_verb
            else None
        )
        self.context = xapi.StatementContext(
            partner=partner,
            identity=spec.identity,
            platform=spec.platform,
            language=spec.language,
            home_page=spec.home_page,
            version=xapi.XapiVersion(spec.version),
            **({"award_verb": verb} if verb else {}),
        )
        self.key: badges.SigningKey | None = None
        if spec.signing_key_secret:
            secret = read_secret(spec.signing_key_secret, project.settings.secrets_dir)
            self.key = badges.load_signing_key(secret)

    def program(self, program_id: str) -> xapi.ActivityRef:
        program = self.programs.get(program_id)
        if program is None:
            raise _Skip(f"program {program_id} is not offered to {self.partner}")
        return xapi.ActivityRef(program.activity_iri, program.title)

    def result(
        self, result: ResultRecord, learner: LearnerIdentityRow
    ) -> dict[str, Any] | None:
        """The result's statement, or None when it reports nothing (browsed)."""
        program = self.program(result.program)
        activity = (
            program
            if result.activity_iri == program.iri
            else xapi.ActivityRef(result.activity_iri, _name_of(result.activity_iri))
        )
        outcome = _outcome(result)
        if outcome.verb is None:
            return None
        fact = xapi.ResultFact(
            result_id=result.id,
            learner=_identity(learner),
            activity=activity,
            program=program,
            enrollment_id=enrollment_id(result.learner_id, result.program),
            happened_at=result.recorded_at,
            outcome=outcome,
        )
        return xapi.result_statement(self.context, fact, self.now)

    def award(
        self, award: AwardRecord, learner: LearnerIdentityRow
    ) -> tuple[dict[str, Any], str | None]:
        """The award's statement, and its credential (JSON text or a VC-JWT) when
        the partner has an issuer."""
        program = self.program(award.program)
        credential_id = badges.credential_id(self.partner, award.id)
        # The achievement has an IRI of its own: one IRI, one activity definition.
        achievement = xapi.ActivityRef(
            program.iri.rstrip("/") + "/achievement",
            f"{program.name} credential",
            BADGE,
        )
        fact = xapi.AwardFact(
            award_id=award.id,
            learner=_identity(learner),
            program=program,
            enrollment_id=enrollment_id(award.learner_id, award.program),
            issued_at=award.issued_at,
            achievement=achievement,
            credential_id=credential_id,
        )
        statement = xapi.award_statement(self.context, fact, self.now)
        issuer = self.spec.issuer
        if issuer is None:
            return statement, None
        document = badges.open_badge_credential(
            badges.IssuerProfile(issuer.id, issuer.name, issuer.url),
            badges.BadgeAward(
                partner=self.partner,
                award_id=award.id,
                learner_id=award.learner_id,
                achievement=badges.Achievement(
                    id=achievement.iri,
                    name=program.name,
                    description=f"Completed the program {program.name}.",
                    criteria=f"Complete every activity of {program.name}.",
                ),
                issued_at=award.issued_at,
                recipient="email" if self.spec.identity == "mbox" else "account",
                email=learner.email,
                number=learner.employee_number,
            ),
            self.now,
        )
        if self.key is not None:
            return statement, badges.sign_credential(document, self.key)
        return statement, orjson.dumps(document).decode()


class _Skip(Exception):
    """A result or award that cannot be sent; its reason goes to quarantine."""


@dataclass(frozen=True)
class _Sinks:
    """A job's sinks by what they take: xAPI statements (an LRS, a file),
    write-backs of awards to a CRM (a salesforce connector), or completions
    recorded in an HRIS (an hris sink)."""

    statements: tuple[str, ...]
    writebacks: tuple[tuple[str, SalesforceConnector], ...]
    hris: tuple[tuple[str, HrisSink], ...] = ()

    @classmethod
    def of(cls, project: Project, names: Sequence[str]) -> _Sinks:
        statements: list[str] = []
        writebacks: list[tuple[str, SalesforceConnector]] = []
        hris: list[tuple[str, HrisSink]] = []
        for name in names:
            config = project.connectors[name]
            if isinstance(config, SalesforceConnector):
                writebacks.append((name, config))
            elif isinstance(config, HrisSink):
                hris.append((name, config))
            else:
                statements.append(name)
        return cls(tuple(statements), tuple(writebacks), tuple(hris))


class _Run:
    def __init__(
        self,
        job: str,
        run_id: str,
        partner: str,
        sinks: _Sinks,
        builder: _Builder,
        store: StateStore,
        platform: SqlPlatform,
    ) -> None:
        self.job, self.run_id, self.partner = job, run_id, partner
        self.sinks = sinks
        self.builder = builder
        self.store, self.platform = store, platform
        self.outbox = Outbox(store.engine)
        self.log = run_logger(__name__, run_id=run_id, job=job, partner=partner)
        self.stop: threading.Event | None = None

    def execute(
        self, cursors: CursorStore, outcome: ResultsOutcome, lock: JobLock
    ) -> None:
        started = datetime.now(UTC)
        self.store.start_run(
            self.run_id, self.job, self.partner, "results", "delta", started
        )
        cursor = cursors.get(self.job, _CURSOR_SERVER)
        since = datetime.fromisoformat(cursor.value) - OVERLAP if cursor else _EPOCH
        newest = since
        try:
            newest = max(newest, self._results(since, outcome, lock))
            newest = max(newest, self._awards(since, outcome, lock))
        except RunStopped as exc:
            outcome.status, outcome.error = "stopped", str(exc)
            self.log.warning("results run stopped: %s", exc)
        except SyncError as exc:
            outcome.status, outcome.error = "failed", str(exc)
            self.log.error("results run failed: %s", exc)
        if outcome.status == "done" and newest > since:
            cursors.save(
                self.job,
                _CURSOR_SERVER,
                newest.isoformat(),
                full=False,
                now=datetime.now(UTC),
            )
        self.store.update_run(
            self.run_id,
            status=outcome.status,
            error=outcome.error,
            finished_at=datetime.now(UTC),
            records_read=outcome.results + outcome.awards,
            quarantined=outcome.quarantined,
            counts={"statements": outcome.enqueued},
        )
        self.log.info(
            "results run %s: results=%d awards=%d enqueued=%d quarantined=%d",
            outcome.status,
            outcome.results,
            outcome.awards,
            outcome.enqueued,
            outcome.quarantined,
        )

    def _page_done(self, lock: JobLock) -> None:
        """Renew the job's lock; stop here if a shutdown asked to."""
        lock.renew()
        if self.stop is not None and self.stop.is_set():
            raise RunStopped(
                "stopped by a shutdown after a recorded page; the next run reads "
                "from the same cursor",
                job=self.job,
                run=self.run_id,
            )

    def _results(
        self, since: datetime, outcome: ResultsOutcome, lock: JobLock
    ) -> datetime:
        after, newest = (since, ""), since
        while page := self.platform.results_after(self.partner, after, PAGE):
            learners = self._learners(record.learner_id for record in page)
            statements: list[dict[str, Any]] = []
            problems: list[tuple[str, str]] = []
            writebacks: list[NewDelivery] = []
            for result in page:
                try:
                    learner = self._learner(learners, result.learner_id)
                except _Skip as exc:
                    problems.append((f"result {result.id}", _reason(exc)))
                    continue
                # Each sink on its own: what one cannot take, the others still get.
                try:
                    statement = self.builder.result(result, learner)
                except (SyncError, ValueError) as exc:
                    problems.append((f"result {result.id}", _reason(exc)))
                    statement = None
                writebacks += self._result_writebacks(result, learner, problems)
                if statement is not None:
                    statements.append(statement)
            self._record(statements, problems, outcome, writebacks)
            outcome.results += len(page)
            last = page[-1]
            after = (last.imported_at or since, last.id)
            newest = max(newest, after[0])
            self._page_done(lock)
        return newest

    def _awards(
        self, since: datetime, outcome: ResultsOutcome, lock: JobLock
    ) -> datetime:
        after, newest = (since, ""), since
        while page := self.platform.awards_after(self.partner, after, PAGE):
            learners = self._learners(record.learner_id for record in page)
            statements: list[dict[str, Any]] = []
            problems: list[tuple[str, str]] = []
            completions: list[tuple[str, str, datetime]] = []
            credentials: list[tuple[str, str, str]] = []
            writebacks: list[NewDelivery] = []
            awarded: dict[str, LearnerIdentityRow] = {}
            for award in page:
                statement: dict[str, Any] | None = None
                credential: str | None = None
                try:
                    learner = self._learner(learners, award.learner_id)
                except _Skip as exc:
                    problems.append((f"award {award.id}", _reason(exc)))
                    continue
                # Each sink on its own: a write-back that lacks its key does not
                # hold back the statement, nor the statement the write-backs.
                if self.sinks.statements:
                    try:
                        statement, credential = self.builder.award(award, learner)
                    except (SyncError, ValueError) as exc:
                        problems.append((f"award {award.id}", _reason(exc)))
                writebacks += self._writebacks(award, learner, problems)
                if statement is not None:
                    statements.append(statement)
                completions.append(
                    (learner.external_key, award.program, award.issued_at)
                )
                awarded[learner.id] = learner
                if credential is not None:
                    credentials.append(
                        (
                            award.id,
                            badges.credential_id(self.partner, award.id),
                            credential,
                        )
                    )
            self._record(statements, problems, outcome, writebacks)
            # After the awards' own entries: the learners' Contacts, latest wins.
            contacts = self._contacts(list(awarded.values()))
            outcome.enqueued += self.outbox.replace(contacts)
            self.store.record_completions(self.partner, completions)
            self.store.record_credentials(self.partner, credentials)
            outcome.awards += len(page)
            last = page[-1]
            after = (last.imported_at or since, last.id)
            newest = max(newest, after[0])
            self._page_done(lock)
        return newest

    def _writebacks(
        self,
        award: AwardRecord,
        learner: LearnerIdentityRow,
        problems: list[tuple[str, str]],
    ) -> list[NewDelivery]:
        """The award's write-backs, one per CRM sink and one per HRIS sink (the
        award is the completion the HRIS records). A sink that cannot take it
        (the award lacks what the sink keys its records by) adds to ``problems``."""
        program = self.builder.program(award.program)
        options = {
            "program_title": program.name,
            "credential_id": badges.credential_id(self.partner, award.id),
            "run_id": self.run_id,
        }
        makers: list[tuple[str, Callable[[], NewDelivery | None]]] = []
        for name, config in self.sinks.writebacks:
            makers.append(
                (
                    name,
                    partial(
                        writeback_delivery, config, name, award, learner, **options
                    ),
                )
            )
        for name, hris in self.sinks.hris:
            makers.append(
                (name, partial(hris_delivery, hris, name, award, learner, **options))
            )
        return _each_sink(f"award {award.id}", makers, problems)

    def _result_writebacks(
        self,
        result: ResultRecord,
        learner: LearnerIdentityRow,
        problems: list[tuple[str, str]],
    ) -> list[NewDelivery]:
        """The result's write-backs, to the CRM sinks whose ``results`` take it;
        a sink that cannot take it adds to ``problems``."""
        sinks = [
            (name, config)
            for name, config in self.sinks.writebacks
            if config.writeback is not None and config.writeback.results is not None
        ]
        if not sinks:
            return []
        outcome = _outcome(result)
        title = self.builder.program(result.program).name
        makers: list[tuple[str, Callable[[], NewDelivery | None]]] = [
            (
                name,
                partial(
                    result_writeback_delivery,
                    config,
                    name,
                    result,
                    learner,
                    outcome,
                    program_title=title,
                    run_id=self.run_id,
                ),
            )
            for name, config in sinks
        ]
        return _each_sink(f"result {result.id}", makers, problems)

    def _contacts(self, learners: Sequence[LearnerIdentityRow]) -> list[NewDelivery]:
        """The Contact state of learners who got an award, per CRM sink that sets
        Contact fields, from all of each learner's awards: whole whatever order
        the awards came in, so the newest state is also the right one."""
        sinks = [
            (name, config)
            for name, config in self.sinks.writebacks
            if config.writeback is not None and config.writeback.contact is not None
        ]
        if not sinks or not learners:
            return []
        awards = self.platform.awards_of(self.partner, [row.id for row in learners])
        found = (
            contact_delivery(
                config,
                name,
                learner,
                awards.get(learner.id, ()),
                self.builder.programs,
                run_id=self.run_id,
            )
            for learner in learners
            for name, config in sinks
        )
        return [delivery for delivery in found if delivery is not None]

    def _learners(self, ids: Any) -> dict[str, LearnerIdentityRow]:
        return self.platform.learner_identities(self.partner, sorted(set(ids)))

    @staticmethod
    def _learner(
        learners: dict[str, LearnerIdentityRow], ident: str
    ) -> LearnerIdentityRow:
        learner = learners.get(ident)
        if learner is None:
            raise _Skip("the learner is not on the platform")
        return learner

    def _record(
        self,
        statements: list[dict[str, Any]],
        problems: list[tuple[str, str]],
        outcome: ResultsOutcome,
        writebacks: Sequence[NewDelivery] = (),
    ) -> None:
        deliveries = [
            NewDelivery(
                id=statement["id"],
                partner=self.partner,
                sink=sink,
                payload=statement,
                run_id=self.run_id,
            )
            for statement in statements
            for sink in self.sinks.statements
        ]
        deliveries += writebacks
        outcome.enqueued += self.outbox.enqueue(deliveries)
        if problems:
            now = datetime.now(UTC)
            self.store.record_quarantine(
                [
                    {
                        "run_id": self.run_id,
                        "job": self.job,
                        "partner": self.partner,
                        "location": location,
                        "source_key": None,
                        "reason": reason,
                        "created_at": now,
                    }
                    for location, reason in problems
                ]
            )
            for location, reason in problems:
                self.log.warning("quarantined %s: %s", location, reason)
            outcome.quarantined += len(problems)


def _each_sink(
    location: str,
    makers: Sequence[tuple[str, Callable[[], NewDelivery | None]]],
    problems: list[tuple[str, str]],
) -> list[NewDelivery]:
    """The deliveries ``makers`` build, one sink at a time; a sink that cannot
    take the record is a problem of that sink alone (``award X for sink``)."""
    found: list[NewDelivery] = []
    for sink, make in makers:
        try:
            delivery = make()
        except (SyncError, ValueError) as exc:
            problems.append((f"{location} for {sink}", _reason(exc)))
            continue
        if delivery is not None:
            found.append(delivery)
    return found


def _identity(learner: LearnerIdentityRow) -> xapi.LearnerIdentity:
    return xapi.LearnerIdentity(
        learner_id=learner.id, email=learner.email, number=learner.employee_number
    )


def _outcome(result: ResultRecord) -> scorm.Outcome:
    """The result in xAPI terms: from its SCORM data when it has any, else from the
    platform's own completion, success and score."""
    if result.scorm:
        return scorm.translate(result.scorm)
    score = result.score
    parts = (score.scaled, score.raw, score.min, score.max)
    return scorm.native_outcome(
        completion=result.completion,
        success=result.success,
        score=scorm.Score(*parts) if any(p is not None for p in parts) else None,
        duration=result.duration,
    )


def _name_of(iri: str) -> str:
    """A readable name for an activity known only by its IRI."""
    return iri.rstrip("/").rsplit("/", 1)[-1] or iri


def _reason(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__
