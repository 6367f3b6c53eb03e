"""Factories for push tests: approved invoices made directly in the database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db


def approved_invoice(approver_id: int, *, org_id: int | None = 501, person_id: int | None = 601,
                     lines=None, discounts=(), currency: str = "EUR",
                     collection_method: str = "send_invoice", email: str = "ap@acme.example",
                     name: str = "Acme GmbH", deal_id: int = 9001, **kw) -> int:
    """An approved invoice (needs an app context; commits); returns its id.

    lines: [(description, quantity, unit_price, tax_rate, tax_behavior, discount)]
    discount: None or ("percentage"|"amount", value).
    """
    from app.invoices.models import Invoice, InvoiceDiscount, InvoiceLine
    from app.invoices.totals import for_invoice

    lines = lines if lines is not None else [
        ("Consulting", Decimal(10), Decimal("120.00"), Decimal(19), "exclusive", None),
        ("Licence", Decimal(1), Decimal("999.99"), Decimal(19), "exclusive", None),
    ]
    now = dt.datetime.now(dt.UTC)
    invoice = Invoice(
        deal_id=deal_id, currency=currency, status="approved", version=1, approved_version=1,
        approved_by_id=approver_id, approved_at=now, customer_name=name, billing_email=email,
        address={"line1": "Hauptstr. 1", "postal_code": "10115", "city": "Berlin",
                 "country": "DE"},
        vat_id="DE123456789", org_id=org_id, person_id=person_id,
        collection_method=collection_method,
        days_until_due=30 if collection_method == "send_invoice" else None, **kw,
    )
    for pos, (desc, qty, price, rate, behavior, disc) in enumerate(lines):
        invoice.lines.append(InvoiceLine(
            position=pos, description=desc, quantity=Decimal(qty), unit_price=Decimal(price),
            tax_rate=Decimal(rate), tax_behavior=behavior, edited_fields=[],
            discount_type=disc[0] if disc else None, discount_value=disc[1] if disc else None,
        ))
    for pos, (dtype, value) in enumerate(discounts):
        invoice.discounts.append(InvoiceDiscount(position=pos, description="Loyalty discount",
                                                 type=dtype, value=Decimal(value)))
    totals = for_invoice(invoice)
    invoice.subtotal = totals.major(totals.subtotal)
    invoice.tax_total = totals.major(totals.tax_total)
    invoice.total = totals.major(totals.total)
    db.session.add(invoice)
    db.session.commit()
    return invoice.id


def stripe_invoices_for(sandbox, invoice_id: int) -> list[dict]:
    """Every Stripe invoice (any state) whose metadata names this desk invoice."""
    store = sandbox.sandbox.store
    with store.lock:
        return [i for i in store.all("invoice")
                if (i.get("metadata") or {}).get("desk_invoice_id") == str(invoice_id)]


def stripe_customers_for_org(sandbox, org_id: int) -> list[dict]:
    store = sandbox.sandbox.store
    with store.lock:
        return [c for c in store.all("customer")
                if (c.get("metadata") or {}).get("pipedrive_org_id") == str(org_id)]


def stripe_lines(sandbox, stripe_invoice: dict) -> list[dict]:
    store = sandbox.sandbox.store
    with store.lock:
        return [store.get("invoiceitem", i) for i in stripe_invoice.get("_items", [])]


def invoice(invoice_id: int):
    from app.invoices.models import Invoice

    db.session.expire_all()
    return db.session.get(Invoice, invoice_id)


def job_for(invoice_id: int):
    from app.push.models import PushJob

    return db.session.execute(
        select(PushJob).where(PushJob.invoice_id == invoice_id).order_by(PushJob.id.desc())
    ).scalars().first()


def approve(invoice_id: int, finance_id: int, approver_id: int):
    """Submit (as finance) and approve (as the approver) through the workflow; commits."""
    from app.approvals import workflow
    from app.auth.models import User

    inv = invoice(invoice_id)
    if not inv.billing_email:
        inv.billing_email = "billing@example.com"
    workflow.transition(inv, "submit", db.session.get(User, finance_id))
    workflow.transition(inv, "approve", db.session.get(User, approver_id))
    db.session.commit()
    return inv


def push_now(invoice_ids, user=None) -> dict:
    """Queue and run the push as the scheduler would (needs an app context)."""
    from app.push.queueing import enqueue_push
    from app.push.worker import work_push_queue

    _, results = enqueue_push(list(invoice_ids), user)
    db.session.commit()
    assert all(r.ok for r in results), [r.message for r in results]
    return work_push_queue()


def finalized_without_email(approver_id: int, **kw) -> int:
    """An invoice whose push stopped after Stripe finalized it: its customer has no email,
    so Stripe refused to send it (needs an app context; commits; returns its id).

    Submission now refuses an invoice without a billing email, so this is the state of
    one approved before that check: the address is removed once it is queued.
    """
    from app.push.queueing import enqueue_push
    from app.push.worker import work_push_queue

    iid = approved_invoice(approver_id, **kw)
    _, results = enqueue_push([iid], None)
    db.session.commit()
    assert results[0].ok, results[0].message
    invoice(iid).billing_email = ""
    db.session.commit()
    assert work_push_queue()["failed"] == 1
    return iid
