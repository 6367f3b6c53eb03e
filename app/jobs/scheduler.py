"""`flask desk scheduler`: the one process that runs background jobs.

APScheduler 3, never inside web workers. Only one scheduler leads even if several
are started: a PostgreSQL advisory lock held on its own connection, or an
exclusive lock file with SQLite. The others stand by and take over when the
leader dies; a standby whose database connection drops keeps waiting.

The leader checks that it still holds its lock on every tick (SCHEDULER_TICK_SECONDS)
and again right before it starts any job: once the lock is gone (a PostgreSQL
restart, pg_terminate_backend) it starts nothing more, lets what is in flight end,
and stands by again. A new leader waits SCHEDULER_TAKEOVER_SECONDS (two ticks) after
taking the lock before its first job, so a leader that lost the lock has noticed by
then; a leader that lost it waits a standby period before it tries to lead again.

Every job has a timeout, declared with it in JOBS: a job that overruns is no longer
waited for, its run is recorded "timed_out" (never left "running"), and its next
turn is skipped until the overrunning thread has ended.

SIGTERM (or Ctrl-C) stops it cleanly: nothing new starts, running jobs get
SCHEDULER_STOP_GRACE_SECONDS to finish, then the runs it could not finish are
marked "interrupted", the push jobs it held are released to the next worker, and
the lock is released. A scheduler killed outright (kill -9) leaves its runs to
app.jobs.queue.recover_runs.

`--once` runs every job once under the same lock: when another scheduler leads it
says so and runs nothing.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.intake.problems import log_failure

log = logging.getLogger("billing_desk.scheduler")
LEADER_LOCK_KEY = 7_260_311_002


@dataclass(frozen=True)
class Job:
    id: str
    seconds: float
    func: Callable[[], object]
    description: str
    timeout: float  # seconds; past it the run is recorded timed out and no longer waited for


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
    from app.push.worker import scheduled_push

    scheduled_push()


# Every job in one place, with stable ids, default intervals and timeouts (seconds).
JOBS: list[Job] = [
    Job("stripe.payments", 120, scheduled("stripe.payments"), "Pull Stripe payment changes", 900),
    Job("pipedrive.deals", 300, scheduled("pipedrive.deals"), "Pull Pipedrive deal changes",
        1800),
    Job("writeback.retry", 30, scheduled("writeback.retry"), "Deliver and retry write-backs",
        600),
    Job("invoices.overdue", 600, scheduled("invoices.overdue"), "Mark invoices overdue", 300),
    Job("mismatches.recompute", 300, scheduled("mismatches.recompute"), "Recompute mismatches",
        600),
    Job("sales.rollup", 60, scheduled("sales.rollup"), "Rebuild the sales summary rollup", 300),
    # Starts queued runs of any job ("Run now", a full deal sync): the longest timeout.
    Job("worker.fast", 2, _fast_worker, "Start queued runs, apply Pipedrive webhooks", 1800),
    Job("push.work", 2, _push_work, "Push queued invoices to Stripe, then write back", 900),
]

_HELD_SQL = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND classid::bigint = :hi AND objid::bigint = :lo"
    " AND objsubid = 1)"
)


class LeaderLock:
    """Held while this process leads; released when the process dies.

    Safe to use from several threads (the main loop checks it every tick, each job
    checks it before it starts). A lost or failing database connection is never an
    exception here: it means "not held", and the connection is dropped so the next
    attempt opens a new one.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._conn = None
        self._fh = None
        self._mutex = threading.Lock()
        self.backend_pid: int | None = None  # PostgreSQL: the session holding the lock

    def _postgresql(self) -> bool:
        return db.engine.dialect.name == "postgresql"

    def try_acquire(self) -> bool:
        with self._mutex, self.app.app_context():
            if self._postgresql():
                try:
                    if self._conn is None:
                        self._conn = db.engine.connect()
                        self.backend_pid = self._conn.execute(
                            text("SELECT pg_backend_pid()")).scalar()
                    got = self._conn.execute(
                        text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK_KEY}
                    ).scalar()
                    self._conn.commit()
                    return bool(got)
                except SQLAlchemyError as exc:
                    log.warning("leader lock: the database connection failed (%s); "
                                "waiting to try again", type(exc).__name__)
                    self._drop()
                    return False
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

    def still_held(self) -> bool:
        """Ask the database (not our memory) whether we still hold the lock."""
        with self._mutex, self.app.app_context():
            if not self._postgresql():
                return self._fh is not None  # a lock file lives as long as we keep it open
            if self._conn is None:
                return False
            try:
                held = self._conn.execute(
                    _HELD_SQL, {"hi": LEADER_LOCK_KEY >> 32, "lo": LEADER_LOCK_KEY & 0xFFFFFFFF}
                ).scalar()
                self._conn.commit()
            except SQLAlchemyError as exc:
                log.warning("leader lock: its connection is gone (%s)", type(exc).__name__)
                self._drop()
                return False
            return bool(held)

    def _drop(self) -> None:
        """Forget a broken connection without returning it to the pool."""
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except SQLAlchemyError:
                pass
        self._conn, self.backend_pid = None, None

    def release(self) -> None:
        with self._mutex, self.app.app_context():
            if self._conn is not None:
                # The connection goes back to the pool: the session lock must be released
                # explicitly or the next user of that connection would still hold it.
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
                    self._conn.commit()
                    self._conn.close()
                    self._conn, self.backend_pid = None, None
                except SQLAlchemyError:
                    self._drop()
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
            log_failure(log, f"job {job.id} failed", exc)
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


def publish_schedule(app: Flask, sched, jobs: list[Job] | None = None) -> None:
    """Tell the web (Sync health page) when each job runs next, and that we are alive."""
    from app.payments.models import JobSchedule
    from app.types import utcnow

    with app.app_context():
        now = utcnow()
        for job in jobs or JOBS:
            planned = sched.get_job(job.id)
            row = db.session.get(JobSchedule, job.id) or JobSchedule(id=job.id)
            row.description, row.interval_seconds = job.description, int(job.seconds)
            row.next_run_at = planned.next_run_time if planned else None
            row.scheduler_pid, row.heartbeat_at = os.getpid(), now
            db.session.add(row)
        db.session.commit()
        db.session.remove()


def _heartbeat(app: Flask, sched, jobs: list[Job]) -> None:
    """Every few seconds while leading: publish the plan, renew the leases of our
    runs, and recover the runs of schedulers that are gone."""
    from app.jobs.queue import recover_runs, renew_leases

    try:
        publish_schedule(app, sched, jobs)
        with app.app_context():
            renew_leases()
            recover_runs()
            db.session.commit()
    except SQLAlchemyError:
        log.exception("scheduler heartbeat failed")
    finally:
        with app.app_context():
            db.session.remove()


def _safely(app: Flask, what: str, work: Callable[[], object]) -> None:
    """Bookkeeping that must not stop the scheduler (the database may be what failed)."""
    with app.app_context():
        try:
            work()
            db.session.commit()
        except SQLAlchemyError:
            db.session.rollback()
            log.exception("scheduler: could not %s", what)
        finally:
            db.session.remove()


class Scheduler:
    """One scheduler process: stands by until it holds the leader lock, leads while
    it holds it, stands by again when it loses it; stops when `stop` is set."""

    def __init__(self, app: Flask, jobs: list[Job] | None = None,
                 stop: threading.Event | None = None,
                 echo: Callable[[str], object] = click.echo) -> None:
        cfg = app.config
        self.app, self.jobs, self.echo = app, list(jobs or JOBS), echo
        self.stop = stop or threading.Event()
        self.lock = LeaderLock(app)
        self.leading = threading.Event()
        self.tick = float(cfg.get("SCHEDULER_TICK_SECONDS", 1.0))
        self.standby_seconds = float(cfg.get("SCHEDULER_STANDBY_SECONDS", 10.0))
        self.heartbeat_seconds = float(cfg.get("SCHEDULER_HEARTBEAT_SECONDS", 10.0))
        self.grace = float(cfg.get("SCHEDULER_STOP_GRACE_SECONDS", 8.0))
        # A new leader waits this long before its first job: by then a leader that lost
        # the lock (it checks every tick and before every job) has stopped starting jobs.
        self.takeover = float(cfg.get("SCHEDULER_TAKEOVER_SECONDS", 2 * self.tick))
        self.inflight: dict[str, threading.Thread] = {}  # job id -> the thread running it

    # -- the process ----------------------------------------------------------------

    def serve(self) -> None:
        try:
            while not self.stop.is_set():
                if self.stand_by():
                    self.lead()
                    # Lost the lock: leave it to a standby for a while before trying again.
                    self.stop.wait(self.standby_seconds)
        finally:
            self.shut_down()

    def stand_by(self) -> bool:
        """Wait for the leader lock; True once held, False when asked to stop."""
        told = False
        while not self.stop.is_set():
            if self.lock.try_acquire():
                return not self.stop.wait(self.takeover)
            if not told:
                self.echo("Another scheduler is leading; waiting to take over…")
                told = True
            self.stop.wait(self.standby_seconds)
        return False

    def lead(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        from app.jobs.queue import recover_runs

        self.leading.set()
        self.echo(
            f"Scheduler leading (pid {os.getpid()}); jobs: "
            + ", ".join(f"{j.id} every {j.seconds:g}s" for j in self.jobs)
        )
        _safely(self.app, "recover the runs of a stopped scheduler", recover_runs)
        sched = BackgroundScheduler(timezone="UTC")
        now = dt.datetime.now(dt.UTC)
        sched.add_job(_heartbeat, "interval", seconds=self.heartbeat_seconds,
                      args=[self.app, sched, self.jobs], id="scheduler.heartbeat",
                      max_instances=1, coalesce=True,
                      next_run_time=now + dt.timedelta(seconds=min(1.0, self.heartbeat_seconds)))
        for job in self.jobs:
            # First run right away, then on the interval.
            sched.add_job(self.run_job, "interval", seconds=job.seconds, args=[job], id=job.id,
                          max_instances=1, coalesce=True, next_run_time=now)
        sched.start()
        try:
            while not self.stop.wait(self.tick):
                if not self.leading.is_set() or not self.lock.still_held():
                    log.error("the leader lock is lost: this scheduler stops leading")
                    self.echo("Lost the leader lock: stopped leading; standing by.")
                    break
        finally:
            self.leading.clear()
            sched.shutdown(wait=False)
        if not self.stop.is_set():
            # Standing by again: let the jobs in flight end (each within its timeout).
            self.lock.release()
            self._join_inflight(time.monotonic() + self.grace)

    def shut_down(self) -> None:
        """Stopping (SIGTERM): give running jobs the grace period, then mark what is
        left interrupted, release our push jobs and the lock."""
        from app.jobs.queue import interrupt_own_runs, owner_name, release_push_claims

        self.leading.clear()
        left = self._join_inflight(time.monotonic() + self.grace)
        if left:
            log.warning("stopping with jobs still running: %s", ", ".join(left))
        _safely(self.app, "mark the runs it stops interrupted", interrupt_own_runs)
        _safely(self.app, "release its push jobs",
                lambda: release_push_claims([owner_name()]))
        self.lock.release()

    def _join_inflight(self, deadline: float | None) -> list[str]:
        """Wait for the job threads (until `deadline`); the ids of those still running."""
        for thread in list(self.inflight.values()):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        return sorted(i for i, t in self.inflight.items() if t.is_alive())

    # -- one job ----------------------------------------------------------------------

    def run_job(self, job: Job) -> None:
        """Start `job` if we still lead, and wait for it at most its timeout."""
        if not self.leading.is_set() or self.stop.is_set():
            return
        earlier = self.inflight.get(job.id)
        if earlier is not None and earlier.is_alive():
            log.warning("job %s: the run that overran is still going; this turn is skipped",
                        job.id)
            return
        if not self.lock.still_held():
            self.leading.clear()  # the main loop says so on its next tick
            return
        thread = threading.Thread(target=run_job, args=(self.app, job), daemon=True,
                                  name=f"job {job.id}")
        self.inflight[job.id] = thread
        thread.start()
        deadline = time.monotonic() + job.timeout
        # Joined in slices, so a stopping scheduler is never held up by this wait.
        while thread.is_alive() and not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._timed_out(job, thread)
                return
            thread.join(min(remaining, self.tick))

    def _timed_out(self, job: Job, thread: threading.Thread) -> None:
        from app.jobs.queue import _THREAD_RUNS, JobTimedOut, mark_timed_out, record_failure

        log.error("job %s overran its timeout of %gs; no longer waiting for it",
                  job.id, job.timeout)
        run_id = _THREAD_RUNS.get(thread.ident)
        if run_id is not None:
            _safely(self.app, f"record that {job.id} timed out",
                    lambda: mark_timed_out([run_id], job.timeout))
        else:
            exc = JobTimedOut(f"Stopped after running longer than its time limit "
                              f"({job.timeout:g} seconds); the scheduler's log says where.")
            _safely(self.app, f"record that {job.id} timed out",
                    lambda: record_failure(job.id, exc))

    def once(self) -> bool:
        """Every job once, under the lock; False (nothing run) when another leads."""
        from app.jobs.queue import recover_runs

        if not self.lock.try_acquire():
            return False
        try:
            self.leading.set()
            _safely(self.app, "recover the runs of a stopped scheduler", recover_runs)
            for job in self.jobs:
                self.run_job(job)
        finally:
            self.leading.clear()
            self.lock.release()
        return True


@click.command("scheduler")
@click.option("--once", is_flag=True,
              help="Run every job once and exit (for cron or tests); "
                   "runs nothing when another scheduler leads.")
@with_appcontext
def scheduler_command(once: bool) -> None:
    """Run the background jobs (one leader at a time)."""
    app = current_app._get_current_object()
    scheduler = Scheduler(app)
    if once:
        if not scheduler.once():
            click.echo("Another scheduler is leading: --once ran nothing (the leader runs "
                       "the jobs).")
        return

    def stop(signum, _frame):
        log.warning("signal %s: stopping the scheduler", signum)
        scheduler.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.serve()
    click.echo("Scheduler stopped.")
