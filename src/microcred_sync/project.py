"""The operator's files as one validated whole: partners, programs, connectors,
mappings and jobs, with every cross-reference checked.

``load_project`` reads everything and raises ``ConfigError`` on the first problem;
it writes nothing, so ``microcred-sync check`` and every run start from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .connectors.kinds import (
    CONNECTOR_KINDS,
    ConnectorConfig,
    FileSink,
    HrisSink,
    LrsSink,
    SalesforceConnector,
)
from .errors import ConfigError
from .files import load_model, read_yaml, validate
from .mappings.spec import MappingSpec
from .partners import Partner, PartnersFile, Program, ProgramsFile
from .scheduler.jobs import Job, JobsFile
from .settings import Settings

PARTNERS_FILE = Path("config/partners.yaml")
PROGRAMS_FILE = Path("config/programs.yaml")
JOBS_FILE = Path("scheduler/jobs.yaml")
CONNECTORS_DIR = Path("connectors")
MAPPINGS_DIR = Path("mappings")


@dataclass(frozen=True)
class Project:
    """Everything an operator declared, validated and cross-checked."""

    settings: Settings
    partners: dict[str, Partner]
    programs: dict[str, Program]
    connectors: dict[str, ConnectorConfig]
    mappings: dict[str, MappingSpec]
    jobs: dict[str, Job]

    def job(self, job_id: str) -> Job:
        """The job called ``job_id``, or ConfigError listing the known ones."""
        if job_id not in self.jobs:
            known = ", ".join(sorted(self.jobs)) or "none"
            raise ConfigError(f"no job {job_id!r} in {JOBS_FILE} (known: {known})")
        return self.jobs[job_id]

    def programs_of(self, partner_id: str) -> dict[str, Program]:
        """The shared catalogue plus the partner's own programs."""
        own = {program.id: program for program in self.partners[partner_id].programs}
        return {**self.programs, **own}


def load_project(settings: Settings) -> Project:
    """Read and cross-check every file under the project root."""
    root = settings.root
    if not (root / PARTNERS_FILE).is_file():
        raise ConfigError(
            f"{root}: not a microcred-sync project folder (no {PARTNERS_FILE}); "
            "use --root or MICROCRED_ROOT"
        )
    partners = _load_partners(root)
    programs = _load_programs(root)
    connectors = _load_connectors(root)
    mappings = _load_mappings(root)
    jobs = {
        job.id: job
        for job in load_model(root / JOBS_FILE, JobsFile, str(JOBS_FILE)).jobs
    }
    project = Project(settings, partners, programs, connectors, mappings, jobs)
    _check_references(project)
    return project


def _load_partners(root: Path) -> dict[str, Partner]:
    document = load_model(root / PARTNERS_FILE, PartnersFile, str(PARTNERS_FILE))
    return {partner.id: partner for partner in document.partners}


def _load_programs(root: Path) -> dict[str, Program]:
    if not (root / PROGRAMS_FILE).exists():
        return {}
    document = load_model(root / PROGRAMS_FILE, ProgramsFile, str(PROGRAMS_FILE))
    return {program.id: program for program in document.programs}


def _load_connectors(root: Path) -> dict[str, ConnectorConfig]:
    """Every connector file, read as the kind it names (``kind: csv``, ...)."""
    found: dict[str, ConnectorConfig] = {}
    for path in _yaml_files(root, CONNECTORS_DIR):
        shown = str(CONNECTORS_DIR / path.name)
        found[path.stem] = validate(read_yaml(path, shown), CONNECTOR_KINDS, shown)
    return found


def _load_mappings(root: Path) -> dict[str, MappingSpec]:
    return {
        path.stem: MappingSpec.parse(
            read_yaml(path, str(MAPPINGS_DIR / path.name)),
            origin=str(MAPPINGS_DIR / path.name),
        )
        for path in _yaml_files(root, MAPPINGS_DIR)
    }


def _yaml_files(root: Path, folder: Path) -> list[Path]:
    """The ``.yaml`` files of ``folder``, in name order. A ``.yml`` file there is an
    error naming it: its job would otherwise find no file of that name."""
    misnamed = sorted((root / folder).glob("*.yml"))
    if misnamed:
        raise ConfigError(
            f"{folder / misnamed[0].name}: files in {folder}/ end in .yaml; "
            f"rename it {misnamed[0].stem}.yaml"
        )
    return sorted((root / folder).glob("*.yaml"))


def _check_references(project: Project) -> None:
    """Every name a file uses must be declared, for the same partner."""
    for connector_id, connector in project.connectors.items():
        _expect(
            connector.partner in project.partners,
            CONNECTORS_DIR / f"{connector_id}.yaml",
            "partner",
            f"unknown partner {connector.partner!r}",
        )
        _check_written_back(project, connector_id, connector)
    for partner_id in project.partners:
        _check_prerequisites(project.programs_of(partner_id))
    for job in project.jobs.values():
        _check_job(project, job)


def _check_written_back(
    project: Project, connector_id: str, connector: ConnectorConfig
) -> None:
    """The programs whose results a salesforce sink writes back are offered to
    its partner."""
    if not isinstance(connector, SalesforceConnector) or connector.writeback is None:
        return
    chosen = connector.writeback.results
    known = project.programs_of(connector.partner)
    for program in chosen.programs if chosen else ():
        _expect(
            program in known,
            CONNECTORS_DIR / f"{connector_id}.yaml",
            "writeback.results.programs",
            f"program {program!r} is not offered to partner {connector.partner!r}",
        )


def _check_job(project: Project, job: Job) -> None:
    where = f"jobs.{job.id}"
    _expect(
        job.partner in project.partners,
        JOBS_FILE,
        f"{where}.partner",
        f"unknown partner {job.partner!r}",
    )
    if job.source is not None:
        _expect(
            job.source in project.connectors,
            JOBS_FILE,
            f"{where}.source",
            f"no connector file connectors/{job.source}.yaml",
        )
        owner = project.connectors[job.source].partner
        _expect(
            owner == job.partner,
            JOBS_FILE,
            f"{where}.source",
            f"connector {job.source!r} belongs to partner {owner!r}, "
            f"not {job.partner!r}",
        )
    if job.mapping is not None:
        _expect(
            job.mapping in project.mappings,
            JOBS_FILE,
            f"{where}.mapping",
            f"no mapping file mappings/{job.mapping}.yaml",
        )
        known = project.programs_of(job.partner)
        for rule in project.mappings[job.mapping].enrollments:
            _expect(
                rule.program in known,
                MAPPINGS_DIR / f"{job.mapping}.yaml",
                "enrollments.program",
                f"program {rule.program!r} is not offered to partner {job.partner!r}",
            )
    _check_sinks(project, job)


def is_sink(config: ConnectorConfig) -> bool:
    """Whether the deliver flow writes to this connector: an lrs or file sink, or
    a salesforce connector with a ``writeback`` section, or an hris sink."""
    if isinstance(config, SalesforceConnector):
        return config.writeback is not None
    return isinstance(config, LrsSink | FileSink | HrisSink)


def is_source(config: ConnectorConfig) -> bool:
    """Whether a roster job can read this connector (a salesforce one needs its
    ``roster`` section)."""
    if isinstance(config, SalesforceConnector):
        return config.roster is not None
    return not isinstance(config, LrsSink | FileSink | HrisSink)


def _check_sinks(project: Project, job: Job) -> None:
    """A roster job reads a source; a deliver job's sinks are the partner's own."""
    where = f"jobs.{job.id}"
    if job.source is not None:
        _expect(
            is_source(project.connectors[job.source]),
            JOBS_FILE,
            f"{where}.source",
            f"connector {job.source!r} is a sink, not a source",
        )
    for sink in job.sinks:
        _expect(
            sink in project.connectors,
            JOBS_FILE,
            f"{where}.sinks",
            f"no connector file connectors/{sink}.yaml",
        )
        config = project.connectors[sink]
        _expect(
            is_sink(config),
            JOBS_FILE,
            f"{where}.sinks",
            f"connector {sink!r} is not a sink (kind lrs, file or hris, or "
            "salesforce with writeback)",
        )
        _expect(
            config.partner == job.partner,
            JOBS_FILE,
            f"{where}.sinks",
            f"connector {sink!r} belongs to partner {config.partner!r}, "
            f"not {job.partner!r}",
        )


def _check_prerequisites(programs: dict[str, Program]) -> None:
    """Prerequisites must exist and must not loop back on themselves."""
    for program in programs.values():
        for needed in program.prerequisites:
            _expect(
                needed in programs,
                PROGRAMS_FILE,
                f"programs.{program.id}.prerequisites",
                f"unknown program {needed!r}",
            )
    state: dict[str, str] = {}

    def visit(program_id: str) -> None:
        if state.get(program_id) == "done":
            return
        _expect(
            state.get(program_id) != "open",
            PROGRAMS_FILE,
            f"programs.{program_id}.prerequisites",
            "prerequisites form a cycle",
        )
        state[program_id] = "open"
        for needed in programs[program_id].prerequisites:
            visit(needed)
        state[program_id] = "done"

    for program_id in programs:
        visit(program_id)


def _expect(condition: bool, file: Path, field: str, problem: str) -> None:
    if not condition:
        raise ConfigError(f"{file}: {field}: {problem}")
