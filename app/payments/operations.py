"""Payment jobs: the Stripe pull, replays, and invoices falling overdue."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select

from app.audit.operations import lock_chain
from app.extensions import db
from app.intake.models import SyncRun
from app.intake.runs import start_run
from app.invoices.models import Invoice
from app.payments import crm
from app.payments.models import StripeEvent
from app.payments.states import overdue_cutoff
from app.payments.sync import (
    apply_or_quarantine,
    failure_text,
    mark_failed,
    pull_events,
    record_change,
    refresh_status,
    snapshot,
    stripe_clock,
)
from app.stripe_api.client import StripeGatewayError
from app.stripe_api.factory import stripe_gateway
from app.types import utcnow
from app.web.database import retry_transient

JOB_PAYMENTS = "stripe.payments"
JOB_OVERDUE = "invoices.overdue"


def run_payment_sync(trigger: str = "schedule") -> SyncRun:
    run = start_run(JOB_PAYMENTS, trigger)
    db.session.commit()
    try:
        gateway = stripe_gateway()
        run.counts = retry_transient(lambda: pull_events(gateway, run), what=JOB_PAYMENTS)
        run.requests = gateway.usage.requests
        run.status = "ok"
    except StripeGatewayError as exc:
        db.session.rollback()
        run = db.session.merge(run)
        run.status, run.error = "failed", f"{exc} {exc.hint}".strip()
    run.finished_at = utcnow()
    db.session.commit()
    return run


def replay_events(
    *, event_id: str | None = None, failed_only: bool = True, since: dt.datetime | None = None
) -> int:
    """Apply stored events again (re-reading each object): after a bug fix or an outage."""
    q = select(StripeEvent).order_by(StripeEvent.created, StripeEvent.id)
    if event_id:
        q = q.where(StripeEvent.id == event_id)
    elif failed_only:
        q = q.where(StripeEvent.status.in_(("failed", "received")))
    if since:
        q = q.where(StripeEvent.created >= int(since.timestamp()))
    gateway = stripe_gateway()
    ids = db.session.execute(q.with_only_columns(StripeEvent.id)).scalars().all()
    for eid in ids:
        retry_transient(lambda eid=eid: _replay_one(eid, gateway), what=f"replay {eid}")
    return len(ids)


def _replay_one(event_id: str, gateway) -> None:
    """One stored event again, in its own transaction (lock order: the audit chain
    first); what still fails stays "failed" with its new error."""
    lock_chain()
    row = db.session.get(StripeEvent, event_id)
    try:
        apply_or_quarantine(row, gateway, reread=True)
    except StripeGatewayError as exc:
        mark_failed(event_id, failure_text(exc))
    db.session.commit()


def mark_overdue(now: dt.datetime | None = None) -> int:
    """Invoices still owed past their due day become overdue (whatever they were before:
    open, part paid or a failed payment, see app.payments.states); the CRM is told once."""
    now = now or stripe_clock()
    lock_chain()  # before the invoice rows (lock order, app.audit.operations)
    rows = (
        db.session.execute(
            select(Invoice).where(
                Invoice.stripe_status == "open",
                Invoice.due_at < overdue_cutoff(now),
                or_(
                    Invoice.payment_status.is_(None),
                    Invoice.payment_status.not_in(("overdue", "disputed")),
                ),
            )
        )
        .scalars()
        .all()
    )
    n = 0
    for inv in rows:
        before = snapshot(inv)
        if refresh_status(inv, now) == "overdue":
            record_change(inv, before)
            crm.tell(inv, overdue_event(inv))
            n += 1
    db.session.commit()
    return n


def overdue_event(inv: Invoice) -> dict:
    """The desk's own "this invoice fell overdue" fact (told to the CRM once per invoice)."""
    return {"id": f"overdue:{inv.id}", "type": "invoice.overdue", "data": {"object": {}}}


def run_overdue(trigger: str = "schedule") -> SyncRun:
    run = start_run(JOB_OVERDUE, trigger)
    run.counts = {"overdue": mark_overdue()}
    run.status, run.finished_at = "ok", utcnow()
    db.session.commit()
    return run
