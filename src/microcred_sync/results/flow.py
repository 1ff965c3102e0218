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
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ..changes import enrollment_id
from ..connectors.salesforce import SalesforceConnector
from ..connectors.salesforce.writeback import writeback_delivery
from ..errors import ConfigError, SyncError
from ..logging import run_logger
from ..mappings.spec import StatementsSpec
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

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "done" else 1


def run_results(
    project: Project, job_id: str, now: datetime | None = None
) -> ResultsOutcome:
    """Run one results job to its end; raises ConfigError before writing anything
    when the job cannot run."""
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
        platform.create_schema()
        lock = JobLock(store.engine, job.id, run_id)
        try:
            lock.acquire()
        except JobLocked as exc:
            outcome.status, outcome.error = "failed", str(exc)
            return outcome
        try:
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
    """A job's sinks by what they take: xAPI statements (an LRS, a file), or
    write-backs of awards to a CRM (a salesforce connector)."""

    statements: tuple[str, ...]
    writebacks: tuple[tuple[str, SalesforceConnector], ...]

    @classmethod
    def of(cls, project: Project, names: Sequence[str]) -> _Sinks:
        statements: list[str] = []
        writebacks: list[tuple[str, SalesforceConnector]] = []
        for name in names:
            config = project.connectors[name]
            if isinstance(config, SalesforceConnector):
                writebacks.append((name, config))
            else:
                statements.append(name)
        return cls(tuple(statements), tuple(writebacks))


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

    def _results(
        self, since: datetime, outcome: ResultsOutcome, lock: JobLock
    ) -> datetime:
        after, newest = (since, ""), since
        while page := self.platform.results_after(self.partner, after, PAGE):
            learners = self._learners(record.learner_id for record in page)
            statements: list[dict[str, Any]] = []
            problems: list[tuple[str, str]] = []
            for result in page:
                try:
                    statement = self.builder.result(
                        result, self._learner(learners, result.learner_id)
                    )
                except (_Skip, SyncError) as exc:
                    problems.append((f"result {result.id}", _reason(exc)))
                    continue
                if statement is not None:
                    statements.append(statement)
            self._record(statements, problems, outcome)
            outcome.results += len(page)
            last = page[-1]
            after = (last.imported_at or since, last.id)
            newest = max(newest, after[0])
            lock.renew()
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
            for award in page:
                statement: dict[str, Any] | None = None
                credential: str | None = None
                try:
                    learner = self._learner(learners, award.learner_id)
                    if self.sinks.statements:
                        statement, credential = self.builder.award(award, learner)
                    writebacks += self._writebacks(award, learner)
                except (_Skip, SyncError, ValueError) as exc:
                    problems.append((f"award {award.id}", _reason(exc)))
                    continue
                if statement is not None:
                    statements.append(statement)
                completions.append(
                    (learner.external_key, award.program, award.issued_at)
                )
                if credential is not None:
                    credentials.append(
                        (
                            award.id,
                            badges.credential_id(self.partner, award.id),
                            credential,
                        )
                    )
            self._record(statements, problems, outcome, writebacks)
            self.store.record_completions(self.partner, completions)
            self.store.record_credentials(self.partner, credentials)
            outcome.awards += len(page)
            last = page[-1]
            after = (last.imported_at or since, last.id)
            newest = max(newest, after[0])
            lock.renew()
        return newest

    def _writebacks(
        self, award: AwardRecord, learner: LearnerIdentityRow
    ) -> list[NewDelivery]:
        """The award's write-backs, one per CRM sink; raises ValueError when the
        award lacks what a sink keys its records by."""
        program = self.builder.program(award.program)
        return [
            writeback_delivery(
                config,
                name,
                award,
                learner,
                program_title=program.name,
                credential_id=badges.credential_id(self.partner, award.id),
                run_id=self.run_id,
            )
            for name, config in self.sinks.writebacks
        ]

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
