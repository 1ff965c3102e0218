"""Generate an invented, realistic HRIS roster export as CSV, for examples and tests.

The file looks like what a partner's HR team downloads from Workday or BambooHR and
saves from Excel as "CSV UTF-8": a byte order mark, CRLF line endings, commas, quotes
only where a cell needs them, Employee IDs with leading zeros, day-first dates, a job
title with a line break inside it, and, unless turned off, a few bad rows of known
kinds that a sync must quarantine.

Every person is invented. The output depends only on ``rows``, ``seed`` and
``bad_rows``: the same arguments always give the same bytes.

Usage::

    python examples/make_hris_export.py OUT.csv --rows 2000 --seed 7 [--no-bad-rows]

or, from Python, ``write_export(path, rows, seed=7, bad_rows=True)``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import time
import unicodedata
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TypeVar

HEADER: tuple[str, ...] = (
    "Employee ID",
    "First Name",
    "Last Name",
    "Preferred Name",
    "Work Email",
    "Department",
    "Job Title",
    "Job Level",
    "Manager ID",
    "Location",
    "Employment Status",
    "Hire Date",
    "Termination Date",
)

MISSING_EMPLOYEE_ID = "missing_employee_id"
INVALID_EMAIL = "invalid_email"
UNPARSEABLE_HIRE_DATE = "unparseable_hire_date"
DUPLICATE_EMPLOYEE_ID = "duplicate_employee_id"
DUPLICATE_EMAIL = "duplicate_email"
TOO_MANY_CELLS = "too_many_cells"
BAD_ROW_KINDS: tuple[str, ...] = (
    MISSING_EMPLOYEE_ID,
    INVALID_EMAIL,
    UNPARSEABLE_HIRE_DATE,
    DUPLICATE_EMPLOYEE_ID,
    DUPLICATE_EMAIL,
    TOO_MANY_CELLS,
)

# The export is dated 2026-12-01: every hire and termination is before it.
EXPORT_DATE = date(2026, 12, 1)
FIRST_HIRE = date(2009, 3, 2)
DOMAIN = "example-corp.com"
MIXED_CASE_DOMAIN = "Example-Corp.com"

BAD_ROW_SHARE = 0.0033
MIN_ROWS_FOR_BAD_ROWS = 20
MANAGER_POOL_SIZE = 200
NEWLINE_TITLE_SHARE = 0.0005

FIRST_NAMES: tuple[str, ...] = (
    "Jürgen", "Élodie", "Søren", "Zoë", "Anne-Marie", "Jean-Luc", "Siobhán", "Björn",
    "Chloé", "Joaquín", "José", "Mónica", "Łukasz", "Małgorzata", "Dana", "Priya",
    "Aarav", "Wei", "Mei", "Hiroshi", "Yuki", "Kwame", "Amara", "Chidi", "Ngozi",
    "Fatima", "Omar", "Layla", "Mohammed", "Aisha", "Liam", "Olivia", "Noah", "Emma",
    "Mateo", "Sofía", "Lucas", "Camila", "Thiago", "João", "Ana", "Beatriz", "Gonçalo",
    "Inês", "Darius", "Anya", "Dmitri", "Oksana", "Kateřina", "Tomáš", "Ewa", "Henrik",
    "Ingrid", "Astrid", "Freya", "Niamh", "Seán", "Ciarán", "Aoife", "Rhys", "Siân",
    "Mariam", "Tariq", "Hamza", "Yusuf", "Elif", "Emre", "Zeynep", "Ravi", "Ananya",
    "Deepika", "Arjun", "Sunita", "Kavya", "Minh", "Thảo", "Linh", "Đức", "Ji-woo",
    "Min-jun", "Seo-yeon", "Jae-hyun", "Haruto", "Sakura", "Kenji", "Xiaoming", "Lian",
    "Jing", "Tunde", "Adaeze", "Kofi", "Abena", "Thandiwe", "Sipho", "Lerato",
    "Oluwaseun", "Chukwuemeka", "Robert", "Katherine", "Alexander", "Elizabeth",
    "Michael", "Jennifer", "William", "Margaret", "Christopher", "Patricia", "Daniel",
    "Samantha", "Benjamin", "Victoria", "Gabriel", "Mathilde", "Aurélien", "Hélène",
    "Gaël", "Noémie", "Renée", "François", "Ólafur", "Guðrún", "Þóra", "Zoltán",
    "Réka", "Ştefan", "Ioana",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    "Okafor", "Müller", "Schröder", "Ødegaard", "Nguyễn", "Trần", "Lê", "Phạm", "Đặng",
    "O'Brien", "O'Connor", "García-López", "Smith-Jones", "Abernathy-Cole",
    "Fernández", "Gonçalves", "da Silva", "dos Santos", "van der Berg", "de la Cruz",
    "Dubois", "Lefèvre", "Moreau", "Girard", "Rousseau", "Schmidt", "Weiß", "Fischer",
    "Kowalski", "Wiśniewski", "Nowak", "Dvořák", "Novák", "Horváth", "Kovács",
    "Popescu", "Ionescu", "Jensen", "Sørensen", "Andersson", "Lindqvist", "Björk",
    "Virtanen", "Mäkinen", "Johansson", "Patel", "Sharma", "Gupta", "Iyer", "Reddy",
    "Khan", "Hussain", "Rahman", "Al-Sayed", "El-Amin", "Haddad", "Yılmaz", "Öztürk",  # noqa: RUF001
    "Kaya", "Tanaka", "Suzuki", "Sato", "Watanabe", "Kim", "Park", "Lee", "Choi",
    "Wang", "Li", "Zhang", "Liu", "Chen", "Huang", "Mensah", "Boateng", "Adeyemi",
    "Okonkwo", "Nwosu", "Dlamini", "Ndlovu", "Smith", "Johnson", "Williams", "Brown",
    "Taylor", "Walker", "Clarke", "Wright", "Thompson", "Evans", "Murphy", "Kelly",
    "Rodríguez", "Martínez", "Pérez", "Sánchez", "Romero", "Hernández", "Castillo",
    "Rossi", "Bianchi", "Esposito", "Ricci", "Costa", "Kuznetsov", "Ivanova",
    "Petrov", "Lévesque", "Côté", "Tremblay", "Gagnon", "Bouchard", "Jónsdóttir",
    "Guðmundsson", "St. John", "MacLeod", "Fitzgerald",
)  # fmt: skip

NICKNAMES: dict[str, tuple[str, ...]] = {
    "Robert": ("Rob", "Bob"),
    "Katherine": ("Kate", "Kat"),
    "Alexander": ("Alex", "Sasha"),
    "Elizabeth": ("Liz", "Beth"),
    "Michael": ("Mike",),
    "Jennifer": ("Jen",),
    "William": ("Will", "Bill"),
    "Margaret": ("Maggie", "Peggy"),
    "Christopher": ("Chris",),
    "Patricia": ("Pat", "Trish"),
    "Daniel": ("Dan", "Danny"),
    "Samantha": ("Sam",),
    "Benjamin": ("Ben",),
    "Victoria": ("Vicky", "Tori"),
    "Gabriel": ("Gabe",),
    "Małgorzata": ("Gosia",),
    "Łukasz": ("Luke",),
    "Dmitri": ("Dima",),
    "Anne-Marie": ("Annie",),
    "Jean-Luc": ("JL",),
    "José": ("Pepe",),
    "Mohammed": ("Mo",),
    "Siobhán": ("Shiv",),
    "Thandiwe": ("Thandi",),
    "Oluwaseun": ("Seun",),
    "Chukwuemeka": ("Emeka",),
    "Deepika": ("Deepa",),
    "Wei": ("David",),
    "Xiaoming": ("Sam",),
    "Ji-woo": ("Jenny",),
    "Min-jun": ("Mike",),
}

# Relative head counts; Analytics, Engineering and Sales are each well above 10%.
DEPARTMENT_WEIGHTS: dict[str, int] = {
    "Analytics": 15,
    "Engineering": 22,
    "Sales": 16,
    "Customer Success": 10,
    "Operations": 10,
    "Marketing": 9,
    "Finance": 8,
    "People": 6,
    "Legal": 4,
}

# Titles per department, by band of job level: 1-2, 3-4, 5, 6-7.
TITLES: dict[str, tuple[tuple[str, ...], ...]] = {
    "Analytics": (
        ("Junior Data Analyst", "Data Analyst", "Reporting Analyst"),
        ("Data Analyst", "Analytics Engineer", "BI Developer", "Data Scientist"),
        ("Senior Data Analyst", "Senior Data Scientist", "Staff Analytics Engineer"),
        ("Manager, Analytics", "Director, Data & Analytics",
         "Principal Data Scientist"),
    ),
    "Engineering": (
        ("Software Engineer I", "Associate Software Engineer", "QA Engineer"),
        ("Software Engineer II", "DevOps Engineer", "Site Reliability Engineer",
         "Frontend Engineer"),
        ("Senior Software Engineer", "Senior Site Reliability Engineer",
         "Security Engineer"),
        ("Engineering Manager", "Staff Engineer", "Principal Engineer",
         "Director, Platform Engineering"),
    ),
    "Sales": (
        ("Sales Development Representative", "Business Development Representative"),
        ("Account Executive", "Inside Sales Representative",
         "Sales Operations Analyst"),
        ("Senior Account Executive", "Enterprise Account Executive",
         "Solutions Consultant"),
        ("Regional Sales Manager, EMEA", "Director, Sales", "VP, Sales – Americas"),  # noqa: RUF001
    ),
    "Customer Success": (
        ("Customer Support Representative", "Support Specialist I"),
        ("Customer Success Manager", "Onboarding Specialist",
         "Technical Support Engineer"),
        ("Senior Customer Success Manager", "Customer Success Architect"),
        ("Director, Customer Success", "Manager, Support Operations"),
    ),
    "Operations": (
        ("Operations Assistant", "Office Coordinator", "Facilities Assistant"),
        ("Operations Analyst", "Procurement Specialist", "IT Support Specialist"),
        ("Senior Operations Analyst", "Program Manager"),
        ("Operations Manager", "Director, Business Operations"),
    ),
    "Marketing": (
        ("Marketing Coordinator", "Content Writer", "Social Media Specialist"),
        ("Marketing Specialist", "Product Marketing Manager", "SEO Specialist",
         "Graphic Designer"),
        ("Senior Product Marketing Manager", "Brand Manager"),
        ("Director, Demand Generation", "Head of Marketing"),
    ),
    "Finance": (
        ("Accounts Payable Clerk", "Junior Accountant", "Finance Assistant"),
        ("Accountant", "Financial Analyst", "Payroll Specialist"),
        ("Senior Financial Analyst", "Senior Accountant", "Treasury Analyst"),
        ("Controller", "Director, FP&A", "Finance Manager"),
    ),
    "People": (
        ("HR Assistant", "Recruiting Coordinator"),
        ("HR Generalist", "Recruiter", "Learning & Development Specialist"),
        ("Senior HR Business Partner", "Senior Recruiter", "People Analytics Partner"),
        ("Head of Talent", "Director, People & Culture"),
    ),
    "Legal": (
        ("Legal Assistant", "Paralegal"),
        ("Contracts Manager", "Compliance Analyst"),
        ("Senior Counsel", "Privacy Counsel"),
        ("General Counsel", "Associate General Counsel, Commercial"),
    ),
}  # fmt: skip

# The first rows: founders and executives, who report to no one in the HRIS.
TOP_TITLES: tuple[tuple[str, str], ...] = (
    ("Operations", "Chief Executive Officer"),
    ("Engineering", "Chief Technology Officer"),
    ("Finance", "Chief Financial Officer"),
)

# Someone pressed Alt+Enter in a cell: the line break stays inside the quoted value.
MULTILINE_TITLES: dict[str, str] = {
    "Analytics": "Senior Analyst\nData Platform",
    "Sales": "Account Executive\nEMEA North",
    "Engineering": "Software Engineer II\nPayments",
}

LEVEL_WEIGHTS: dict[int, int] = {1: 14, 2: 24, 3: 24, 4: 18, 5: 11, 6: 6, 7: 3}

LOCATION_WEIGHTS: dict[str, int] = {
    "London": 12,
    "New York": 12,
    "Berlin": 10,
    "Lyon": 8,
    "Toronto": 8,
    "Singapore": 7,
    "São Paulo": 6,
    "Paris": 6,
    "Austin": 5,
    "Bengaluru": 5,
    "Dublin": 4,
    "Munich": 4,
    "Montréal": 4,
    "Kraków": 4,
    "Remote, United States": 3,
    "Remote, Germany": 2,
    "Zürich": 2,
    "Remote, Canada": 1,
}

T = TypeVar("T")

# Letters that Unicode decomposition does not reduce to ASCII.
ASCII_LETTERS = str.maketrans(
    {"ø": "o", "æ": "ae", "ß": "ss", "đ": "d", "ð": "d", "ł": "l", "œ": "oe",
     "þ": "th", "ı": "i"}  # noqa: RUF001
)  # fmt: skip


@dataclass
class ExportFacts:
    """What a generated export contains, for tests and benchmarks to check against.

    ``rows`` counts data rows (the header excluded; a row with a line break inside a
    cell counts once). ``employee_ids`` holds every non-empty Employee ID once, in the
    order written, bad rows included. ``bad_records`` gives, per kind, the 1-based
    numbers of the bad data rows (the first row after the header is 1).
    """

    rows: int = 0
    bad_rows: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(BAD_ROW_KINDS, 0)
    )
    bad_records: dict[str, list[int]] = field(
        default_factory=lambda: {kind: [] for kind in BAD_ROW_KINDS}
    )
    terminated: int = 0
    on_leave: int = 0
    employee_ids: list[str] = field(default_factory=list)

    @property
    def bad_rows_total(self) -> int:
        """Number of bad rows of all kinds."""
        return sum(self.bad_rows.values())

    def summary(self) -> dict[str, object]:
        """The counts, without the ids and record numbers, for printing."""
        return {
            "rows": self.rows,
            "bad_rows": dict(self.bad_rows),
            "bad_rows_total": self.bad_rows_total,
            "terminated": self.terminated,
            "on_leave": self.on_leave,
            "employee_ids": len(self.employee_ids),
        }


@dataclass(slots=True)
class _Person:
    """One employee as the generator builds it, before it becomes a CSV row."""

    employee_id: str
    first_name: str
    last_name: str
    preferred_name: str
    email: str
    department: str
    title: str
    level: int
    manager_id: str
    location: str
    status: str
    hire_date: str
    termination_date: str

    def cells(self) -> list[str]:
        """The row's cells, in header order."""
        return [
            self.employee_id,
            self.first_name,
            self.last_name,
            self.preferred_name,
            self.email,
            self.department,
            self.title,
            str(self.level),
            self.manager_id,
            self.location,
            self.status,
            self.hire_date,
            self.termination_date,
        ]


def _weighted_table(weights: dict[T, int]) -> tuple[T, ...]:
    """Expand weights into a table where a uniform pick follows the weights."""
    return tuple(key for key, weight in weights.items() for _ in range(weight))


def _day_first(ordinal: int) -> str:
    """Format a proleptic Gregorian ordinal as ``%d-%m-%Y``."""
    day = date.fromordinal(ordinal)
    return f"{day.day:02d}-{day.month:02d}-{day.year:04d}"


def _email_part(name: str) -> str:
    """Fold a name to the lowercase ASCII used in email local parts."""
    folded = unicodedata.normalize("NFKD", name.lower().translate(ASCII_LETTERS))
    return "".join(
        char for char in folded if char.isascii() and (char.isalnum() or char == "-")
    )


class _RosterGenerator:
    """Builds rows one at a time from a seeded random source, in bounded memory.

    Memory grows only with the name pools (email collision counters), the manager
    pools (capped) and the positions of bad rows, never with rows already written.
    """

    def __init__(self, rows: int, seed: int, bad_rows: bool) -> None:
        self.rng = random.Random(seed)
        self.rows = rows
        self.departments = _weighted_table(DEPARTMENT_WEIGHTS)
        self.levels = _weighted_table(LEVEL_WEIGHTS)
        self.locations = _weighted_table(LOCATION_WEIGHTS)
        self.email_parts = {
            name: _email_part(name) for name in FIRST_NAMES + LAST_NAMES
        }
        self.email_uses: dict[str, int] = {}
        self.managers: dict[str, list[str]] = {name: [] for name in DEPARTMENT_WEIGHTS}
        self.top_ids: list[str] = []
        self.recent: deque[_Person] = deque(maxlen=50)

        # Gaps in the numbering (deleted test workers) have a budget so the width of
        # the zero-padded id can be fixed before the first row.
        self.gap_budget = rows // 50
        self.id_width = max(6, len(str(rows + self.gap_budget)))
        self.next_number = 1

        self.bad_positions = self._place_bad_rows() if bad_rows else {}
        self.multiline_at = rows // 3

    def _place_bad_rows(self) -> dict[int, str]:
        """Choose which row positions are bad and of which kind, each kind alike."""
        if self.rows < MIN_ROWS_FOR_BAD_ROWS:
            return {}
        count = max(len(BAD_ROW_KINDS), round(self.rows * BAD_ROW_SHARE))
        # Duplicates need earlier good rows to copy, so bad rows never come first.
        positions = sorted(self.rng.sample(range(10, self.rows), count))
        kinds = list(BAD_ROW_KINDS)
        self.rng.shuffle(kinds)
        return {pos: kinds[n % len(kinds)] for n, pos in enumerate(positions)}

    def _pick(self, choices: Sequence[T]) -> T:
        """A uniform pick; ``random.choice`` is several times slower per call."""
        return choices[int(self.rng.random() * len(choices))]

    def _between(self, low: int, high: int) -> int:
        """A uniform integer from ``low`` to ``high``, both included."""
        return low + int(self.rng.random() * (high - low + 1))

    def _new_id(self) -> str:
        """Allocate the next Employee ID, now and then skipping a number."""
        if self.gap_budget and self.rng.random() < 0.015:
            self.gap_budget -= 1
            self.next_number += 1
        number = self.next_number
        self.next_number += 1
        return str(number).zfill(self.id_width)

    def _email(self, first: str, last: str) -> str:
        """A unique work email for a name, numbered on collision, ~15% mixed case."""
        local_first, local_last = self.email_parts[first], self.email_parts[last]
        base = f"{local_first}.{local_last}"
        uses = self.email_uses.get(base, 0) + 1
        self.email_uses[base] = uses
        suffix = str(uses) if uses > 1 else ""
        if self.rng.random() < 0.15:
            capitalized = f"{local_first.title()}.{local_last.title()}"
            return f"{capitalized}{suffix}@{MIXED_CASE_DOMAIN}"
        return f"{base}{suffix}@{DOMAIN}"

    def _preferred_name(self, first: str) -> str:
        """Mostly the first name, sometimes a nickname, sometimes left empty."""
        draw = self.rng.random()
        if draw < 0.25:
            return ""
        nicknames = NICKNAMES.get(first)
        if nicknames and draw < 0.55:
            return self._pick(nicknames)
        return first

    def _hire_ordinal(self, position: int) -> int:
        """A hire date that grows with the id, with more hires in recent years."""
        start, end = FIRST_HIRE.toordinal(), EXPORT_DATE.toordinal() - 14
        progress = ((position + 1) / self.rows) ** 0.5
        ordinal = start + int((end - start) * progress) + self._between(-20, 20)
        return min(max(ordinal, start), end)

    def _title(self, department: str, level: int) -> str:
        """A job title fitting the department and level, rarely on two lines."""
        band = 0 if level <= 2 else 1 if level <= 4 else 2 if level == 5 else 3
        multiline = MULTILINE_TITLES.get(department)
        if multiline and 3 <= level <= 5 and self.rng.random() < NEWLINE_TITLE_SHARE:
            return multiline
        return self._pick(TITLES[department][band])

    def _manager(self, department: str) -> str:
        """An earlier, still employed senior person, from the same department if any."""
        pool = self.managers[department] or self.top_ids
        return self._pick(pool) if pool else ""

    def _remember_manager(self, person: _Person) -> None:
        """Make a senior, still employed person available as a later manager."""
        if person.level < 4 or person.status == "Terminated":
            return
        pool = self.managers[person.department]
        if len(pool) < MANAGER_POOL_SIZE:
            pool.append(person.employee_id)
        else:
            pool[self._between(0, MANAGER_POOL_SIZE - 1)] = person.employee_id

    def _status(self, hire: int) -> tuple[str, str]:
        """Employment status and, for leavers, a termination date after the hire."""
        draw = self.rng.random()
        last_day = EXPORT_DATE.toordinal() - 1
        if draw < 0.05 and hire + 30 <= last_day:
            return "Terminated", _day_first(self._between(hire + 30, last_day))
        if draw < 0.07:
            return "On Leave", ""
        return "Active", ""

    def person(self, position: int, employee_id: str) -> _Person:
        """A plausible employee at this position in the file."""
        first, last = self._pick(FIRST_NAMES), self._pick(LAST_NAMES)
        department = self._pick(self.departments)
        level = self._pick(self.levels)
        hire = self._hire_ordinal(position)
        status, termination = self._status(hire)
        return _Person(
            employee_id=employee_id,
            first_name=first,
            last_name=last,
            preferred_name=self._preferred_name(first),
            email=self._email(first, last),
            department=department,
            title=self._title(department, level),
            level=level,
            manager_id=self._manager(department),
            location=self._pick(self.locations),
            status=status,
            hire_date=_day_first(hire),
            termination_date=termination,
        )

    def good_row(self, position: int) -> _Person:
        """A valid row; the first few are top people with no manager."""
        person = self.person(position, self._new_id())
        if position < len(TOP_TITLES):
            person.manager_id, person.level = "", 7
            person.status, person.termination_date = "Active", ""
            person.department, person.title = TOP_TITLES[position]
            self.top_ids.append(person.employee_id)
        if position >= self.multiline_at and self.multiline_at >= 0:
            # At least one file-wide line break inside a quoted cell, whatever the seed.
            person.department, person.level = "Analytics", 5
            person.title = MULTILINE_TITLES["Analytics"]
            self.multiline_at = -1
        self._remember_manager(person)
        self.recent.append(person)
        return person

    def bad_row(self, position: int, kind: str) -> list[str]:
        """An active row with exactly one defect, of the given kind."""
        person = self.person(position, "")
        person.status, person.termination_date = "Active", ""
        if kind != MISSING_EMPLOYEE_ID and kind != DUPLICATE_EMPLOYEE_ID:
            person.employee_id = self._new_id()
        if kind == INVALID_EMAIL:
            person.email = person.email.split("@")[0].lower() + "@"
        elif kind == UNPARSEABLE_HIRE_DATE:
            day, month = self._between(13, 31), self._between(13, 31)
            person.hire_date = f"{day:02d}-{month:02d}-{self._between(2012, 2025)}"
        elif kind == DUPLICATE_EMPLOYEE_ID:
            # Same id as an earlier employee, but another person with another email.
            person.employee_id = self._pick(self.recent).employee_id
        elif kind == DUPLICATE_EMAIL:
            # Looks like a rehire under a new id that kept the old address.
            earlier = self._pick(self.recent)
            person.first_name, person.last_name = earlier.first_name, earlier.last_name
            person.preferred_name = earlier.preferred_name
            person.email = earlier.email
        cells = person.cells()
        if kind == TOO_MANY_CELLS:
            # A comma in an unquoted job title splits it across two cells.
            cells[6:7] = ["Manager", f" {person.department}"]
        return cells


def write_export(
    path: Path, rows: int, seed: int = 7, bad_rows: bool = True
) -> ExportFacts:
    """Write an invented HRIS export of ``rows`` data rows to ``path``, streaming.

    Creates missing parent folders. The file is written beside ``path`` under a
    hidden ``.part`` name and renamed into place when complete, so a watcher never
    sees half a file. Rows are not kept; only ``ExportFacts.employee_ids`` grows with
    ``rows`` (about 70 MB for a million). Employee IDs have six digits, seven from
    about 980,000 rows on. Raises ``ValueError`` if ``rows`` is negative and ``OSError``
    if the file cannot be written.
    """
    if rows < 0:
        raise ValueError(f"rows must be zero or more, got {rows}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.part")
    generator = _RosterGenerator(rows, seed, bad_rows)
    facts = ExportFacts()
    try:
        with partial.open(
            "w", encoding="utf-8-sig", newline="", buffering=1 << 20
        ) as out:
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow(HEADER)
            for position in range(rows):
                writer.writerow(_next_row(generator, position, facts))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return facts


def _next_row(
    generator: _RosterGenerator, position: int, facts: ExportFacts
) -> list[str]:
    """Build the row at ``position`` and record it in ``facts``."""
    facts.rows += 1
    kind = generator.bad_positions.get(position)
    if kind is None:
        person = generator.good_row(position)
        facts.employee_ids.append(person.employee_id)
        facts.terminated += person.status == "Terminated"
        facts.on_leave += person.status == "On Leave"
        return person.cells()

    cells = generator.bad_row(position, kind)
    facts.bad_rows[kind] += 1
    facts.bad_records[kind].append(position + 1)
    if kind not in (MISSING_EMPLOYEE_ID, DUPLICATE_EMPLOYEE_ID):
        facts.employee_ids.append(cells[0])
    return cells


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry: write the export and print its facts as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="CSV file to write")
    parser.add_argument("--rows", type=int, default=2000, help="data rows (2000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (7)")
    parser.add_argument(
        "--no-bad-rows", action="store_true", help="write only valid rows"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    facts = write_export(
        args.out, args.rows, seed=args.seed, bad_rows=not args.no_bad_rows
    )
    summary = facts.summary()
    summary["seconds"] = round(time.perf_counter() - started, 3)
    json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
