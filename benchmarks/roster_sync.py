"""Roster sync throughput, platform writes and memory, against floors from the same run.

    python benchmarks/roster_sync.py [--rows 100000] [--million-rows 1000000]

Builds an HRIS export, then measures, each phase in its own process so that each
peak RSS is its own:

- floor: parsing the CSV and bulk-inserting the same rows with SQLAlchemy Core;
- parse-and-hash floor: parsing the CSV and hashing every row;
- same writes: parsing the CSV and bulk-inserting, with SQLAlchemy Core, every row
  the full sync wrote into empty databases of the same schema (what the writes
  that the design asks for cost by themselves; not a target);
- full sync into empty databases, a no-change re-sync, and a 1%-change re-sync;
- a full sync of ``--million-rows`` rows (0 to skip), for its peak RSS.

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
sys.path.insert(0, str(REPO / "src"))

from phases import peak_rss_mb, run_phase  # noqa: E402

JOB = "example-corp-roster"


# -- phases, each run in a child process ---------------------------------------


def phase_floor(root: Path) -> dict[str, Any]:
    """Parse the export and bulk-insert every row with SQLAlchemy Core."""
    from sqlalchemy import Column, MetaData, String, Table

    from microcred_sync.sqlutil import make_engine

    export = next((root / "inbox").glob("*.csv"))
    engine = make_engine(f"sqlite:///{root / 'floor.db'}")
    started = time.perf_counter()
    with export.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        table = Table(
            "roster", MetaData(), *[Column(f"c{i}", String) for i in range(len(header))]
        )
        table.metadata.create_all(engine)
        rows = 0
        with engine.begin() as connection:
            batch: list[dict[str, str]] = []
            for cells in reader:
                batch.append(
                    {
                        f"c{i}": cell.strip()
                        for i, cell in enumerate(cells[: len(header)])
                    }
                )
                if len(batch) == 1000:
                    connection.execute(table.insert(), batch)
                    rows += len(batch)
                    batch = []
            if batch:
                connection.execute(table.insert(), batch)
                rows += len(batch)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": peak_rss_mb()}


def phase_same_writes(root: Path) -> dict[str, Any]:
    """Parse the export, then bulk-insert with SQLAlchemy Core every row the full
    sync wrote (learners, enrollments, audit, snapshots...) into empty databases of
    the same schema, indexes included: what the sync's writes cost by themselves.
    Not a target of the issue; it says how much of the full sync is its writes."""
    from sqlalchemy import MetaData, select

    from microcred_sync.platform.tables import metadata as platform_metadata
    from microcred_sync.sqlutil import make_engine
    from microcred_sync.state.tables import metadata as state_metadata

    export = next((root / "inbox").glob("*.csv"))
    written: list[tuple[str, MetaData, dict[str, list[dict[str, Any]]]]] = []
    for name, metadata in (("platform", platform_metadata), ("state", state_metadata)):
        engine = make_engine(f"sqlite:///{root / 'var' / f'{name}.db'}")
        rows: dict[str, list[dict[str, Any]]] = {}
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                result = connection.execute(select(table))
                found = [dict(row._mapping) for row in result]
                if found:
                    rows[table.name] = found
        engine.dispose()
        written.append((name, metadata, rows))
    total = sum(len(found) for _, _, rows in written for found in rows.values())
    engines = {}
    for name, metadata, _ in written:
        engines[name] = make_engine(f"sqlite:///{root / f'same-{name}.db'}")
        metadata.create_all(engines[name])
    started = time.perf_counter()
    with export.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        parsed = sum(1 for cells in reader if dict(zip(header, cells, strict=False)))
    for name, metadata, rows in written:
        for table in metadata.sorted_tables:
            found = rows.get(table.name, [])
            for start in range(0, len(found), 5000):
                with engines[name].begin() as connection:
                    connection.execute(table.insert(), found[start : start + 5000])
    seconds = time.perf_counter() - started
    for engine in engines.values():
        engine.dispose()
    return {
        "seconds": seconds,
        "rows": parsed,
        "rows_written": total,
        "peak_rss_mb": peak_rss_mb(),
    }


def phase_parse_hash(root: Path) -> dict[str, Any]:
    """Parse the export into trimmed rows by column and hash each one: the least a
    no-change re-sync must do, with the same hash the planner uses."""
    export = next((root / "inbox").glob("*.csv"))
    started = time.perf_counter()
    rows = 0
    with export.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        for cells in reader:
            fields = dict(zip(header, map(str.strip, cells), strict=False))
            hashlib.blake2b(repr(fields).encode(), digest_size=16, key=b"k").hexdigest()
            rows += 1
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": peak_rss_mb()}


def phase_sync(root: Path) -> dict[str, Any]:
    """One roster run of the example job, through the library."""
    from microcred_sync.project import load_project
    from microcred_sync.settings import Settings
    from microcred_sync.sync.roster import RunOptions, run_roster

    project = load_project(Settings(root=root))
    started = time.perf_counter()
    outcome = run_roster(project, JOB, RunOptions(allow_mass_deprovision=True))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": outcome.stats.read,
        "status": outcome.status,
        "writes": outcome.platform_writes,
        "counts": outcome.stats.counts.by_kind,
        "peak_rss_mb": peak_rss_mb(),
    }


PHASES = {
    "floor": phase_floor,
    "parse_hash": phase_parse_hash,
    "same_writes": phase_same_writes,
    "sync": phase_sync,
}


# -- the driver ------------------------------------------------------------------


def _child(phase: str, root: Path) -> dict[str, Any]:
    return run_phase(__file__, phase, root)


def _project(work: Path, rows: int, name: str) -> Path:
    from make_hris_export import write_export

    root = work / name
    for folder in ("config", "connectors", "mappings", "scheduler"):
        shutil.copytree(REPO / folder, root / folder)
    connector = root / "connectors" / "example-corp-hris.yaml"
    connector.write_text(
        connector.read_text(encoding="utf-8").replace(
            "examples/example-corp/inbox/hris-export-*.csv", "inbox/*.csv"
        ),
        encoding="utf-8",
    )
    (root / "inbox").mkdir()
    write_export(root / "inbox" / "hris-export.csv", rows, seed=11, bad_rows=False)
    return root


def _change_one_percent(root: Path) -> int:
    """Rewrite the export with every 100th employee's job title changed."""
    export = root / "inbox" / "hris-export.csv"
    changed_path = export.with_suffix(".tmp")
    changed = 0
    with (
        export.open(encoding="utf-8-sig", newline="") as source,
        changed_path.open("w", encoding="utf-8-sig", newline="") as target,
    ):
        reader, writer = csv.reader(source), csv.writer(target, lineterminator="\r\n")
        header = next(reader)
        writer.writerow(header)
        title = header.index("Job Title")
        for number, cells in enumerate(reader):
            if number % 100 == 0:
                cells[title] = cells[title] + " II"
                changed += 1
            writer.writerow(cells)
    changed_path.replace(export)
    return changed


def _rate(figures: dict[str, Any]) -> float:
    return round(figures["rows"] / figures["seconds"], 1)


def drive(rows: int, million_rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="roster-bench-") as folder:
        work = Path(folder)
        root = _project(work, rows, "main")
        floor = _child("floor", root)
        parse_hash = _child("parse_hash", root)
        full = _child("sync", root)
        same_writes = _child("same_writes", root)
        nochange = _child("sync", root)
        changed_rows = _change_one_percent(root)
        change = _child("sync", root)
        million: dict[str, Any] | None = None
        if million_rows:
            shutil.rmtree(root)
            big = _project(work, million_rows, "million")
            million = _child("sync", big)
    report: dict[str, Any] = {
        "rows": rows,
        "floor_rows_per_s": _rate(floor),
        "parse_hash_rows_per_s": _rate(parse_hash),
        "full_sync_rows_per_s": _rate(full),
        "full_sync_ratio": round(full["seconds"] / floor["seconds"], 2),
        "full_sync_writes": full["writes"],
        "same_writes_rows": same_writes["rows_written"],
        "same_writes_ratio": round(same_writes["seconds"] / floor["seconds"], 2),
        "full_sync_vs_same_writes": round(full["seconds"] / same_writes["seconds"], 2),
        "nochange_rows_per_s": _rate(nochange),
        "nochange_ratio": round(nochange["seconds"] / parse_hash["seconds"], 2),
        "nochange_writes": nochange["writes"],
        "change_rows": changed_rows,
        "change_rows_per_s": _rate(change),
        "change_ratio": round(change["seconds"] / parse_hash["seconds"], 2),
        "change_writes": change["writes"],
        "full_sync_peak_rss_mb": round(full["peak_rss_mb"], 1),
        "nochange_peak_rss_mb": round(nochange["peak_rss_mb"], 1),
        "peak_rss_mb": round(
            max(full["peak_rss_mb"], nochange["peak_rss_mb"], change["peak_rss_mb"]), 1
        ),
    }
    if million is not None:
        report["million_rows"] = million_rows
        report["million_rows_per_s"] = _rate(million)
        report["million_peak_rss_mb"] = round(million["peak_rss_mb"], 1)
        report["peak_rss_mb"] = max(
            report["peak_rss_mb"], report["million_peak_rss_mb"]
        )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--million-rows", type=int, default=1_000_000)
    parser.add_argument("--phase", choices=sorted(PHASES))
    parser.add_argument("--root", type=Path)
    arguments = parser.parse_args()
    if arguments.phase:
        print(json.dumps(PHASES[arguments.phase](arguments.root)))
        return
    report = drive(arguments.rows, arguments.million_rows)
    for name, value in report.items():
        print(f"{name:>24}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
