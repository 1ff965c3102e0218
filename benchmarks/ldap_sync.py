"""Directory roster sync against a real OpenLDAP, with a raw ldap3 floor from the
same run.

    python benchmarks/ldap_sync.py [--people 50000]

Starts its own slapd (``examples/example_directory.py``; Debian's ``slapd``
package), loads ``--people`` invented people with their groups, then measures,
each phase in its own process so that each peak RSS is its own:

- raw: an ldap3 paged search of the same entries, same attributes and page size;
- plan: a full read, map and plan of the example job (a dry run);
- full: a real full run (applied to SQLite), which leaves the cursor;
- delta: a real run after 1% of the people changed.

The last line of output is one JSON object with every figure; ``read_ratio`` is
plan / raw (target within 1.5), ``delta_entries_read`` must equal
``changed_entries``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
sys.path.insert(0, str(REPO / "src"))

import example_directory as directory  # noqa: E402
from phases import peak_rss_mb, run_phase  # noqa: E402

JOB = "example-directory-roster"
SECRET = "EXAMPLE_DIRECTORY_PASSWORD"


def _source_config(root: Path) -> Any:
    from microcred_sync.project import load_project
    from microcred_sync.settings import Settings

    project = load_project(Settings(root=root))
    return project.connectors[project.job(JOB).source or ""]


# -- phases, each run in a child process ---------------------------------------


def phase_raw(root: Path) -> dict[str, Any]:
    """ldap3's own paged search of the people, nothing done with the entries."""
    from ldap3 import NONE, Connection, Server

    config = _source_config(root)
    source = config.open_source("bench", root)
    attributes = source._attributes()
    started = time.perf_counter()
    connection = Connection(
        Server(config.servers[0], get_info=NONE),
        config.bind_dn,
        os.environ[SECRET],
        auto_bind=True,
        raise_exceptions=True,
    )
    entries = 0
    for base in config.base_dns:
        for _entry in connection.extend.standard.paged_search(
            base,
            config.people_filter,
            attributes=attributes,
            paged_size=config.page_size,
            generator=True,
        ):
            entries += 1
    connection.unbind()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "entries": entries, "peak_rss_mb": peak_rss_mb()}


def _run(root: Path, dry_run: bool) -> dict[str, Any]:
    from microcred_sync.project import load_project
    from microcred_sync.settings import Settings
    from microcred_sync.sync.roster import RunOptions, run_roster

    project = load_project(Settings(root=root))
    started = time.perf_counter()
    outcome = run_roster(
        project, JOB, RunOptions(dry_run=dry_run, allow_mass_deprovision=True)
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "read": outcome.stats.read,
        "status": outcome.status,
        "error": outcome.error,
        "counts": outcome.stats.counts.by_kind,
        "writes": outcome.platform_writes,
        "peak_rss_mb": peak_rss_mb(),
    }


def phase_plan(root: Path) -> dict[str, Any]:
    """Read, map and plan every person: a dry run, nothing written."""
    return _run(root, dry_run=True)


def phase_run(root: Path) -> dict[str, Any]:
    """A real run: full the first time, delta once the cursor is saved."""
    return _run(root, dry_run=False)


PHASES = {"raw": phase_raw, "plan": phase_plan, "run": phase_run}


# -- the driver ------------------------------------------------------------------


def _child(phase: str, root: Path) -> dict[str, Any]:
    return run_phase(__file__, phase, root)


def _project(work: Path, url: str) -> Path:
    import yaml

    root = work / "project"
    for folder in ("config", "connectors", "mappings", "scheduler"):
        shutil.copytree(REPO / folder, root / folder)
    path = root / "connectors" / "example-directory.yaml"
    content = yaml.safe_load(path.read_text(encoding="utf-8"))
    content["servers"] = [url]
    path.write_text(yaml.safe_dump(content, allow_unicode=True), encoding="utf-8")
    return root


def _change_one_percent(url: str, people: int) -> int:
    """Give every 100th person (1, 101, 201, ...: none of them disabled) a new
    surname, over LDAP."""
    from ldap3 import MODIFY_REPLACE, Connection, Server

    connection = Connection(
        Server(url),
        directory.ADMIN_DN,
        directory.PASSWORD,
        auto_bind=True,
        raise_exceptions=True,
    )
    changed = 0
    for number in range(1, people + 1, 100):
        connection.modify(
            directory.person_dn(number), {"sn": [(MODIFY_REPLACE, ["Changed"])]}
        )
        changed += 1
    connection.unbind()
    return changed


def drive(people: int) -> dict[str, Any]:
    os.environ[SECRET] = directory.PASSWORD
    with tempfile.TemporaryDirectory(prefix="ldap-bench-", dir="/var/tmp") as folder:
        work = Path(folder)
        slapd = directory.Slapd(work / "slapd")
        started = time.perf_counter()
        slapd.load(directory.people_ldif(people))
        load_seconds = time.perf_counter() - started
        slapd.start()
        try:
            root = _project(work, slapd.url)
            raw = _child("raw", root)
            plan = _child("plan", root)
            full = _child("run", root)
            changed = _change_one_percent(slapd.url, people)
            delta = _child("run", root)
        finally:
            slapd.stop()
    return {
        "people": people,
        "slapadd_seconds": round(load_seconds, 2),
        "raw_entries": raw["entries"],
        "raw_entries_per_s": round(raw["entries"] / raw["seconds"], 1),
        "plan_entries": plan["read"],
        "plan_entries_per_s": round(plan["read"] / plan["seconds"], 1),
        "read_ratio": round(plan["seconds"] / raw["seconds"], 2),
        "full_run_status": full["status"],
        "full_run_entries_per_s": round(full["read"] / full["seconds"], 1),
        "full_run_writes": full["writes"],
        "changed_entries": changed,
        "delta_status": delta["status"],
        "delta_entries_read": delta["read"],
        "delta_seconds": round(delta["seconds"], 2),
        "delta_writes": delta["writes"],
        "plan_peak_rss_mb": round(plan["peak_rss_mb"], 1),
        "peak_rss_mb": round(
            max(plan["peak_rss_mb"], full["peak_rss_mb"], delta["peak_rss_mb"]), 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--phase", choices=sorted(PHASES))
    parser.add_argument("--root", type=Path)
    arguments = parser.parse_args()
    if arguments.phase:
        print(json.dumps(PHASES[arguments.phase](arguments.root)))
        return
    if not directory.installed():
        raise SystemExit("slapd is not installed (scripts/test.sh installs it)")
    report = drive(arguments.people)
    for name, value in report.items():
        print(f"{name:>24}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
