"""The mapper: records in, wanted learners out, and the field cases it must meet."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from microcred_sync.connectors.base import FieldValue, Record
from microcred_sync.errors import ConfigError, RecordRejected
from microcred_sync.mappings.emails import normalize_email
from microcred_sync.mappings.engine import DuplicateKeys, Mapper
from microcred_sync.mappings.spec import MappingSpec

PROGRAMS = ("data-analytics-foundations", "leadership")

BASE: dict[str, Any] = {
    "source_key": "employee_id",
    "key_transforms": ["trim", "upper"],
    "date_formats": ["%d-%m-%Y", "%m/%d/%Y"],
    "fields": {
        "email": {"from": "work_email"},
        "given_name": {"from": "full_name", "transforms": [{"split_name": "given"}]},
        "family_name": {"from": "full_name", "transforms": [{"split_name": "family"}]},
        "display_name": {"format": "{preferred_name} {last_name}"},
        "employee_number": {"from": "employee_id"},
        "department": {"from": "department", "on_empty": "clear"},
        "job_title": {"from": "job_title"},
        "location": {
            "from": "location",
            "on_empty": "default",
            "default": "Remote",
        },
        "hire_date": {"from": "hire_date"},
        "exit_date": {
            "from": "termination_date",
            "transforms": [{"parse_date": ["%d-%m-%Y"]}],
        },
        "status": {
            "from": "employment_status",
            "transforms": [
                {
                    "map": {
                        "active": "active",
                        "on leave": "active",
                        "terminated": "suspended",
                    }
                }
            ],
            "on_empty": "default",
            "default": "active",
        },
    },
    "enrollments": [
        {
            "program": "data-analytics-foundations",
            "when": 'learner.department == "Analytics" && int(record.job_level) >= 3',
        },
        {"program": "leadership", "when": "int(record.job_level) >= 5"},
    ],
}

ROW: dict[str, FieldValue] = {
    "employee_id": "E-04410",
    "work_email": "dana.okafor@example.com ",
    "full_name": "Okafor, Dana",
    "preferred_name": "Dana",
    "last_name": "Okafor",
    "department": "Analytics",
    "job_title": "Data Analyst",
    "location": "Lyon",
    "hire_date": "05-03-2024",
    "termination_date": "",
    "employment_status": "Active",
    "job_level": "3",
}


def mapper(**changes: Any) -> Mapper:
    content = {**BASE, **changes}
    return Mapper(MappingSpec.parse(content, origin="hris.yaml"), PROGRAMS)


def record(line: int = 2, problem: str | None = None, **changes: FieldValue) -> Record:
    fields = {**ROW, **changes}
    return Record(fields, location=f"hris.csv:{line}", line=line, problem=problem)


def without(*names: str) -> Record:
    return Record(
        {k: v for k, v in ROW.items() if k not in names}, location="hris.csv:2"
    )


def only_field(name: str, spec: dict[str, Any]) -> Mapper:
    return mapper(fields={name: spec}, enrollments=[])


# -- the whole record ------------------------------------------------------------


def test_full_record_maps_to_a_wanted_learner() -> None:
    """A complete HRIS row gives every field, the status and the programs."""
    wanted = mapper().map(record())
    assert wanted.key == "E-04410"
    assert wanted.fields == {
        "email": "dana.okafor@example.com",
        "given_name": "Dana",
        "family_name": "Okafor",
        "display_name": "Dana Okafor",
        "employee_number": "E-04410",
        "department": "Analytics",
        "job_title": "Data Analyst",
        "location": "Lyon",
        "hire_date": date(2024, 3, 5),
    }
    assert wanted.status == "active"
    assert wanted.programs == {"data-analytics-foundations"}


def test_fields_come_in_learner_field_order() -> None:
    """Wanted fields follow LEARNER_FIELDS, whatever the mapping file's order."""
    reordered = dict(reversed(list(BASE["fields"].items())))
    wanted = mapper(fields=reordered).map(record())
    assert list(wanted.fields)[:3] == ["email", "given_name", "family_name"]


def test_mapper_rejects_an_unknown_program() -> None:
    """A rule naming a program the platform does not offer is a ConfigError."""
    spec = MappingSpec.parse(BASE, origin="hris.yaml")
    with pytest.raises(ConfigError) as caught:
        Mapper(spec, ["leadership"])
    assert str(caught.value) == (
        "hris.yaml: enrollments.0.program: unknown program 'data-analytics-foundations'"
    )


def test_record_with_a_problem_is_rejected_with_its_key() -> None:
    """A record the source could not read is rejected, with the key if there is one."""
    with pytest.raises(RecordRejected) as caught:
        mapper().map(record(problem="row has 11 cells, header has 12"))
    assert caught.value.reason == "row has 11 cells, header has 12"
    assert caught.value.key == "E-04410"


# -- the source key (CSV-04, CSV-06) -----------------------------------------------


def test_key_is_trimmed_and_upper_cased() -> None:
    """CSV-06: 'e-04412 ' with [trim, upper] is the key 'E-04412'."""
    assert mapper().key_of(record(employee_id="e-04412 ")) == "E-04412"


@pytest.mark.parametrize("key", ["00417", "0042", "021000021", "E-0001"])
def test_key_keeps_leading_zeros(key: str) -> None:
    """CSV-04: ids that look like numbers keep their leading zeros."""
    assert mapper().map(record(employee_id=key)).key == key


@pytest.mark.parametrize("key", ["1.23457E+11", "73928e05", "7.3928E+09"])
def test_key_in_scientific_notation_is_rejected(key: str) -> None:
    """CSV-04: a key a spreadsheet wrote in scientific notation is quarantined."""
    with pytest.raises(RecordRejected, match="scientific notation"):
        mapper().map(record(employee_id=key))


def test_key_can_be_zero_padded() -> None:
    """CSV-04: zero_pad restores the configured width of numeric ids."""
    padded = mapper(key_transforms=["trim", {"zero_pad": 5}])
    assert padded.key_of(record(employee_id="417")) == "00417"
    assert padded.key_of(record(employee_id="E-0001")) == "E-0001"


@pytest.mark.parametrize("key", ["", "   ", None])
def test_empty_or_null_key_is_rejected(key: FieldValue) -> None:
    """An empty, blank or null key is 'no source key'."""
    with pytest.raises(RecordRejected, match="no source key"):
        mapper().map(record(employee_id=key))


def test_missing_key_column_is_rejected() -> None:
    """A record without the key column is 'no source key'."""
    with pytest.raises(RecordRejected, match="no source key"):
        mapper().key_of(without("employee_id"))


def test_duplicate_keys_are_noticed_after_normalizing() -> None:
    """CSV-06: 'E-04410' twice, and 'e-04412 ' vs 'E-04412', are duplicates."""
    mapping = mapper()
    seen = DuplicateKeys()
    rows = [
        record(2, employee_id="E-04410"),
        record(3, employee_id="E-04410", work_email="d.okafor@example.com"),
        record(4, employee_id="E-04411"),
        record(5, employee_id="e-04412 "),
        record(6, employee_id="E-04412"),
    ]
    firsts = [seen.note(mapping.key_of(row), row.location) for row in rows]
    assert firsts == [None, "hris.csv:2", None, None, "hris.csv:5"]
    assert mapping.spec.duplicates == "keep_first"


# -- missing column, empty cell, explicit null ----------------------------------


@pytest.mark.parametrize(
    ("on_empty", "extra", "empty_gives"),
    [
        ("leave", {}, "absent"),
        ("clear", {}, None),
        ("default", {"default": "Unassigned"}, "Unassigned"),
    ],
)
def test_missing_empty_and_null_for_each_on_empty_mode(
    on_empty: str, extra: dict[str, Any], empty_gives: object
) -> None:
    """CSV-06: missing leaves alone, null clears, empty follows on_empty."""
    mapping = only_field(
        "department", {"from": "department", "on_empty": on_empty, **extra}
    )

    assert "department" not in mapping.map(without("department")).fields
    assert mapping.map(record(department=None)).fields["department"] is None
    for empty in ("", "   "):
        fields = mapping.map(record(department=empty)).fields
        if empty_gives == "absent":
            assert "department" not in fields
        else:
            assert fields["department"] == empty_gives
    assert mapping.map(record(department=" HR ")).fields["department"] == "HR"


def test_blank_first_name_does_not_overwrite() -> None:
    """CSV-06: a blank given name with on_empty leave is left alone."""
    wanted = mapper().map(record(full_name="Okafor,"))
    assert wanted.fields["family_name"] == "Okafor"
    assert "given_name" not in wanted.fields


def test_empty_after_transforms_follows_on_empty() -> None:
    """A value that transforms to empty (a one-word name's family) follows on_empty."""
    mapping = only_field(
        "family_name",
        {
            "from": "full_name",
            "transforms": [{"split_name": "family"}],
            "on_empty": "clear",
        },
    )
    assert mapping.map(record(full_name="Dana")).fields["family_name"] is None


def test_date_default_is_a_date() -> None:
    """A date field's default written as text becomes a date."""
    mapping = only_field(
        "hire_date",
        {"from": "hire_date", "on_empty": "default", "default": "2020-01-01"},
    )
    assert mapping.map(record(hire_date="")).fields["hire_date"] == date(2020, 1, 1)


# -- templates -------------------------------------------------------------------


def test_template_with_a_missing_column_leaves_alone() -> None:
    """A template naming a missing column leaves the field alone."""
    assert "display_name" not in mapper().map(without("last_name")).fields


def test_template_with_an_empty_part_collapses_spaces() -> None:
    """An empty or null part drops out without leaving double spaces."""
    mapping = only_field("display_name", {"format": "{first} {middle} {last}"})
    fields = {"employee_id": "E-1", "first": "Dana ", "middle": "", "last": "Okafor"}
    wanted = mapping.map(Record(fields, location="x:1"))
    assert wanted.fields["display_name"] == "Dana Okafor"
    wanted = mapping.map(Record({**fields, "middle": None}, location="x:1"))
    assert wanted.fields["display_name"] == "Dana Okafor"


def test_template_that_comes_out_empty_follows_on_empty() -> None:
    """A template whose parts are all empty follows on_empty."""
    mapping = only_field(
        "display_name", {"format": "{first} {last}", "on_empty": "clear"}
    )
    wanted = mapping.map(
        Record({"employee_id": "E-1", "first": "", "last": None}, "x:1")
    )
    assert wanted.fields["display_name"] is None


def test_template_keeps_literal_text_and_escaped_braces() -> None:
    """Literal text and {{ }} stay in the result."""
    mapping = only_field("display_name", {"format": "{last} {{{first}}}"})
    fields = {"employee_id": "E-1", "first": "Dana", "last": "Okafor"}
    wanted = mapping.map(Record(fields, location="x:1"))
    assert wanted.fields["display_name"] == "Okafor {Dana}"


# -- email (ID-02) -----------------------------------------------------------------


def test_email_keeps_its_display_form_and_compares_casefolded() -> None:
    """ID-02: the address is stored as written; its normalized form matches."""
    wanted = mapper().map(record(work_email=" Dana.Okafor@Example.COM "))
    assert wanted.fields["email"] == "Dana.Okafor@Example.COM"
    assert normalize_email(str(wanted.fields["email"])) == "dana.okafor@example.com"


def test_invalid_email_rejects_the_record() -> None:
    """An invalid email rejects the record as 'email: invalid email'."""
    with pytest.raises(RecordRejected) as caught:
        mapper().map(record(work_email="dana.okafor@@example.com"))
    assert (caught.value.reason, caught.value.field, caught.value.key) == (
        "email: invalid email",
        "email",
        "E-04410",
    )


# -- dates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("05-03-2024", date(2024, 3, 5)),
        ("03/05/2024", date(2024, 3, 5)),
        ("2024-03-05", date(2024, 3, 5)),
        ("2026-03-29 01:30:00", date(2026, 3, 29)),
        ("2026-03-29T02:30:00+02:00", date(2026, 3, 29)),
    ],
)
def test_hire_date_formats(text: str, expected: date) -> None:
    """The mapping's date formats, ISO 8601, and XA-03 datetimes give dates."""
    assert mapper().map(record(hire_date=text)).fields["hire_date"] == expected


def test_field_formats_replace_the_mapping_formats() -> None:
    """exit_date's own formats apply: %m/%d/%Y is not among them."""
    with pytest.raises(RecordRejected) as caught:
        mapper().map(record(termination_date="03/05/2024"))
    assert caught.value.field == "exit_date"
    assert "%m/%d/%Y" not in caught.value.reason


def test_bad_date_rejects_naming_the_field() -> None:
    """An unparseable date rejects the record, naming the field and formats."""
    with pytest.raises(RecordRejected) as caught:
        mapper().map(record(hire_date="31-02-2024"))
    assert caught.value.field == "hire_date"
    assert caught.value.reason.startswith("hire_date: not a date")
    assert "ISO 8601, %d-%m-%Y, %m/%d/%Y" in caught.value.reason
    assert "31-02-2024" not in caught.value.reason


# -- status and programs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "status"),
    [("Active", "active"), ("ON LEAVE", "active"), ("terminated", "suspended")],
)
def test_status_is_mapped(text: str, status: str) -> None:
    """The status map reads the source's words, casefolded."""
    assert mapper().map(record(employment_status=text)).status == status


def test_status_is_not_a_learner_field() -> None:
    """The status goes to WantedLearner.status, never into fields."""
    assert "status" not in mapper().map(record()).fields


def test_unmapped_status_rejects() -> None:
    """A status the map does not list rejects the record on field status."""
    with pytest.raises(RecordRejected) as caught:
        mapper().map(record(employment_status="Retired"))
    assert caught.value.field == "status"
    # The quarantine keeps only the reason, so it names the field; not the value.
    assert caught.value.reason == "status: value is not listed in the map"


def test_status_without_a_map_must_be_a_status() -> None:
    """Without a map, a status other than active or suspended is 'unmapped status'."""
    mapping = only_field(
        "status", {"from": "employment_status", "transforms": ["lower"]}
    )
    assert mapping.map(record(employment_status="SUSPENDED")).status == "suspended"
    with pytest.raises(RecordRejected) as caught:
        mapping.map(record(employment_status="gone"))
    assert caught.value.reason == "status: unmapped status"


def test_status_left_alone_is_active() -> None:
    """A missing status column, or no status mapping, means active."""
    assert mapper().map(without("employment_status")).status == "active"
    assert (
        only_field("job_title", {"from": "job_title"}).map(record()).status == "active"
    )


def test_empty_or_null_status_uses_on_empty() -> None:
    """An empty or null status takes the default status."""
    mapping = mapper()
    assert mapping.map(record(employment_status="")).status == "active"
    assert mapping.map(record(employment_status=None)).status == "active"


def test_suspended_learner_wants_no_programs() -> None:
    """A suspended learner wants no programs, whatever the rules would say."""
    wanted = mapper().map(record(employment_status="Terminated", job_level="6"))
    assert wanted.status == "suspended"
    assert wanted.programs == frozenset()


def test_programs_follow_the_rules() -> None:
    """Each true rule adds its program; false rules add none."""
    assert mapper().map(record(job_level="6")).programs == set(PROGRAMS)
    assert mapper().map(record(job_level="1")).programs == frozenset()
    assert mapper().map(record(department="Sales", job_level="5")).programs == {
        "leadership"
    }


def test_failing_rule_rejects_with_key_and_program() -> None:
    """A rule error rejects the record, naming the program, with the key."""
    with pytest.raises(RecordRejected) as caught:
        mapper().map(record(job_level="senior"))
    assert caught.value.key == "E-04410"
    assert caught.value.reason.startswith(
        "enrollment rule for data-analytics-foundations"
    )


def test_rule_on_a_left_alone_field_sees_null() -> None:
    """A rule on a learner field the record leaves alone sees null and is false."""
    wanted = mapper().map(without("department"))
    assert "department" not in wanted.fields
    assert wanted.programs == frozenset()


# -- trace -----------------------------------------------------------------------


def test_trace_explains_without_personal_values() -> None:
    """The trace shows the key and non-personal values, never names or emails."""
    lines = mapper().trace(record(termination_date=None))
    text = "\n".join(lines)
    assert lines[0] == "key: from employee_id -> E-04410"
    assert "email: from work_email -> set (text, 23 characters)" in lines
    assert "department: from department -> set to 'Analytics'" in lines
    assert "exit_date: from termination_date -> null, cleared" in lines
    assert "rule 0 (data-analytics-foundations): true" in lines
    assert "rule 1 (leadership): false" in lines
    assert lines[-1].startswith("result: 10 fields, status active, programs: data")
    for personal in ("okafor", "Dana"):
        assert personal not in text.split("E-04410", 1)[1]


def test_trace_shows_rejections_and_left_alone_fields() -> None:
    """The trace names a rejected field and how a missing column was treated."""
    fields = {k: v for k, v in ROW.items() if k != "last_name"}
    lines = mapper().trace(Record({**fields, "hire_date": "someday"}, "hris.csv:2"))
    assert (
        "display_name: format of preferred_name, last_name -> column missing, "
        "left alone"
    ) in lines
    rejected = "hire_date: from hire_date -> rejected: not a date"
    assert any(line.startswith(rejected) for line in lines)
    assert lines[-1].startswith("result: rejected: hire_date: not a date")


def test_trace_of_a_suspended_learner_skips_rules() -> None:
    """For a suspended learner the trace says the rules were not evaluated."""
    lines = mapper().trace(record(employment_status="terminated"))
    assert (
        "status: from employment_status -> set to 'suspended' (status suspended)"
        in lines
    )
    assert "rules: not evaluated, status is suspended" in lines


def test_trace_of_an_unlisted_status_names_the_field_once() -> None:
    """The trace line starts with the field; its reason does not repeat it."""
    lines = mapper().trace(record(employment_status="Retired"))
    assert (
        "status: from employment_status -> rejected: value is not listed in the map"
        in lines
    )
    assert lines[-1].startswith(
        "result: rejected: status: value is not listed in the map"
    )


@pytest.mark.parametrize(
    ("name", "spec", "value", "reason"),
    [
        ("email", {"from": "v"}, "not-an-email", "email: invalid email"),
        ("hire_date", {"from": "v"}, "someday", "hire_date: not a date"),
        (
            "department",
            {"from": "v", "transforms": [{"map": {"a": "b"}}]},
            "Secret Dept",
            "department: value is not listed in the map",
        ),
        ("status", {"from": "v"}, "retired", "status: unmapped status"),
    ],
)
def test_field_rejections_name_the_field_never_the_value(
    name: str, spec: dict[str, Any], value: str, reason: str
) -> None:
    """Every field rejection's reason starts with the learner field's name."""
    with pytest.raises(RecordRejected) as caught:
        only_field(name, spec).map(record(v=value))
    assert caught.value.reason.startswith(reason)
    assert caught.value.field == name
    assert value not in str(caught.value)


# -- the record fields a mapping reads -------------------------------------------


def test_source_fields_are_every_record_field_the_mapping_reads() -> None:
    """The key, each from, each template field, and each record.<x> of a rule."""
    assert mapper().source_fields() == {
        "employee_id",
        "work_email",
        "full_name",
        "preferred_name",
        "last_name",
        "department",
        "job_title",
        "location",
        "hire_date",
        "termination_date",
        "employment_status",
        "job_level",
    }


def test_required_source_fields_are_the_key_and_the_rules_record_fields() -> None:
    """Without the key or a rule's record field, every record is rejected."""
    mapping = mapper()
    assert mapping.required_source_fields() == {"employee_id", "job_level"}
    for name in mapping.required_source_fields():
        with pytest.raises(RecordRejected):
            mapping.map(without(name))
    for name in mapping.source_fields() - mapping.required_source_fields():
        mapping.map(without(name))


def test_source_fields_skip_a_rule_that_uses_the_whole_record() -> None:
    """A rule reading record as a whole map adds no field: which it reads is unknown."""
    mapping = mapper(
        enrollments=[
            {"program": "leadership", "when": 'record["job level"] == "5"'},
            {"program": "data-analytics-foundations", "when": "size(record) > 3"},
        ]
    )
    assert "job level" not in mapping.source_fields()
    assert mapping.required_source_fields() == {"employee_id"}
    assert mapping.source_fields() == mapper().source_fields() - {"job_level"}


def test_a_field_a_rule_tests_with_has_is_not_required() -> None:
    """A rule that checks has(record.x) copes with a missing column."""
    mapping = mapper(
        enrollments=[
            {
                "program": "leadership",
                "when": "has(record.grade) && record.grade == 'L5' "
                "&& record.region == 'EU'",
            }
        ]
    )
    assert {"grade", "region"} <= mapping.source_fields()
    assert mapping.required_source_fields() == {"employee_id", "region"}
    assert mapping.map(record(region="EU")).programs == frozenset()


def test_a_mapping_without_rules_requires_only_the_key() -> None:
    """With no rules, only the source key is required; templates are read."""
    mapping = only_field("display_name", {"format": "{first} {last}"})
    assert mapping.source_fields() == {"employee_id", "first", "last"}
    assert mapping.required_source_fields() == {"employee_id"}
