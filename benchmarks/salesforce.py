"""Salesforce connector throughput and API calls, against the test emulator, with a
raw simple-salesforce floor from the same run.

    python benchmarks/salesforce.py [--contacts 100000] [--awards 10000]

Starts its own emulator (``tests/connectors/salesforce/emulator.py``) in a child
process, with ``--contacts`` invented members, then measures:

- raw: simple-salesforce's own ``query_all_iter`` of the connector's query, the
  same pages (2,000 rows), nothing done with the rows;
- read: the connector's read of the same rows into records (flattened relations,
  typed values), each best of five, alternating with raw;
- write-back: ``--awards`` awards through the outbox to the emulator (one
  member each), then the members' Contact states (latest credential, credits
  earned), as the results flow queues them.

The last line of output is one JSON object: ``read_ratio`` is read / raw (target
within 1.5); ``writeback_calls`` counts the data calls of the awards' write-back
(target at most ceil(awards / 200)); ``contact_calls`` those of the Contacts'
(target at most ceil(contacts / 200)); ``describe_calls`` and ``logins`` are the
other requests of the write-back run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

SECRETS = ("BENCH_SF_PASSWORD", "BENCH_SF_TOKEN")


def _start_emulator(
    folder: Path, contacts: int
) -> tuple[subprocess.Popen[str], str, str]:
    command = [
        sys.executable,
        "-m",
        "tests.connectors.salesforce.emulator",
        "--port",
        "0",
        "--folder",
        str(folder),
        "--contacts",
        str(contacts),
    ]
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line.startswith("listening on "):
        child.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    base_url, ca_text = line.removeprefix("listening on ").strip().split("; CA ")
    return child, base_url, ca_text


def _config(base_url: str, ca_file: str, **overrides: Any) -> Any:
    from tests.connectors.salesforce import emulator

    from microcred_sync.connectors.salesforce import SalesforceConnector

    content: dict[str, Any] = {
        "kind": "salesforce",
        "partner": "example-association",
        "login_url": base_url,
        "ca_file": ca_file,
        "auth": {
            "type": "password",
            "username": emulator.USERNAME,
            "password_secret": SECRETS[0],
            "security_token_secret": SECRETS[1],
        },
        "roster": {},
        **overrides,
    }
    return SalesforceConnector.model_validate(content)


def _raw(config: Any, query: str) -> tuple[float, int]:
    """simple-salesforce alone: log in, then ``query_all_iter`` the same pages."""
    from simple_salesforce.api import Salesforce
    from simple_salesforce.login import SalesforceLogin

    from microcred_sync.connectors.salesforce.source import open_session

    session = open_session(config, REPO, "raw")
    started = time.perf_counter()
    session_id, instance = SalesforceLogin(
        username=config.auth.username,
        password=os.environ[SECRETS[0]],
        security_token=os.environ[SECRETS[1]],
        domain=config.domain,
        session=session,
    )
    client = Salesforce(
        session_id=session_id,
        instance=instance,
        session=session,
        object_pairs_hook=dict,
    )
    headers = {"Sforce-Query-Options": "batchSize=2000"}
    rows = sum(1 for _ in client.query_all_iter(query, headers=headers))
    return time.perf_counter() - started, rows


def _read(config: Any) -> tuple[float, int, int]:
    from microcred_sync.connectors.salesforce import SalesforceSource

    source = SalesforceSource("bench", REPO, config)
    started = time.perf_counter()
    records = sum(1 for _ in source.read())
    calls = source.org.session.counters.data_calls if source.org else 0
    return time.perf_counter() - started, records, calls


def _writeback(
    base_url: str, ca_file: str, awards: int, folder: Path
) -> dict[str, Any]:
    import microcred_sync.outbox  # noqa: F401
    from microcred_sync.connectors.salesforce.deliveries import (
        contact_delivery,
        writeback_delivery,
    )
    from microcred_sync.connectors.salesforce.writeback import SalesforceWriter
    from microcred_sync.outbox.store import Outbox
    from microcred_sync.partners import Program
    from microcred_sync.platform.sql import LearnerIdentityRow
    from microcred_sync.results.records import AwardRecord, award_id
    from microcred_sync.state.store import StateStore

    config = _config(
        base_url,
        ca_file,
        roster=None,
        writeback={
            "object": "Credential__c",
            "external_id": "Award_Id__c",
            # Types given, so no describe() is needed: data calls are the upserts.
            "fields": {
                "Contact__c": {"from": "contact_id", "type": "reference"},
                "Program__c": {"from": "program", "type": "string"},
                "Issued_On__c": {"from": "issued_at", "type": "date"},
                "Issued_At__c": {"from": "issued_at", "type": "datetime"},
            },
            "contact": {
                "fields": {
                    "Latest_Credential__c": {"from": "program_title", "type": "string"},
                    "Credits_Earned__c": {"from": "credits_earned", "type": "double"},
                }
            },
        },
    )
    programs = {
        "professional-ethics": Program(
            id="professional-ethics",
            title="Professional Ethics (CE)",
            activity_iri="https://learn.example.org/programs/professional-ethics",
            credits=3,
        )
    }
    store = StateStore(f"sqlite:///{folder / 'state.db'}")
    store.create_schema()
    outbox = Outbox(store.engine)
    issued = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    entries, states = [], []
    for number in range(awards):
        # The emulator's seeded members: 003EM0000000001AAA onwards.
        learner = LearnerIdentityRow(
            f"l{number}", f"003EM{number + 1:010d}AAA"[:18], None, None
        )
        award = AwardRecord(
            award_id("example-association", learner.id, "professional-ethics"),
            "example-association",
            learner.id,
            "professional-ethics",
            issued,
        )
        entries.append(writeback_delivery(config, "crm", award, learner))
        states.append(contact_delivery(config, "crm", learner, [award], programs))
    outbox.enqueue(entries)
    writer = SalesforceWriter(config, "crm", REPO, None)
    counters = writer.org.session.counters
    seconds, delivered, created = _deliver_all(writer, outbox)
    writeback_calls = counters.data_calls

    outbox.replace(state for state in states if state is not None)
    contact_seconds, contacts, _ = _deliver_all(writer, outbox)
    store.close()
    return {
        "awards": awards,
        "delivered": delivered,
        "created": created,
        "writeback_seconds": round(seconds, 2),
        "writeback_calls": writeback_calls,
        "describe_calls": len(writer._types),
        "writeback_logins": counters.logins,
        "writeback_calls_target": math.ceil(awards / 200),
        "contacts_written": contacts,
        "contact_seconds": round(contact_seconds, 2),
        "contact_calls": counters.data_calls - writeback_calls,
        "contact_calls_target": math.ceil(len(states) / 200),
    }


def _deliver_all(writer: Any, outbox: Any) -> tuple[float, int, int]:
    """What a deliver run does: due batches until none is left; (seconds,
    delivered, created)."""
    from microcred_sync.connectors.salesforce.writeback import deliver_batch

    started = time.perf_counter()
    delivered = created = 0
    while batch := outbox.due("crm", writer.config.batch_size):
        result = deliver_batch(writer, outbox, "crm", batch)
        delivered += len(result.delivered)
        created += result.created
        if result.stopped is not None:
            raise SystemExit(f"write-back stopped: {result.stopped}")
        if result.dead or result.retry:
            raise SystemExit(f"write-back refused: {(result.dead + result.retry)[:1]}")
    return time.perf_counter() - started, delivered, created


def drive(contacts: int, awards: int) -> dict[str, Any]:
    os.environ[SECRETS[0]] = "emulator-password"
    os.environ[SECRETS[1]] = "emulatorToken123"
    with tempfile.TemporaryDirectory(prefix="sf-bench-") as name:
        folder = Path(name)
        child, base_url, ca_file = _start_emulator(folder, contacts)
        try:
            config = _config(base_url, ca_file)
            from microcred_sync.connectors.salesforce import SalesforceSource

            query = SalesforceSource("bench", REPO, config).soql()
            raw_times, read_times = [], []
            rows = records = calls = 0
            for _ in range(5):
                seconds, rows = _raw(config, query)
                raw_times.append(seconds)
                seconds, records, calls = _read(config)
                read_times.append(seconds)
            report: dict[str, Any] = {
                "contacts": contacts,
                "raw_rows": rows,
                "read_records": records,
                "raw_seconds": round(min(raw_times), 3),
                "read_seconds": round(min(read_times), 3),
                "read_records_per_s": round(records / min(read_times), 1),
                "read_calls": calls,
                "read_ratio": round(min(read_times) / min(raw_times), 3),
            }
            report.update(_writeback(base_url, ca_file, awards, folder))
        finally:
            child.terminate()
            child.wait(timeout=10)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--awards", type=int, default=10_000)
    arguments = parser.parse_args()
    report = drive(arguments.contacts, arguments.awards)
    for name, value in report.items():
        print(f"{name}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
