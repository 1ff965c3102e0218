"""Tests of the ``csv`` source connector, field cases CSV-01 to CSV-06 included."""

from __future__ import annotations

import logging
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from microcred_sync.connectors.base import Record
from microcred_sync.connectors.csv import (
    CsvConnector,
    CsvSource,
    normalize_column_name,
)
from microcred_sync.errors import ReadError, ReadIncomplete, SourceUnavailable

BOM = b"\xef\xbb\xbf"


def connector(path: str = "hris.csv", **options: Any) -> CsvConnector:
    """A csv connector file for partner ``acme``, as it would be read from YAML."""
    return CsvConnector.model_validate(
        {"kind": "csv", "partner": "acme", "path": path, **options}
    )


def source(root: Path, path: str = "hris.csv", **options: Any) -> CsvSource:
    """The source of a csv connector rooted at ``root``."""
    return connector(path, **options).open_source("hris", root)


def read(root: Path, content: bytes, **options: Any) -> list[Record]:
    """Write ``content`` to ``hris.csv`` under ``root`` and read all its records."""
    (root / "hris.csv").write_bytes(content)
    return list(source(root, **options).read())


def fields(records: list[Record]) -> list[dict[str, str | None]]:
    """The records' fields as plain dicts, for comparing."""
    return [dict(record.fields) for record in records]


# -- CSV-01: BOM, CRLF, header names ------------------------------------------


def test_bom_and_crlf_read_as_clean_header_and_values(tmp_path: Path) -> None:
    """CSV-01: an Excel "CSV UTF-8" file with a BOM and CRLF lines."""
    content = BOM + (
        b"employee_id,email,first_name\r\nE-01077,dana.okafor@example.com,Dana\r\n"
    )

    records = read(tmp_path, content, required_columns=["employee_id"])

    assert records == [
        Record(
            fields={
                "employee_id": "E-01077",
                "email": "dana.okafor@example.com",
                "first_name": "Dana",
            },
            location="hris.csv:2",
            line=2,
        )
    ]


def test_header_names_are_normalized(tmp_path: Path) -> None:
    """CSV-01: BOM, case, spaces and punctuation in header names are normalized."""
    content = "\ufeffEmployee ID ,Work E-mail,  First   Name\nE-1,a@example.com,Ann\n"

    records = read(tmp_path, content.encode())

    assert list(records[0].fields) == ["employee_id", "work_e_mail", "first_name"]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("\ufeffEmployee ID", "employee_id"),
        ("Work E-mail", "work_e_mail"),
        ("  Job  Level (HR) ", "job_level_hr"),
        ("cost_center", "cost_center"),
        ("Straße", "strasse"),
        ("#", ""),
    ],
)
def test_normalize_column_name(header: str, name: str) -> None:
    """A header cell normalizes to the name mappings use."""
    assert normalize_column_name(header) == name


def test_required_column_missing_is_an_error(tmp_path: Path) -> None:
    """CSV-01: a required column that is not in the header fails before any record."""
    with pytest.raises(ReadError, match=r"required column.*missing: hire_date"):
        read(
            tmp_path,
            b"employee_id,email\nE-1,a@example.com\n",
            required_columns=["Employee ID", "hire_date"],
        )


# -- CSV-02: cp1252 exports ---------------------------------------------------

CP1252_ROSTER = (
    "employee_id;last_name;first_name;email\r\n"
    "E-02211;Strauß;Jürgen;jurgen.strauss@example.com\r\n"
    "E-02212;Garçon;Élodie;elodie.garcon@example.com\r\n"
).encode("cp1252")


def test_cp1252_read_with_fallback_encoding(tmp_path: Path) -> None:
    """CSV-02: a Windows export is read with the configured fallback, names intact."""
    records = read(tmp_path, CP1252_ROSTER, fallback_encoding="cp1252")

    assert [(r.fields["last_name"], r.fields["first_name"]) for r in records] == [
        ("Strauß", "Jürgen"),
        ("Garçon", "Élodie"),
    ]


def test_cp1252_without_fallback_names_line_and_byte_offset(tmp_path: Path) -> None:
    """CSV-02: without a fallback the error names the first bad byte's place."""
    offset = CP1252_ROSTER.index("ß".encode("cp1252"))
    (tmp_path / "hris.csv").write_bytes(CP1252_ROSTER)
    records = source(tmp_path).read()

    with pytest.raises(ReadError) as raised:
        next(records)

    assert not isinstance(raised.value, ReadIncomplete)
    assert raised.value.context["line"] == 2
    assert raised.value.context["byte_offset"] == offset
    assert "hris.csv" in str(raised.value)
    assert f"line 2 (byte offset {offset})" in str(raised.value)
    assert "fallback_encoding: cp1252" in str(raised.value)


def test_fallback_that_does_not_decode_either_is_an_error(tmp_path: Path) -> None:
    """CSV-02: a byte cp1252 does not define is reported, never replaced."""
    content = b"id,name\n1,\xdf\n2,\x81\n"

    with pytest.raises(ReadError, match=r"not valid cp1252: byte 0x81 on line 3"):
        read(tmp_path, content, fallback_encoding="cp1252")


def test_bad_byte_after_a_character_split_across_chunks(tmp_path: Path) -> None:
    """CSV-02: the byte offset is exact past the encoding check's first chunk."""
    filler = b"id,name\n" + b"1,x\n" * ((1 << 20) // 4)
    start = (1 << 20) - 1  # "é" straddles the first chunk's end
    content = filler[:start] + "é".encode() + b"\xff\n"
    (tmp_path / "hris.csv").write_bytes(content)

    with pytest.raises(ReadError) as raised:
        next(source(tmp_path).read())

    assert raised.value.context["byte_offset"] == start + 2
    assert raised.value.context["line"] == content[:start].count(b"\n") + 1


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_a_utf16_or_utf32_export_is_read_by_its_byte_order_mark(
    tmp_path: Path, codec: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Excel's "Unicode Text" (UTF-16 with a BOM, tab-separated): read as what the
    mark says although the connector expects UTF-8, names intact, and said so;
    not refused as bad UTF-8, nor decoded as cp1252 noise by a fallback."""
    text = "employee_id\tlast_name\tfirst_name\r\nE-01\tStrauß\tJürgen\r\n"
    content = "\ufeff".encode(codec) + text.encode(codec)

    with caplog.at_level(logging.INFO, logger="microcred_sync"):
        records = read(tmp_path, content, fallback_encoding="cp1252")

    assert fields(records) == [
        {"employee_id": "E-01", "last_name": "Strauß", "first_name": "Jürgen"}
    ]
    family = codec[:6]
    assert f"hris.csv starts with a {family.upper()} byte order mark" in caplog.text


def test_a_utf16_export_cut_mid_character_names_the_place(tmp_path: Path) -> None:
    """A UTF-16 file whose last character lost a byte is refused, as UTF-16, with
    the byte offset; nothing is read from it."""
    content = "\ufeffemployee_id\r\nE-01\r\n".encode("utf-16-le")[:-1]
    (tmp_path / "hris.csv").write_bytes(content)

    with pytest.raises(ReadError) as raised:
        list(source(tmp_path).read())

    assert "hris.csv is not valid utf-16" in str(raised.value)
    assert raised.value.context["byte_offset"] == len(content) - 1


def test_unknown_encoding_name_is_a_validation_error() -> None:
    """An encoding Python does not know is refused when the connector is loaded."""
    with pytest.raises(ValidationError, match="unknown encoding"):
        connector(fallback_encoding="windows-9999")


# -- CSV-03: delimiters -------------------------------------------------------

SEMICOLON_ROSTER = (
    b"employee_id;email;hire_date\nE-03001;li.wei@example.com;03.02.2026\n"
)


def test_semicolon_delimiter_is_sniffed(tmp_path: Path) -> None:
    """CSV-03: a European-locale export with ``;`` is read without configuration."""
    records = read(tmp_path, SEMICOLON_ROSTER, required_columns=["hire_date"])

    assert fields(records) == [
        {
            "employee_id": "E-03001",
            "email": "li.wei@example.com",
            "hire_date": "03.02.2026",
        }
    ]


def test_semicolon_delimiter_configured(tmp_path: Path) -> None:
    """CSV-03: a configured ``;`` delimiter is used as it is."""
    records = read(tmp_path, SEMICOLON_ROSTER, delimiter=";")

    assert records[0].fields["hire_date"] == "03.02.2026"


def test_wrong_delimiter_gives_one_column_error(tmp_path: Path) -> None:
    """CSV-03: reading a ``;`` file with ``,`` fails loudly, never "0 changes"."""
    with pytest.raises(ReadError, match="one column only: wrong delimiter"):
        read(tmp_path, SEMICOLON_ROSTER, delimiter=",")


def test_one_column_file_is_read(tmp_path: Path) -> None:
    """CSV-03: a genuine single-column file is no delimiter error."""
    records = read(tmp_path, b"employee_id\nE-1\nE-2\n")

    assert fields(records) == [{"employee_id": "E-1"}, {"employee_id": "E-2"}]


def test_header_without_rows_yields_nothing(tmp_path: Path) -> None:
    """CSV-03: zero data rows is left to the guard: the source yields nothing."""
    assert read(tmp_path, b"employee_id,email\r\n") == []


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    """An empty file has no header, so it cannot be a roster."""
    with pytest.raises(ReadError, match="no header"):
        read(tmp_path, b"")


# -- CSV-04: values stay text -------------------------------------------------


def test_numeric_looking_ids_stay_text(tmp_path: Path) -> None:
    """CSV-04: leading zeros and scientific notation are kept exactly as written."""
    ids = ["00417", "0042", "1.23457E+11", "73928e05", "E-0001"]
    content = "employee_id,level\n" + "".join(f"{i},03\n" for i in ids)

    records = read(tmp_path, content.encode())

    assert [r.fields["employee_id"] for r in records] == ids
    assert {r.fields["level"] for r in records} == {"03"}


# -- CSV-06: whitespace, blanks, nulls, duplicates ----------------------------


def test_whitespace_trimmed_and_blank_cells_kept_empty(tmp_path: Path) -> None:
    """CSV-06: values are trimmed, blank cells are "", duplicate ids all yielded."""
    content = (
        b"employee_id,email,first_name\n"
        b"E-04410,dana.okafor@example.com ,Dana\n"
        b"E-04410,d.okafor@example.com,Dana\n"
        b"E-04411, lee.chan@example.com,\n"
        b"e-04412 ,\tsam.ito@example.com,Sam\n"
    )

    records = read(tmp_path, content)

    assert fields(records) == [
        {
            "employee_id": "E-04410",
            "email": "dana.okafor@example.com",
            "first_name": "Dana",
        },
        {
            "employee_id": "E-04410",
            "email": "d.okafor@example.com",
            "first_name": "Dana",
        },
        {"employee_id": "E-04411", "email": "lee.chan@example.com", "first_name": ""},
        {"employee_id": "e-04412", "email": "sam.ito@example.com", "first_name": "Sam"},
    ]
    assert all(record.problem is None for record in records)


def test_null_values_become_none(tmp_path: Path) -> None:
    """CSV-06: listed null texts are explicit nulls; an empty cell stays ""."""
    content = b"employee_id,manager,department\nE-1, NULL ,\nE-2,E-1,n/a\n"

    records = read(tmp_path, content, null_values=["NULL", "n/a "])

    assert fields(records) == [
        {"employee_id": "E-1", "manager": None, "department": ""},
        {"employee_id": "E-2", "manager": "E-1", "department": None},
    ]


def test_duplicate_header_names_are_an_error(tmp_path: Path) -> None:
    """Two header cells that normalize to the same name fail, naming both."""
    with pytest.raises(ReadError, match="'email' from 'Email', 'email'"):
        read(tmp_path, b"id,Email,name,email \n1,a,b,c\n")
    with pytest.raises(ReadError, match=r"'e_mail' from 'E-mail', 'E MAIL'"):
        read(tmp_path, b"id,E-mail,E MAIL\n1,a,b\n")


def test_empty_header_name_is_an_error(tmp_path: Path) -> None:
    """A header cell without a name fails, naming its column."""
    with pytest.raises(ReadError, match=r"column\(s\) 2 have no name"):
        read(tmp_path, b"id,,name\n1,x,y\n")


# -- rows and lines -----------------------------------------------------------


def test_embedded_newline_keeps_line_numbers(tmp_path: Path) -> None:
    """A quoted cell with newlines is one value; later rows keep their own lines."""
    content = b'id,note\r\n1,"first\r\nsecond\r\nthird"\r\n2,plain\r\n\r\n3,"x"\r\n'

    records = read(tmp_path, content)

    assert [(r.fields["id"], r.line, r.location) for r in records] == [
        ("1", 2, "hris.csv:2"),
        ("2", 5, "hris.csv:5"),
        ("3", 7, "hris.csv:7"),
    ]
    assert records[0].fields["note"] == "first\r\nsecond\r\nthird"


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    """Blank and whitespace-only lines yield no record."""
    records = read(tmp_path, b"\nid,name\n\n1,a\n   \n,\n2,b\n")

    assert [(r.fields["id"], r.line) for r in records] == [("1", 4), ("2", 7)]


def test_short_and_long_rows_are_flagged(tmp_path: Path) -> None:
    """A row with too few or too many cells gets a problem; the read goes on."""
    content = b"id,email,name\n1,a@example.com\n2,b@example.com,Bo,extra\n3,c,Cy\n"

    records = read(tmp_path, content)

    assert [(r.fields, r.problem) for r in records] == [
        ({"id": "1", "email": "a@example.com"}, "row has 2 cells, header has 3"),
        (
            {"id": "2", "email": "b@example.com", "name": "Bo"},
            "row has 4 cells, header has 3",
        ),
        ({"id": "3", "email": "c", "name": "Cy"}, None),
    ]


def test_unterminated_quote_is_incomplete_after_good_rows(tmp_path: Path) -> None:
    """A quote that never closes ends the read with ReadIncomplete, good rows first."""
    content = b'id,name\n1,Ann\n2,Bo\n3,"Cy\n4,Di\n5,Ed\n'
    (tmp_path / "hris.csv").write_bytes(content)
    records: list[Record] = []

    with pytest.raises(ReadIncomplete) as raised:
        records.extend(source(tmp_path).read())

    assert [r.fields["id"] for r in records] == ["1", "2"]
    assert raised.value.context["line"] == 4
    assert "hris.csv" in str(raised.value)
    assert "line 4" in str(raised.value)


# -- truncated files ----------------------------------------------------------

HEADER_13 = "employee_id,email,first_name,last_name,department,title,manager," + (
    "location,cost_center,hire_date,status,level,phone\n"
)
FULL_ROW = "E-{0:04d},p{0}@example.com,Ann,Lee,Ops,Analyst,E-0001,Oslo,C-7,2024-01-02"
FULL_ROW += ",active,3,555-0100\n"


def test_file_cut_mid_row_is_incomplete_after_good_rows(tmp_path: Path) -> None:
    """A transfer cut mid-row: ReadIncomplete after the good rows, no partial row."""
    whole = (HEADER_13 + "".join(FULL_ROW.format(i) for i in range(1, 21))).encode()
    # Cut in the last row's fifth cell ("Ops" -> "Op"), about 97% of the bytes.
    content = whole[: whole.rindex(b"Ops,") + 2]
    last_line = content.count(b"\n") + 1
    (tmp_path / "hris.csv").write_bytes(content)
    records: list[Record] = []

    with pytest.raises(ReadIncomplete) as raised:
        records.extend(source(tmp_path).read())

    assert len(records) == last_line - 2
    assert all(record.problem is None for record in records)
    assert raised.value.context["line"] == last_line
    assert raised.value.context["file"] == "hris.csv"
    assert f"hris.csv appears truncated: the row starting on line {last_line}" in str(
        raised.value
    )
    assert "no line ending" in str(raised.value)


def test_crlf_file_cut_after_carriage_return_is_not_truncated(tmp_path: Path) -> None:
    """A last line ended by ``\\r`` alone still has a line ending."""
    records = read(tmp_path, b"id,email,name\r\n1,a,Ann\r\n2,b\r")

    assert [(r.fields["id"], r.problem) for r in records] == [
        ("1", None),
        ("2", "row has 2 cells, header has 3"),
    ]


def test_full_last_row_without_final_newline_is_read(tmp_path: Path) -> None:
    """A last row with every cell but no final newline is a whole file."""
    records = read(tmp_path, b'id,email,name\n1,a,Ann\n2,b,"Bo\nBrown"')

    assert fields(records) == [
        {"id": "1", "email": "a", "name": "Ann"},
        {"id": "2", "email": "b", "name": "Bo\nBrown"},
    ]
    assert all(record.problem is None for record in records)


def test_short_last_row_with_final_newline_is_flagged(tmp_path: Path) -> None:
    """A short last row that ends with a newline is the export's, not a cut."""
    records = read(tmp_path, b"id,email,name\n1,a,Ann\n2,b\n")

    assert [(r.fields["id"], r.line, r.problem) for r in records] == [
        ("1", 2, None),
        ("2", 3, "row has 2 cells, header has 3"),
    ]


def test_long_last_row_without_final_newline_is_flagged(tmp_path: Path) -> None:
    """Too many cells cannot come from a cut: flagged as before, no error."""
    records = read(tmp_path, b"id,name\n1,Ann,extra")

    assert [r.problem for r in records] == ["row has 3 cells, header has 2"]


# -- choosing the file --------------------------------------------------------


def test_glob_picks_newest_file(tmp_path: Path) -> None:
    """Of several matching exports the newest is read; a tie goes to the last name."""
    exports = tmp_path / "exports"
    exports.mkdir()
    for name, mtime in [("a.csv", 3_000), ("b.csv", 1_000), ("c.csv", 3_000)]:
        (exports / name).write_bytes(f"file\n{name}\n".encode())
        os.utime(exports / name, (mtime, mtime))
    (exports / "newest.txt").write_bytes(b"file\nnot csv\n")

    records = list(source(tmp_path, "exports/*.csv").read())

    assert fields(records) == [{"file": "c.csv"}]
    assert records[0].location == "c.csv:2"


def test_absolute_path_ignores_root(tmp_path: Path) -> None:
    """An absolute path is read as it is, whatever the project root."""
    (tmp_path / "hris.csv").write_bytes(b"id\n1\n")

    records = list(source(tmp_path / "elsewhere", str(tmp_path / "hris.csv")).read())

    assert fields(records) == [{"id": "1"}]


def test_no_matching_file_is_source_unavailable(tmp_path: Path) -> None:
    """No export delivered: SourceUnavailable names the pattern, no records."""
    with pytest.raises(SourceUnavailable, match=r"no file matches 'exports/\*\.csv'"):
        next(source(tmp_path, "exports/*.csv").read())


def test_describe_and_full(tmp_path: Path) -> None:
    """The source describes itself by connector and pattern, and reads in full."""
    hris = source(tmp_path, "exports/*.csv")

    assert hris.describe() == "csv:hris exports/*.csv"
    assert hris.full is True


def test_debug_log_names_file_but_no_values(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The DEBUG line names the file, encoding and delimiter, never a value."""
    with caplog.at_level(logging.DEBUG, logger="microcred_sync.connectors.csv"):
        read(tmp_path, b"id;email\nE-1;dana.okafor@example.com\n")

    assert "hris.csv" in caplog.text
    assert "utf-8-sig" in caplog.text
    assert "';'" in caplog.text
    assert "dana.okafor" not in caplog.text


# -- streaming ----------------------------------------------------------------


@pytest.mark.slow
def test_large_file_is_streamed(tmp_path: Path) -> None:
    """A ~50 MB roster is read with a small, constant memory peak."""
    row = "E-{:07d},person.{:07d}@example.com," + "x" * 900 + ",Analytics,3\n"
    block = "".join(row.format(i, i) for i in range(1_000)).encode()
    copies = 50_000_000 // len(block) + 1
    with (tmp_path / "hris.csv").open("wb") as export:
        export.write(b"employee_id,email,notes,department,level\n")
        for _ in range(copies):
            export.write(block)

    tracemalloc.start()
    try:
        count = sum(1 for _ in source(tmp_path).read())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == copies * 1_000
    assert peak < 4 * 1024 * 1024
