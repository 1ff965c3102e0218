"""The mapping file (``mappings/*.yaml``) as pydantic models, checked when loaded.

Everything that can be wrong in a mapping file is found here, before a run reads a
single record: unknown learner fields, unknown transforms and bad arguments, date
transforms on text fields, status values other than ``active`` and ``suspended``,
templates with more than ``{name}`` in them, rules that do not compile, rules
naming a learner field that does not exist or that the mapping never sets.
``MappingSpec.from_yaml`` turns the first problem into one ``ConfigError`` that
names the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import string
from datetime import date
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from microcred_sync.errors import ConfigError, RecordRejected
from microcred_sync.files import StrictLoader
from microcred_sync.learners import DATE_FIELDS, FIELD_MAX_LENGTH, LEARNER_FIELDS
from microcred_sync.mappings import transforms
from microcred_sync.mappings.emails import EmailCheck
from microcred_sync.mappings.rules import compile_rule, referenced_fields

#: The mapped field that becomes the learner's status rather than a learner field.
STATUS_FIELD: Final = "status"

#: What rules see besides the learner fields: the programs the learner completed.
COMPLETED_FIELD: Final = "completed"

#: The statuses a learner may have.
STATUSES: Final = frozenset({"active", "suspended"})

OnEmpty = Literal["leave", "clear", "default"]


class SpecProblem(ValueError):
    """A problem found below the model that raised it; ``path`` says where."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TransformStep(_Model):
    """One transform of a field: its name and its (checked) argument."""

    name: str
    arg: Any = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml_form(cls, step: object) -> object:
        """Read ``trim`` or ``{zero_pad: 6}``, and check it against the registry."""
        if isinstance(step, TransformStep):
            return step
        if isinstance(step, str):
            name, arg = step, None
        elif isinstance(step, dict) and len(step) == 1:
            ((name, arg),) = step.items()
        else:
            raise ValueError("a transform is a name, or one name with its argument")
        transform = transforms.lookup(str(name))
        try:
            checked = transform.check_arg(arg)
        except ValueError as problem:
            raise ValueError(f"{name}: {problem}") from None
        return {"name": name, "arg": checked}

    @property
    def gives_date(self) -> bool:
        """Whether this transform turns text into a date."""
        return transforms.TRANSFORMS[self.name].gives_date


class FieldSpec(_Model):
    """How one learner field (or the status) is read from a record."""

    from_: str | None = Field(default=None, alias="from", min_length=1)
    format: str | None = None
    transforms: tuple[TransformStep, ...] = ()
    on_empty: OnEmpty = "leave"
    default: str | date | None = None

    @field_validator("format")
    @classmethod
    def _check_template(cls, template: str | None) -> str | None:
        """Allow ``{name}`` placeholders only: no index, attribute or conversion."""
        if template is not None:
            template_fields(template)
        return template

    @field_validator("default", mode="before")
    @classmethod
    def _check_default_type(cls, default: object) -> object:
        """YAML reads on, yes, 1 as booleans and numbers; ask for quotes."""
        if default is not None and not isinstance(default, str | date):
            raise ValueError(f"{default!r} is not text; quote the default")
        return default

    @model_validator(mode="after")
    def _check_shape(self) -> FieldSpec:
        """One source; a default exactly when ``on_empty`` is ``default``."""
        if (self.from_ is None) == (self.format is None):
            raise ValueError("give exactly one of 'from' and 'format'")
        has_default = "default" in self.model_fields_set
        if self.on_empty == "default" and not has_default:
            raise ValueError("on_empty: default needs a 'default' value")
        if has_default and self.on_empty != "default":
            raise ValueError("'default' is used only with on_empty: default")
        for index, step in enumerate(self.transforms[:-1]):
            if step.gives_date:
                raise SpecProblem(("transforms", index), "parse_date must come last")
        return self

    @property
    def sources(self) -> tuple[str, ...]:
        """The record fields this field is read from."""
        if self.from_ is not None:
            return (self.from_,)
        return template_fields(self.format or "")


class EnrollmentRuleSpec(_Model):
    """A program and the CEL condition under which a learner wants it."""

    program: str = Field(min_length=1)
    when: str = Field(min_length=1)

    @field_validator("when")
    @classmethod
    def _check_compiles(cls, source: str) -> str:
        """Compile the rule now, so a broken rule fails at load time."""
        compile_rule(source)
        return source


class IssuerSpec(_Model):
    """Who issues the partner's Open Badges: an IRI id and a name."""

    id: str = Field(pattern=r"^[a-z][a-z0-9+.-]*:\S+$")
    name: str = Field(min_length=1)
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")


class StatementsSpec(_Model):
    """How the partner's learners appear in xAPI statements and credentials.

    ``identity`` is ``mbox`` (the learner's email) or ``account`` (``home_page``
    and the employee number): exactly one identifier per agent.
    """

    identity: Literal["mbox", "account"] = "mbox"
    home_page: str | None = Field(default=None, pattern=r"^https?://\S+$")
    platform: str = Field(default="microcred-sync", min_length=1)
    language: str = Field(default="en", pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
    version: Literal["1.0.3", "2.0.0"] = "1.0.3"
    #: The verb of "earned a credential" statements (an IRI); ADL's ``earned``
    #: when not given.
    award_verb: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9+.-]*:\S+$")
    issuer: IssuerSpec | None = None
    #: The name of a secret holding an Ed25519 key (PEM or JWK) to sign
    #: credentials as VC-JWT; unsigned when not given.
    signing_key_secret: str | None = None

    @model_validator(mode="after")
    def _account_needs_home_page(self) -> StatementsSpec:
        if self.identity == "account" and self.home_page is None:
            raise SpecProblem(
                ("home_page",), "identity account needs the partner's home_page"
            )
        return self


class MappingSpec(_Model):
    """A mapping file: the source key, the learner fields, the enrollment rules,
    and how results go back (``statements``)."""

    source_key: str = Field(min_length=1)
    key_transforms: tuple[TransformStep, ...] = ()
    date_formats: tuple[str, ...] = ()
    duplicates: Literal["keep_first", "reject_read"] = "keep_first"
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    enrollments: tuple[EnrollmentRuleSpec, ...] = ()
    statements: StatementsSpec = Field(default_factory=StatementsSpec)

    _origin: str = PrivateAttr(default="<mapping>")

    @field_validator("key_transforms")
    @classmethod
    def _check_key_transforms(
        cls, steps: tuple[TransformStep, ...]
    ) -> tuple[TransformStep, ...]:
        """The key is text: no date transform."""
        for index, step in enumerate(steps):
            if step.gives_date:
                raise SpecProblem((index,), "the source key is text; no parse_date")
        return steps

    @field_validator("date_formats")
    @classmethod
    def _check_date_formats(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
        """Every format must read a whole date back."""
        for index, fmt in enumerate(formats):
            try:
                transforms.check_date_format(fmt)
            except ValueError as problem:
                raise SpecProblem((index,), str(problem)) from None
        return formats

    @model_validator(mode="after")
    def _check_fields(self) -> MappingSpec:
        """Check each field against what its learner field holds."""
        for name, spec in self.fields.items():
            _check_field(name, spec)
        return self

    @model_validator(mode="after")
    def _check_rule_fields(self) -> MappingSpec:
        """Every ``learner.<name>`` a rule names is a learner field the mapping sets.

        A misspelt or unmapped field would be ``null`` for every learner and make
        the rule silently false. A rule that uses ``learner`` as a whole map
        (``learner["x"]``) cannot be checked here.
        """
        for index, rule in enumerate(self.enrollments):
            problem = _rule_field_problem(
                referenced_fields(rule.when, "learner") or (), self.fields
            )
            if problem is not None:
                raise SpecProblem(("enrollments", index, "when"), problem)
        return self

    @property
    def origin(self) -> str:
        """Where the spec was loaded from (a file path), for error messages."""
        return self._origin

    @property
    def fingerprint(self) -> str:
        """A short hash of the spec's content; it changes whenever the mapping does.

        The ``statements`` section is left out: it says nothing about learners, so
        changing it does not remap a roster.
        """
        content = self.model_dump(mode="json", by_alias=True, exclude={"statements"})
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_yaml(cls, path: Path) -> MappingSpec:
        """Load and check a mapping file.

        Raises ``ConfigError("<file>: <field path>: <problem>")`` for an unreadable
        file, a YAML syntax error (with its line) or an invalid mapping.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: cannot read the mapping: {error}") from None
        try:
            content = yaml.load(text, Loader=StrictLoader)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: {_yaml_problem(error)}") from None
        return cls.parse(content, origin=str(path))

    @classmethod
    def parse(cls, content: object, origin: str = "<mapping>") -> MappingSpec:
        """Check already-read content; raises ``ConfigError`` like ``from_yaml``."""
        if not isinstance(content, dict):
            raise ConfigError(f"{origin}: the mapping must be a YAML mapping of keys")
        try:
            spec = cls.model_validate(content)
        except ValidationError as error:
            raise ConfigError(f"{origin}: {first_problem(error)}") from None
        spec._origin = origin
        return spec


def template_fields(template: str) -> tuple[str, ...]:
    """The record fields a ``format`` template names; ``ValueError`` if not plain."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as problem:
        raise ValueError(f"bad template: {problem}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name or name.isdigit() or any(c in name for c in ".[]"):
            raise ValueError(f"template placeholder {{{name}}}: use {{field_name}}")
        if spec or conversion:
            raise ValueError(
                f"template placeholder {{{name}}}: no format or !conversion"
            )
        names.append(name)
    if not names:
        raise ValueError("a template names at least one record field")
    return tuple(dict.fromkeys(names))


def _check_field(name: str, spec: FieldSpec) -> None:
    """Raise ``SpecProblem`` if ``spec`` cannot give values for field ``name``."""
    if name != STATUS_FIELD and name not in LEARNER_FIELDS:
        known = ", ".join((*LEARNER_FIELDS, STATUS_FIELD))
        raise SpecProblem(("fields", name), f"not a learner field (known: {known})")
    last = spec.transforms[-1] if spec.transforms else None
    if last is not None and last.gives_date and name not in DATE_FIELDS:
        where = ("fields", name, "transforms", len(spec.transforms) - 1)
        raise SpecProblem(where, f"parse_date gives a date; {name} holds text")
    if name == STATUS_FIELD:
        _check_status(spec)
    if spec.on_empty == "default":
        _check_default(name, spec.default)


def _rule_field_problem(
    names: tuple[str, ...], fields: dict[str, FieldSpec]
) -> str | None:
    """What is wrong with the learner fields a rule names, if anything."""
    extra = (STATUS_FIELD, COMPLETED_FIELD)
    for name in names:
        if name not in extra and name not in LEARNER_FIELDS:
            known = ", ".join((*LEARNER_FIELDS, *extra))
            return f"unknown learner field {name!r} (learner fields: {known})"
    for name in names:
        if name not in extra and name not in fields:
            return (
                f"learner field {name!r} is not mapped, "
                "so the rule would always see null"
            )
    return None


def _check_status(spec: FieldSpec) -> None:
    """Status values must be statuses; the status cannot be cleared."""
    if spec.on_empty == "clear":
        raise SpecProblem(
            ("fields", STATUS_FIELD, "on_empty"), "a status cannot be cleared"
        )
    last = spec.transforms[-1] if spec.transforms else None
    if last is not None and last.name == "map":
        wrong = sorted(set(last.arg.values()) - STATUSES)
        if wrong:
            where = ("fields", STATUS_FIELD, "transforms", len(spec.transforms) - 1)
            raise SpecProblem(
                where, f"maps to {', '.join(wrong)}; use active or suspended"
            )


def _check_default(name: str, default: str | date | None) -> None:
    """The default must be a value the learner field can hold."""
    where = ("fields", name, "default")
    if name == STATUS_FIELD and default not in STATUSES:
        raise SpecProblem(where, "the default status must be active or suspended")
    if name in DATE_FIELDS and isinstance(default, str):
        try:
            date.fromisoformat(default)
        except ValueError:
            raise SpecProblem(where, "a date default is written YYYY-MM-DD") from None
    if name not in DATE_FIELDS and isinstance(default, date):
        raise SpecProblem(where, f"{name} holds text; quote the default")
    limit = FIELD_MAX_LENGTH.get(name)
    if limit is not None and isinstance(default, str) and len(default) > limit:
        raise SpecProblem(where, f"longer than the {limit} characters {name} holds")
    if name == "email" and isinstance(default, str):
        try:
            EmailCheck().display_form(default)
        except RecordRejected:
            raise SpecProblem(where, "the default is not a valid email") from None


def first_problem(error: ValidationError) -> str:
    """The first problem pydantic found, as ``field.path: message``."""
    detail = error.errors()[0]
    path: list[str | int] = list(detail["loc"])
    cause = detail.get("ctx", {}).get("error")
    if isinstance(cause, SpecProblem):
        path.extend(cause.path)
        message = str(cause)
    else:
        message = detail["msg"].removeprefix("Value error, ")
    where = ".".join(str(part) for part in path)
    return f"{where}: {message}" if where else message


def _yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML error as ``line N: problem``."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is None:
        return f"not valid YAML: {problem}"
    return f"line {mark.line + 1}: not valid YAML: {problem}"
