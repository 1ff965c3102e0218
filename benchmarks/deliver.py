"""Delivery throughput to a real Ralph LRS: the outbox and deliver flow against a
raw batched POST of the same statements with requests, in the same run.

    python benchmarks/deliver.py [--statements 20000] [--batch-size 100] [--rounds 2]

Each side posts the same number of statements, with fresh ids, in batches of the
same size, into a fresh Ralph (its own process and folder, started like the tests
start it), so both do the same work; the sides alternate for ``--rounds`` rounds
and each side's best round is compared. Each phase runs in its own process so that
each peak RSS is its own:

- raw: ``requests.Session.post`` of ready-made JSON batches, nothing else;
- enqueue: the statements stored in the outbox (state store on SQLite);
- deliver: one deliver run (``run_deliver``) takes them out in batches, posts
  them and marks them delivered: ``throughput_ratio`` is its rate over raw's.

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

USER, PASSWORD = "bench", "bench-lrs-password"
SECRET = "BENCH_LRS_PASSWORD"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _statements(count: int, run: str) -> list[dict[str, Any]]:
    """``count`` valid xAPI 1.0.3 statements with ids of their own (``run``)."""
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"https://bench.example.org/{run}")
    return [
        {
            "id": str(uuid.uuid5(namespace, str(n))),
            "timestamp": "2026-03-29T00:30:00.123Z",
            "actor": {"objectType": "Agent", "mbox": f"mailto:l{n}@example.org"},
            "verb": {
                "id": "http://adlnet.gov/expapi/verbs/completed",
                "display": {"en-US": "completed"},
            },
            "object": {
                "objectType": "Activity",
                "id": f"https://courses.example.org/c{n % 50}",
                "definition": {
                    "name": {"en-US": "Data Analytics Foundations"},
                    "type": "http://adlnet.gov/expapi/activities/course",
                },
            },
        }
        for n in range(count)
    ]


# -- phases, each run in a child process ---------------------------------------


def phase_raw(endpoint: str, count: int, batch_size: int, root: Path) -> dict[str, Any]:
    """POST the statements in batches with a plain requests session."""
    import orjson
    import requests

    statements = _statements(count, "raw")
    bodies = [
        orjson.dumps(statements[start : start + batch_size])
        for start in range(0, count, batch_size)
    ]
    session = requests.Session()
    session.auth = (USER, PASSWORD)
    session.headers.update(
        {"X-Experience-API-Version": "1.0.3", "Content-Type": "application/json"}
    )
    started = time.perf_counter()
    for body in bodies:
        response = session.post(f"{endpoint}/statements", data=body, timeout=(5, 60))
        response.raise_for_status()
    seconds = time.perf_counter() - started
    session.close()
    return {"seconds": seconds, "statements": count, "peak_rss_mb": _peak_rss_mb()}


def phase_enqueue(
    endpoint: str, count: int, batch_size: int, root: Path
) -> dict[str, Any]:
    """Write the project files and enqueue the statements, 1,000 per call (as a
    results run would, batch by batch)."""
    import yaml

    from microcred_sync.outbox import NewDelivery, Outbox
    from microcred_sync.state.store import StateStore

    _project_files(root, endpoint, batch_size, yaml)
    store = StateStore(f"sqlite:///{root / 'var' / 'state.db'}")
    store.create_schema()
    outbox = Outbox(store.engine)
    started = time.perf_counter()
    statements = _statements(count, "outbox")
    for start in range(0, count, 1000):
        outbox.enqueue(
            NewDelivery(id=s["id"], partner="bench", sink="bench-lrs", payload=s)
            for s in statements[start : start + 1000]
        )
    seconds = time.perf_counter() - started
    store.close()
    return {"seconds": seconds, "statements": count, "peak_rss_mb": _peak_rss_mb()}


def phase_deliver(
    endpoint: str, count: int, batch_size: int, root: Path
) -> dict[str, Any]:
    """One deliver run of everything enqueued."""
    from microcred_sync.outbox.deliver import run_deliver
    from microcred_sync.project import load_project
    from microcred_sync.settings import Settings

    os.environ[SECRET] = PASSWORD
    project = load_project(Settings(root=root))
    started = time.perf_counter()
    outcome = run_deliver(project, "bench-deliver")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "statements": outcome.delivered,
        "status": outcome.status,
        "requests": outcome.requests,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _project_files(root: Path, endpoint: str, batch_size: int, yaml: Any) -> None:
    files = {
        "config/partners.yaml": {"partners": [{"id": "bench", "name": "Bench"}]},
        "connectors/bench-lrs.yaml": {
            "kind": "lrs",
            "partner": "bench",
            "endpoint": endpoint,
            "auth": {"type": "basic", "username": USER, "password_secret": SECRET},
            "batch_size": batch_size,
            "timeouts": {"connect": 5, "read": 60},
        },
        "scheduler/jobs.yaml": {
            "jobs": [
                {
                    "id": "bench-deliver",
                    "flow": "deliver",
                    "partner": "bench",
                    "sinks": ["bench-lrs"],
                }
            ]
        },
    }
    (root / "mappings").mkdir(parents=True)
    for name, document in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
    (root / "config" / "settings.toml").write_text(
        'state_url = "sqlite:///var/state.db"\nlog_level = "WARNING"\n',
        encoding="utf-8",
    )


PHASES = {"raw": phase_raw, "enqueue": phase_enqueue, "deliver": phase_deliver}


# -- the driver ------------------------------------------------------------------


def _child(
    phase: str, ralph: Any, count: int, batch_size: int, root: Path
) -> dict[str, Any]:
    """Run ``phase`` in a child process against ``ralph``."""
    command = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--endpoint",
        ralph.endpoint,
        "--statements",
        str(count),
        "--batch-size",
        str(batch_size),
        "--root",
        str(root),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{result.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def _fresh_ralph() -> Any:
    from tests.outbox.ralph_server import LrsUser, Ralph

    ralph = Ralph([LrsUser(USER, PASSWORD, "mailto:lrs-bench@example.org")])
    ralph.start()
    return ralph


def _round(count: int, batch_size: int, work: Path) -> dict[str, dict[str, Any]]:
    """One raw phase and one outbox phase, each into a fresh Ralph."""
    figures: dict[str, dict[str, Any]] = {}
    root = Path(tempfile.mkdtemp(prefix="round-", dir=work))
    ralph = _fresh_ralph()
    try:
        figures["raw"] = _child("raw", ralph, count, batch_size, root)
        figures["raw"]["stored"] = len(ralph.stored_lines(USER))
    finally:
        ralph.close()
    ralph = _fresh_ralph()
    try:
        figures["enqueue"] = _child("enqueue", ralph, count, batch_size, root)
        figures["deliver"] = _child("deliver", ralph, count, batch_size, root)
        figures["deliver"]["stored"] = len(ralph.stored_lines(USER))
    finally:
        ralph.close()
    for phase in ("raw", "deliver"):
        if figures[phase]["stored"] != count:
            raise SystemExit(f"{phase}: {figures[phase]['stored']} of {count} stored")
    return figures


def drive(count: int, batch_size: int, rounds: int) -> dict[str, Any]:
    """``rounds`` rounds of raw then outbox; each side's best round is compared
    (the LRS's own speed varies from one process to the next)."""
    from tests.outbox.ralph_server import Ralph

    if not Ralph.available():
        raise SystemExit(
            "Ralph's virtualenv .venv-ralph is missing: run scripts/test.sh"
        )
    with tempfile.TemporaryDirectory(prefix="deliver-bench-") as folder:
        results = [_round(count, batch_size, Path(folder)) for _ in range(rounds)]
    raw_rates = [count / r["raw"]["seconds"] for r in results]
    deliver_rates = [count / r["deliver"]["seconds"] for r in results]
    enqueue_rates = [count / r["enqueue"]["seconds"] for r in results]
    raw_rate, deliver_rate = max(raw_rates), max(deliver_rates)
    peak = max(
        max(r["enqueue"]["peak_rss_mb"], r["deliver"]["peak_rss_mb"]) for r in results
    )
    return {
        "statements": count,
        "batch_size": batch_size,
        "rounds": rounds,
        "raw_statements_per_s": round(raw_rate, 1),
        "outbox_statements_per_s": round(deliver_rate, 1),
        "throughput_ratio": round(deliver_rate / raw_rate, 3),
        "raw_rounds_per_s": [round(rate, 1) for rate in raw_rates],
        "outbox_rounds_per_s": [round(rate, 1) for rate in deliver_rates],
        "enqueue_statements_per_s": round(max(enqueue_rates), 1),
        "outbox_requests": results[0]["deliver"]["requests"],
        "raw_peak_rss_mb": round(max(r["raw"]["peak_rss_mb"] for r in results), 1),
        "enqueue_peak_rss_mb": round(
            max(r["enqueue"]["peak_rss_mb"] for r in results), 1
        ),
        "deliver_peak_rss_mb": round(
            max(r["deliver"]["peak_rss_mb"] for r in results), 1
        ),
        "peak_rss_mb": round(peak, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--phase", choices=sorted(PHASES))
    parser.add_argument("--endpoint")
    parser.add_argument("--root", type=Path)
    arguments = parser.parse_args()
    if arguments.phase:
        phase = PHASES[arguments.phase]
        figures = phase(
            arguments.endpoint,
            arguments.statements,
            arguments.batch_size,
            arguments.root,
        )
        print(json.dumps(figures))
        return
    report = drive(arguments.statements, arguments.batch_size, arguments.rounds)
    for name, value in report.items():
        print(f"{name:>26}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
