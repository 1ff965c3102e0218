"""The http source's read against a local JSON API, with a requests-only floor from
the same run.

    python benchmarks/http_source.py [--records 100000] [--pages 1000] [--rounds 3]

Starts its own server in a child process (``--phase serve``): ``--records``
invented employees over ``--pages`` pages, each page's JSON made once up front,
the next page's URL in the body (``links.next``). Then, each in a child process
of its own, alternating for ``--rounds`` rounds (each side's best round counts):

- raw: a requests session fetching the same pages, each body decoded with
  ``Response.json()`` and the next link followed, nothing done with the records;
- read: the connector's read, as the roster flow reads it: every record
  flattened to text fields (a nested department, a list of groups, numbers and
  booleans), keyed and located.

The last line of output is one JSON object: ``read_ratio`` is read / raw (target
within 1.3), ``peak_rss_mb`` the read process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from phases import peak_rss_mb, run_phase  # noqa: E402

DEPARTMENTS = ["Analytics", "Engineering", "Sales", "Finance"]


def _employee(number: int) -> dict[str, Any]:
    return {
        "id": f"E{number:07d}",
        "firstName": f"Given{number}",
        "lastName": f"Family{number}",
        "workEmail": f"person{number}@example-corp.com",
        "department": {"id": number % 4, "name": DEPARTMENTS[number % 4]},
        "jobLevel": 1 + number % 7,
        "fte": 1.0 if number % 5 else 0.8,
        "active": number % 20 != 0,
        "hireDate": "2019-03-02",
        "groups": ["learners", f"site-{number % 3}"],
    }


def _pages(records: int, pages: int) -> list[bytes]:
    size = -(-records // pages)
    rendered = []
    for page in range(pages):
        start = page * size
        rows = [_employee(n) for n in range(start + 1, min(start + size, records) + 1)]
        following = f"/employees?page={page + 2}" if page + 1 < pages else None
        body = {"data": rows, "links": {"next": following}}
        rendered.append(json.dumps(body).encode())
    return rendered


def serve(records: int, pages: int, folder: Path) -> None:
    """Answer ``/employees?page=N`` until killed; the URL goes to server.json."""
    rendered = _pages(records, pages)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def setup(self) -> None:
            super().setup()
            # Headers and body leave in two writes: without this, delayed ACKs
            # add 40 ms to every page and the floor measures the wait.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            number = int(self.path.partition("page=")[2] or 1)
            body = rendered[number - 1]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}/employees"
    (folder / "server.json").write_text(json.dumps({"url": url}))
    server.serve_forever()


def _raw(url: str) -> dict[str, Any]:
    import requests

    session = requests.Session()
    started = time.perf_counter()
    count, pages, link = 0, 0, url
    while link:
        body = session.get(link, timeout=(10, 60)).json()
        pages += 1
        count += sum(1 for _ in body["data"])
        following = body["links"]["next"]
        link = requests.compat.urljoin(link, following) if following else None
    return {"seconds": time.perf_counter() - started, "records": count, "pages": pages}


def _read(url: str) -> dict[str, Any]:
    from microcred_sync.connectors.http import HttpConnector, HttpSource

    config = HttpConnector.model_validate(
        {
            "kind": "http",
            "partner": "example-corp",
            "url": url,
            "records": "data",
            "key": "id",
            "pagination": {"style": "next_link", "path": "links.next"},
        }
    )
    source = HttpSource("bench", REPO, config)
    started = time.perf_counter()
    count = problems = 0
    for record in source.read():
        count += 1
        problems += record.problem is not None
    return {
        "seconds": time.perf_counter() - started,
        "records": count,
        "problems": problems,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def _phase(phase: str, root: Path) -> None:
    url = json.loads((root / "server.json").read_text())["url"]
    figures = _raw(url) if phase == "raw" else _read(url)
    print(json.dumps(figures))


def drive(records: int, pages: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="http-bench-") as name:
        folder = Path(name)
        command = [
            sys.executable,
            __file__,
            "--phase",
            "serve",
            "--root",
            str(folder),
            "--records",
            str(records),
            "--pages",
            str(pages),
        ]
        child = subprocess.Popen(command)
        try:
            for _ in range(600):
                if (folder / "server.json").exists():
                    break
                time.sleep(0.1)
            else:
                raise SystemExit("the benchmark's server did not start")
            raw: list[dict[str, Any]] = []
            read: list[dict[str, Any]] = []
            for _ in range(rounds):
                raw.append(run_phase(__file__, "raw", folder))
                read.append(run_phase(__file__, "read", folder))
        finally:
            child.terminate()
            child.wait(timeout=10)
    best_raw = min(raw, key=lambda figures: figures["seconds"])
    best_read = min(read, key=lambda figures: figures["seconds"])
    return {
        "records": records,
        "pages": best_raw["pages"],
        "raw_records": best_raw["records"],
        "read_records": best_read["records"],
        "read_problems": best_read["problems"],
        "raw_seconds": round(best_raw["seconds"], 3),
        "read_seconds": round(best_read["seconds"], 3),
        "read_records_per_s": round(best_read["records"] / best_read["seconds"], 1),
        "read_ratio": round(best_read["seconds"] / best_raw["seconds"], 3),
        "read_ratio_target": 1.3,
        "peak_rss_mb": max(figures["peak_rss_mb"] for figures in read),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phase", choices=("serve", "raw", "read"))
    parser.add_argument("--root", type=Path)
    arguments = parser.parse_args()
    if arguments.phase == "serve":
        serve(arguments.records, arguments.pages, arguments.root)
        return
    if arguments.phase is not None:
        _phase(arguments.phase, arguments.root)
        return
    report = drive(arguments.records, arguments.pages, arguments.rounds)
    for name, value in report.items():
        print(f"{name}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
