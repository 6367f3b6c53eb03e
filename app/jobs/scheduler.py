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


def scheduled(job_id: str) -> Callable[[], object]:
    """A job run on its interval, recorded like every run."""

    def run():
        from app.jobs.queue import execute

        execute(job_id, trigger="schedule")

    run.job_id = job_id  # a recorded job that "Run now" can queue too
    return run


def _fast_worker():
    from app.jobs.pipedrive import process_webhooks
    from app.jobs.queue import run_queued

    run_queued()
    process_webhooks()


def _push_work():
    from app.push.operations import scheduled_push

    scheduled_push()


# Every job in one place, with stable ids and default intervals.
JOBS: list[Job] = [
    Job("stripe.payments", 120, scheduled("stripe.payments"), "Pull Stripe payment changes"),
    Job("pipedrive.deals", 300, scheduled("pipedrive.deals"), "Pull Pipedrive deal changes"),
    Job("writeback.retry", 30, scheduled("writeback.retry"), "Deliver and retry write-backs"),
    Job("invoices.overdue", 600, scheduled("invoices.overdue"), "Mark invoices overdue"),
    Job("mismatches.recompute", 300, scheduled("mismatches.recompute"), "Recompute mismatches"),
    Job("sales.rollup", 60, scheduled("sales.rollup"), "Rebuild the sales summary rollup"),
    Job("worker.fast", 2, _fast_worker, "Start queued runs, apply Pipedrive webhooks"),
    Job("push.work", 2, _push_work, "Push queued invoices to Stripe, then write back"),
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
            # The connection goes back to the pool: the session lock must be released
            # explicitly or the next user of that connection would still hold it.
            self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
            self._conn.commit()
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
        except Exception as exc:  # noqa: BLE001 - a failed run must not stop the scheduler
            db.session.rollback()
            log.exception("job %s failed", job.id)
            _CLEAN.discard(job.id)
            _record_outcome(job.id, exc)
        else:
            if job.id not in _CLEAN and not getattr(job.func, "job_id", None):
                _record_outcome(job.id, None)
        finally:
            db.session.remove()


# Workers that keep no runs of their own and are known (in this process) to have no
# failure on record: only their first success and the first one after a failure look.
_CLEAN: set[str] = set()


def _record_outcome(job_id: str, exc: Exception | None) -> None:
    from app.jobs.queue import record_failure, record_recovery

    try:
        if exc is not None:
            record_failure(job_id, exc)
        else:
            record_recovery(job_id)
            _CLEAN.add(job_id)
    except Exception:  # noqa: BLE001 - the database itself may be what failed
        db.session.rollback()
        log.exception("could not record the outcome of job %s", job_id)


def publish_schedule(app: Flask, sched) -> None:
    """Tell the web (Sync health page) when each job runs next, and that we are alive."""
    from app.payments.models import JobSchedule
    from app.types import utcnow

    with app.app_context():
        now = utcnow()
        for job in JOBS:
            planned = sched.get_job(job.id)
            row = db.session.get(JobSchedule, job.id) or JobSchedule(id=job.id)
            row.description, row.interval_seconds = job.description, job.seconds
            row.next_run_at = planned.next_run_time if planned else None
            row.scheduler_pid, row.heartbeat_at = os.getpid(), now
            db.session.add(row)
        db.session.commit()
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
    sched.add_job(
        publish_schedule,
        "interval",
        seconds=10,
        args=[app, sched],
        id="scheduler.heartbeat",
        max_instances=1,
        coalesce=True,
        next_run_time=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1),
    )
    for job in JOBS:
        # First run right away, then on the interval.
        sched.add_job(
            run_job,
            "interval",
            seconds=job.seconds,
            args=[app, job],
            id=job.id,
            max_instances=1,
            coalesce=True,
            next_run_time=dt.datetime.now(dt.UTC),
        )
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        lock.release()
