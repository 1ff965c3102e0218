"""The `microcred-sync` command line.

Exit codes: 0 done, 1 failed, 2 configuration error, 3 held by the guard.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
)
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from . import logging as sync_logging
from . import migrations
from .changes import REPORTED_KINDS
from .errors import EXIT_CONFIG, ConfigError, SyncError
from .migrations import Schema
from .ops.alerts import after_run
from .ops.status import JobStatus, job_statuses, outbox_backlog, status_document
from .outbox import Delivery, Outbox
from .outbox.deliver import DeliverOutcome, run_deliver
from .platform.sql import SqlPlatform
from .project import Project, load_project
from .results.flow import ResultsOutcome, run_results
from .results.importer import import_rows, read_rows
from .settings import load_settings
from .sqlutil import make_engine
from .state.store import StateStore
from .sync.roster import RunOptions, RunOutcome, run_roster

EXIT_FAILED = 1
#: The job's lock was taken (another run of it in progress): nothing was done.
EXIT_LOCKED = 4

_EXIT_CODES = (
    "Exit codes: 0 done, 1 failed, 2 configuration error, 3 held by the guard."
)

out = Console(highlight=False, soft_wrap=True)


def _project(context: click.Context) -> Project:
    root: Path | None = context.obj.get("root")
    settings = load_settings(root)
    sync_logging.configure(settings.log_level, settings.log_format)
    return load_project(settings)


def _store(project: Project) -> StateStore:
    """The state store, for reading: nothing is created when there is none yet."""
    settings = project.settings
    store = StateStore.existing(settings.database_url(settings.state_url))
    if store.unmigrated is not None:
        click.echo(
            f"note: the state store at {store.unmigrated} has no schema yet, so no "
            "job has run with these settings; run `microcred-sync db upgrade`",
            err=True,
        )
    return store


class _Group(click.Group):
    """Turns a ConfigError anywhere into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"configuration error: {exc}", err=True)
            sys.exit(EXIT_CONFIG)
        except SQLAlchemyError as exc:
            # The driver's own words only: SQLAlchemy's text carries SQL and values.
            cause = getattr(exc, "orig", None) or exc
            first = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
            # The engine that failed says which setting; its URL is not shown.
            setting = migrations.failed_setting(exc)
            check = (
                f"the {setting} setting"
                if setting
                else "the state_url and platform_url settings"
            )
            click.echo(
                f"database error: {first}; check {check} and that the database "
                "is reachable and writable",
                err=True,
            )
            sys.exit(EXIT_FAILED)
        except SyncError as exc:
            # A run's own failures end in its outcome; what escapes a flow (the
            # job's lock lost mid-run, say) still ends in one line, not a trace.
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)


@click.group(cls=_Group, epilog=_EXIT_CODES)
@click.version_option(package_name="microcred-sync", prog_name="microcred-sync")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="MICROCRED_ROOT",
    help="The project folder (default: current).",
)
@click.pass_context
def main(context: click.Context, root: Path | None) -> None:
    """microcred-sync: rosters in from HRIS, CRM and directories; results out."""
    context.obj = {"root": root}


@main.command()
@click.pass_context
def check(context: click.Context) -> None:
    """Validate every settings, connector, mapping, program and job file."""
    project = _project(context)
    out.print(
        f"ok: {len(project.partners)} partners, {len(project.programs)} programs, "
        f"{len(project.connectors)} connectors, {len(project.mappings)} mappings, "
        f"{len(project.jobs)} jobs"
    )


@main.command()
@click.argument("job")
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@click.option(
    "--only",
    is_flag=True,
    help="Provision only the KEYs given after the job now, tracing each decision.",
)
@click.option(
    "--allow-mass-deprovision",
    is_flag=True,
    help="Apply suspensions the guard would hold, this once.",
)
@click.pass_context
def run(
    context: click.Context,
    job: str,
    keys: tuple[str, ...],
    only: bool,
    allow_mass_deprovision: bool,
) -> None:
    """Run a job now: read, plan, guard, apply (`run JOB --only KEY...`)."""
    selected = _keys(keys, only)
    project = _project(context)
    if project.job(job).flow == "deliver":
        if selected or allow_mass_deprovision:
            raise click.UsageError("a deliver job takes no keys and no override")
        deliver_outcome = run_deliver(project, job)
        _print_deliver_summary(deliver_outcome)
        after_run(project, job, deliver_outcome)
        sys.exit(deliver_outcome.exit_code)
    if project.job(job).flow == "results":
        if selected or allow_mass_deprovision:
            raise click.UsageError("a results job takes no keys and no override")
        results_outcome = run_results(project, job)
        _exit_if_locked(job, results_outcome)
        _print_results_summary(results_outcome)
        after_run(project, job, results_outcome)
        sys.exit(results_outcome.exit_code)
    options = RunOptions(
        only=frozenset(selected) or None, allow_mass_deprovision=allow_mass_deprovision
    )
    if selected:
        options.trace = lambda line: out.print(f"trace {line}", markup=False)
    with _progress(options):
        outcome = run_roster(project, job, options)
    _exit_if_locked(job, outcome)
    _print_summary(outcome)
    after_run(project, job, outcome)
    sys.exit(outcome.exit_code)


def _exit_if_locked(job: str, outcome: RunOutcome | ResultsOutcome) -> None:
    """A run that found its job taken did nothing: one line, exit 4, no summary
    of zeros that would read as a failed run."""
    if outcome.locked:
        out.print(f"{job}: not run: {outcome.error}", markup=False)
        sys.exit(EXIT_LOCKED)


@main.command()
@click.pass_context
def schedule(context: click.Context) -> None:
    """Run the jobs on their schedules until SIGTERM or SIGINT (the daemon).

    Serves /metrics and /healthz on the daemon.http_host and http_port settings.
    Exits 0 once the running batches have finished and the locks are released,
    1 when daemon.stop_seconds passed first, 2 before any run when a database
    needs `db upgrade` or the port is in use.
    """
    from .scheduler.daemon import serve

    project = _project(context)
    if not serve(project):
        # Runs still going: leave without waiting for their threads.
        logging.shutdown()
        os._exit(EXIT_FAILED)


@main.command()
@click.argument("job")
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@click.option("--only", is_flag=True, help="Plan only the KEYs given after the job.")
@click.option("--allow-mass-deprovision", is_flag=True)
@click.pass_context
def plan(
    context: click.Context,
    job: str,
    output: str,
    keys: tuple[str, ...],
    only: bool,
    allow_mass_deprovision: bool,
) -> None:
    """Show what a run would change, without changing anything."""
    selected = _keys(keys, only)
    project = _project(context)
    options = RunOptions(
        dry_run=True,
        only=frozenset(selected) or None,
        allow_mass_deprovision=allow_mass_deprovision,
    )
    if selected:
        options.trace = lambda line: out.print(f"trace {line}", markup=False)
    outcome = run_roster(project, job, options)
    if output == "json":
        click.echo(json.dumps(_plan_document(outcome), ensure_ascii=False))
    else:
        _print_plan(outcome)
    sys.exit(1 if outcome.status == "failed" else (3 if outcome.held_reason else 0))


@main.command()
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def status(context: click.Context, output: str) -> None:
    """Each job's last run, its outcome and next run; the outbox backlog per sink."""
    project = _project(context)
    store = _store(project)
    stand_in = store.engine.url.database in (None, "", ":memory:")
    if stand_in and store.unmigrated is None:
        # ``existing`` stood in an empty store: no file at the configured URL.
        click.echo(
            "note: no state store at the configured state_url yet, so no job has "
            "run with these settings",
            err=True,
        )
    now = datetime.now(UTC)
    statuses = job_statuses(project, store, now)
    sinks = sorted({sink for job in project.jobs.values() for sink in job.sinks})
    backlog = outbox_backlog(store.engine, sinks)
    if output == "json":
        document = status_document(statuses, backlog, now)
        click.echo(json.dumps(document, ensure_ascii=False))
        return
    rows = [_status_row(entry) for entry in statuses]
    headers = (
        "job",
        "partner",
        "last run",
        "status",
        "read",
        "quarantined",
        "planned changes",
        "next run",
        "why",
    )
    _table(headers, rows)
    out.print("")
    _table(
        ("sink", "pending", "oldest pending since", "waiting"),
        [
            (
                entry.sink,
                str(entry.pending),
                _when(entry.oldest_at),
                _waited(entry.age_seconds(now)),
            )
            for entry in backlog.values()
        ],
    )


def _status_row(entry: JobStatus) -> tuple[str, ...]:
    last, upcoming = entry.last, _when(entry.next_run)
    if last is None:
        return (entry.job, entry.partner, "never", "-", "-", "-", "-", upcoming, "")
    changed = ", ".join(f"{k} {n}" for k, n in last.counts.items() if n) or "none"
    why = (last.held_reason or last.error or "").split(";")[0]
    shown = last.status
    if entry.abandoned:
        shown = f"{last.status} (abandoned)"
        why = "nothing holds the job's lock: its process is gone; the next run "
        why += "records it interrupted"
    return (
        entry.job,
        entry.partner,
        _when(last.started_at),
        shown,
        str(last.records_read),
        str(last.quarantined),
        changed,
        upcoming,
        why,
    )


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def _waited(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return (
        f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
    )


@main.command()
@click.option("--learner", "key", required=True, help="The learner's source key.")
@click.option("--partner", default=None)
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def audit(context: click.Context, key: str, partner: str | None, output: str) -> None:
    """Every change applied to one learner, with fields before and after."""
    project = _project(context)
    if partner is not None and partner not in project.partners:
        raise click.BadParameter(f"no partner {partner!r}", param_hint="--partner")
    entries = _store(project).audit(key, partner)
    if output == "json":
        click.echo(json.dumps(entries, ensure_ascii=False))
        return
    if not entries:
        out.print(f"no changes recorded for {key}")
        return
    for entry in entries:
        target = f" {entry['program']}" if entry["program"] else ""
        held = " (held)" if entry["state"] == "held" else ""
        why = f": {entry['reason']}" if entry["reason"] else ""
        out.print(
            f"{entry['applied_at'] or '-'} run {entry['run_id']} "
            f"{entry['partner']} {entry['kind']}{target}{held}{why}",
            markup=False,
        )
        if entry["before"] or entry["after"]:
            out.print(
                f"    before: {json.dumps(entry['before'], ensure_ascii=False)}",
                markup=False,
            )
            out.print(
                f"    after:  {json.dumps(entry['after'], ensure_ascii=False)}",
                markup=False,
            )


@main.group()
def quarantine() -> None:
    """Records that could not become learners."""


@quarantine.command("list")
@click.argument("job")
@click.option(
    "--run",
    "run_id",
    default=None,
    help="A run id (default: the latest full read and the delta reads since).",
)
@click.pass_context
def quarantine_list(context: click.Context, job: str, run_id: str | None) -> None:
    """The records a job could not use, where, which key, why: those of its latest
    full read and of its delta reads since."""
    project = _project(context)
    project.job(job)
    store = _store(project)
    if run_id is not None and not store.has_run(job, run_id):
        raise click.BadParameter(f"no run {run_id!r} of {job}", param_hint="--run")
    rows = store.quarantined(job, run_id)
    if not rows:
        which = f"run {run_id}" if run_id else "the latest reads"
        out.print(f"no quarantined records in {which} of {job}")
        return
    _table(
        ("location", "key", "reason"),
        [(row["location"], row["key"] or "-", row["reason"]) for row in rows],
    )


@main.group()
def results() -> None:
    """Results and awards on the platform."""


@results.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--partner", required=True, help="The partner whose learners these are.")
@click.pass_context
def results_import(context: click.Context, file: Path, partner: str) -> None:
    """Load results (or awards) a content player exported, as CSV or JSON lines.

    Rows that cannot be read are listed with their line and reason, the others
    are stored; the exit code is 1 when any row was rejected.
    """
    project = _project(context)
    if partner not in project.partners:
        known = ", ".join(sorted(project.partners))
        raise ConfigError(f"unknown partner {partner!r} (known: {known})")
    settings = project.settings
    platform = SqlPlatform(settings.database_url(settings.platform_url))
    try:
        platform.create_schema()
        platform.ensure_catalog(
            project.partners[partner], project.programs_of(partner).values()
        )
        report = import_rows(
            read_rows(file), partner, project.programs_of(partner), platform
        )
    finally:
        platform.close()
    for location, reason in report.rejected:
        click.echo(f"rejected {location}: {reason}", err=True)
    out.print(
        f"imported {report.results} results and {report.awards} awards for "
        f"{partner}; {report.already} already there, {len(report.rejected)} rejected"
    )
    if report.rejected:
        sys.exit(EXIT_FAILED)


@main.group("outbox")
def outbox_group() -> None:
    """The outbox: statements waiting for, delivered to, or refused by a sink."""


def _outbox_job(context: click.Context, job_id: str) -> tuple[Project, list[str]]:
    """The project and the sinks of ``job_id``, which must have some."""
    project = _project(context)
    job = project.job(job_id)
    if not job.sinks:
        raise click.BadParameter(f"job {job_id} has no sinks", param_hint="JOB")
    return project, list(job.sinks)


@outbox_group.command("list")
@click.argument("job")
@click.option("--status", type=click.Choice(["pending", "delivered", "dead"]))
@click.option("--limit", type=int, default=100, show_default=True)
@click.pass_context
def outbox_list(
    context: click.Context, job: str, status: str | None, limit: int
) -> None:
    """The outbox entries of a job's sinks: status, attempts, next attempt, error."""
    project, sinks = _outbox_job(context, job)
    partner = project.jobs[job].partner
    box = Outbox(_store(project).engine)
    counts = box.counts(sinks, partner=partner)
    out.print(
        f"{job}: " + ", ".join(f"{name} {count}" for name, count in counts.items()),
        markup=False,
    )
    rows: list[tuple[str, ...]] = [
        (
            entry.id,
            entry.sink,
            entry.status,
            str(entry.attempts),
            entry.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S")
            if entry.status == "pending"
            else "-",
            entry.last_error or "",
        )
        for entry in box.entries(sinks, partner=partner, status=status, limit=limit)
    ]
    if rows:
        _table(("id", "sink", "status", "attempts", "next attempt", "last error"), rows)


@outbox_group.command("retry")
@click.argument("job")
@click.option("--id", "ids", multiple=True, help="Only this entry (repeatable).")
@click.pass_context
def outbox_retry(context: click.Context, job: str, ids: tuple[str, ...]) -> None:
    """Make dead entries, and pending ones waiting out a backoff, due now.

    An ``--id`` that is no entry of the job's sinks stops the command before it
    requeues anything; one delivered already, or already due, is named.
    """
    project, sinks = _outbox_job(context, job)
    settings = project.settings
    store = StateStore(settings.database_url(settings.state_url))
    try:
        store.create_schema()
        box = Outbox(store.engine)
        partner = project.jobs[job].partner
        found: dict[str, Delivery] = {}
        if ids:
            found = {e.id: e for e in box.entries(sinks, partner=partner, ids=ids)}
            unknown = [entry_id for entry_id in ids if entry_id not in found]
            if unknown:
                raise click.BadParameter(
                    f"no entry {', '.join(unknown)} in the outbox of {job} "
                    f"(sinks {', '.join(sinks)}); `microcred-sync outbox list "
                    f"{job}` shows its entries",
                    param_hint="--id",
                )
        count = sum(
            box.requeue(sink, list(ids) or None, partner=partner) for sink in sinks
        )
    finally:
        store.close()
    now = datetime.now(UTC)
    for entry in found.values():
        if entry.status == "delivered":
            out.print(f"{entry.id}: delivered already, nothing to retry", markup=False)
        elif entry.status == "pending" and entry.next_attempt_at <= now:
            out.print(f"{entry.id}: already due", markup=False)
    out.print(
        f"requeued {count} entries of {job}; `microcred-sync run {job}` sends them",
        markup=False,
    )


@outbox_group.command("dead")
@click.argument("job")
@click.pass_context
def outbox_dead(context: click.Context, job: str) -> None:
    """The dead letters of a job's sinks, with the sink's reason."""
    project, sinks = _outbox_job(context, job)
    partner = project.jobs[job].partner
    entries = Outbox(_store(project).engine).entries(
        sinks, partner=partner, status="dead"
    )
    if not entries:
        out.print(f"no dead letters for {job}", markup=False)
        return
    _table(
        ("id", "sink", "attempts", "reason"),
        [(e.id, e.sink, str(e.attempts), e.last_error or "") for e in entries],
    )


@main.group()
def db() -> None:
    """The schemas of the state store and the platform database (Alembic)."""


_DATABASE = click.option(
    "--database",
    type=click.Choice(["state", "platform", "both"]),
    default="both",
    show_default=True,
    help="Which database: the state store, the `sql` platform's, or both.",
)


def _databases(context: click.Context, which: str) -> Iterator[tuple[Schema, Engine]]:
    """Each selected schema with an engine on its database (settings' URLs)."""
    settings = load_settings(context.obj.get("root"))
    sync_logging.configure(settings.log_level, settings.log_format)
    for schema in migrations.selected(which):
        url = settings.database_url(getattr(settings, schema.setting))
        engine = make_engine(url)
        migrations.name_failures(engine, schema)
        try:
            yield schema, engine
        finally:
            engine.dispose()


@db.command("upgrade")
@_DATABASE
@click.pass_context
def db_upgrade(context: click.Context, database: str) -> None:
    """Apply the migrations up to the newest revision. A new database gets every
    table; one made before migrations existed is recognised and stamped first."""
    for schema, engine in _databases(context, database):
        before = migrations.upgrade(engine, schema)
        after = migrations.current(engine, schema).current
        where = engine.url.render_as_string(hide_password=True)
        if before.current == after:
            out.print(f"{schema.name}: already at {after} (head), {where}")
        elif before.found == "created":
            out.print(
                f"{schema.name}: made before migrations: stamped "
                f"{schema.baseline}, upgraded to {after}, {where}"
            )
        else:
            start = before.current or "an empty database"
            out.print(f"{schema.name}: upgraded from {start} to {after}, {where}")


@db.command("current")
@_DATABASE
@click.pass_context
def db_current(context: click.Context, database: str) -> None:
    """Show the revision each database is at, and whether it needs an upgrade."""
    for schema, engine in _databases(context, database):
        where = engine.url.render_as_string(hide_password=True)
        path = engine.url.database
        sqlite = engine.url.get_backend_name() == "sqlite"
        if sqlite and path and path != ":memory:" and not Path(path).exists():
            out.print(f"{schema.name}: no database yet, {where}")
            continue
        found = migrations.current(engine, schema)
        out.print(f"{schema.name}: {migrations.describe(found)}, {where}")


def _print_results_summary(outcome: ResultsOutcome) -> None:
    out.print(
        f"{outcome.job}: {outcome.status} - {outcome.results} results and "
        f"{outcome.awards} awards read, {outcome.enqueued} statements queued, "
        f"{outcome.quarantined} quarantined"
    )
    if outcome.error:
        click.echo(f"error: {outcome.error}", err=True)


def _keys(keys: tuple[str, ...], only: bool) -> tuple[str, ...]:
    """The keys of ``--only KEY...``; keys without the flag are a usage error."""
    if keys and not only:
        raise click.UsageError("source keys after the job need --only")
    if only and not keys:
        raise click.UsageError("--only needs at least one source key")
    return keys


# -- output ---------------------------------------------------------------------


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A table on a terminal; tab-separated lines, easy to grep, otherwise."""
    if not out.is_terminal:
        for line in (headers, *rows):
            click.echo("\t".join(line))
        return
    table = Table(*headers)
    for row in rows:
        table.add_row(*row)
    out.print(table)


@contextmanager
def _progress(options: RunOptions) -> Iterator[None]:
    """A progress display on an interactive terminal; nothing otherwise."""
    if not sys.stderr.isatty() or options.trace is not None:
        yield
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        reading = progress.add_task("reading", total=None)
        applying = progress.add_task("applying", total=None)
        options.on_record = _advance(progress, reading)
        options.on_batch = lambda size: progress.advance(applying, size)
        with _logs_above(progress.console):
            yield


class _ConsoleHandler(logging.Handler):
    """Prints log lines through rich, above a live progress display."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(self.format(record), markup=False, highlight=False)


@contextmanager
def _logs_above(console: Console) -> Iterator[None]:
    """Send the package's log lines through ``console`` (same format and filters)."""
    package = logging.getLogger("microcred_sync")
    saved = package.handlers[:]
    handler = _ConsoleHandler(console)
    if saved:
        handler.setFormatter(saved[0].formatter)
        for log_filter in saved[0].filters:
            handler.addFilter(log_filter)
    package.handlers[:] = [handler]
    try:
        yield
    finally:
        package.handlers[:] = saved


def _advance(progress: Progress, task: Any) -> Callable[[], None]:
    counter = {"n": 0}

    def tick() -> None:
        counter["n"] += 1
        if counter["n"] % 500 == 0:
            progress.update(task, completed=counter["n"])

    return tick


def _print_summary(outcome: RunOutcome) -> None:
    stats, counts = outcome.stats, dict(outcome.stats.counts.by_kind)
    held = {"suspend": 0, "withdraw": 0}
    if outcome.held_reason:
        held, counts["suspend"], counts["withdraw"] = (
            {"suspend": counts["suspend"], "withdraw": counts["withdraw"]},
            0,
            0,
        )
    lines = [
        f"{outcome.job}: {outcome.status}",
        f"  read {stats.read}, unchanged {stats.unchanged}, "
        f"quarantined {stats.quarantined}",
        f"  learners created {counts['create']}, updated {counts['update']}, "
        f"suspended {counts['suspend']}, reactivated {counts['reactivate']}",
        f"  enrollments {counts['enroll']}, withdrawn {counts['withdraw']}",
    ]
    if stats.skipped_inactive:
        lines.append(f"  not created, inactive in the source {stats.skipped_inactive}")
    lines.append(f"  platform writes {outcome.platform_writes}")
    if outcome.held_reason:
        lines.append(f"  held yes: {outcome.held_reason}")
        lines.append(
            f"  not applied: {held['suspend']} suspensions, "
            f"{held['withdraw']} withdrawals"
        )
    else:
        lines.append("  held no")
    if outcome.error:
        lines.append(f"  error: {outcome.error}")
    if stats.quarantined:
        lines.append(f"  see: microcred-sync quarantine list {outcome.job}")
    for line in lines:
        out.print(line, markup=False)


def _plan_document(outcome: RunOutcome) -> dict[str, Any]:
    return {
        "job": outcome.job,
        "partner": outcome.partner,
        "status": outcome.status,
        "counts": outcome.stats.counts.by_kind,
        "held": outcome.held_reason is not None,
        "held_reason": outcome.held_reason,
        "read": outcome.stats.read,
        "unchanged": outcome.stats.unchanged,
        "quarantined": outcome.stats.quarantined,
        "error": outcome.error,
        "changes": [
            {
                "kind": c.kind,
                "key": c.source_key,
                "learner_id": c.learner_id,
                "program": c.program,
                "before": c.before,
                "after": c.after,
                "reason": c.reason,
                "held": c.held,
            }
            for c in outcome.changes
            if c.kind in REPORTED_KINDS
        ],
    }


def _print_plan(outcome: RunOutcome) -> None:
    if outcome.error:
        out.print(f"{outcome.job}: failed: {outcome.error}", markup=False)
        return
    out.print(f"plan for {outcome.job}", markup=False)
    _table(
        ("change", "count"),
        [(kind, str(outcome.stats.counts.by_kind[kind])) for kind in REPORTED_KINDS],
    )
    stats = outcome.stats
    out.print(
        f"read {stats.read}, unchanged {stats.unchanged}, "
        f"quarantined {stats.quarantined}",
        markup=False,
    )
    if outcome.held_reason:
        out.print(f"held: {outcome.held_reason}", markup=False)
    for change in outcome.changes:
        if change.kind in REPORTED_KINDS:
            mark = " [held]" if change.held else ""
            out.print(f"  {change.describe()}{mark}", markup=False)


def _print_deliver_summary(outcome: DeliverOutcome) -> None:
    lines = [
        f"{outcome.job}: {outcome.status}",
        f"  taken {outcome.taken}, delivered {outcome.delivered}, "
        f"already stored {outcome.already_stored}, dead-lettered {len(outcome.dead)}",
        f"  still pending {outcome.pending}, requests {outcome.requests}, "
        f"retried {outcome.retried}",
    ]
    lines += [f"  warning: {warning}" for warning in outcome.warnings]
    if outcome.error:
        lines.append(f"  error: {outcome.error}")
    if outcome.dead:
        lines.append(f"  see: microcred-sync outbox dead {outcome.job}")
    for line in lines:
        out.print(line, markup=False)
