"""Payment states, in plain words, and how one is derived from Stripe's facts.

The precedence is defined here once (and explained in docs/payment-states.md); every
path that sets an invoice's payment state (the Stripe events pull, webhooks, replays,
the overdue job) calls `derive`, and everything that reports it (the write-back to
Pipedrive, the sales pages, the mismatch board) reads the state it stored or, for
"past due" in SQL, `overdue_cutoff`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, has_app_context

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

# Most important first: the first state whose condition holds is the invoice's state
# (see `derive` for the conditions). The first four end the invoice's life in Stripe or
# need a person now; the next four apply when nothing is owed any more; the last four
# while money is still owed.
PRECEDENCE = (
    "void",
    "disputed",
    "uncollectible",
    "refunded",
    "partially_refunded",
    "credited",
    "paid",
    "overdue",
    "payment_failed",
    "partially_paid",
    "open",
)


def company_zone() -> ZoneInfo:
    """The time zone whose calendar days decide when an invoice falls overdue
    (DESK_TIMEZONE, UTC when unset)."""
    name = current_app.config.get("DESK_TIMEZONE") if has_app_context() else None
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def overdue_cutoff(now: dt.datetime, zone: ZoneInfo | None = None) -> dt.datetime:
    """An invoice whose due time is before this instant is past due at `now`.

    An invoice is due for the whole of its due day and falls overdue when that day has
    ended in the company's time zone: the cutoff is the start of `now`'s day there. A
    "due on receipt" invoice (due the moment it is sent) is so overdue from the next
    day on, never the moment it is sent.
    """
    zone = zone or company_zone()
    local = now.astimezone(zone)
    start = dt.datetime.combine(local.date(), dt.time(0), tzinfo=zone)
    return start.astimezone(dt.UTC)


def past_due(due_at: dt.datetime | None, now: dt.datetime, zone: ZoneInfo | None = None) -> bool:
    return due_at is not None and due_at < overdue_cutoff(now, zone)


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
    """One state from the invoice's facts, in the order of PRECEDENCE."""
    if stripe_status in (None, "draft"):
        return None
    if stripe_status == "void":
        return "void"
    if disputed:
        return "disputed"
    if stripe_status == "uncollectible":
        return "uncollectible"
    settled = stripe_status == "paid" or (remaining <= 0 and total > 0)
    if settled or (credited > 0 and credited >= total):
        if paid > 0 and refunded >= paid:
            return "refunded"
        if refunded > 0:
            return "partially_refunded"
        if credited > 0 and (paid == 0 or credited >= total):
            return "credited"
        return "paid"
    # Money is still owed: being late outranks a failed attempt, which outranks a part paid.
    if past_due(due_at, now):
        return "overdue"
    if payment_failed:
        return "payment_failed"
    if paid > 0:
        return "partially_paid"
    return "open"


def label(state: str | None) -> str:
    if state is None:
        return "Not invoiced"
    return PAYMENT_STATES.get(state, state)


def crm_status(invoice) -> dict[str, str | None]:
    """What Pipedrive's deal is told about an invoice's state, decided here only: the
    Stripe invoice status as Stripe words it, and the desk's payment state by its label.
    The push writes `invoice_status`; payment updates write both."""
    return {
        "payment_status": label(invoice.payment_status),
        "invoice_status": invoice.stripe_status,
    }
