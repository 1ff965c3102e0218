"""The outbox from the command line: `run` of a deliver job, `outbox list`,
`dead` and `retry`, `status`, and `check` of sink files."""

from __future__ import annotations

from tests.cli_runner import cli

from .conftest import ACME, SinkProject
from .statements import deliveries, statement

ACTIVITY = "https://courses.example.org/c202"


def test_run_deliver_list_dead_retry_and_status(sink_project: SinkProject) -> None:
    """A deliver job runs from `run`; a dead letter is shown with its reason,
    requeued by `retry`, and `status` shows the deliver run."""
    sink_project.file_sink("acme-file", "acme", "var/acme.jsonl")
    box = sink_project.outbox()
    box.enqueue(
        deliveries("acme", "acme-file", [statement(ACTIVITY, n) for n in range(3)])
    )
    dead = statement(ACTIVITY, 3)
    box.enqueue(deliveries("acme", "acme-file", [dead]))
    box.dead_letter(
        "acme-file", [dead["id"]], "the LRS rejected: 0.verb: Field required"
    )

    result = cli(sink_project, "run", "acme-file-deliver")
    assert result.returncode == 0, result.stderr
    assert "acme-file-deliver: done" in result.stdout
    assert "delivered 3" in result.stdout

    listed = cli(sink_project, "outbox", "list", "acme-file-deliver")
    assert listed.returncode == 0, listed.stderr
    assert "pending 0, delivered 3, dead 1" in listed.stdout
    shown = cli(sink_project, "outbox", "dead", "acme-file-deliver")
    assert dead["id"] in shown.stdout and "Field required" in shown.stdout

    retried = cli(
        sink_project, "outbox", "retry", "acme-file-deliver", "--id", dead["id"]
    )
    assert "requeued 1 entries" in retried.stdout
    again = cli(sink_project, "run", "acme-file-deliver")
    assert "delivered 1" in again.stdout

    # An id that is no entry of the job stops the command, naming it, and
    # requeues nothing; one delivered already is said to be.
    unknown = cli(
        sink_project,
        "outbox",
        "retry",
        "acme-file-deliver",
        "--id",
        dead["id"],
        "--id",
        "no-such-entry",
    )
    assert unknown.returncode == 2
    assert "no entry no-such-entry in the outbox of acme-file-deliver" in (
        unknown.stderr
    )
    sent = cli(sink_project, "outbox", "retry", "acme-file-deliver", "--id", dead["id"])
    assert sent.returncode == 0, sent.stderr
    assert f"{dead['id']}: delivered already" in sent.stdout
    assert "requeued 0 entries" in sent.stdout
    assert (
        "no dead letters"
        in cli(sink_project, "outbox", "dead", "acme-file-deliver").stdout
    )

    status = cli(sink_project, "status")
    line = next(
        row for row in status.stdout.splitlines() if row.startswith("acme-file-deliver")
    )
    assert "\tdone\t" in line and "delivered 1" in line


def test_a_failed_delivery_exits_1(sink_project: SinkProject) -> None:
    """An LRS that is not there: the run fails with exit 1, statements kept."""
    sink_project.lrs_sink(
        "acme-lrs",
        "acme",
        "http://127.0.0.1:9/xAPI",
        ACME,
        retry={"max_attempts": 2, "backoff_base": 0.01, "backoff_max": 0.02},
    )
    sink_project.outbox().enqueue(
        deliveries("acme", "acme-lrs", [statement(ACTIVITY, 1)])
    )
    result = cli(sink_project, "run", "acme-lrs-deliver")
    assert result.returncode == 1
    assert "connection refused" in result.stdout and "still pending 1" in result.stdout
    assert "acme-lrs-pass" not in result.stdout + result.stderr


def test_a_missing_secret_stops_before_anything_is_written(
    sink_project: SinkProject,
) -> None:
    """The sink names a secret nobody set: exit 2 naming it, no run recorded."""
    sink_project.lrs_sink("acme-lrs", "acme", "http://127.0.0.1:9/xAPI", ACME)
    sink_project.monkeypatch.delenv("ACME_LRS_PASSWORD")
    result = cli(sink_project, "run", "acme-lrs-deliver")
    assert result.returncode == 2
    assert "secret ACME_LRS_PASSWORD is not set" in result.stderr
    assert not (sink_project.root / "var").exists()


def test_check_names_the_sink_file_field_and_problem(sink_project: SinkProject) -> None:
    """A sink with plain http to another host: one line, file and field named."""
    sink_project.add(
        "acme-lrs",
        {
            "kind": "lrs",
            "partner": "acme",
            "endpoint": "http://lrs.example.org/xAPI",
            "auth": {"type": "bearer", "token_secret": "ACME_TOKEN"},
        },
    )
    result = cli(sink_project, "check")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("configuration error: connectors/acme-lrs.yaml: endpoint: ")
    assert "loopback" in line


def test_check_refuses_a_sink_of_another_partner(sink_project: SinkProject) -> None:
    """Isolation at load time: a job may not deliver to another partner's sink."""
    sink_project.file_sink("globex-file", "globex", "g.jsonl")
    sink_project.jobs[-1]["partner"] = "acme"
    sink_project.add(
        "acme-file", {"kind": "file", "partner": "acme", "path": "a.jsonl"}
    )
    result = cli(sink_project, "check")
    assert result.returncode == 2
    assert "scheduler/jobs.yaml: jobs.globex-file-deliver.sinks" in result.stderr
    assert "belongs to partner 'globex'" in result.stderr
