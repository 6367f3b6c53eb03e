"""Push approved invoices to Stripe exactly once.

The web only queues (`enqueue_push`); the scheduler process runs the queue
(`work_push_queue`), which tests call directly. A push is a persisted sequence
of steps (customer, tax rates, invoice, lines, check, finalize, send). Each
step is marked as sent and committed before its Stripe call, and its result is
committed before the next step starts; every call that changes something
carries an idempotency key derived from the step, the desk invoice and its
approved version. So whatever stops a push (a crash, a timeout, a 5xx, a lost
answer) it is resumed by sending the unfinished step again with the same key,
and Stripe replays what it already did instead of doing it twice.

Jobs are claimed one at a time: `SELECT ... FOR UPDATE SKIP LOCKED` on
PostgreSQL, a conditional UPDATE elsewhere, so several workers share the
queue and never run one job together. A worker that dies leaves a lease that
expires; the next worker takes the job over and resumes it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import stripe
from flask import current_app
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.approvals import workflow
from app.audit.operations import lock_chain, record
from app.extensions import db
from app.invoices.models import Invoice
from app.invoices.plan import ADD_LINES_CHUNK, build_plan
from app.invoices.totals import Totals, for_invoice
from app.money import format_money, from_minor
from app.push.customers import Deferred, resolve_customer
from app.push.models import PushBatch, PushJob, PushStep
from app.push.stripe_calls import Calls, Hook, push_gateway
from app.push.taxes import cached, ensure_tax_rates
from app.stripe_api.client import StripeGateway, StripeGatewayError
from app.types import utcnow
from app.web.database import retry_transient
from app.writeback.operations import enqueue_contact_customer, enqueue_for_pushed_invoice

log = logging.getLogger("billing_desk.push")

LEASE = dt.timedelta(seconds=120)
# Stripe unreachable: tried again automatically after these delays, then "push failed".
AUTO_RETRY_DELAYS = (dt.timedelta(seconds=15), dt.timedelta(minutes=1),
                     dt.timedelta(minutes=5))
DEFER_DELAY = dt.timedelta(seconds=2)
FINALIZED_HINT = (
    "It is finalized in Stripe, so it can no longer be edited. Set the billing email and "
    "send it, mark it as sent if it reached the customer another way, or void it in "
    "Stripe and draft it again."
)


class PushStopped(Exception):
    """The push must not go on (e.g. Stripe's totals differ); plain words and a hint."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def key_for(invoice_id: int, version: int, step: str) -> str:
    return f"desk:{invoice_id}:v{version}:{step}"


# -- queueing (the web) ----------------------------------------------------------------


@dataclass
class Queued:
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


# -- claiming (the worker) -------------------------------------------------------------


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
        db.session.commit()
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
        db.session.commit()
        if won:
            return job_id
    db.session.commit()
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
    db.session.commit()
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
    _finish_failed(job, invoice, str(exc), exc.hint, retryable=exc.retryable)
    db.session.commit()


def _fail_unexpected(job_id: int, exc: Exception) -> str:
    job = db.session.get(PushJob, job_id)
    invoice = db.session.get(Invoice, job.invoice_id)
    if job.status != "running":
        return "failed"
    _finish_failed(job, invoice, f"The push stopped on an unexpected error ({type(exc).__name__}).",
                   "Retry it; if it happens again, tell the desk's administrator.",
                   retryable=True)
    db.session.commit()
    return "failed"


# -- running one job -------------------------------------------------------------------


def plan_steps(invoice: Invoice, totals: Totals) -> list[str]:
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


class _Run:
    """One run of one job: the job, its invoice, the calls, the approved totals."""

    def __init__(self, job: PushJob, invoice: Invoice, calls: Calls, totals: Totals):
        self.job = job
        self.invoice = invoice
        self.calls = calls
        self.totals = totals
        self.last_stripe = None  # Stripe's invoice as the last step of this run returned it
        self._plan = None

    def result_of(self, name: str) -> dict:
        step = self.job.step_named(name)
        return (step.result or {}) if step else {}

    @property
    def customer_id(self) -> str:
        return self.job.stripe_customer_id

    @property
    def stripe_invoice_id(self) -> str:
        return self.job.stripe_invoice_id

    def tax_rate_ids(self) -> dict[str, str]:
        return dict(self.result_of("tax_rates").get("ids") or cached())

    def plan(self):
        key = (self.customer_id, self.stripe_invoice_id)
        if self._plan is not None and self._plan[0] == key:
            return self._plan[1]
        calls, _ = build_plan(self.invoice, customer=self.customer_id,
                              tax_rate_ids=self.tax_rate_ids(),
                              stripe_invoice=self.stripe_invoice_id or "<invoice>",
                              totals=self.totals)
        self._plan = (key, calls)
        return calls

    # -- the steps
    def customer(self, step: PushStep) -> None:
        resolved = resolve_customer(self.calls, self.invoice, self.job.id)
        self.job.stripe_customer_id = resolved.customer_id
        self.invoice.stripe_customer_id = resolved.customer_id
        step.stripe_id = resolved.customer_id
        step.result = {"source": resolved.source}
        if resolved.contact:
            enqueue_contact_customer(*resolved.contact, resolved.customer_id,
                                     invoice_id=self.invoice.id, deal_id=self.invoice.deal_id)

    def tax_rates(self, step: PushStep) -> None:
        step.result = {"ids": ensure_tax_rates(self.calls, self.invoice, self.totals)}

    def create_invoice(self, step: PushStep) -> None:
        call = next(c for c in self.plan() if c.step == "invoice")
        created = self._earlier_draft(call.params) if step.attempts > 1 else None
        if created is None:
            created = self.calls.create_invoice(call.params, step.idempotency_key)
        step.stripe_id = created.id
        self.job.stripe_invoice_id = created.id
        self.invoice.stripe_invoice_id = created.id
        self.invoice.stripe_status = created.status

    def _earlier_draft(self, params: dict):
        """A create sent before may have arrived although its answer did not. Stripe
        replays it by its idempotency key only for 24 hours; a push resumed later would
        make a second draft. So a resent create first looks for the draft this push
        made: the customer's draft naming this desk invoice and approved version."""
        want = params["metadata"]
        for draft in self.calls.draft_invoices(params["customer"]):
            meta = draft.metadata.to_dict() if draft.metadata else {}
            if all(meta.get(k) == want[k] for k in ("desk_invoice_id", "desk_invoice_version")):
                return draft
        return None

    def add_lines(self, step: PushStep) -> None:
        index = int(step.name.split(":")[1])
        call = [c for c in self.plan() if c.step == "lines"][index]
        result = self._earlier_lines(index, len(call.params["lines"])) \
            if step.attempts > 1 else None
        if result is None:
            result = self.calls.add_lines(self.stripe_invoice_id, call.params,
                                          step.idempotency_key)
        step.stripe_id = result.id
        step.result = _amounts(result)

    def _earlier_lines(self, index: int, size: int):
        """Like `_earlier_draft`, for lines sent again (Stripe may have forgotten the
        key): the draft invoice is the desk's alone, so its line count tells whether
        this chunk arrived. Returns the invoice when it did, None when it did not."""
        before = index * ADD_LINES_CHUNK
        count = sum(1 for _ in self.calls.invoice_lines(self.stripe_invoice_id))
        if count == before:
            return None
        if count == before + size:
            return self.calls.retrieve_invoice(self.stripe_invoice_id)
        raise PushStopped(
            f"The draft {self.stripe_invoice_id} in Stripe has {count} lines where "
            f"{before} or {before + size} were expected. The push stopped before finalizing: "
            "nothing was sent to the customer.",
            "Someone may have edited the draft in Stripe: remove the lines added there and "
            "retry, or edit the invoice and have it approved again (the push of the new "
            "version deletes this draft and makes a new one).",
        )

    def check(self, step: PushStep) -> None:
        last = self.job.steps[[s.name for s in self.job.steps].index("check") - 1]
        amounts = last.result if last.name.startswith("lines:") and last.result else None
        if not amounts:
            amounts = _amounts(self.calls.retrieve_invoice(self.stripe_invoice_id))
        approved = {"subtotal": self.totals.subtotal, "total": self.totals.total,
                    "amount_due": self.totals.amount_due}
        step.result = {"stripe": amounts, "approved": approved}
        differ = [k for k in approved if amounts.get(k) != approved[k]]
        if differ:
            cur = self.invoice.currency

            def money(minor):
                return format_money(from_minor(int(minor), cur), cur)

            parts = [f"Stripe's {k.replace('_', ' ')} is {money(amounts.get(k) or 0)}, the "
                     f"approved one {money(approved[k])}" for k in differ]
            raise PushStopped(
                "Stripe's totals differ from the approved ones: " + "; ".join(parts) + ". "
                f"The push stopped before finalizing: the draft {self.stripe_invoice_id} in "
                "Stripe was not finalized and nothing was sent to the customer.",
                "Check the lines (rounding of quantities and unit prices, discounts), correct "
                "the invoice and have it approved again; the old draft is deleted then.",
            )

    def finalize(self, step: PushStep) -> None:
        call = next(c for c in self.plan() if c.step == "finalize")
        try:
            result = self.calls.finalize(self.stripe_invoice_id, call.params,
                                         step.idempotency_key)
        except StripeGatewayError as exc:
            # Finalized already (e.g. the key expired after a long outage): take it as done.
            if exc.retryable:
                raise
            result = self.calls.retrieve_invoice(self.stripe_invoice_id)
            if result.status == "draft":
                raise
        step.stripe_id = result.id
        self._record_stripe(result)

    def send(self, step: PushStep) -> None:
        result = self.calls.send(self.stripe_invoice_id, step.idempotency_key)
        step.stripe_id = result.id
        self._record_stripe(result)

    def _record_stripe(self, result) -> None:
        self.last_stripe = result
        self.job.stripe_status = result.status
        inv = self.invoice
        inv.stripe_number = result.number
        inv.hosted_invoice_url = result.hosted_invoice_url
        inv.invoice_pdf = result.invoice_pdf
        inv.stripe_status = result.status
        if result.due_date:
            inv.due_at = dt.datetime.fromtimestamp(int(result.due_date), dt.UTC)
        inv.amount_remaining = from_minor(int(result.amount_remaining), inv.currency)

    def action(self, name: str):
        base = name.split(":")[0]
        return {"customer": self.customer, "tax_rates": self.tax_rates,
                "invoice": self.create_invoice, "lines": self.add_lines, "check": self.check,
                "finalize": self.finalize, "send": self.send}[base]


def _amounts(stripe_invoice) -> dict:
    return {"subtotal": int(stripe_invoice.subtotal), "total": int(stripe_invoice.total),
            "amount_due": int(stripe_invoice.amount_due)}


def run_push(job_id: int, gateway: StripeGateway, *, hook: Hook | None = None) -> str:
    """Run (or resume) one claimed job to its end; returns done/failed/retrying/deferred."""
    job = db.session.get(PushJob, job_id)
    invoice = db.session.get(Invoice, job.invoice_id)
    if invoice.status != "pushing" or invoice.approved_version != job.version:
        # Cannot happen through the desk (a pushing invoice cannot be edited); say so if it does.
        job.status, job.finished_at = "failed", utcnow()
        job.error = "The invoice changed after its push was queued; nothing more was sent."
        db.session.commit()
        return "failed"
    totals = for_invoice(invoice)
    _ensure_steps(job, invoice, totals)
    db.session.commit()
    run = _Run(job, invoice, Calls(gateway, hook), totals)
    start_requests = run.calls.requests
    try:
        _cleanup_old_drafts(run)
        todo = [s for s in job.steps if s.status != "done"]
        if todo:
            _mark_sent(run, todo[0])
            db.session.commit()
        for n, step in enumerate(todo):
            following = todo[n + 1] if n + 1 < len(todo) else None
            # A deadlock with a webhook is run again (the Stripe call replays under its
            # idempotency key), never turned into a failed push.
            retry_transient(lambda s=step, f=following: _run_step(run, s, f),
                            what=f"push step {step.name} of job {job.id}")
        if not todo and job.stripe_invoice_id:
            # Every step was done in Stripe before (the push's finish failed, or it was
            # retried after that): read the invoice back so it finishes on Stripe's word.
            run._record_stripe(run.calls.retrieve_invoice(job.stripe_invoice_id))
    except Deferred:
        db.session.rollback()
        job = db.session.get(PushJob, job_id)
        for step in job.steps:
            if step.status == "sent" and step.name == "customer":
                step.status = "pending"
        job.status, job.next_attempt_at, job.lease_until = "queued", utcnow() + DEFER_DELAY, None
        job.attempts = max(0, job.attempts - 1)  # waiting for another push is no failure
        db.session.commit()
        return "deferred"
    except (StripeGatewayError, PushStopped) as exc:
        db.session.rollback()
        return _step_failed(job_id, exc, run.calls.requests - start_requests)
    def finish() -> None:
        job.requests += run.calls.requests - start_requests
        _finish_done(job, invoice, run.last_stripe)
        db.session.commit()

    retry_transient(finish, what=f"finishing push job {job.id}")
    return "done"


def _mark_sent(run: _Run, step: PushStep) -> None:
    """Record that `step` is being sent (what the page shows as in progress)."""
    now = utcnow()
    step.status, step.attempts, step.started_at, step.error = "sent", step.attempts + 1, now, None
    run.job.step, run.job.lease_until = step.name, now + LEASE


def _run_step(run: _Run, step: PushStep, following: PushStep | None) -> None:
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
    db.session.commit()  # the result is on record before the next step starts


def _cleanup_old_drafts(run: _Run) -> None:
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
        db.session.commit()


def _not_a_draft(run: _Run, other: PushJob) -> None:
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
    db.session.commit()  # what Stripe said stays on record when the push stops
    raise PushStopped(
        f"An earlier version of this invoice is {found.status} in Stripe as "
        f"{found.number or found.id}; pushing this version would bill the customer twice. "
        "The push stopped before creating anything.",
        "Void it or adopt it on the invoice page (one user asks, another confirms), then "
        "push again.")


def _step_failed(job_id: int, exc: Exception, requests: int) -> str:
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
        db.session.commit()
        return "retrying"
    _finish_failed(job, invoice, message, hint, retryable=retryable)
    db.session.commit()
    return "failed"


def _finish_failed(job: PushJob, invoice: Invoice, message: str, hint: str, *,
                   retryable: bool) -> None:
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


def _finish_done(job: PushJob, invoice: Invoice, stripe_invoice=None, *,
                 action: str = "push_done", user=None) -> None:
    """The push is complete: the invoice is in Stripe and Pipedrive is told.
    `action`: push_done (the worker), or push_sent_by_hand (finance, see recovery)."""
    now = utcnow()
    # The audit chain, then the invoice row, as a Stripe webhook for this invoice takes
    # them (a push finishing while its webhook arrives deadlocked on PostgreSQL).
    lock_chain()
    db.session.execute(select(Invoice.id).where(Invoice.id == invoice.id).with_for_update())
    if stripe_invoice is not None:
        try:
            from app.payments.sync import apply_invoice
        except ImportError:  # pragma: no cover - the payment sync is optional here
            apply_invoice = None
        if apply_invoice is not None:
            # The payment state starts from what Stripe answered; its sync keeps it current.
            apply_invoice(stripe_invoice.to_dict())
    job.status, job.finished_at, job.lease_until, job.step = "done", now, None, None
    job.error = job.hint = None
    invoice.pushed_at = now
    invoice.push_error = invoice.push_hint = None
    workflow.transition(invoice, action, user)
    enqueue_for_pushed_invoice(invoice)


# -- what the pages show ---------------------------------------------------------------


def latest_job(invoice_id: int) -> PushJob | None:
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
    rows = dict(db.session.execute(
        select(PushJob.status, func.count()).where(PushJob.batch_id == batch.id)
        .group_by(PushJob.status)
    ).all())
    done, failed = rows.get("done", 0), rows.get("failed", 0)
    return {"done": done, "failed": failed, "waiting": rows.get("queued", 0),
            "running": rows.get("running", 0), "total": batch.total,
            "finished": done + failed >= batch.total}


def failed_in_batch(batch: PushBatch) -> list[tuple[PushJob, Invoice]]:
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


def gateway_options() -> dict:
    return dict(current_app.config.get("STRIPE_GATEWAY_OPTIONS") or {})


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
    db.session.commit()
    return counts
