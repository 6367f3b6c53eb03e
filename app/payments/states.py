"""Payment states, in plain words, and how one is derived from Stripe's facts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

PAYMENT_STATES = {
    "open": "Open",
    "partially_paid": "Partially paid",
    "paid": "Paid",
    "overdue": "Overdue",
    "void": "Void",
    "uncollectible": "Uncollectible",
    "refunded": "Refunded",
    "partially_refunded": "Partially refunded",
    "credited": "Credited",
    "payment_failed": "Payment failed",
    "disputed": "Disputed",
}


def derive(
    *,
    stripe_status: str | None,
    total: Decimal,
    paid: Decimal,
    refunded: Decimal,
    credited: Decimal,
    remaining: Decimal,
    due_at: dt.datetime | None,
    payment_failed: bool,
    disputed: bool,
    now: dt.datetime,
) -> str | None:
    """One state from the invoice's facts. Order matters: the most urgent wins."""
    if stripe_status in (None, "draft"):
        return None
    if stripe_status == "void":
        return "void"
    if stripe_status == "uncollectible":
        return "uncollectible"
    if disputed:
        return "disputed"
    settled = stripe_status == "paid" or (remaining <= 0 and total > 0)
    if settled:
        if paid > 0 and refunded >= paid:
            return "refunded"
        if refunded > 0:
            return "partially_refunded"
        if credited > 0 and (paid == 0 or credited >= total):
            return "credited"
        return "paid"
    if credited > 0 and credited >= total:
        return "credited"
    overdue = due_at is not None and due_at < now
    if payment_failed and paid == 0:
        return "payment_failed"
    if overdue:
        return "overdue"
    if paid > 0:
        return "partially_paid"
    return "open"


def label(state: str | None) -> str:
    if state is None:
        return "Not invoiced"
    return PAYMENT_STATES.get(state, state)
