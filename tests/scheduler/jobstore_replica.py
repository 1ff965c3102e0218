"""A scheduler process of the kind field case AS-01 warns about: APScheduler 3 on a
SQLAlchemy job store shared with other processes, firing one job by its textual
reference (``microcred_sync.scheduler.daemon:run_job``).

    python jobstore_replica.py JOBSTORE_URL ROOT JOB SECONDS

Prints one JSON line per run it fired: the slot (scheduled time) and what
``run_job`` returned (``locked`` when the job's lock refused it).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler


def main() -> None:
    url, root, job, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=url)}, timezone=UTC
    )

    def fired(event: JobExecutionEvent) -> None:
        slot = event.scheduled_run_time.isoformat()
        print(json.dumps({"slot": slot, "status": event.retval}), flush=True)

    scheduler.add_listener(fired, EVENT_JOB_EXECUTED)
    scheduler.start()
    # Every process adds the job at start, as a web worker would.
    scheduler.add_job(
        "microcred_sync.scheduler.daemon:run_job",
        "interval",
        seconds=1,
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        args=[job, root],
        id=job,
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=30,
    )
    time.sleep(float(seconds))
    scheduler.shutdown(wait=True)


if __name__ == "__main__":
    main()
