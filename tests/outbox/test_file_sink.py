"""The `file` sink: JSON lines, appended and fsync'd, each statement once across
runs, a line cut by a crash repaired."""

from __future__ import annotations

from pathlib import Path

import orjson

from .conftest import SinkProject
from .statements import deliveries, statement

ACTIVITY = "https://courses.example.org/c101"


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_statements_are_written_once_as_json_lines(sink_project: SinkProject) -> None:
    """One line per statement; a rerun with the same and new entries adds only
    the new ones."""
    sink_project.file_sink(
        "acme-file", "acme", "var/statements/acme.jsonl", batch_size=3
    )
    path = sink_project.root / "var" / "statements" / "acme.jsonl"
    box = sink_project.outbox()
    first = [statement(ACTIVITY, n) for n in range(7)]
    box.enqueue(deliveries("acme", "acme-file", first))

    outcome = sink_project.deliver("acme-file-deliver")

    assert (outcome.status, outcome.delivered, outcome.taken) == ("done", 7, 7)
    assert [line["id"] for line in _lines(path)] == [s["id"] for s in first]
    box.enqueue(deliveries("acme", "acme-file", [*first, statement(ACTIVITY, 7)]))
    again = sink_project.deliver("acme-file-deliver")
    assert again.delivered == 1 and len(_lines(path)) == 8


def test_a_crash_after_writing_but_before_marking_adds_nothing_twice(
    sink_project: SinkProject,
) -> None:
    """Lines already in the file (written before a crash) count as delivered; a
    last line cut short is removed and written again whole."""
    sink_project.file_sink("acme-file", "acme", "out.jsonl")
    path = sink_project.root / "out.jsonl"
    sent = [statement(ACTIVITY, n) for n in range(4)]
    whole = b"".join(orjson.dumps(s) + b"\n" for s in sent[:2])
    path.write_bytes(whole + orjson.dumps(sent[2])[:40])
    sink_project.outbox().enqueue(deliveries("acme", "acme-file", sent))

    outcome = sink_project.deliver("acme-file-deliver")

    assert (outcome.delivered, outcome.already_stored) == (2, 2)
    assert [line["id"] for line in _lines(path)] == [s["id"] for s in sent]


def test_an_unwritable_path_fails_the_run_and_keeps_the_statements(
    sink_project: SinkProject,
) -> None:
    """A folder where the file should be: the run fails, nothing is lost."""
    sink_project.file_sink("acme-file", "acme", "blocked")
    (sink_project.root / "blocked").mkdir()
    sink_project.outbox().enqueue(
        deliveries("acme", "acme-file", [statement(ACTIVITY, 1)])
    )
    outcome = sink_project.deliver("acme-file-deliver")
    assert outcome.status == "failed" and outcome.pending == 1
    assert outcome.error is not None and "cannot write" in outcome.error
