"""What the CRM is told when a payment fact arrives.

Per the admin's mapping (by field name): payment status, collected, outstanding
and last payment date on the deal; a note for each payment event with the
amounts; an activity for the deal's owner when an invoice falls overdue or a
payment fails; the deal moved to its pipeline's "paid" stage when every invoice
of the deal is paid. The deal value (what was sold) is never written.
Everything goes through the write-back outbox (retries, nothing lost), keyed by
the Stripe event id so a replayed event tells the CRM nothing twice.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.intake.models import BillingRule, PdDeal
from app.invoices.models import LIVE, Invoice
from app.money import format_money
from app.payments.states import crm_status
from app.writeback.mapping import amount_text

# Event types that deserve a note on the deal, and how to phrase them.
NOTE_EVENTS = {
    "invoice_payment.paid",
    "charge.refunded",
    "credit_note.created",
    "credit_note.voided",
    "invoice.payment_failed",
    "invoice.overdue",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "charge.dispute.created",
}


def deal_totals(deal_id: int) -> dict[str, Decimal]:
    """Invoiced, collected, credited and outstanding over the deal's live invoices."""
    rows = (
        db.session.execute(
            select(Invoice).where(
                Invoice.deal_id == deal_id,
                Invoice.status.in_(LIVE),
                Invoice.stripe_invoice_id.is_not(None),
            )
        )
        .scalars()
        .all()
    )
    out = {
        "invoiced": Decimal(0),
        "collected": Decimal(0),
        "credited": Decimal(0),
        "outstanding": Decimal(0),
    }
    for inv in rows:
        if inv.stripe_status == "void":
            continue
        out["invoiced"] += inv.total or 0
        out["collected"] += inv.collected
        out["credited"] += inv.amount_credited or 0
        out["outstanding"] += inv.amount_remaining or 0
    return out


def note_text(invoice: Invoice, event: dict) -> str | None:
    etype = event.get("type")
    if etype not in NOTE_EVENTS:
        return None
    cur = invoice.currency
    obj = (event.get("data") or {}).get("object") or {}
    number = invoice.stripe_number or invoice.number
    link = (
        f' (<a href="{invoice.hosted_invoice_url}">invoice</a>)'
        if (invoice.hosted_invoice_url)
        else ""
    )
    out = format_money(invoice.amount_remaining, cur)
    if etype == "invoice_payment.paid":
        from app.money import from_minor

        amount = from_minor(obj.get("amount_paid") or 0, cur)
        word = "Payment" if invoice.amount_remaining == 0 else "Partial payment"
        return (
            f"{word} received for {number}: {format_money(amount, cur)}. "
            f"Collected {format_money(invoice.collected, cur)}, outstanding {out}.{link}"
        )
    if etype == "charge.refunded":
        return (
            f"Refund on {number}: {format_money(invoice.amount_refunded, cur)} refunded in "
            f"total. Collected now {format_money(invoice.collected, cur)}.{link}"
        )
    if etype == "credit_note.created":
        from app.money import from_minor

        return (
            f"Credit note {obj.get('number') or ''} on {number}: "
            f"{format_money(from_minor(obj.get('amount') or 0, cur), cur)}. "
            f"Outstanding {out}.{link}"
        )
    if etype == "credit_note.voided":
        return f"Credit note {obj.get('number') or ''} on {number} was voided.{link}"
    if etype == "invoice.payment_failed":
        return f"Payment failed for {number}; outstanding {out}.{link}"
    if etype == "invoice.overdue":
        due = invoice.due_at.strftime("%d %b %Y") if invoice.due_at else "its due date"
        return f"{number} is overdue (it was due {due}): {out} outstanding.{link}"
    if etype == "invoice.voided":
        return f"{number} was voided in Stripe.{link}"
    if etype == "invoice.marked_uncollectible":
        return f"{number} was marked uncollectible in Stripe; outstanding {out}.{link}"
    if etype == "charge.dispute.created":
        return f"The customer disputed the payment of {number}.{link}"
    return None


def tell(invoice: Invoice, event: dict) -> None:
    """Queue what the CRM should now know about this invoice's deal."""
    import html

    from app.writeback.operations import enqueue

    deal = db.session.get(PdDeal, invoice.deal_id)
    if deal is None:
        return
    key = event.get("id") or f"manual:{invoice.id}:{dt.datetime.now(dt.UTC).isoformat()}"
    if event.get("type") == "invoice.overdue":
        if invoice.payment_status != "overdue":
            # Stripe's reminder, but by the desk's rule it is not overdue (yet, or any
            # more: due on receipt and still the due day, or paid meanwhile). The fields
            # are brought up to date; the overdue job tells the CRM once it is overdue.
            event = {**event, "type": "invoice.updated"}
        else:
            # Stripe's invoice.overdue and the desk's own overdue job tell the CRM once.
            from app.payments.models import InvoiceStripeState

            st = db.session.get(InvoiceStripeState, invoice.id)
            if st is not None and st.overdue_told_at is not None:
                return
            if st is not None:
                st.overdue_told_at = dt.datetime.now(dt.UTC)
    totals = deal_totals(deal.id)
    last_paid = max(
        filter(
            None,
            [
                i.last_payment_at
                for i in db.session.execute(
                    select(Invoice).where(Invoice.deal_id == deal.id)
                ).scalars()
            ],
        ),
        default=None,
    )
    common = {"invoice_id": invoice.id, "deal_id": deal.id}
    enqueue(
        "deal_fields",
        f"pay:{key}:fields",
        "deal",
        deal.id,
        {
            "fields": {
                **crm_status(invoice),
                "amount_collected": amount_text(totals["collected"], invoice.currency),
                "amount_outstanding": amount_text(totals["outstanding"], invoice.currency),
                "last_payment_date": last_paid.date().isoformat() if last_paid else None,
            },
            "currency": invoice.currency,
        },
        **common,
    )
    text = note_text(invoice, event)
    if text:
        enqueue(
            "deal_note",
            f"pay:{key}:note",
            "deal",
            deal.id,
            {"content": f"<p>{text}</p>", "marker": f"desk-event:{key}"},
            **common,
        )
    if event.get("type") in ("invoice.overdue", "invoice.payment_failed") and deal.owner_id:
        number = invoice.stripe_number or invoice.number
        subject = (
            f"Follow up: invoice {number} is overdue"
            if event["type"] == "invoice.overdue"
            else f"Follow up: payment failed on invoice {number}"
        )
        enqueue(
            "deal_activity",
            f"pay:{key}:activity",
            "deal",
            deal.id,
            {
                "subject": subject,
                "owner_id": deal.owner_id,
                "note": html.escape(re.sub(r"<[^>]+>", "", text or subject)),
            },
            **common,
        )
    if _deal_fully_paid(deal.id, totals):
        rule = db.session.execute(
            select(BillingRule).where(BillingRule.pipeline_id == deal.pipeline_id)
        ).scalar()
        if rule is not None and rule.paid_stage_id and deal.stage_id != rule.paid_stage_id:
            enqueue(
                "deal_stage",
                f"pay:{key}:stage",
                "deal",
                deal.id,
                {"stage_id": rule.paid_stage_id},
                **common,
            )


def _deal_fully_paid(deal_id: int, totals: dict) -> bool:
    if totals["invoiced"] <= 0 or totals["outstanding"] != 0:
        return False
    rows = (
        db.session.execute(
            select(Invoice.payment_status).where(
                Invoice.deal_id == deal_id,
                Invoice.stripe_invoice_id.is_not(None),
                Invoice.stripe_status != "void",
            )
        )
        .scalars()
        .all()
    )
    return bool(rows) and all(s in ("paid", "credited") for s in rows)
