"""Work a person asks for ("Run now", "Re-sync"): queued by the web, run by the scheduler.

A queued run is a SyncRun row with status "queued"; the scheduler's fast worker
starts each with the runner registered for its job id. Every run, scheduled or
asked for, is recorded the same way: start, end, counts, requests, errors.

A running run names its owner (host:pid) and holds a lease its scheduler renews
with every heartbeat. A run whose owner is gone (its lease passed, or its process
on this host no longer exists) is marked "interrupted" by recover_runs(), which
the leading scheduler calls on every heartbeat and "Sync now" calls before it
decides whether a sync is already under way. A run the scheduler gave up on
because it overran its job's timeout is "timed_out"; a run that ends after that
keeps what the scheduler recorded.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time

from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from app.extensions import db
from app.intake.models import SyncRun
from app.intake.problems import log_failure, plain_error
from app.jobs.registry import RUNNERS
from app.ops.logs import job_run
from app.types import utcnow

log = logging.getLogger("billing_desk.jobs")

INTERRUPTED, TIMED_OUT = "interrupted", "timed_out"
DEFAULT_RUN_LEASE_SECONDS = 60


class JobTimedOut(Exception):
    """A job ran longer than its timeout; the scheduler stopped waiting for it."""


def owner_name() -> str:
    """Who runs a run: host:pid, the same name a push job's worker goes by."""
    from app.push.worker import worker_name

    return worker_name()


def run_lease() -> dt.timedelta:
    return dt.timedelta(
        seconds=current_app.config.get("SCHEDULER_RUN_LEASE_SECONDS", DEFAULT_RUN_LEASE_SECONDS)
    )


# thread id -> the run that thread is executing (the scheduler's timeout watchdog
# marks it timed out when it gives up on the thread).
_THREAD_RUNS: dict[int, int] = {}

def request_job(job_id: str, args: dict | None = None) -> SyncRun:
    """Queue a run; a run of the same job and arguments already waiting is reused."""
    waiting = (
        db.session.execute(select(SyncRun).where(SyncRun.job == job_id, SyncRun.status == "queued"))
        .scalars()
        .all()
    )
    for run in waiting:
        if (run.counts or {}).get("args") == (args or {}):
            return run
    run = SyncRun(job=job_id, trigger="manual", status="queued", counts={"args": args or {}})
    db.session.add(run)
    db.session.flush()
    return run


def execute(job_id: str, run: SyncRun | None = None, trigger: str = "schedule") -> SyncRun:
    """Run one job now, in this process, recording the run."""
    _load_runners()
    if run is None:
        run = SyncRun(job=job_id, trigger=trigger, status="running", counts={})
        db.session.add(run)
    now = utcnow()
    run.status, run.started_at = "running", now
    run.owner, run.lease_until = owner_name(), now + run_lease()
    db.session.commit()
    run_id = run.id
    _THREAD_RUNS[threading.get_ident()] = run_id
    started = time.monotonic()
    with job_run(run_id):  # every line logged by the job names its run
        log.info("job %s started (run %s, %s)", job_id, run_id, run.trigger)
        try:
            try:
                RUNNERS[job_id](run)
                run = db.session.get(SyncRun, run_id)
                if run.status == "running":
                    run.status = "ok"
            except Exception as exc:  # noqa: BLE001 - recorded on the run; the scheduler goes on
                db.session.rollback()
                log_failure(log, f"job {job_id} (run {run_id}) failed", exc)
                run = db.session.get(SyncRun, run_id)
                run.status, run.error = "failed", plain_error(exc)
            run.finished_at = utcnow()
            run = _finish(run)
            log.info("job %s ended %s (run %s) in %.1f s", job_id, run.status, run_id,
                     time.monotonic() - started)
            return run
        finally:
            _THREAD_RUNS.pop(threading.get_ident(), None)


def _finish(run: SyncRun) -> SyncRun:
    """Commit the run's outcome, unless the scheduler already gave up on it (timed
    out, or interrupted): then its record stands and this outcome only goes to the log."""
    with db.session.no_autoflush:
        recorded = db.session.execute(
            select(SyncRun.status).where(SyncRun.id == run.id)
        ).scalar_one()
    if recorded in (TIMED_OUT, INTERRUPTED):
        log.warning("run %s (%s) ended %s after it was recorded %s",
                    run.id, run.job, run.status, recorded)
        db.session.rollback()
        return db.session.get(SyncRun, run.id)
    db.session.commit()
    return run


def _end_runs(where, status: str, error: str) -> int:
    """Mark running runs that match `where` as ended with `status` (the caller commits)."""
    count = db.session.execute(
        update(SyncRun)
        .where(SyncRun.status == "running", where)
        .values(status=status, error=error, finished_at=utcnow(), lease_until=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    return count


def mark_timed_out(run_ids: list[int], seconds: float) -> int:
    """The scheduler stopped waiting for these runs: say so, never leave them running."""
    if not run_ids:
        return 0
    return _end_runs(
        SyncRun.id.in_(run_ids),
        TIMED_OUT,
        f"Stopped after running longer than its time limit ({seconds:g} seconds). "
        "It starts again on its next turn; if it keeps timing out, the scheduler's "
        "log says where it was.",
    )


def interrupt_own_runs(owner: str | None = None) -> int:
    """This scheduler stops (SIGTERM) with runs it could not finish in the grace period."""
    owner = owner or owner_name()
    return _end_runs(SyncRun.owner == owner, INTERRUPTED, _interrupted_text(owner))


def renew_leases(owner: str | None = None) -> int:
    """The heartbeat: this scheduler still runs its runs."""
    count = db.session.execute(
        update(SyncRun)
        .where(SyncRun.status == "running", SyncRun.owner == (owner or owner_name()))
        .values(lease_until=utcnow() + run_lease())
        .execution_options(synchronize_session=False)
    ).rowcount
    return count


def _interrupted_text(owner: str | None) -> str:
    who = f" ({owner})" if owner else ""
    return (f"The scheduler running it{who} stopped before it finished. "
            "Nothing after the last saved step was done; the next run (or Run now) "
            "picks up from there.")


def local_process_alive(owner: str) -> bool | None:
    """Whether the owner's process runs, when it is on this host (None: elsewhere)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, but someone else's
        return True
    return True


SCHEDULER_SILENT_AFTER = dt.timedelta(seconds=60)


def last_heartbeat() -> dt.datetime | None:
    """When a scheduler last said it was alive (None: never)."""
    from app.payments.models import JobSchedule

    return db.session.execute(select(func.max(JobSchedule.heartbeat_at))).scalar()


def scheduler_alive(now: dt.datetime | None = None) -> bool:
    """Whether a scheduler reported within the last minute (its heartbeat is every 10 s)."""
    beat = last_heartbeat()
    return beat is not None and (now or utcnow()) - beat < SCHEDULER_SILENT_AFTER


def recover_runs(now: dt.datetime | None = None) -> int:
    """Mark runs whose owner is gone "interrupted" and free the push jobs it had
    claimed: a lease that passed, a run from before runs had owners that is older
    than a lease, or an owner process on this host that no longer exists. The
    caller commits. Returns how many runs were recovered."""
    from app.push.models import PushJob

    now = now or utcnow()
    running = db.session.execute(
        select(SyncRun.owner).where(SyncRun.status == "running").distinct()
    ).scalars().all()
    claimed = db.session.execute(
        select(PushJob.worker).where(PushJob.status == "running", PushJob.lease_until > now)
        .distinct()
    ).scalars().all()
    alive = {o: local_process_alive(o) for o in {*running, *claimed} if o}
    dead = sorted(o for o, up in alive.items() if up is False)
    count = 0
    for owner in dead:  # each with its owner named
        count += _end_runs(SyncRun.owner == owner, INTERRUPTED, _interrupted_text(owner))
    # The lease decides for owners on other hosts (and for runs from before owners);
    # a process on this host that still runs (a long `flask desk sync deals`) keeps its run.
    live_here = sorted(o for o, up in alive.items() if up)
    count += _end_runs(
        and_(
            or_(SyncRun.owner.is_(None), SyncRun.owner.not_in(live_here)),
            or_(
                SyncRun.lease_until < now,
                and_(SyncRun.lease_until.is_(None), SyncRun.started_at < now - run_lease()),
            ),
        ),
        INTERRUPTED,
        _interrupted_text(None),
    )
    if dead:
        release_push_claims(dead, now)
    if count:
        log.warning("recovered %s run(s) whose scheduler was gone", count)
    return count


def release_push_claims(owners: list[str], now: dt.datetime | None = None) -> int:
    """Push jobs these (stopped) workers held: their lease ends now, so the push worker
    takes them over at once instead of after the lease (the push resumes idempotently)."""
    from app.push.models import PushJob

    now = now or utcnow()
    count = db.session.execute(
        update(PushJob)
        .where(PushJob.status == "running", PushJob.worker.in_(owners), PushJob.lease_until > now)
        .values(lease_until=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return count


def _last_run(job_id: str) -> SyncRun | None:
    return (
        db.session.execute(
            select(SyncRun).where(SyncRun.job == job_id).order_by(SyncRun.id.desc()).limit(1)
        )
        .scalars()
        .first()
    )


def record_recovery(job_id: str) -> SyncRun | None:
    """A worker that failed before ran well again: say so, so Sync health calms down."""
    last = _last_run(job_id)
    if last is None or last.status != "failed":
        return None
    now = utcnow()
    run = SyncRun(job=job_id, trigger="schedule", status="ok", started_at=now,
                  finished_at=now, counts={"recovered": True})
    db.session.add(run)
    db.session.commit()
    return run


def record_failure(job_id: str, exc: BaseException, trigger: str = "schedule") -> SyncRun:
    """Record a failed run of a job that keeps no runs of its own (the fast worker,
    the push worker), so Sync health shows it. The same failure again, straight
    after, counts up on the last run instead of adding one row every two seconds."""
    message = plain_error(exc)
    now = utcnow()
    last = _last_run(job_id)
    if last is not None and last.status == "failed" and last.error == message:
        last.counts = {**(last.counts or {}), "repeats": (last.counts or {}).get("repeats", 1) + 1}
        last.finished_at = now
        run = last
    else:
        run = SyncRun(job=job_id, trigger=trigger, status="failed", error=message,
                      started_at=now, finished_at=now, counts={})
        db.session.add(run)
    db.session.commit()
    return run


def run_queued(limit: int = 20) -> int:
    _load_runners()
    queued = (
        db.session.execute(
            select(SyncRun)
            .where(SyncRun.status == "queued", SyncRun.job.in_(list(RUNNERS)))
            .order_by(SyncRun.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    for run in queued:
        # Claim it: only one worker moves a queued run to running.
        claimed = db.session.execute(
            SyncRun.__table__.update()
            .where(SyncRun.id == run.id, SyncRun.status == "queued")
            .values(status="running", owner=owner_name(), lease_until=utcnow() + run_lease())
        ).rowcount
        db.session.commit()
        if claimed:
            execute(run.job, db.session.get(SyncRun, run.id))
    return len(queued)


def _load_runners() -> None:
    import app.jobs.runners  # noqa: F401 - registers the runners
