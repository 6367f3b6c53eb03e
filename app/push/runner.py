"""Running one claimed push job: its steps in order, each committed before the next.

`run_push` runs (or resumes) a job: it plans the steps once, removes drafts left
by pushes of earlier versions, then sends each unfinished step. Each step is
marked as sent and committed before its Stripe call, and its result is
committed before the next step starts (`commit_step`, app.push.commits says
why). A step that did not finish is sent again with the same idempotency key,
so Stripe replays what it already did instead of doing it twice.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from app.audit.operations import lock_chain, record
from app.extensions import db
from app.invoices.models import Invoice
from app.invoices.plan import ADD_LINES_CHUNK
from app.invoices.totals import Totals, for_invoice
from app.push.commits import commit_step
from app.push.customers import Deferred
from app.push.finishing import finish_done, step_failed
from app.push.models import LEASE, PushJob, PushStep
from app.push.steps import PushRun, PushStopped
from app.push.stripe_calls import Calls, Hook
from app.stripe_api.client import StripeGateway, StripeGatewayError
from app.types import utcnow
from app.web.database import retry_transient

DEFER_DELAY = dt.timedelta(seconds=2)


def key_for(invoice_id: int, version: int, step: str) -> str:
    """The idempotency key of one step of one approved version of a desk invoice."""
    return f"desk:{invoice_id}:v{version}:{step}"


def plan_steps(invoice: Invoice, totals: Totals) -> list[str]:
    """The names of the steps that push `invoice`, in the order they are sent."""
    names = ["customer"]
    if any(pl.tax_behavior != "none" for pl in totals.push_lines):
        names.append("tax_rates")
    names.append("invoice")
    chunks = (len(totals.push_lines) + ADD_LINES_CHUNK - 1) // ADD_LINES_CHUNK
    names += [f"lines:{i}" for i in range(chunks)]
    names += ["check", "finalize"]
    if invoice.collection_method == "send_invoice":
        names.append("send")
    return names


def _ensure_steps(job: PushJob, invoice: Invoice, totals: Totals) -> None:
    if job.steps:
        return
    for position, name in enumerate(plan_steps(invoice, totals)):
        key = None if name in ("customer", "tax_rates", "check") else key_for(
            invoice.id, job.version, name)
        job.steps.append(PushStep(position=position, name=name, idempotency_key=key,
                                  status="pending", attempts=0))
    db.session.flush()


def run_push(job_id: int, gateway: StripeGateway, *, hook: Hook | None = None) -> str:
    """Run (or resume) one claimed job to its end; returns done/failed/retrying/deferred."""
    job = db.session.get(PushJob, job_id)
    invoice = db.session.get(Invoice, job.invoice_id)
    if invoice.status != "pushing" or invoice.approved_version != job.version:
        # Cannot happen through the desk (a pushing invoice cannot be edited); say so if it does.
        job.status, job.finished_at = "failed", utcnow()
        job.error = "The invoice changed after its push was queued; nothing more was sent."
        commit_step()
        return "failed"
    totals = for_invoice(invoice)
    _ensure_steps(job, invoice, totals)
    commit_step()
    run = PushRun(job, invoice, Calls(gateway, hook), totals)
    start_requests = run.calls.requests
    try:
        _cleanup_old_drafts(run)
        _send_steps(run)
    except Deferred:
        db.session.rollback()
        return _defer(job_id)
    except (StripeGatewayError, PushStopped) as exc:
        db.session.rollback()
        outcome = step_failed(job_id, exc, run.calls.requests - start_requests)
        commit_step()
        return outcome

    def finish() -> None:
        job.requests += run.calls.requests - start_requests
        finish_done(job, invoice, run.last_stripe)
        commit_step()

    retry_transient(finish, what=f"finishing push job {job.id}")
    return "done"


def _send_steps(run: PushRun) -> None:
    """Send every step not done yet, in order, each committed before the next."""
    job = run.job
    todo = [s for s in job.steps if s.status != "done"]
    if todo:
        _mark_sent(run, todo[0])
        commit_step()
    for n, step in enumerate(todo):
        following = todo[n + 1] if n + 1 < len(todo) else None
        # A deadlock with a webhook is run again (the Stripe call replays under its
        # idempotency key), never turned into a failed push.
        retry_transient(lambda s=step, f=following: _run_step(run, s, f),
                        what=f"push step {step.name} of job {job.id}")
    if not todo and job.stripe_invoice_id:
        # Every step was done in Stripe before (the push's finish failed, or it was
        # retried after that): read the invoice back so it finishes on Stripe's word.
        run.record_stripe(run.calls.retrieve_invoice(job.stripe_invoice_id))


def _defer(job_id: int) -> str:
    """Another push is making this organization's customer: queue the job again shortly."""
    job = db.session.get(PushJob, job_id)
    for step in job.steps:
        if step.status == "sent" and step.name == "customer":
            step.status = "pending"
    job.status, job.next_attempt_at, job.lease_until = "queued", utcnow() + DEFER_DELAY, None
    job.attempts = max(0, job.attempts - 1)  # waiting for another push is no failure
    commit_step()
    return "deferred"


def _mark_sent(run: PushRun, step: PushStep) -> None:
    """Record that `step` is being sent (what the page shows as in progress)."""
    now = utcnow()
    step.status, step.attempts, step.started_at, step.error = "sent", step.attempts + 1, now, None
    run.job.step, run.job.lease_until = step.name, now + LEASE


def _run_step(run: PushRun, step: PushStep, following: PushStep | None) -> None:
    """Send one step (already marked as sent and committed) and record its result.

    The result, and the mark on the step that follows, are committed together
    before that step is sent: one commit per step. Nothing is written while a
    Stripe call is under way, so no database lock is held across one.
    """
    with db.session.no_autoflush:
        # Nothing the step changes is written before the audit chain lock below: a flush
        # here would lock the invoice row first, against the documented order.
        run.action(step.name)(step)
    # Locks in the documented order (app.audit.operations): the audit chain first, before
    # the step's writes lock the invoice row; the Stripe call above held no lock at all.
    lock_chain()
    step.status, step.finished_at = "done", utcnow()
    record("push.step", "push_job", run.job.id, None,
           {"step": step.name, "stripe_id": step.stripe_id, "invoice_id": run.invoice.id,
            "key": step.idempotency_key})
    if following is not None:
        _mark_sent(run, following)
    commit_step()  # the result is on record before the next step starts


def _cleanup_old_drafts(run: PushRun) -> None:
    """Delete Stripe drafts left by pushes of earlier versions (never finalized)."""
    old = db.session.execute(
        select(PushJob).where(PushJob.invoice_id == run.invoice.id,
                              PushJob.version != run.job.version,
                              PushJob.stripe_invoice_id.is_not(None))
    ).scalars().all()
    for other in old:
        finalized = other.step_named("finalize")
        if (finalized is not None and finalized.status == "done") or other.stripe_status in (
                "void", "deleted") or (other.resolution or {}).get("confirmed_at"):
            continue
        try:
            run.calls.delete_draft(other.stripe_invoice_id,
                                   key_for(run.invoice.id, run.job.version,
                                           f"cleanup:{other.stripe_invoice_id}"))
        except StripeGatewayError as exc:
            if exc.retryable:
                raise
            _not_a_draft(run, other)  # gone already: nothing of ours to remove
        before = {"stripe_invoice_id": other.stripe_invoice_id}
        other.stripe_invoice_id, other.stripe_status = None, "deleted"
        record("push.old_draft_deleted", "push_job", other.id, before,
               {"stripe_invoice_id": None, "by_job": run.job.id})
        commit_step()


def _not_a_draft(run: PushRun, other: PushJob) -> None:
    """Stripe would not delete an earlier version's draft: read it back. Gone is fine;
    finalized (the answer to its finalize was lost, or someone finalized it in Stripe)
    stops this push before it makes a second invoice for the same bill."""
    try:
        found = run.calls.retrieve_invoice(other.stripe_invoice_id)
    except StripeGatewayError as exc:
        if exc.code == "resource_missing":
            return
        raise
    if found.status == "draft":
        raise PushStopped(
            f"Stripe would not delete the draft {found.id} of an earlier version.",
            "Delete it in Stripe, then retry.")
    other.stripe_status, other.stripe_checked_at = found.status, utcnow()
    record("push.read_back", "invoice", run.invoice.id, None,
           {"stripe_status": found.status, "stripe_invoice_id": found.id,
            "push_job": other.id, "version": other.version})
    commit_step()  # what Stripe said stays on record when the push stops
    raise PushStopped(
        f"An earlier version of this invoice is {found.status} in Stripe as "
        f"{found.number or found.id}; pushing this version would bill the customer twice. "
        "The push stopped before creating anything.",
        "Void it or adopt it on the invoice page (one user asks, another confirms), then "
        "push again.")
