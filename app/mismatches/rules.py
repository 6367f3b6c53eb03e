"""The rules of the mismatch board: where Pipedrive, the desk and Stripe disagree.

Each rule is one set-based query returning only the hits, so recomputing over
100,000 invoices stays fast and small; each hit says in plain words what is
wrong and which action fixes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from app.extensions import db
from app.intake.models import PdDeal
from app.invoices.models import LIVE, Invoice
from app.money import format_money
from app.payments.models import ForeignStripeInvoice, InvoiceStripeState, StripeCustomerSeen
from app.writeback.queries import unsettled_by_deal

# Rule ids are stored (mismatch.rule) and stay numbers; the functions below are named
# for what they check, and each yields Hits carrying its stored id.
RULES = {
    1: "Deal value differs from the invoiced total",
    2: "Deal changed in Pipedrive after it was invoiced",
    3: "Stripe's state is not yet in Pipedrive",
    4: "Invoice void or uncollectible while the deal is won",
    5: "Deal lost or deleted but an invoice is open or paid",
    6: "Collected below invoiced after refunds or credit notes",
    7: "Currency differs between deal and invoice",
    8: "Stripe invoice the desk did not create",
    9: "More than one live invoice for one deal",
    10: "Invoice overdue",
    11: "Invoice changed in Stripe after the push",
    12: "Customer email in Stripe differs from the CRM",
    13: "Finalized in Stripe but never sent",
    14: "Push to Stripe failed",
    15: "Stripe invoice of the desk that is not the current push",
}
# What fixes each, in the order the board offers the actions.
ACTIONS = {
    1: ["open_pipedrive", "open_invoice", "acknowledge"],
    2: ["resync_deal", "open_pipedrive", "open_invoice", "acknowledge"],
    3: ["retry_writeback", "open_pipedrive", "acknowledge"],
    4: ["redraft", "open_stripe", "open_pipedrive", "acknowledge"],
    5: ["open_stripe", "open_pipedrive", "acknowledge"],
    6: ["open_stripe", "open_pipedrive", "acknowledge"],
    7: ["open_invoice", "open_pipedrive", "acknowledge"],
    8: ["open_stripe", "acknowledge"],
    9: ["open_deal", "acknowledge"],
    10: ["open_stripe", "open_pipedrive", "resync_invoice", "acknowledge"],
    11: ["open_stripe", "resync_invoice", "acknowledge"],
    12: ["open_stripe", "open_pipedrive", "acknowledge"],
    13: ["recover_push", "open_invoice", "open_stripe", "acknowledge"],
    14: ["retry_push", "recover_push", "open_invoice", "acknowledge"],
    15: ["recover_push", "open_invoice", "open_stripe", "acknowledge"],
}
PUSHED = ("pushed",)


@dataclass
class Hit:
    rule: int
    subject: str
    severity: str
    explanation: str
    deal_id: int | None = None
    invoice_id: int | None = None
    facts: dict = field(default_factory=dict)


def _m(amount, currency) -> str:
    return format_money(Decimal(amount or 0), currency)


def deal_value_differs() -> Iterator[Hit]:
    q = (
        select(
            PdDeal.id,
            PdDeal.value,
            PdDeal.currency,
            func.sum(Invoice.total),
            func.count(Invoice.id),
        )
        .join(Invoice, Invoice.deal_id == PdDeal.id)
        .where(Invoice.status.in_(PUSHED), Invoice.stripe_status.not_in(("void",)))
        .group_by(PdDeal.id, PdDeal.value, PdDeal.currency)
    )
    for deal_id, value, currency, invoiced, n in db.session.execute(q):
        if Decimal(value or 0) != Decimal(invoiced or 0):
            yield Hit(
                1,
                f"deal:{deal_id}",
                "medium",
                f"The deal is worth {_m(value, currency)} in Pipedrive, but "
                f"{_m(invoiced, currency)} was invoiced ({n} invoice"
                f"{'s' if n != 1 else ''}). Check whether something was not billed, "
                "billed twice, or billed separately (recurring products).",
                deal_id=deal_id,
                facts={"value": str(value), "invoiced": str(invoiced)},
            )


def deal_changed_after_invoicing() -> Iterator[Hit]:
    q = (
        select(Invoice.id, Invoice.deal_id, PdDeal.title, PdDeal.content_hash)
        .join(PdDeal, PdDeal.id == Invoice.deal_id)
        .where(
            Invoice.status.in_(PUSHED),
            Invoice.deal_hash != PdDeal.content_hash,
            Invoice.deal_hash != "",
        )
    )
    for inv_id, deal_id, title, deal_hash in db.session.execute(q):
        yield Hit(
            2,
            f"invoice:{inv_id}",
            "medium",
            f"“{title}” changed in Pipedrive (value, products, currency or contact) "
            f"after invoice BD-{inv_id:05d} was sent. The invoice may no longer match "
            "what was sold: compare them and issue a credit note or a new invoice.",
            deal_id=deal_id,
            invoice_id=inv_id,
            facts={"deal_hash": deal_hash},
        )


def writeback_unsettled() -> Iterator[Hit]:
    for deal_id, failed, pending, last_error in unsettled_by_deal():
        if failed:
            yield Hit(
                3,
                f"deal:{deal_id}",
                "high",
                f"{failed} update{'s' if failed != 1 else ''} to Pipedrive failed and "
                f"stopped retrying: {last_error or 'see Write-backs'}. Pipedrive does not "
                "show what Stripe says. Retry once the cause is fixed.",
                deal_id=deal_id,
                facts={"failed": failed, "pending": pending},
            )
        elif pending:
            yield Hit(
                3,
                f"deal:{deal_id}",
                "low",
                f"{pending} update{'s' if pending != 1 else ''} to Pipedrive "
                f"{'is' if pending == 1 else 'are'} still waiting to be delivered; "
                "they are retried automatically.",
                deal_id=deal_id,
                facts={"failed": 0, "pending": pending},
            )


def _other_live_invoice(inv):
    """EXISTS another live desk invoice for the same deal."""
    other = aliased(Invoice)
    return (
        select(other.id)
        .where(other.deal_id == inv.deal_id, other.id != inv.id, other.status.in_(LIVE))
        .exists()
    )


def void_invoice_on_won_deal() -> Iterator[Hit]:
    q = (
        select(Invoice.id, Invoice.deal_id, Invoice.stripe_status, Invoice.stripe_number)
        .join(PdDeal, PdDeal.id == Invoice.deal_id)
        .where(Invoice.stripe_status.in_(("void", "uncollectible")), PdDeal.status == "won",
               # Billed again (a new draft replaced it): nothing is left uncollected.
               ~_other_live_invoice(Invoice))
    )
    for inv_id, deal_id, status, number in db.session.execute(q):
        yield Hit(
            4,
            f"invoice:{inv_id}",
            "high",
            f"Invoice {number or inv_id} is {status} in Stripe, but the deal is still "
            "won in Pipedrive: nothing is being collected for it. Re-invoice, or mark "
            "the deal lost.",
            deal_id=deal_id,
            invoice_id=inv_id,
            facts={"status": status},
        )


def invoice_on_lost_deal() -> Iterator[Hit]:
    q = (
        select(
            Invoice.id, Invoice.deal_id, Invoice.stripe_status, PdDeal.status, Invoice.stripe_number
        )
        .join(PdDeal, PdDeal.id == Invoice.deal_id)
        .where(PdDeal.status.in_(("lost", "deleted")), Invoice.stripe_status.in_(("open", "paid")))
    )
    for inv_id, deal_id, status, deal_status, number in db.session.execute(q):
        yield Hit(
            5,
            f"invoice:{inv_id}",
            "high",
            f"The deal was {deal_status} in Pipedrive, but invoice {number or inv_id} is "
            f"{status} in Stripe. Void it or issue a credit note (and refund), or restore "
            "the deal.",
            deal_id=deal_id,
            invoice_id=inv_id,
            facts={"deal": deal_status, "invoice": status},
        )


def collected_below_invoiced() -> Iterator[Hit]:
    q = select(
        Invoice.id,
        Invoice.deal_id,
        Invoice.total,
        Invoice.amount_paid,
        Invoice.amount_refunded,
        Invoice.amount_credited,
        Invoice.currency,
        Invoice.stripe_number,
    ).where(
        Invoice.status.in_(PUSHED), (Invoice.amount_refunded > 0) | (Invoice.amount_credited > 0)
    )
    for inv_id, deal_id, total, paid, refunded, credited, cur, number in db.session.execute(q):
        collected = (paid or 0) - (refunded or 0)
        if collected < (total or 0):
            parts = []
            if refunded:
                parts.append(f"{_m(refunded, cur)} refunded")
            if credited:
                parts.append(f"{_m(credited, cur)} credited")
            yield Hit(
                6,
                f"invoice:{inv_id}",
                "medium",
                f"Invoice {number or inv_id}: {_m(total, cur)} invoiced, "
                f"{_m(collected, cur)} collected after {' and '.join(parts)}. "
                "Confirm the reduction was agreed, and that Pipedrive shows it.",
                deal_id=deal_id,
                invoice_id=inv_id,
                facts={
                    "total": str(total),
                    "collected": str(collected),
                    "refunded": str(refunded),
                    "credited": str(credited),
                },
            )


def currency_differs() -> Iterator[Hit]:
    q = (
        select(Invoice.id, Invoice.deal_id, Invoice.currency, PdDeal.currency)
        .join(PdDeal, PdDeal.id == Invoice.deal_id)
        .where(Invoice.status.in_(LIVE), Invoice.currency != PdDeal.currency)
    )
    for inv_id, deal_id, inv_cur, deal_cur in db.session.execute(q):
        yield Hit(
            7,
            f"invoice:{inv_id}",
            "medium",
            f"The deal is in {deal_cur} but invoice BD-{inv_id:05d} is in {inv_cur}. "
            "Prices were entered by hand, not converted: check them, or align the deal.",
            deal_id=deal_id,
            invoice_id=inv_id,
            facts={"deal": deal_cur, "invoice": inv_cur},
        )


def foreign_stripe_invoice() -> Iterator[Hit]:
    q = select(ForeignStripeInvoice).where(ForeignStripeInvoice.status.not_in(("void", "draft")))
    for f in db.session.execute(q).scalars():
        yield Hit(
            8,
            f"stripe:{f.id}",
            "medium",
            f"Stripe has invoice {f.number or f.id} ({_m(f.total, f.currency)}, {f.status}) "
            f"for customer {f.customer}, which the desk did not create. If it bills a "
            "deal, that deal may be billed twice.",
            facts={"status": f.status, "total": str(f.total), "stripe_id": f.id},
        )


def several_live_invoices() -> Iterator[Hit]:
    q = (
        select(Invoice.deal_id, func.count(Invoice.id))
        .where(Invoice.status.in_(LIVE))
        .group_by(Invoice.deal_id)
        .having(func.count(Invoice.id) > 1)
    )
    for deal_id, n in db.session.execute(q):
        yield Hit(
            9,
            f"deal:{deal_id}",
            "high",
            f"Deal #{deal_id} has {n} live invoices. One deal is billed once: cancel the "
            "extra drafts, or void the duplicate in Stripe.",
            deal_id=deal_id,
            facts={"live": n},
        )


def invoice_overdue() -> Iterator[Hit]:
    q = select(
        Invoice.id,
        Invoice.deal_id,
        Invoice.due_at,
        Invoice.amount_remaining,
        Invoice.currency,
        Invoice.stripe_number,
    ).where(Invoice.payment_status == "overdue")
    for inv_id, deal_id, due, remaining, cur, number in db.session.execute(q):
        when = due.strftime("%d %b %Y") if due else "its due date"
        yield Hit(
            10,
            f"invoice:{inv_id}",
            "medium",
            f"Invoice {number or inv_id} is overdue since {when}: {_m(remaining, cur)} "
            "outstanding. The deal owner was asked to follow up.",
            deal_id=deal_id,
            invoice_id=inv_id,
            facts={"remaining": str(remaining)},
        )


def changed_in_stripe_after_push() -> Iterator[Hit]:
    q = (
        select(
            Invoice.id,
            Invoice.deal_id,
            Invoice.total,
            InvoiceStripeState.stripe_total,
            Invoice.currency,
            Invoice.stripe_number,
        )
        .join(InvoiceStripeState, InvoiceStripeState.invoice_id == Invoice.id)
        .where(
            Invoice.status.in_(PUSHED),
            Invoice.stripe_status != "void",
            Invoice.total != InvoiceStripeState.stripe_total,
        )
    )
    for inv_id, deal_id, total, stripe_total, cur, number in db.session.execute(q):
        yield Hit(
            11,
            f"invoice:{inv_id}",
            "high",
            f"Invoice {number or inv_id} was approved at {_m(total, cur)} but Stripe now "
            f"shows {_m(stripe_total, cur)}: it was changed in Stripe after the push.",
            deal_id=deal_id,
            invoice_id=inv_id,
            facts={"approved": str(total), "stripe": str(stripe_total)},
        )


def customer_email_differs() -> Iterator[Hit]:
    q = (
        select(
            Invoice.stripe_customer_id,
            StripeCustomerSeen.email,
            PdDeal.billing_email,
            func.min(Invoice.deal_id),
        )
        .join(StripeCustomerSeen, StripeCustomerSeen.id == Invoice.stripe_customer_id)
        .join(PdDeal, PdDeal.id == Invoice.deal_id)
        .where(
            Invoice.status.in_(PUSHED),
            StripeCustomerSeen.deleted.is_(False),
            PdDeal.billing_email.is_not(None),
        )
        .group_by(Invoice.stripe_customer_id, StripeCustomerSeen.email, PdDeal.billing_email)
    )
    for customer, stripe_email, crm_email, deal_id in db.session.execute(q):
        if (stripe_email or "").strip().lower() != (crm_email or "").strip().lower():
            to = stripe_email or "no address"
            yield Hit(
                12,
                f"customer:{customer}:{crm_email}",
                "low",
                f"Stripe sends invoices for customer {customer} to {to}, but the CRM's "
                f"billing email is {crm_email}. Update one of them.",
                deal_id=deal_id,
                facts={"stripe": stripe_email, "crm": crm_email},
            )


def finalized_never_sent() -> Iterator[Hit]:
    """The push stopped after Stripe finalized the invoice: Stripe has an open invoice
    the customer never received, the desk counts it as not pushed, Pipedrive was not
    told. Ways out: app/push/recovery.py."""
    q = (
        select(Invoice.id, Invoice.deal_id, Invoice.stripe_number, Invoice.stripe_invoice_id,
               Invoice.stripe_status, Invoice.push_error, Invoice.total, Invoice.currency)
        .where(Invoice.status == "push_failed",
               Invoice.stripe_status.in_(("open", "paid", "uncollectible")))
    )
    for inv_id, deal_id, number, sid, status, error, total, cur in db.session.execute(q):
        yield Hit(
            13,
            f"invoice:{inv_id}",
            "high",
            f"Invoice BD-{inv_id:05d} ({_m(total, cur)}) is finalized in Stripe as "
            f"{number or sid} ({status}), but the push stopped before Stripe sent it to the "
            f"customer: {_reason(error)} The desk and Pipedrive do not count it as invoiced. "
            "Set the billing email and send it, mark it as sent if it reached the customer "
            "another way, or void it in Stripe and draft it again.",
            deal_id=deal_id,
            invoice_id=inv_id,
            facts={"stripe_id": sid, "stripe_status": status, "error": _reason(error)},
        )


def push_failed() -> Iterator[Hit]:
    """A push that failed before finalizing: nothing reached the customer; a draft may
    be left in Stripe. Retry, or edit it and approve it again."""
    q = (
        select(Invoice.id, Invoice.deal_id, Invoice.stripe_invoice_id, Invoice.push_error,
               Invoice.push_hint, Invoice.total, Invoice.currency)
        .where(Invoice.status == "push_failed",
               Invoice.stripe_status.is_(None) | (Invoice.stripe_status == "draft"))
    )
    for inv_id, deal_id, sid, error, hint, total, cur in db.session.execute(q):
        draft = (f" A draft ({sid}) is left in Stripe; retrying continues with it, a new "
                 "approved version deletes it." if sid else " Nothing was created in Stripe.")
        if sid and _finalize_in_doubt(inv_id):
            draft = (f" Its finalize was sent for {sid} and no answer arrived: Stripe may "
                     "have finalized it. Check in Stripe before editing it.")
        yield Hit(
            14,
            f"invoice:{inv_id}",
            "medium",
            f"Invoice BD-{inv_id:05d} ({_m(total, cur)}) could not be pushed to Stripe: "
            f"{_reason(error)}{draft} {hint or 'Retry it, or correct it and approve it again.'}",
            deal_id=deal_id,
            invoice_id=inv_id,
            facts={"stripe_id": sid, "error": _reason(error)},
        )


def _finalize_in_doubt(invoice_id: int) -> bool:
    from app.push.recovery import current_in_doubt

    return current_in_doubt(db.session.get(Invoice, invoice_id)) is not None


def stray_desk_invoice() -> Iterator[Hit]:
    """A Stripe invoice made by a push of the desk that is not the current push of its
    desk invoice (an earlier version's), finalized there or possibly so (its finalize was
    sent and the answer lost): it may bill the customer a second time. Read it back, then
    void or adopt it (app/push/recovery.py). Drafts, void and deleted ones bill nobody."""
    from app.push.models import PushJob, PushStep
    from app.push.recovery import earlier_in_stripe

    q = (
        select(PushJob.invoice_id).distinct()
        .join(PushStep, (PushStep.job_id == PushJob.id) & (PushStep.name == "finalize"))
        .join(Invoice, Invoice.id == PushJob.invoice_id)
        .where(PushJob.stripe_invoice_id.is_not(None), PushStep.status != "pending",
               PushJob.version != func.coalesce(Invoice.approved_version, -1),
               func.coalesce(PushJob.stripe_status, "").not_in(("draft", "void", "deleted")),
               Invoice.status != "cancelled")
    )
    for (inv_id,) in db.session.execute(q).all():
        inv = db.session.get(Invoice, inv_id)
        for job in earlier_in_stripe(inv):
            state = (f"is {job.stripe_status} there" if job.stripe_checked_at
                     else "may be finalized there (its finalize was sent, the answer lost)")
            yield Hit(
                15,
                f"stripe:{job.stripe_invoice_id}",
                "high",
                f"Stripe invoice {job.stripe_invoice_id} was made by the push of version "
                f"{job.version} of invoice BD-{inv_id:05d}, which is no longer its current "
                f"push, and {state}: the customer may be billed twice for deal "
                f"#{inv.deal_id}. Check it in Stripe, then void it or adopt it (one user "
                "asks, another confirms); until then the invoice cannot be edited or pushed.",
                deal_id=inv.deal_id,
                invoice_id=inv_id,
                facts={"stripe_id": job.stripe_invoice_id, "version": job.version,
                       "stripe_status": job.stripe_status},
            )


def _reason(error: str | None) -> str:
    text = (error or "no reason was recorded.").strip()
    return text if text.endswith(".") else text + "."


ALL_RULES = [
    deal_value_differs,
    deal_changed_after_invoicing,
    writeback_unsettled,
    void_invoice_on_won_deal,
    invoice_on_lost_deal,
    collected_below_invoiced,
    currency_differs,
    foreign_stripe_invoice,
    several_live_invoices,
    invoice_overdue,
    changed_in_stripe_after_push,
    customer_email_differs,
    finalized_never_sent,
    push_failed,
    stray_desk_invoice,
]


# -- sync problems (issue 14): a deal the Pipedrive sync could not store -------------------
# Numbered apart from the twelve so that rules added alongside do not collide.

SYNC_PROBLEM_RULE = 20
RULES[SYNC_PROBLEM_RULE] = "Deal could not be synced from Pipedrive"
ACTIONS[SYNC_PROBLEM_RULE] = ["resync_deal", "open_pipedrive", "acknowledge"]


def rule_sync_problem() -> Iterator[Hit]:
    from app.intake.models import SyncProblem

    q = select(SyncProblem).where(
        SyncProblem.entity == "deal", SyncProblem.resolved_at.is_(None)
    )
    for p in db.session.execute(q).scalars():
        yield Hit(
            SYNC_PROBLEM_RULE,
            f"deal:{p.entity_id}",
            "medium",
            f"Deal #{p.entity_id} could not be stored by the Pipedrive sync since "
            f"{p.first_seen:%d %b %Y %H:%M} UTC, so its changes have not reached the desk "
            f"(every other deal synced): {p.reason} Each sync tries it again.",
            deal_id=p.entity_id,
            facts={"reason": p.reason},
        )


ALL_RULES.append(rule_sync_problem)
