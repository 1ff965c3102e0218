"""Two daemon replicas against one run after another, on one PostgreSQL.

    python benchmarks/scheduler.py [--jobs 200] [--learners 1000] [--workers 1]
                                   [--rounds 3]

Builds a project of ``--jobs`` roster jobs, each for a partner of its own reading
an HRIS export of ``--learners`` rows, and starts a PostgreSQL of its own. Then, on
fresh databases each:

- serial: every job run once, one after the other, in one process (the floor);
- replicas: two `microcred-sync schedule` processes with ``--workers`` workers
  each, every job due at start; the time until every job has run once, each on
  one replica (the locks decide which), from the daemons' spawn. One worker by
  default: these runs are CPU-bound (local files into a database on the same
  machine), two replicas of one worker keep two cores busy, and more workers
  only add switching between them;
- idle: once all have run, the daemons' CPU use and resident memory while they
  wait for the next slot.

Both timed phases are measured from their process's spawn, start-up included, with
the CPU seconds of their processes and of the server's. They run ``--rounds`` times,
each round on fresh databases and in the other order than the round before;
``speedup`` is serial seconds over replica seconds in the round with the median
speedup (every round's is listed: on a shared machine one round may differ a lot),
whose figures are reported. The last line of output is one JSON object with every
figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
sys.path.insert(0, str(REPO / "src"))

from example_postgres import create_databases, drop_databases, throwaway_postgres  # noqa: E402
from phases import peak_rss_mb, run_phase  # noqa: E402

PARTNER_POLICY = """    guard: {max_suspend_share: 0.10, window_hours: 24}
    deprovision: {mode: suspend}
"""


# -- the project -----------------------------------------------------------------


def make_project(root: Path, jobs: int, learners: int) -> None:
    """The repository's files, plus ``jobs`` partners, connectors, exports, jobs."""
    from make_hris_export import write_export

    for folder in ("config", "connectors", "mappings"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "scheduler").mkdir()
    partners = (root / "config" / "partners.yaml").read_text(encoding="utf-8")
    entries, job_lines = [], ["jobs:"]
    for number in range(jobs):
        name = f"bench-{number:03d}"
        entries.append(
            f"  - id: {name}\n    name: Bench {number}\n"
            f"    home_page: https://{name}.example.org\n{PARTNER_POLICY}"
        )
        (root / "connectors" / f"{name}.yaml").write_text(
            f"kind: csv\npartner: {name}\npath: inbox/{name}/*.csv\n"
            "encoding: utf-8\ndelimiter: ','\n"
            "required_columns: [employee_id, work_email, employment_status]\n",
            encoding="utf-8",
        )
        write_export(
            root / "inbox" / name / "export.csv", learners, seed=number, bad_rows=False
        )
        job_lines += [
            f"  - id: {name}-roster",
            "    flow: roster",
            f"    partner: {name}",
            f"    source: {name}",
            "    mapping: example-corp-hris",
            "    schedule: {interval_minutes: 60}",
        ]
    (root / "config" / "partners.yaml").write_text(
        partners.rstrip("\n") + "\n" + "".join(entries), encoding="utf-8"
    )
    (root / "scheduler" / "jobs.yaml").write_text(
        "\n".join(job_lines) + "\n", encoding="utf-8"
    )


# -- phases ------------------------------------------------------------------------


def phase_serial(root: Path) -> dict[str, Any]:
    """Every job once, one after the other, in this process."""
    from microcred_sync.project import load_project
    from microcred_sync.settings import load_settings
    from microcred_sync.sqlutil import shared_engines
    from microcred_sync.sync.roster import run_roster

    started = time.perf_counter()
    project = load_project(load_settings(root))
    # The floor gets what the daemon's runs get: one engine per database.
    with shared_engines():
        statuses = [run_roster(project, job).status for job in project.jobs]
    if set(statuses) != {"done"}:
        raise SystemExit(f"serial runs did not all finish: {set(statuses)}")
    return {
        "seconds": time.perf_counter() - started,
        "runs": len(statuses),
        "peak_rss_mb": peak_rss_mb(),
    }


def _done_jobs(engine: Any) -> tuple[int, int]:
    """Jobs with a done run, and done runs in all."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT count(DISTINCT job), count(*) FROM runs "
                    "WHERE status = 'done'"
                )
            ).one()
    except SQLAlchemyError:
        return 0, 0  # the daemons have not created the tables yet
    return int(row[0]), int(row[1])


def replicas(
    root: Path, state_url: str, jobs: int, workers: int, idle: bool
) -> dict[str, Any]:
    """Two daemons until every job ran once; then, with ``idle``, their CPU use
    and memory while they wait."""
    import psutil
    from sqlalchemy import create_engine

    # One pooled connection asks, ten times a second: a new connection each time
    # would cost the server a process start, taken from the replicas' CPU.
    watcher = create_engine(state_url, pool_size=1)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env["MICROCRED_DAEMON"] = json.dumps({"workers": workers, "http_port": 0})
    command = [sys.executable, "-m", "microcred_sync", "--root", str(root), "schedule"]
    logs = [(root / f"replica-{n}.log").open("wb") for n in range(2)]
    server_before = server_cpu_seconds()
    started = time.perf_counter()
    daemons = [
        subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        for log in logs
    ]
    try:
        while (done := _done_jobs(watcher))[0] < jobs:
            if any(daemon.poll() is not None for daemon in daemons):
                raise SystemExit("a replica exited; see replica-*.log")
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        cpu = {
            "daemon_cpu_seconds": sum(
                sum(psutil.Process(daemon.pid).cpu_times()[:2]) for daemon in daemons
            ),
            "server_cpu_seconds": server_cpu_seconds() - server_before,
        }
        waiting = _idle(psutil, [daemon.pid for daemon in daemons]) if idle else {}
    finally:
        for daemon in daemons:
            daemon.send_signal(signal.SIGTERM)
        codes = [daemon.wait(timeout=60) for daemon in daemons]
        for log in logs:
            log.close()
        watcher.dispose()
    texts = [(root / f"replica-{n}.log").read_text() for n in range(2)]
    return {
        "seconds": seconds,
        "done_runs": done[1],
        "runs_by_replica": [text.count("] run done") for text in texts],
        "skipped_locked": sum(text.count(" skipped: ") for text in texts),
        "exit_codes": codes,
        **cpu,
        **waiting,
    }


def server_cpu_seconds() -> float:
    """CPU seconds PostgreSQL's processes have used so far: the live ones, and the
    ended backends their postmaster has reaped."""
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name", "username"]):
        if process.info["name"] != "postgres":
            continue
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _children_cpu_seconds() -> float:
    """CPU seconds of this process's ended children (the serial phase's process)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _idle(psutil: Any, pids: list[int], seconds: float = 20.0) -> dict[str, Any]:
    """CPU percent (of one core) and RSS of each daemon over ``seconds`` of waiting."""
    processes = [psutil.Process(pid) for pid in pids]
    time.sleep(2.0)  # the last runs' threads wind down
    before = [sum(p.cpu_times()[:2]) for p in processes]
    time.sleep(seconds)
    after = [sum(p.cpu_times()[:2]) for p in processes]
    cpu = [100 * (b - a) / seconds for a, b in zip(before, after, strict=True)]
    rss = [p.memory_info().rss / 2**20 for p in processes]
    return {
        "idle_cpu_percent": round(max(cpu), 3),
        "idle_rss_mb": round(max(rss), 1),
        "idle_cpu_percent_each": [round(value, 3) for value in cpu],
        "idle_rss_mb_each": [round(value, 1) for value in rss],
    }


# -- the whole -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phase", choices=["serial"])
    parser.add_argument("--root", type=Path)
    args = parser.parse_args()
    if args.phase == "serial":
        print(json.dumps(phase_serial(args.root)))
        return

    work = Path(tempfile.mkdtemp(prefix="microcred-bench-scheduler-"))
    root = work / "project"
    root.mkdir()
    try:
        make_project(root, args.jobs, args.learners)
        with throwaway_postgres() as server:
            figures = _measure(server, root, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures))


def _measure(server: str, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``--rounds`` rounds of both timed phases, each on fresh databases dropped
    after it, the phases' order swapped each round (so that a machine getting
    slower or faster during the benchmark favours neither); the idle figures
    after the last round."""
    rounds = []
    for number in range(1, args.rounds + 1):
        last = number == args.rounds
        phases = ["serial", "replicas"] if number % 2 else ["replicas", "serial"]
        figures: dict[str, Any] = {}
        for phase in phases:
            names = (f"state_{phase}_{number}", f"platform_{phase}_{number}")
            urls = create_databases(server, *names)
            os.environ["MICROCRED_STATE_URL"], os.environ["MICROCRED_PLATFORM_URL"] = (
                urls
            )
            if phase == "serial":
                figures["serial"] = _serial(root)
            else:
                figures["replicas"] = replicas(
                    root, urls[0], args.jobs, args.workers, idle=last
                )
            # Gone before the next phase: its autovacuum and dirty pages would
            # otherwise run on the next phase's time.
            drop_databases(server, *names)
        serial, two = figures["serial"], figures["replicas"]
        speedup = serial["seconds"] / two["seconds"]
        print(
            f"round {number}: serial {serial['seconds']:.1f} s, replicas "
            f"{two['seconds']:.1f} s (by replica {two['runs_by_replica']}), "
            f"speedup {speedup:.3f}",
            flush=True,
        )
        rounds.append({"serial": serial, "replicas": two, "speedup": speedup})
    return _summary(rounds, args)


def _serial(root: Path) -> dict[str, Any]:
    """The serial phase in a process of its own, with its CPU and the server's."""
    server_before = server_cpu_seconds()
    children_before = _children_cpu_seconds()
    started = time.perf_counter()
    figures = run_phase(__file__, "serial", root)
    return {
        "seconds": time.perf_counter() - started,
        "in_process_seconds": figures["seconds"],
        "peak_rss_mb": figures["peak_rss_mb"],
        "cpu_seconds": _children_cpu_seconds() - children_before,
        "server_cpu_seconds": server_cpu_seconds() - server_before,
    }


def _summary(rounds: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The round with the median speedup gives the figures; every round's speedup
    and seconds are listed beside them."""
    middle = sorted(rounds, key=lambda one: one["speedup"])[len(rounds) // 2]
    serial, two = middle["serial"], middle["replicas"]
    last = rounds[-1]["replicas"]
    return {
        "jobs": args.jobs,
        "learners_per_job": args.learners,
        "workers_per_replica": args.workers,
        "rounds": len(rounds),
        "speedup": round(middle["speedup"], 3),
        "speedups": [round(one["speedup"], 3) for one in rounds],
        "serial_seconds": round(serial["seconds"], 2),
        "replicas_seconds": round(two["seconds"], 2),
        "serial_seconds_each": [round(one["serial"]["seconds"], 2) for one in rounds],
        "replicas_seconds_each": [
            round(one["replicas"]["seconds"], 2) for one in rounds
        ],
        "serial_in_process_seconds": round(serial["in_process_seconds"], 2),
        "serial_peak_rss_mb": round(serial["peak_rss_mb"], 1),
        "serial_cpu_seconds": round(serial["cpu_seconds"], 2),
        "serial_server_cpu_seconds": round(serial["server_cpu_seconds"], 2),
        "replicas_cpu_seconds": round(two["daemon_cpu_seconds"], 2),
        "replicas_server_cpu_seconds": round(two["server_cpu_seconds"], 2),
        "done_runs": two["done_runs"],
        "runs_by_replica": two["runs_by_replica"],
        "skipped_locked": two["skipped_locked"],
        "replica_exit_codes": sorted(
            {code for one in rounds for code in one["replicas"]["exit_codes"]}
        ),
        "idle_cpu_percent": last["idle_cpu_percent"],
        "idle_rss_mb": last["idle_rss_mb"],
        "idle_cpu_percent_each": last["idle_cpu_percent_each"],
        "idle_rss_mb_each": last["idle_rss_mb_each"],
    }


if __name__ == "__main__":
    main()
