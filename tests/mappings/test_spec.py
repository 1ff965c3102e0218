"""Loading mapping files: the example shape, and every way a file can be wrong."""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import pytest

from microcred_sync.errors import ConfigError
from microcred_sync.mappings.spec import MappingSpec

EXAMPLE = """\
source_key: employee_id
key_transforms: [trim, upper]
date_formats: ["%d-%m-%Y", "%m/%d/%Y", "%Y-%m-%d"]
duplicates: keep_first
fields:
  email: {from: work_email, transforms: [trim, lower]}
  given_name: {from: full_name, transforms: [{split_name: given}]}
  family_name: {from: full_name, transforms: [{split_name: family}]}
  display_name: {format: "{preferred_name} {last_name}", on_empty: leave}
  employee_number: {from: employee_id}
  department: {from: department, on_empty: clear}
  hire_date: {from: hire_date, transforms: [parse_date]}
  exit_date: {from: termination_date, transforms: [{parse_date: ["%d-%m-%Y"]}]}
  status:
    from: employment_status
    transforms:
      - lower
      - map: {active: active, "on leave": active, terminated: suspended}
    on_empty: default
    default: active
enrollments:
  - program: data-analytics-foundations
    when: 'learner.department == "Analytics" && int(record.job_level) >= 3'
"""

#: The start of a mapping that has only its source key.
K = "source_key: id\n"


def write(tmp_path: Path, text: str, name: str = "hris.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        MappingSpec.from_yaml(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_example_mapping_loads(tmp_path: Path) -> None:
    """The documented example loads with its transforms and rule."""
    spec = MappingSpec.from_yaml(write(tmp_path, EXAMPLE))
    assert spec.source_key == "employee_id"
    assert [step.name for step in spec.key_transforms] == ["trim", "upper"]
    assert spec.fields["exit_date"].transforms[0].arg == ("%d-%m-%Y",)
    assert spec.fields["display_name"].sources == ("preferred_name", "last_name")
    assert spec.enrollments[0].program == "data-analytics-foundations"
    assert spec.origin == str(tmp_path / "hris.yaml")


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A YAML syntax error names the file and the line it is on."""
    message = load_error(tmp_path, "source_key: id\nfields:\n  email: {from: x\n")
    assert message.startswith("line 4: not valid YAML")


def test_mapping_must_be_a_yaml_mapping(tmp_path: Path) -> None:
    """A file holding a list, not a mapping, is refused."""
    assert "must be a YAML mapping" in load_error(tmp_path, "- source_key: id\n")


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing file is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="cannot read"):
        MappingSpec.from_yaml(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("fields: {}", "source_key: Field required"),
        (K + "source_keys: x", "source_keys: Extra inputs are not"),
        (K + "duplicates: merge", "duplicates: Input should be"),
        (K + "fields: {emali: {from: x}}", "fields.emali: not a learner"),
        (
            K + "fields: {email: {from: x, form: y}}",
            "fields.email.form: Extra inputs",
        ),
        (
            K + "fields: {email: {from: x, format: '{y}'}}",
            "fields.email: give exactly one of 'from' and 'format'",
        ),
        (K + "fields: {email: {}}", "fields.email: give exactly one"),
        (
            K + "fields: {email: {from: x, transforms: [titlecase]}}",
            "fields.email.transforms.0: unknown transform 'titlecase'",
        ),
        (
            K + "fields: {email: {from: x, transforms: [trim, {zero_pad: -1}]}}",
            "fields.email.transforms.1: zero_pad: argument must be a width",
        ),
        (
            K + "fields: {given_name: {from: x, transforms: [{split_name: m}]}}",
            "fields.given_name.transforms.0: split_name: argument must be",
        ),
        (
            K + "fields: {department: {from: x, transforms: [parse_date]}}",
            "fields.department.transforms.0: parse_date gives a date",
        ),
        (
            K + "fields: {hire_date: {from: x, transforms: [parse_date, trim]}}",
            "fields.hire_date.transforms.0: parse_date must come last",
        ),
        (
            K + "key_transforms: [parse_date]",
            "key_transforms.0: the source key is text",
        ),
        (K + "date_formats: ['%d-%m']", "date_formats.0: date format"),
        (
            K + "fields: {display_name: {format: '{name.first}'}}",
            "fields.display_name.format: template placeholder {name.first}",
        ),
        (
            K + "fields: {display_name: {format: '{names[0]}'}}",
            "fields.display_name.format: template placeholder",
        ),
        (
            K + "fields: {display_name: {format: '{first!r}'}}",
            "fields.display_name.format: template placeholder {first}: no format",
        ),
        (
            K + "fields: {display_name: {format: '{0} {}'}}",
            "fields.display_name.format: template placeholder",
        ),
        (
            K + "fields: {display_name: {format: 'Dana'}}",
            "fields.display_name.format: a template names at least one",
        ),
        (
            K + "fields: {department: {from: x, on_empty: default}}",
            "fields.department: on_empty: default needs a 'default' value",
        ),
        (
            K + "fields: {department: {from: x, default: HR}}",
            "fields.department: 'default' is used only with on_empty: default",
        ),
        (
            K + "fields: {department: {from: x, on_empty: blank}}",
            "fields.department.on_empty: Input should be",
        ),
        (
            K + "fields: {status: {from: s, transforms: [{map: {a: gone}}]}}",
            "fields.status.transforms.0: maps to gone; use active or suspended",
        ),
        (
            K + "fields: {status: {from: s, on_empty: default, default: on}}",
            "fields.status.default: True is not text; quote the default",
        ),
        (
            K + "fields: {status: {from: s, on_empty: default, default: gone}}",
            "fields.status.default: the default status must be",
        ),
        (
            K + "fields: {status: {from: s, on_empty: clear}}",
            "fields.status.on_empty: a status cannot be cleared",
        ),
        (
            K + "fields: {status: {from: s, transforms: [{map: {yes: a}}]}}",
            "fields.status.transforms.0: map: map entry True: quote keys",
        ),
        (
            K + "fields: {hire_date: {from: h, on_empty: default, "
            "default: '05-03-2024'}}",
            "fields.hire_date.default: a date default is written YYYY-MM-DD",
        ),
        (
            K + "fields: {job_title: {from: t, on_empty: default, "
            "default: 2024-03-05}}",
            "fields.job_title.default: job_title holds text",
        ),
        (
            K + "fields: {email: {from: e, on_empty: default, default: nobody}}",
            "fields.email.default: the default is not a valid email",
        ),
        (
            K + "enrollments: [{program: p, when: 'record.level >'}]",
            "enrollments.0.when: does not compile",
        ),
        (
            K + "enrollments: [{program: p, when: 'lerner.x == \"1\"'}]",
            "enrollments.0.when: unknown variable lerner",
        ),
        (
            K + "enrollments: [{program: p}]",
            "enrollments.0.when: Field required",
        ),
        (
            K + "fields: {department: {from: d}}\n"
            "enrollments: [{program: p, when: 'learner.department == \"x\"'},\n"
            "  {program: q, when: 'learner.departmnt == \"Analytics\"'}]",
            "enrollments.1.when: unknown learner field 'departmnt' "
            "(learner fields: email, given_name, family_name, display_name, "
            "employee_number, department, job_title, manager_key, location, "
            "hire_date, exit_date, status, completed)",
        ),
        (
            K + "fields: {department: {from: d}}\n"
            "enrollments: [{program: p, when: "
            '\'learner.department == "x" && learner.location == "Lyon"\'}]',
            "enrollments.0.when: learner field 'location' is not mapped, "
            "so the rule would always see null",
        ),
    ],
)
def test_bad_mapping_names_the_field(tmp_path: Path, body: str, expected: str) -> None:
    """Each invalid mapping gives one ConfigError: file, field path, problem."""
    assert load_error(tmp_path, body).startswith(expected)


def test_unknown_learner_field_is_found_before_an_unmapped_one(
    tmp_path: Path,
) -> None:
    """Within one rule, a misspelt field is reported even after an unmapped one."""
    body = (
        K + "enrollments: [{program: p, when: "
        '\'learner.location == "Lyon" || learner.departmnt == "x"\'}]'
    )
    assert load_error(tmp_path, body).startswith(
        "enrollments.0.when: unknown learner field 'departmnt'"
    )


@pytest.mark.parametrize(
    "when",
    [
        'learner.status == "active"',
        'has(learner.status) && learner.status != "suspended"',
        'learner["departmnt"] == "x"',
        'record.learner == "x"',
        'record.team == "learner.departmnt"',
    ],
)
def test_rules_that_cannot_name_a_bad_learner_field_load(
    tmp_path: Path, when: str
) -> None:
    """status always exists; whole-map and in-string uses cannot be checked."""
    body = K + f"enrollments: [{{program: p, when: '{when}'}}]"
    spec = MappingSpec.from_yaml(write(tmp_path, body))
    assert spec.enrollments[0].when == when


def test_committed_example_mapping_loads() -> None:
    """The project's own example mapping passes every load-time check."""
    path = Path(__file__).parents[2] / "mappings" / "example-corp-hris.yaml"
    spec = MappingSpec.from_yaml(path)
    assert "department" in spec.fields
    assert len(spec.enrollments) == 3


def test_date_default_is_read_from_yaml_date(tmp_path: Path) -> None:
    """A YAML date (unquoted 2024-01-01) is accepted as a date field's default."""
    body = "source_key: id\nfields: {hire_date: {from: h, on_empty: default, "
    body += "default: 2024-01-01}}\n"
    spec = MappingSpec.from_yaml(write(tmp_path, body))
    assert spec.fields["hire_date"].default == date(2024, 1, 1)


def test_fingerprint_is_stable_for_the_same_content(tmp_path: Path) -> None:
    """Two loads of the same content, in other files, have the same fingerprint."""
    first = MappingSpec.from_yaml(write(tmp_path, EXAMPLE, "a.yaml"))
    second = MappingSpec.from_yaml(write(tmp_path, EXAMPLE, "b.yaml"))
    assert first.fingerprint == second.fingerprint
    assert len(first.fingerprint) == 16


def test_fingerprint_changes_when_a_rule_changes(tmp_path: Path) -> None:
    """Changing an enrollment rule's condition changes the fingerprint."""
    first = MappingSpec.from_yaml(write(tmp_path, EXAMPLE, "a.yaml"))
    changed = EXAMPLE.replace(">= 3", ">= 4")
    second = MappingSpec.from_yaml(write(tmp_path, changed, "b.yaml"))
    assert first.fingerprint != second.fingerprint


def test_fingerprint_ignores_comments_and_layout(tmp_path: Path) -> None:
    """Comments and flow-or-block layout do not change the fingerprint."""
    first = MappingSpec.from_yaml(write(tmp_path, EXAMPLE, "a.yaml"))
    relaid = "# HRIS roster\n" + EXAMPLE.replace(
        "key_transforms: [trim, upper]", "key_transforms:\n  - trim\n  - upper"
    )
    second = MappingSpec.from_yaml(write(tmp_path, relaid, "b.yaml"))
    assert first.fingerprint == second.fingerprint


def test_default_longer_than_the_field_holds_is_refused(tmp_path: Path) -> None:
    """A default the platform could not hold stops the load, naming the field."""
    body = K + "fields: {department: {from: d, on_empty: default, "
    body += f"default: {'x' * 201}}}}}\n"
    message = load_error(tmp_path, body)
    assert message == (
        "fields.department.default: longer than the 200 characters department holds"
    )
