"""`flask desk scheduler`: the one process that runs background jobs.

APScheduler 3 in the foreground, never inside web workers. Only one scheduler
leads even if several are started: a PostgreSQL advisory lock held on its own
connection, or an exclusive lock file with SQLite. A second scheduler waits
and takes over when the leader dies.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import text

from app.extensions import db

log = logging.getLogger("billing_desk.scheduler")
LEADER_LOCK_KEY = 7_260_311_002


@dataclass(frozen=True)
class Job:
    id: str
    seconds: int
    func: Callable[[], object]
    description: str


def _deal_pull():
    from app.intake.operations import run_deal_sync

    run_deal_sync(trigger="schedule")


def _queued_and_webhooks():
    from app.jobs.pipedrive import process_webhooks, run_queued_syncs

    run_queued_syncs()
    process_webhooks()


# Every job in one place, with stable ids.
JOBS: list[Job] = [
    Job("pipedrive.deals", 300, _deal_pull, "Pull Pipedrive deal changes"),
    Job("worker.fast", 2, _queued_and_webhooks, "Start queued syncs, apply webhooks"),
]


class LeaderLock:
    """Held for the life of the process; released when the process dies."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._conn = None
        self._fh = None

    def try_acquire(self) -> bool:
        engine = db.engine
        if engine.dialect.name == "postgresql":
            if self._conn is None:
                self._conn = engine.connect()
            got = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK_KEY}
            ).scalar()
            self._conn.commit()
            return bool(got)
        path = Path(self.app.config["DESK_INSTANCE_PATH"]) / "scheduler.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._fh is None:
            self._fh = open(path, "a+")  # noqa: SIM115 - held open for the process lifetime
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(str(os.getpid()))
        self._fh.flush()
        return True

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def run_job(app: Flask, job: Job) -> None:
    from app.audit.operations import set_system_actor

    with app.app_context():
        set_system_actor(f"system:{job.id}")
        try:
            job.func()
        except Exception:  # noqa: BLE001 - a failed run must not stop the scheduler
            db.session.rollback()
            log.exception("job %s failed", job.id)
        finally:
            db.session.remove()


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run every job once and exit (for cron or tests).")
@with_appcontext
def scheduler_command(once: bool) -> None:
    """Run the background jobs (one leader at a time)."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    app = current_app._get_current_object()
    lock = LeaderLock(app)
    if once:
        for job in JOBS:
            run_job(app, job)
        return
    while not lock.try_acquire():
        click.echo("Another scheduler is leading; waiting to take over…")
        time.sleep(10)  # standby: retry the leader lock
    click.echo(
        f"Scheduler leading (pid {os.getpid()}); jobs: "
        + ", ".join(f"{j.id} every {j.seconds}s" for j in JOBS)
    )
    sched = BlockingScheduler(timezone="UTC")
    for job in JOBS:
        # First run right away, then on the interval.
        sched.add_job(
            run_job, "interval", seconds=job.seconds, args=[app, job], id=job.id,
            max_instances=1, coalesce=True, next_run_time=dt.datetime.now(dt.UTC),
        )
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        lock.release()
