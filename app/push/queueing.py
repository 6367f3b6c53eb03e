"""Queueing pushes (the web): one invoice, or several as a batch.

Queueing only records the job and moves the invoice to "pushing"; it flushes and
never commits, and it calls nothing in Stripe. The scheduler's worker runs the
queue (app.push.worker). A refusal (on hold, already pushed, an earlier version
may be billed in Stripe) changes nothing and says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.approvals import workflow
from app.audit.operations import record
from app.extensions import db
from app.invoices.models import Invoice
from app.push.models import PushBatch, PushJob
from app.types import utcnow


@dataclass
class Queued:
    """What queueing one invoice did: its job, or no job and why not."""

    invoice_id: int
    number: str
    job: PushJob | None
    message: str  # what happened, in plain words

    @property
    def ok(self) -> bool:
        return self.job is not None


def _refusal(invoice: Invoice) -> str | None:
    if invoice.status == "pushing":
        return "It is being pushed already."
    if invoice.status == "pushed":
        return f"It is in Stripe already as {invoice.stripe_number or invoice.stripe_invoice_id}."
    action = "push_retry" if invoice.status == "push_failed" else "push_start"
    refused = workflow.refusal(invoice, action, None)
    if refused:
        return refused
    # At call time: app.push.recovery queues pushes itself (send again) through here.
    from app.push.recovery import push_refusal

    return push_refusal(invoice)


def enqueue_one(invoice: Invoice, user, batch: PushBatch | None = None) -> Queued:
    """Queue the push of one invoice (flushes, never commits). Refusals change nothing."""
    refused = _refusal(invoice)
    if refused:
        return Queued(invoice.id, invoice.number, None, refused)
    action = "push_retry" if invoice.status == "push_failed" else "push_start"
    job = db.session.execute(
        select(PushJob).where(PushJob.invoice_id == invoice.id,
                              PushJob.version == invoice.approved_version)
    ).scalar_one_or_none()
    try:
        with db.session.begin_nested():
            if job is None:
                job = PushJob(invoice_id=invoice.id, version=invoice.approved_version,
                              created_by_id=getattr(user, "id", None), attempts=0, requests=0)
                db.session.add(job)
            before = {"status": job.status, "attempts": job.attempts}
            job.status, job.next_attempt_at, job.lease_until = "queued", utcnow(), None
            job.attempts, job.error, job.hint, job.retryable = 0, None, None, None
            if batch is not None:
                job.batch_id = batch.id
            _fresh_keys_after_refusal(job)
            workflow.transition(invoice, action, user)
            invoice.push_error = invoice.push_hint = None
            db.session.flush()
    except IntegrityError:
        # The same invoice queued at the same moment (double click, two tabs).
        return Queued(invoice.id, invoice.number, None, "It is being pushed already.")
    except workflow.TransitionRefused as exc:
        return Queued(invoice.id, invoice.number, None, exc.message)
    record("push.queued", "push_job", job.id, before,
           {"status": "queued", "invoice_id": invoice.id, "version": job.version,
            "batch_id": job.batch_id}, actor=user)
    verb = "queued again" if action == "push_retry" else "queued"
    return Queued(invoice.id, invoice.number, job, f"Push {verb}.")


def _fresh_keys_after_refusal(job: PushJob) -> None:
    """A step Stripe refused did nothing there, and Stripe would replay the refusal
    for its key: give it a new key. A step that failed for any other reason keeps
    its key (it may have happened), so resending it stays safe."""
    for step in job.steps:
        if step.status == "failed" and step.result and step.result.get("refused"):
            base = step.idempotency_key.split(":retry")[0] if step.idempotency_key else None
            if base:
                step.idempotency_key = f"{base}:retry{step.attempts}"
            step.status, step.result = "pending", None


def enqueue_push(invoice_ids: Iterable[int], user) -> tuple[PushBatch | None, list[Queued]]:
    """Queue several invoices (a batch when more than one); the caller commits once."""
    ids = list(dict.fromkeys(int(i) for i in invoice_ids))
    batch = None
    if len(ids) > 1:
        batch = PushBatch(created_by_id=getattr(user, "id", None), total=0, refused=[])
        db.session.add(batch)
        db.session.flush()
    results = []
    for invoice_id in ids:
        invoice = workflow.load_for_update(invoice_id)
        if invoice is None:
            results.append(Queued(invoice_id, f"#{invoice_id}", None, "No such invoice."))
            continue
        results.append(enqueue_one(invoice, user, batch))
    if batch is not None:
        batch.total = sum(1 for r in results if r.ok)
        batch.refused = [{"invoice_id": r.invoice_id, "number": r.number, "reason": r.message}
                         for r in results if not r.ok]
    return batch, results
