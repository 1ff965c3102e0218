"""The ``csv`` source: an HRIS roster exported as a CSV file.

A connector file names the file (or a glob, the newest match wins) and how to read
it. The source streams the file row by row, so memory does not grow with the roster,
and yields one ``Record`` per data row, every value as text (``00123`` stays
``00123``). Header names are normalized (``\\ufeffEmployee ID`` -> ``employee_id``) so
mappings name columns the same way whatever the export tool did to them.

With an ``sftp`` section instead of ``path``, the file is picked up from an SFTP
server (``sftp.py``: host key, completeness, archive and rejected folders,
processed files) and parsed here the same way, streamed over the connection.

Errors, all from ``microcred_sync.errors``:

- ``SourceUnavailable``: no file matches, or it cannot be opened (and those of
  ``sftp.py``).
- ``ReadError``: the file cannot be decoded, has no header, a bad header (empty or
  duplicate names, one column only, a required column missing). Nothing is yielded.
- ``ReadIncomplete``: the file cannot be parsed from some row on (a quote that never
  closes, say), or it appears truncated: its last row has fewer cells than the header
  and no line ending after it, as when a transfer is cut mid-row. The rows before it
  have been yielded; the partial row is not.
"""

from __future__ import annotations

import codecs
import csv
import glob
import io
import logging
import os
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ClassVar, Literal, Protocol, TextIO

from pydantic import Field, field_validator, model_validator

from ..errors import ReadError, ReadIncomplete, SourceUnavailable
from .base import Record, Source
from .config import ConnectorBase
from .sftp import SftpDrop, SftpLocation

if TYPE_CHECKING:
    from _csv import Reader

__all__ = ["CsvConnector", "CsvSource", "normalize_column_name"]

logger = logging.getLogger(__name__)

#: Delimiters the sniffer chooses among, in order of preference on a tie.
CANDIDATE_DELIMITERS = ",;\t|"

#: Bytes decoded per step of the encoding check; bounds its memory.
_CHUNK_BYTES = 1 << 20

#: Text sampled from the top of the file to sniff the delimiter.
_SNIFF_LINES = 5
_SNIFF_CHARS = 64 * 1024

#: What a line read with ``newline=""`` ends with, unless it is an unended last line.
_LINE_ENDINGS = ("\n", "\r")

#: Codec names (as ``codecs.lookup`` spells them) read as UTF-8 with an optional BOM.
_UTF8_CODECS = frozenset({"utf-8", "utf-8-sig"})
#: Byte order marks that name a file's encoding, UTF-32's before UTF-16's.
_BYTE_ORDER_MARKS = (
    ((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE), "utf-32"),
    ((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE), "utf-16"),
)

_SEPARATOR_RUN = re.compile(r"[^\w]+")


def normalize_column_name(name: str) -> str:
    """Return the name a mapping uses for a CSV header cell.

    Strips and casefolds, turns each run of whitespace or punctuation (anything but
    letters, digits and ``_``) into one ``_``, and strips ``_`` at both ends, so
    ``"\\ufeffEmployee ID"`` -> ``"employee_id"`` and ``"Work E-mail"`` ->
    ``"work_e_mail"``.
    """
    folded = name.strip().casefold()
    return _SEPARATOR_RUN.sub("_", folded).strip("_")


def _check_codec(name: str | None) -> str | None:
    """Accept an encoding name only if Python has a codec for it."""
    if name is None:
        return None
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}") from None
    return name


def _check_one_character(value: str | None, what: str) -> str | None:
    """The csv module takes delimiters and quote characters of one character."""
    if value is not None and len(value) != 1:
        raise ValueError(f"{what} must be one character, not {value!r}")
    return value


class CsvConnector(ConnectorBase):
    """A connector file of kind ``csv``: where the export is and how to read it."""

    kind: Literal["csv"]
    path: str | None = Field(
        default=None,
        description="file path or glob, relative to the project root unless absolute;"
        " of several matches the newest (by modification time, then name) is read",
    )
    sftp: SftpLocation | None = Field(
        default=None, description="instead of `path`: pick the file up over SFTP"
    )
    encoding: str = Field(
        default="utf-8", description="text encoding; a leading UTF-8 BOM is accepted"
    )
    fallback_encoding: str | None = Field(
        default=None,
        description="encoding used only if the file is not valid in `encoding`,"
        " for example cp1252 for Windows ('ANSI') exports",
    )
    delimiter: str | None = Field(
        default=None, description="cell delimiter; unset: sniffed among , ; tab |"
    )
    quotechar: str = '"'
    null_values: list[str] = Field(
        default_factory=list,
        description="cell texts (after trimming) that mean an explicit null",
    )
    required_columns: list[str] = Field(
        default_factory=list,
        description="normalized header names the file must have",
    )

    @field_validator("encoding", "fallback_encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        return _check_codec(value)

    @field_validator("delimiter")
    @classmethod
    def _one_character_delimiter(cls, value: str | None) -> str | None:
        return _check_one_character(value, "delimiter")

    @field_validator("quotechar")
    @classmethod
    def _one_character_quotechar(cls, value: str) -> str:
        _check_one_character(value, "quotechar")
        return value

    @field_validator("null_values")
    @classmethod
    def _trimmed_null_values(cls, values: list[str]) -> list[str]:
        # Cells are compared after trimming, so the listed texts are trimmed too.
        return [value.strip() for value in values]

    @field_validator("required_columns")
    @classmethod
    def _normalized_required_columns(cls, names: list[str]) -> list[str]:
        return [normalize_column_name(name) for name in names]

    @model_validator(mode="after")
    def _delimiter_is_not_quotechar(self) -> CsvConnector:
        if self.delimiter == self.quotechar:
            raise ValueError("delimiter and quotechar must differ")
        return self

    @model_validator(mode="after")
    def _path_or_sftp(self) -> CsvConnector:
        if (self.path is None) == (self.sftp is None):
            raise ValueError("set either `path` (a local file) or `sftp`, not both")
        return self

    def open_source(self, connector_id: str, root: Path) -> CsvSource:
        """Return the source this connector file describes; nothing is opened yet."""
        return CsvSource(connector_id, root, self)


class CsvFile(Protocol):
    """A file the source parses: a local one, or one on an SFTP server."""

    @property
    def name(self) -> str: ...

    def open_bytes(self) -> BinaryIO:
        """Open the file from its start; raises OSError if it cannot be opened."""
        ...


@dataclass(frozen=True, slots=True)
class _LocalFile:
    """A file on this machine."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def open_bytes(self) -> BinaryIO:
        return self.path.open("rb")


@dataclass(slots=True)
class _Lines:
    """The file's lines for the csv reader; notes whether the last one read ended.

    Only the last line of a file can lack a line ending, so ``ended`` is false only
    once the reader has reached the end of a file that does not end with one.
    """

    stream: TextIO
    ended: bool = True

    def __iter__(self) -> Iterator[str]:
        for text in self.stream:
            self.ended = text.endswith(_LINE_ENDINGS)
            yield text


@dataclass(frozen=True, slots=True)
class _UndecodableByte:
    """Where a file first fails to decode: 0-based byte offset, 1-based line."""

    offset: int
    line: int
    value: int


class CsvSource(Source):
    """Reads one CSV export as records; see the module docstring for the errors."""

    kind: ClassVar[str] = "csv"

    def __init__(self, connector_id: str, root: Path, config: CsvConnector) -> None:
        super().__init__(connector_id, root)
        self.config = config
        self._nulls = frozenset(config.null_values)
        self._drop = None
        if config.sftp is not None:
            self._drop = SftpDrop(connector_id, config.partner, config.sftp)

    def describe(self) -> str:
        """The connector and the path pattern, e.g. ``csv:hris exports/*.csv``."""
        where = self._drop.describe() if self._drop else self.config.path
        return f"{super().describe()} {where}"

    def read(self) -> Iterator[Record]:
        """Yield one record per data row, in file order, reading as it goes.

        Raises ``SourceUnavailable`` or ``ReadError`` before the first record, and
        ``ReadIncomplete`` after the last good one (see the module docstring).
        """
        if self._drop is not None:
            yield from self._drop.read(self.context, self._read_file)
            return
        yield from self._read_file(_LocalFile(self._pick_file()))

    def commit(self) -> None:
        """After an applied run, an SFTP drop moves its file to the archive."""
        if self._drop is not None:
            self._drop.archive()

    def reject(self) -> None:
        """After a failed run, an SFTP drop sets a file it could not read aside."""
        if self._drop is not None:
            self._drop.reject()

    def _read_file(self, path: CsvFile) -> Iterator[Record]:
        """The records of one file: the dialect first, then row by row."""
        encoding = self._choose_encoding(path)
        delimiter = self.config.delimiter or self._sniff_delimiter(path, encoding)
        logger.debug(
            "%s reads %s (encoding %s, delimiter %r)",
            self.describe(),
            path.name,
            encoding,
            delimiter,
        )
        with self._open(path, encoding) as stream:
            lines = _Lines(stream)
            reader = csv.reader(
                lines,
                delimiter=delimiter,
                quotechar=self.config.quotechar,
                doublequote=True,
                strict=True,
            )
            columns = self._read_header(reader, path, delimiter)
            yield from self._read_rows(reader, lines, path, columns)

    # -- choosing the file -------------------------------------------------------

    def _pick_file(self) -> Path:
        """The newest file matching the path pattern; ties go to the last name."""
        pattern = self.config.path or ""
        if not Path(pattern).is_absolute():
            # Only the pattern is a glob; the root is taken literally.
            pattern = os.path.join(glob.escape(str(self.root)), pattern)
        candidates: list[tuple[int, str, Path]] = []
        for match in glob.glob(pattern, recursive=True):
            try:
                status = os.stat(match)
            except OSError:
                continue  # gone since the glob ran
            if Path(match).is_file():
                candidates.append((status.st_mtime_ns, Path(match).name, Path(match)))
        if not candidates:
            raise SourceUnavailable(
                f"no file matches {self.config.path!r}; check the path and that"
                " the export has been delivered",
                **self._context(),
            )
        return max(candidates)[2]

    def _open(self, path: CsvFile, encoding: str) -> TextIO:
        """Open the file as text the way the csv module expects (``newline=""``)."""
        try:
            return io.TextIOWrapper(
                path.open_bytes(), encoding=encoding, errors="strict", newline=""
            )
        except OSError as error:
            raise SourceUnavailable(
                f"{path.name} cannot be opened: {error.strerror}",
                **self._context(path),
            ) from error

    # -- decoding ----------------------------------------------------------------

    def _choose_encoding(self, path: CsvFile) -> str:
        """The encoding to read with: the configured one, else the fallback.

        Raises ``ReadError`` naming the first bad byte when neither decodes the
        whole file; characters are never replaced.
        """
        marked = self._marked_encoding(path)
        if marked is not None:
            # A UTF-16 or UTF-32 byte order mark says what the file is (Excel's
            # "Unicode Text"); read as UTF-8, or its fallback, it would be noise.
            self._require_decodable(path, marked)
            logger.info(
                "%s: %s starts with a %s byte order mark and is read as %s",
                self.describe(),
                path.name,
                marked.upper(),
                marked,
            )
            return marked
        failure = self._find_undecodable(path, self.config.encoding)
        if failure is None:
            return _reading_codec(self.config.encoding)
        fallback = self.config.fallback_encoding
        if fallback is None:
            raise self._decode_error(path, self.config.encoding, failure, hint=True)
        self._require_decodable(path, fallback)
        logger.debug(
            "%s: %s is not valid %s, read as %s",
            self.describe(),
            path.name,
            self.config.encoding,
            fallback,
        )
        return _reading_codec(fallback)

    def _require_decodable(self, path: CsvFile, encoding: str) -> None:
        """Raise ``ReadError`` naming the first byte ``encoding`` cannot decode."""
        failure = self._find_undecodable(path, encoding)
        if failure is not None:
            raise self._decode_error(path, encoding, failure, hint=False)

    def _marked_encoding(self, path: CsvFile) -> str | None:
        """``utf-16`` or ``utf-32`` when the file starts with that byte order mark
        and the connector expects UTF-8 (another configured encoding is taken at
        its word)."""
        if codecs.lookup(self.config.encoding).name not in _UTF8_CODECS:
            return None
        try:
            with path.open_bytes() as stream:
                start = stream.read(4)
        except OSError as error:
            raise SourceUnavailable(
                f"{path.name} cannot be read: {error.strerror}",
                **self._context(path),
            ) from error
        # UTF-32's little-endian mark begins with UTF-16's: look for it first.
        for marks, name in _BYTE_ORDER_MARKS:
            if start.startswith(marks):
                return name
        return None

    def _find_undecodable(
        self, path: CsvFile, encoding: str
    ) -> _UndecodableByte | None:
        """Decode the whole file in chunks; return its first bad byte, if any."""
        try:
            with path.open_bytes() as stream:
                return _scan_for_undecodable(stream, encoding)
        except OSError as error:
            raise SourceUnavailable(
                f"{path.name} cannot be read: {error.strerror}",
                **self._context(path),
            ) from error

    def _decode_error(
        self, path: CsvFile, encoding: str, failure: _UndecodableByte, *, hint: bool
    ) -> ReadError:
        """The error for a file that is not valid text in ``encoding``."""
        advice = (
            "set `fallback_encoding: cp1252` on the connector if it is a Windows"
            " ('ANSI') export"
            if hint
            else "check which encoding the export uses"
        )
        return ReadError(
            f"{path.name} is not valid {encoding}: byte 0x{failure.value:02X} on line"
            f" {failure.line} (byte offset {failure.offset}) cannot be decoded;"
            f" {advice}",
            **self._context(path),
            line=failure.line,
            byte_offset=failure.offset,
        )

    # -- the dialect -------------------------------------------------------------

    def _sniff_delimiter(self, path: CsvFile, encoding: str) -> str:
        """Guess the delimiter from the top of the file, among the candidates."""
        with self._open(path, encoding) as stream:
            sample = _read_sample(stream)
        try:
            sniffed = csv.Sniffer().sniff(sample, delimiters=CANDIDATE_DELIMITERS)
        except csv.Error:
            return _count_delimiter(sample)
        return sniffed.delimiter

    # -- the header --------------------------------------------------------------

    def _read_header(
        self, reader: Reader, path: CsvFile, delimiter: str
    ) -> tuple[str, ...]:
        """Read the first non-blank row as the header and check its names."""
        cells = self._first_row(reader, path)
        if cells is None:
            raise ReadError(
                f"{path.name} is empty: no header row; check the export",
                **self._context(path),
            )
        if len(cells) == 1 and _other_delimiters(cells[0], delimiter):
            raise ReadError(
                f"{path.name}: the header has one column only: wrong delimiter?"
                f" (read with {delimiter!r}; set `delimiter` on the connector)",
                **self._context(path),
            )
        columns = tuple(normalize_column_name(cell) for cell in cells)
        self._check_names(path, cells, columns)
        self._check_required(path, columns)
        return columns

    def _first_row(self, reader: Reader, path: CsvFile) -> list[str] | None:
        """The first row with a non-blank cell, or ``None`` at the end of the file."""
        try:
            for cells in reader:
                if not _is_blank(cells):
                    return cells
        except (csv.Error, UnicodeDecodeError) as error:
            raise ReadError(
                f"{path.name}: the header cannot be parsed ({error})",
                **self._context(path),
            ) from error
        return None

    def _check_names(
        self, path: CsvFile, cells: Sequence[str], columns: Sequence[str]
    ) -> None:
        """Every column needs a name of its own once normalized."""
        unnamed = [str(index) for index, name in enumerate(columns, 1) if not name]
        if unnamed:
            raise ReadError(
                f"{path.name}: header column(s) {', '.join(unnamed)} have no name;"
                " name them in the export or remove the empty columns",
                **self._context(path),
            )
        clashes = _clashing_names(cells, columns)
        if clashes:
            raise ReadError(
                f"{path.name}: header names clash once normalized: {clashes};"
                " rename or remove the duplicate columns in the export",
                **self._context(path),
            )

    def _check_required(self, path: CsvFile, columns: Sequence[str]) -> None:
        """Fail loudly, before any record, when a required column is missing."""
        missing = [name for name in self.config.required_columns if name not in columns]
        if missing:
            raise ReadError(
                f"{path.name}: required column(s) missing: {', '.join(missing)}"
                f" (the header has: {', '.join(columns)})",
                **self._context(path),
            )

    # -- the rows ----------------------------------------------------------------

    def _read_rows(
        self, reader: Reader, lines: _Lines, path: CsvFile, columns: tuple[str, ...]
    ) -> Iterator[Record]:
        """Yield a record per non-blank row; stop with ``ReadIncomplete`` on garbage.

        ``lines`` is what ``reader`` reads from; it tells a short last row cut off in
        transfer (no line ending after it) from a short row the export wrote.
        """
        width = len(columns)
        while True:
            # A row starts on the line after the one the previous row ended on.
            line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError, OSError) as error:
                raise self._incomplete(path, line, error) from error
            # The first cell is nearly always filled: skip the full blank check then.
            if (not cells or not cells[0].strip()) and _is_blank(cells):
                continue
            if len(cells) < width and not lines.ended:
                raise self._truncated(path, line, len(cells), width)
            yield self._record(path.name, line, columns, cells, width)

    def _record(
        self,
        file_name: str,
        line: int,
        columns: Sequence[str],
        cells: Sequence[str],
        width: int,
    ) -> Record:
        """Turn one row's cells into a record, flagging a wrong number of cells."""
        fields: dict[str, str | None] = dict(
            zip(columns, map(str.strip, cells), strict=False)
        )
        if not all(map(str.isascii, cells)):
            # One Unicode spelling (NFC) per text, whatever the exporting tool did.
            for column, text in fields.items():
                if text is not None and not text.isascii():
                    fields[column] = unicodedata.normalize("NFC", text)
        if self._nulls:
            for column, text in fields.items():
                if text in self._nulls:
                    fields[column] = None
        problem = None
        if len(cells) != width:
            problem = f"row has {len(cells)} cells, header has {width}"
        return Record(
            fields=fields, location=f"{file_name}:{line}", line=line, problem=problem
        )

    def _incomplete(self, path: CsvFile, line: int, error: Exception) -> ReadIncomplete:
        """The error for a file that cannot be parsed from ``line`` on."""
        return ReadIncomplete(
            f"{path.name}: the row starting on line {line} cannot be read ({error});"
            " the rows before it were read, the rest of the file was not;"
            " check for a quote that is never closed",
            **self._context(path),
            line=line,
        )

    def _truncated(
        self, path: CsvFile, line: int, cells: int, width: int
    ) -> ReadIncomplete:
        """The error for a file cut off in the row starting on ``line``."""
        return ReadIncomplete(
            f"{path.name} appears truncated: the row starting on line {line} has"
            f" {cells} cells, the header has {width}, and the file ends there with no"
            " line ending; the rows before it were read, that row was not;"
            " check that the export was delivered in full",
            **self._context(path),
            line=line,
        )

    def _context(self, path: CsvFile | None = None) -> dict[str, object]:
        """What every error of this source names: connector, partner, file."""
        return {
            "connector": self.connector_id,
            "partner": self.config.partner,
            "file": path.name if path is not None else None,
        }


def _reading_codec(encoding: str) -> str:
    """The codec to read with: UTF-8 always accepts (and drops) a leading BOM."""
    name = codecs.lookup(encoding).name
    return "utf-8-sig" if name in _UTF8_CODECS else name


def _scan_for_undecodable(stream: BinaryIO, encoding: str) -> _UndecodableByte | None:
    """Decode ``stream`` strictly, chunk by chunk; return its first bad byte."""
    name = codecs.lookup(encoding).name
    if name in _UTF8_CODECS:
        # Plain UTF-8 keeps error offsets relative to what we fed; skip the BOM here.
        name = "utf-8"
        if stream.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
            stream.seek(0)
    decoder = codecs.getincrementaldecoder(name)(errors="strict")
    consumed, lines = stream.tell(), 1
    while True:
        chunk = stream.read(_CHUNK_BYTES)
        pending: bytes = decoder.getstate()[0]
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as error:
            # The decoder saw its pending bytes, then this chunk.
            in_chunk = max(0, error.start - len(pending))
            return _UndecodableByte(
                offset=consumed - len(pending) + error.start,
                line=lines + chunk.count(b"\n", 0, in_chunk),
                value=error.object[error.start],
            )
        if not chunk:
            return None
        consumed += len(chunk)
        lines += chunk.count(b"\n")


def _read_sample(stream: TextIO) -> str:
    """The first few lines of the file, bounded in size, for the sniffer."""
    lines: list[str] = []
    budget = _SNIFF_CHARS
    while len(lines) < _SNIFF_LINES and budget > 0:
        line = stream.readline(budget)
        if not line:
            break
        lines.append(line)
        budget -= len(line)
    return "".join(lines)


def _count_delimiter(sample: str) -> str:
    """The candidate found most often on the first non-blank line, else ``,``."""
    first = next((line for line in sample.splitlines() if line.strip()), "")
    counts = {candidate: first.count(candidate) for candidate in CANDIDATE_DELIMITERS}
    best = max(CANDIDATE_DELIMITERS, key=lambda candidate: counts[candidate])
    return best if counts[best] else ","


def _other_delimiters(text: str, delimiter: str) -> bool:
    """Whether ``text`` holds a candidate delimiter other than the one in use."""
    return any(
        candidate in text
        for candidate in CANDIDATE_DELIMITERS
        if candidate != delimiter
    )


def _clashing_names(cells: Sequence[str], columns: Sequence[str]) -> str:
    """Describe header cells that normalize to the same name; ``""`` if none."""
    cells_by_name: dict[str, list[str]] = {}
    for cell, name in zip(cells, columns, strict=True):
        cells_by_name.setdefault(name, []).append(repr(cell.strip()))
    return "; ".join(
        f"{name!r} from {', '.join(sources)}"
        for name, sources in cells_by_name.items()
        if len(sources) > 1
    )


def _is_blank(cells: Sequence[str]) -> bool:
    """A row whose cells are all empty or whitespace (a blank line, or ``,,,``)."""
    return all(not cell.strip() for cell in cells)
