"""How a push ends: done, failed, or failed for now and tried again by itself.

These write the outcome on the job and the invoice, with its audit entry, and
never commit: the runner or the worker that called them does (app.push.commits).
"""

from __future__ import annotations

import datetime as dt

import stripe
from sqlalchemy import select

from app.approvals import workflow
from app.audit.operations import lock_chain, record
from app.extensions import db
from app.invoices.models import Invoice
from app.payments.sync import apply_invoice
from app.push.models import PushJob
from app.types import utcnow
from app.writeback.operations import enqueue_for_pushed_invoice

# Stripe unreachable: tried again automatically after these delays, then "push failed".
AUTO_RETRY_DELAYS = (dt.timedelta(seconds=15), dt.timedelta(minutes=1),
                     dt.timedelta(minutes=5))
FINALIZED_HINT = (
    "It is finalized in Stripe, so it can no longer be edited. Set the billing email and "
    "send it, mark it as sent if it reached the customer another way, or void it in "
    "Stripe and draft it again."
)


def step_failed(job_id: int, exc: Exception, requests: int) -> str:
    """A step failed: retry it later by itself (Stripe unreachable, a few times) or fail
    the push. Returns "retrying" or "failed"; the caller commits."""
    job = db.session.get(PushJob, job_id)
    invoice = db.session.get(Invoice, job.invoice_id)
    job.requests += max(0, requests)
    step = job.step_named(job.step) if job.step else None
    retryable = bool(getattr(exc, "retryable", False))
    message, hint = str(exc), getattr(exc, "hint", "") or ""
    if step is not None and step.status != "done":
        step.status, step.error = "failed", message
        # A refusal did nothing in Stripe; a retry of this step may use a new key. Not
        # so for an idempotency conflict: a new key there could make a second invoice.
        conflict = isinstance(getattr(exc, "__cause__", None), stripe.IdempotencyError)
        step.result = {**(step.result or {}), "refused": not retryable and not conflict}
    auto = job.attempts <= len(AUTO_RETRY_DELAYS)
    if retryable and auto:
        delay = AUTO_RETRY_DELAYS[job.attempts - 1]
        when = utcnow() + delay
        job.status, job.next_attempt_at, job.lease_until = "queued", when, None
        job.error, job.hint, job.retryable = message, hint, True
        invoice.push_error = f"{message} It is tried again automatically at {when:%H:%M} UTC."
        invoice.push_hint = hint
        record("push.retry_scheduled", "push_job", job.id, None,
               {"step": job.step, "error": message, "at": when, "invoice_id": invoice.id})
        return "retrying"
    finish_failed(job, invoice, message, hint, retryable=retryable)
    return "failed"


def finish_failed(job: PushJob, invoice: Invoice, message: str, hint: str, *,
                  retryable: bool) -> None:
    """The push failed: record where it stopped in Stripe and what to do next."""
    where = ""
    if job.stripe_invoice_id:
        finalized = job.step_named("finalize")
        if finalized is not None and finalized.status == "done":
            where = (f" The invoice is finalized in Stripe as {invoice.stripe_number}; "
                     "only the remaining step failed.")
            if not retryable:
                # It can no longer be edited, whatever Stripe's refusal suggests: the ways
                # out are in app/push/recovery. A hint that is not about editing is kept.
                editing = not hint or hint.startswith("Correct the invoice")
                hint = FINALIZED_HINT if editing else f"{hint} {FINALIZED_HINT}"
        elif finalized is not None and finalized.status != "pending" and not (
                finalized.result or {}).get("refused"):
            where = (f" Its finalize was sent to Stripe for {job.stripe_invoice_id} and no "
                     "answer arrived, so Stripe may have finalized it; retrying continues "
                     "safely. Before editing it, use “Check in Stripe”.")
        else:
            where = (f" A draft ({job.stripe_invoice_id}) is in Stripe, not finalized; "
                     "retrying continues with it.")
    job.status, job.finished_at, job.lease_until = "failed", utcnow(), None
    job.error, job.hint, job.retryable = message + where, hint, retryable
    invoice.push_error, invoice.push_hint = message + where, hint
    if invoice.status == "pushing":
        workflow.transition(invoice, "push_fail", None)
    record("push.failed", "push_job", job.id, None,
           {"step": job.step, "error": job.error, "invoice_id": invoice.id})


def finish_done(job: PushJob, invoice: Invoice, stripe_invoice=None, *,
                action: str = "push_done", user=None) -> None:
    """The push is complete: the invoice is in Stripe and Pipedrive is told.
    `action`: push_done (the worker), or push_sent_by_hand (finance, see recovery)."""
    now = utcnow()
    # The audit chain, then the invoice row, as a Stripe webhook for this invoice takes
    # them (a push finishing while its webhook arrives deadlocked on PostgreSQL).
    lock_chain()
    db.session.execute(select(Invoice.id).where(Invoice.id == invoice.id).with_for_update())
    if stripe_invoice is not None:
        # The payment state starts from what Stripe answered; its sync keeps it current.
        apply_invoice(stripe_invoice.to_dict())
    job.status, job.finished_at, job.lease_until, job.step = "done", now, None, None
    job.error = job.hint = None
    invoice.pushed_at = now
    invoice.push_error = invoice.push_hint = None
    workflow.transition(invoice, action, user)
    enqueue_for_pushed_invoice(invoice)
