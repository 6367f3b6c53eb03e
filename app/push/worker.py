"""The push worker: claims due jobs one at a time and runs them.

The web only queues (app.push.queueing); the scheduler process runs the queue
(`scheduled_push`, or `work_push_queue`, which tests call directly). Jobs are
claimed one at a time: `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL, a
conditional UPDATE elsewhere, so several workers share the queue and never run
one job together. A claim is committed at once (app.push.commits), so no lock is
held while the job runs. A worker that dies leaves a lease that expires; the
next worker takes the job over and resumes it (app.push.runner).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading

from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from app.extensions import db
from app.invoices.models import Invoice
from app.push.commits import commit_step
from app.push.finishing import finish_failed
from app.push.models import LEASE, PushJob
from app.push.runner import run_push
from app.push.stripe_calls import Hook, push_gateway
from app.stripe_api.client import StripeGateway, StripeGatewayError
from app.types import utcnow

log = logging.getLogger("billing_desk.push")


def worker_name() -> str:
    """This process, as the job's `worker` and the run's owner name it: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _claimable(now: dt.datetime):
    return or_(
        and_(PushJob.status == "queued", PushJob.next_attempt_at <= now),
        and_(PushJob.status == "running", PushJob.lease_until < now),
    )


def claim_next(now: dt.datetime | None = None, worker: str | None = None) -> int | None:
    """Take one due job (or one whose worker died) for this worker; commits."""
    now = now or utcnow()
    worker = worker or worker_name()
    values = dict(status="running", lease_until=now + LEASE, worker=worker,
                  attempts=PushJob.attempts + 1, started_at=now)
    if db.session.get_bind().dialect.name == "postgresql":
        job_id = db.session.execute(
            select(PushJob.id).where(_claimable(now))
            .order_by(PushJob.next_attempt_at, PushJob.id).limit(1)
            .with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if job_id is not None:
            db.session.execute(update(PushJob).where(PushJob.id == job_id).values(**values)
                               .execution_options(synchronize_session=False))
        commit_step()
        return job_id
    candidates = db.session.execute(
        select(PushJob.id).where(_claimable(now))
        .order_by(PushJob.next_attempt_at, PushJob.id).limit(5)
    ).scalars().all()
    for job_id in candidates:
        # Only one worker's UPDATE can still match: the loser sees rowcount 0.
        won = db.session.execute(
            update(PushJob).where(PushJob.id == job_id, _claimable(now)).values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
        commit_step()
        if won:
            return job_id
    commit_step()
    return None


def work_push_queue(limit: int = 50, *, gateway: StripeGateway | None = None,
                    hook: Hook | None = None, now: dt.datetime | None = None,
                    threads: int = 1) -> dict:
    """Run up to `limit` due jobs, sharing one gateway (one rate limit).

    With `threads` > 1, that many workers claim jobs side by side (each with its
    own database session): a push mostly waits for Stripe, so one worker alone
    uses a fraction of the rate limit; together they fill it, and the shared
    token bucket keeps them under it.
    """
    if threads > 1:
        return _work_in_threads(limit, gateway, hook, now, threads)
    counts = {"done": 0, "failed": 0, "retrying": 0, "deferred": 0}
    gw = gateway
    for _ in range(limit):
        job_id = claim_next(now)
        if job_id is None:
            break
        if gw is None:
            try:
                gw = push_gateway()
            except StripeGatewayError as exc:
                _fail_without_stripe(job_id, exc)
                counts["failed"] += 1
                continue
        try:
            outcome = run_push(job_id, gw, hook=hook)
        except Exception as exc:  # noqa: BLE001 - one broken job must not stop the queue
            db.session.rollback()
            log.exception("push job %s crashed", job_id)
            outcome = _fail_unexpected(job_id, exc)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _work_in_threads(limit, gateway, hook, now, threads) -> dict:
    app = current_app._get_current_object()
    due = db.session.execute(
        select(func.count()).select_from(
            select(PushJob.id).where(_claimable(now or utcnow())).limit(threads).subquery())
    ).scalar()
    commit_step()
    if not due:
        return {"done": 0, "failed": 0, "retrying": 0, "deferred": 0}
    threads = min(threads, due)
    if gateway is None:
        try:
            gateway = push_gateway()
        except StripeGatewayError:
            return work_push_queue(limit, hook=hook, now=now)  # fails each job with why
    share, extra = divmod(limit, threads)
    results: list[dict] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        with app.app_context():  # its own database session
            try:
                counts = work_push_queue(share + (1 if n < extra else 0), gateway=gateway,
                                         hook=hook, now=now)
            finally:
                db.session.remove()
        with lock:
            results.append(counts)

    pool = [threading.Thread(target=worker, args=(n,), name=f"push-{n}") for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total: dict = {"done": 0, "failed": 0, "retrying": 0, "deferred": 0}
    for counts in results:
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
    return total


def _fail_without_stripe(job_id: int, exc: StripeGatewayError) -> None:
    job = db.session.get(PushJob, job_id)
    invoice = db.session.get(Invoice, job.invoice_id)
    finish_failed(job, invoice, str(exc), exc.hint, retryable=exc.retryable)
    commit_step()


def _fail_unexpected(job_id: int, exc: Exception) -> str:
    job = db.session.get(PushJob, job_id)
    invoice = db.session.get(Invoice, job.invoice_id)
    if job.status != "running":
        return "failed"
    finish_failed(job, invoice, f"The push stopped on an unexpected error ({type(exc).__name__}).",
                   "Retry it; if it happens again, tell the desk's administrator.",
                   retryable=True)
    commit_step()
    return "failed"


def scheduled_push() -> dict:
    """The scheduler's push job: work the queue; record a run when there was work.

    Runs every two seconds, so an idle tick leaves no trace; a tick that pushed
    something is recorded (SyncRun "push.work") and its write-backs are sent
    right away instead of at the outbox's next turn.
    """
    from app.intake.models import SyncRun
    from app.writeback.operations import process_outbox

    started = utcnow()
    gateway = None
    try:
        gateway = push_gateway()
    except StripeGatewayError:
        gateway = None  # each job is failed with the reason by work_push_queue
    threads = int(current_app.config.get("PUSH_WORKER_THREADS", 8))
    counts = work_push_queue(limit=200, gateway=gateway, threads=threads)
    if not any(counts.values()):
        return counts
    if counts.get("done"):
        counts["writeback"] = process_outbox()
    run = SyncRun(job="push.work", trigger="schedule", status="ok", started_at=started,
                  finished_at=utcnow(), counts=counts,
                  requests=gateway.usage.requests if gateway else 0)
    db.session.add(run)
    commit_step()
    return counts
