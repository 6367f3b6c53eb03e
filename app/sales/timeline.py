"""A deal's money on one timeline: invoices, payments, refunds and credit notes.

Only amounts and dates: the sales role sees whether and when a customer paid, never
how (no card, bank or payment-method details, which the raw Stripe events carry).
Payments come from the stored payment rows, refunds and credit notes from the stored
Stripe events; when the invoice's amounts say more was paid, refunded or credited
than those explain (older than the desk, or never stored), the rest is shown as one
entry, dated when Stripe gave a date (the last payment) and otherwise undated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.invoices.models import Invoice
from app.money import from_minor
from app.payments.models import StripeEvent, StripePayment
from app.payments.states import label as payment_label
from app.payments.states import past_due
from app.payments.sync import credit_note_events

ZERO = Decimal(0)


@dataclass
class Entry:
    at: dt.datetime | None  # None: the date is not known (shown last)
    kind: str  # created, pushed, due, payment, refund, credit_note, void
    text: str
    invoice: Invoice
    amount: Decimal | None = None

    @property
    def currency(self) -> str:
        return self.invoice.currency


def _ts(value: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, dt.UTC) if value else None


def build(invoices: list[Invoice], now: dt.datetime) -> list[Entry]:
    entries: list[Entry] = []
    ids = [inv.id for inv in invoices]
    payments = (
        db.session.execute(
            select(StripePayment).where(StripePayment.invoice_id.in_(ids))
        ).scalars().all()
        if ids
        else []
    )
    by_invoice: dict[int, list[StripePayment]] = {}
    for p in payments:
        by_invoice.setdefault(p.invoice_id, []).append(p)

    for inv in invoices:
        name = inv.stripe_number or inv.number
        entries.append(Entry(inv.created_at, "created", f"Invoice {inv.number} drafted", inv))
        if inv.pushed_at:
            entries.append(
                Entry(inv.pushed_at, "pushed", f"Invoice {name} issued in Stripe", inv, inv.total)
            )
        if inv.due_at:
            late = past_due(inv.due_at, now) and (inv.amount_remaining or ZERO) > 0
            entries.append(
                Entry(inv.due_at, "due", f"{name} {'was due' if late else 'due'}", inv,
                      inv.amount_remaining if late else None)
            )
        entries += _payments(inv, name, by_invoice.get(inv.id, []))
        entries += _refunds(inv, name, by_invoice.get(inv.id, []))
        entries += _credit_notes(inv, name)
        if inv.stripe_status == "void":
            entries.append(Entry(None, "void", f"{name} voided in Stripe", inv))
    last = dt.datetime.max.replace(tzinfo=dt.UTC)
    entries.sort(key=lambda e: (e.at or last, e.invoice.id))
    return entries


def _payments(inv: Invoice, name: str, payments: list[StripePayment]) -> list[Entry]:
    out = [
        Entry(p.paid_at, "payment", f"Payment on {name}", inv, p.amount)
        for p in payments
        if p.amount and p.amount > 0
    ]
    rest = (inv.amount_paid or ZERO) - sum((e.amount for e in out), ZERO)
    if rest > 0:  # paid in Stripe, payment rows not (yet) stored: Stripe's last paid time
        when = inv.last_payment_at
        text = f"Payment on {name}" + ("" if when else " (date not recorded)")
        out.append(Entry(when, "payment", text, inv, rest))
    return out


def _refunds(inv: Invoice, name: str, payments: list[StripePayment]) -> list[Entry]:
    charges = [p.charge for p in payments if p.charge]
    out: list[Entry] = []
    if charges:
        rows = db.session.execute(
            select(StripeEvent.object_id, StripeEvent.created, StripeEvent.payload)
            .where(StripeEvent.type == "charge.refunded", StripeEvent.object_id.in_(charges))
            .order_by(StripeEvent.created, StripeEvent.id)
        ).all()
        seen: dict[str, int] = {}
        for charge, created, payload in rows:
            obj = (payload.get("data") or {}).get("object") or {}
            total = int(obj.get("amount_refunded") or 0)  # cumulative, in minor units
            step = total - seen.get(charge, 0)
            if step > 0:
                seen[charge] = total
                amount = from_minor(step, obj.get("currency") or inv.currency)
                out.append(Entry(_ts(created), "refund", f"Refund on {name}", inv, amount))
    explained = sum((e.amount for e in out), ZERO)
    rest = (inv.amount_refunded or ZERO) - explained
    if rest > 0:
        out.append(Entry(None, "refund", f"Refund on {name} (date not recorded)", inv, rest))
    return out


def _credit_notes(inv: Invoice, name: str) -> list[Entry]:
    out: list[Entry] = []
    if inv.stripe_invoice_id:
        for etype, created, obj in credit_note_events(inv.stripe_invoice_id):
            amount = from_minor(int(obj.get("total") or obj.get("amount") or 0),
                                obj.get("currency") or inv.currency)
            if etype == "credit_note.voided":
                out.append(Entry(_ts(created), "credit_note",
                                 f"Credit note on {name} voided", inv, -amount))
            else:
                out.append(Entry(_ts(created), "credit_note", f"Credit note on {name}", inv,
                                 amount))
    explained = sum((e.amount for e in out), ZERO)
    rest = (inv.amount_credited or ZERO) - explained
    if rest > 0:
        out.append(
            Entry(None, "credit_note", f"Credit note on {name} (date not recorded)", inv, rest)
        )
    return out


def status_text(inv: Invoice) -> str:
    return payment_label(inv.payment_status)
