"""Work a person asks for ("Run now", "Re-sync"): queued by the web, run by the scheduler.

A queued run is a SyncRun row with status "queued"; the scheduler's fast worker
starts each with the runner registered for its job id. Every run, scheduled or
asked for, is recorded the same way: start, end, counts, requests, errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from app.extensions import db
from app.intake.models import SyncRun
from app.intake.problems import plain_error
from app.types import utcnow

log = logging.getLogger("billing_desk.jobs")

# job id -> runner(run): fills run.counts (and requests/tokens); may set run.status.
RUNNERS: dict[str, Callable[[SyncRun], None]] = {}


def runner(job_id: str):
    def register(fn: Callable[[SyncRun], None]):
        RUNNERS[job_id] = fn
        return fn

    return register


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
    run.status, run.started_at = "running", utcnow()
    db.session.commit()
    run_id = run.id
    try:
        RUNNERS[job_id](run)
        run = db.session.get(SyncRun, run_id)
        if run.status == "running":
            run.status = "ok"
    except Exception as exc:  # noqa: BLE001 - recorded on the run; the scheduler goes on
        db.session.rollback()
        log.exception("job %s (run %s) failed", job_id, run_id)
        run = db.session.get(SyncRun, run_id)
        run.status, run.error = "failed", plain_error(exc)
    run.finished_at = utcnow()
    db.session.commit()
    return run


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
            .values(status="running")
        ).rowcount
        db.session.commit()
        if claimed:
            execute(run.job, db.session.get(SyncRun, run.id))
    return len(queued)


def _load_runners() -> None:
    import app.jobs.runners  # noqa: F401 - registers the runners
