"""What the push pages show: the latest job, why a push is not moving, batch progress."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from app.extensions import db
from app.invoices.models import Invoice
from app.push.models import LEASE, PushBatch, PushJob
from app.types import utcnow


def latest_job(invoice_id: int) -> PushJob | None:
    """The invoice's most recent push job (of any version), or None."""
    return db.session.execute(
        select(PushJob).where(PushJob.invoice_id == invoice_id)
        .order_by(PushJob.id.desc()).limit(1)
    ).scalar_one_or_none()


_TAKEN_OVER = ("The next scheduler run takes the push over and continues where it stopped; "
               "Stripe recognises what was already sent, so nothing is made twice.")


def worker_hint(job: PushJob | None, now: dt.datetime | None = None) -> str | None:
    """Why a queued or running push may not be moving, in words; None while it moves."""
    if job is None or job.status not in ("queued", "running"):
        return None
    from app.jobs.queue import local_process_alive, scheduler_alive

    now = now or utcnow()
    if job.status == "running" and job.worker:
        if local_process_alive(job.worker) is False:
            return f"The scheduler that was pushing it ({job.worker}) has stopped. {_TAKEN_OVER}"
        if job.lease_until is not None and job.lease_until < now:
            return (f"The push worker ({job.worker}) has not reported for over "
                    f"{int(LEASE.total_seconds() // 60)} minutes. {_TAKEN_OVER}")
    if not scheduler_alive(now):
        return ("No scheduler has reported in the last minute, so nothing moves this push "
                "on: start one (flask desk scheduler) or tell the desk's administrator. It "
                "continues where it stopped.")
    return None


def batch_progress(batch: PushBatch) -> dict:
    """How many of the batch's jobs are done, failed, waiting and running."""
    rows = dict(db.session.execute(
        select(PushJob.status, func.count()).where(PushJob.batch_id == batch.id)
        .group_by(PushJob.status)
    ).all())
    done, failed = rows.get("done", 0), rows.get("failed", 0)
    return {"done": done, "failed": failed, "waiting": rows.get("queued", 0),
            "running": rows.get("running", 0), "total": batch.total,
            "finished": done + failed >= batch.total}


def failed_in_batch(batch: PushBatch) -> list[tuple[PushJob, Invoice]]:
    """The batch's failed jobs with their invoices, in the order they were queued."""
    return list(db.session.execute(
        select(PushJob, Invoice).join(Invoice, Invoice.id == PushJob.invoice_id)
        .where(PushJob.batch_id == batch.id, PushJob.status == "failed").order_by(PushJob.id)
    ).all())


def ready_to_push(limit: int = 200) -> list[Invoice]:
    """Approved invoices not on hold, and failed pushes, oldest approval first."""
    return list(db.session.execute(
        select(Invoice).where(Invoice.status.in_(("approved", "push_failed")),
                              Invoice.on_hold.is_(False))
        .order_by(Invoice.approved_at, Invoice.id).limit(limit)
    ).scalars())
