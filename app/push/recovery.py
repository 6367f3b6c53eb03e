"""Ways out of every state a failed push can leave an invoice in.

Walking the push state machine (models.py, operations.py), an invoice can be
left in these states; each has an action on the invoice page
(templates/push/_status.html) and, where the desk and Stripe disagree, a row
with that action on the mismatch board (app/mismatches/rules.py):

=============  ====================================  =================================
desk status    push job and Stripe                   way out
=============  ====================================  =================================
pushing        queued, retried at a set time         none needed: retried
               (Stripe unreachable)                  automatically, the page says when
pushing        running, its lease passed             none needed: the next worker
               (the worker died)                     takes it over and resumes it
push_failed    failed before anything reached        Retry; or edit it (back to draft,
               Stripe (customer or tax-rate step)    approve again). Board rule 14.
push_failed    failed with a draft in Stripe         Retry (continues with the draft);
               (invoice, lines or check step)        or edit and approve again (the
                                                     old draft is deleted). Rule 14.
push_failed    finalized in Stripe, never sent       Set the billing email and send;
               (send step refused, e.g. no email)    mark as sent by hand; void in
                                                     Stripe and draft again. Rule 13.
pushed         open in Stripe, nothing paid          Void in Stripe and draft again
pushed or      void in Stripe (voided there)         Draft again. Board rule 4.
push_failed
=============  ====================================  =================================

A finalized invoice cannot be edited (Stripe fixes its content), so none of
these ways out edits it: sending changes only where it goes, marking records
what finance did outside the desk, and voiding ends it in Stripe and in the
desk (cancelled) before a new draft with the same content takes its place.
Every step writes an audit entry; the caller (a view) commits once.
"""

from __future__ import annotations

import copy
import hashlib

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select

from app.approvals import workflow
from app.audit.operations import record
from app.extensions import db
from app.invoices.models import Invoice, InvoiceDiscount, InvoiceLine
from app.invoices.validation import EMAIL_RE
from app.push.customers import party
from app.push.models import PushJob, StripeCustomerLink
from app.push.operations import _finish_done, enqueue_one, latest_job
from app.push.stripe_calls import Calls, push_gateway
from app.stripe_api.client import StripeGateway, StripeGatewayError
from app.types import utcnow

ACTIONS = ("send", "mark_sent", "void_redraft", "redraft")
# What a new draft takes over from the invoice it replaces (its content, not its history).
CONTENT = ("deal_id", "currency", "currency_manual", "collection_method", "days_until_due",
           "due_date", "memo", "footer", "po_number", "custom_fields", "customer_name",
           "billing_email", "address", "vat_id", "org_id", "person_id", "deal_hash",
           "deal_snapshot", "subtotal", "discount_total", "tax_total", "total")
DEFAULT_DAYS_UNTIL_DUE = 30


class RecoveryRefused(Exception):
    """The action cannot be done now; `field` names the input the message is about."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def finalized_unsent(invoice: Invoice) -> PushJob | None:
    """The push job, if the push stopped after Stripe finalized the invoice and before
    it was sent to the customer; otherwise None."""
    if invoice.status != "push_failed":
        return None
    job = latest_job(invoice.id)
    if job is None or job.version != invoice.approved_version:
        return None
    finalized, send = job.step_named("finalize"), job.step_named("send")
    if finalized is None or finalized.status != "done" or send is None or send.status == "done":
        return None
    return job


def can_void(invoice: Invoice) -> bool:
    """Open in Stripe with nothing paid: Stripe voids it (a paid one needs a credit note)."""
    return (invoice.status in ("push_failed", "pushed") and invoice.stripe_status == "open"
            and bool(invoice.stripe_invoice_id) and not invoice.amount_paid)


def options(invoice: Invoice) -> list[str]:
    """The ways out this invoice offers now, in the order the page shows them."""
    found = []
    if finalized_unsent(invoice) is not None:
        found += ["send", "mark_sent"]
    if can_void(invoice):
        found.append("void_redraft")
    if invoice.status in ("push_failed", "pushed") and invoice.stripe_status == "void":
        found.append("redraft")
    return found


def _calls(gateway: StripeGateway | None) -> Calls:
    try:
        return Calls(gateway or push_gateway())
    except StripeGatewayError as exc:
        raise RecoveryRefused(f"{exc} {exc.hint}".strip()) from None


def send_again(invoice: Invoice, user, email: str | None, *,
               gateway: StripeGateway | None = None) -> str:
    """Give the finalized invoice's customer the billing email finance typed (an explicit,
    audited change of that customer), then queue the rest of the push: the send step."""
    job = finalized_unsent(invoice)
    if job is None:
        raise RecoveryRefused("Only an invoice finalized in Stripe and not yet sent can be "
                              "sent from here.")
    typed = (email or "").strip()
    if not typed:
        raise RecoveryRefused("Enter the address Stripe should email the invoice to.", "email")
    if not EMAIL_RE.match(typed) or len(typed) > 254:
        raise RecoveryRefused("This is not a valid email address.", "email")
    old_party = party(invoice)
    if typed != invoice.billing_email:
        before = {"billing_email": invoice.billing_email}
        invoice.billing_email = typed
        # The content Stripe finalized is unchanged, so the approval still holds.
        record("invoice.billing_email_set", "invoice", invoice.id, before,
               {"billing_email": typed, "why": "to send the finalized invoice"}, actor=user)
    calls = _calls(gateway)
    customer_id = job.stripe_customer_id
    try:
        customer = calls.retrieve_customer(customer_id)
        theirs = customer.email or ""
        if theirs.strip().lower() != typed.lower():
            digest = hashlib.sha256(typed.lower().encode()).hexdigest()[:16]
            calls.update_customer(
                customer_id,
                {"email": typed, "metadata": {"desk_billing_email": typed.lower()}},
                f"desk:{invoice.id}:v{job.version}:customer_email:{digest}",
            )
            record("stripe_customer.email_set", "stripe_customer", customer_id,
                   {"email": theirs or None},
                   {"email": typed, "invoice_id": invoice.id}, actor=user)
            _relink(old_party, party(invoice), customer_id)
    except StripeGatewayError as exc:
        raise RecoveryRefused(f"{exc} {exc.hint}".strip()) from None
    queued = enqueue_one(invoice, user)
    if not queued.ok:
        raise RecoveryRefused(queued.message)
    return f"Stripe sends it to {typed} in a moment (the push continues with the sending)."


def _relink(old_key: str, new_key: str, customer_id: str) -> None:
    """The customer now stands for the contact with the new email (unless that contact
    has a customer of its own already)."""
    if old_key == new_key:
        return
    taken = db.session.execute(
        select(StripeCustomerLink).where(StripeCustomerLink.party == new_key)
    ).scalar_one_or_none()
    link = db.session.execute(
        select(StripeCustomerLink).where(StripeCustomerLink.party == old_key,
                                         StripeCustomerLink.stripe_customer_id == customer_id)
    ).scalar_one_or_none()
    if taken is None and link is not None:
        link.party, link.fields_hash, link.updated_at = new_key, None, utcnow()
        db.session.flush()


def mark_sent_by_hand(invoice: Invoice, user, note: str | None) -> str:
    """Finance delivered the finalized invoice another way (PDF, link): the push is done."""
    job = finalized_unsent(invoice)
    if job is None:
        raise RecoveryRefused("Only an invoice finalized in Stripe and not yet sent can be "
                              "marked as sent.")
    note = (note or "").strip()
    if not note:
        raise RecoveryRefused("Say how it reached the customer, e.g. “PDF emailed to "
                              "ap@acme.example on 4 Dec”.", "note")
    if len(note) > 1000:
        raise RecoveryRefused("Keep the note under 1000 characters.", "note")
    message = workflow.refusal(invoice, "push_sent_by_hand", user)
    if message:
        raise RecoveryRefused(message)
    step = job.step_named("send")
    before = {"step": "send", "status": step.status}
    step.status, step.finished_at, step.error = "done", utcnow(), None
    step.result = {**(step.result or {}), "by_hand": True, "note": note}
    record("push.sent_by_hand", "push_job", job.id, before,
           {"step": "send", "status": "done", "note": note, "invoice_id": invoice.id},
           actor=user)
    _finish_done(job, invoice, None, action="push_sent_by_hand", user=user)
    return "Marked as sent: the invoice counts as in Stripe and Pipedrive is told."


def void_and_redraft(invoice: Invoice, user, *, gateway: StripeGateway | None = None
                     ) -> Invoice:
    """Void the open, unpaid Stripe invoice, then draft the same content again."""
    if not can_void(invoice):
        raise RecoveryRefused("Only an invoice that is open in Stripe with nothing paid can "
                              "be voided; use a credit note for a paid one.")
    message = workflow.refusal(invoice, "void_redraft", user)
    if message:
        raise RecoveryRefused(message)
    calls = _calls(gateway)
    stripe_id = invoice.stripe_invoice_id
    try:
        voided = calls.void(stripe_id, f"desk:{invoice.id}:void:{stripe_id}")
    except StripeGatewayError as exc:
        raise RecoveryRefused(f"{exc} {exc.hint}".strip()) from None
    record("push.voided_in_stripe", "invoice", invoice.id,
           {"stripe_status": invoice.stripe_status},
           {"stripe_status": voided.status, "stripe_invoice_id": stripe_id}, actor=user)
    invoice.stripe_status = voided.status
    try:
        from app.payments.sync import apply_invoice
    except ImportError:  # pragma: no cover - the payment sync is optional here
        apply_invoice = None
    if apply_invoice is not None:
        apply_invoice(voided.to_dict())
    return redraft(invoice, user)


def redraft(invoice: Invoice, user) -> Invoice:
    """Its Stripe invoice is void: cancel it in the desk and make a new draft with its
    content, which is edited, approved and pushed like any other."""
    if invoice.stripe_status != "void":
        raise RecoveryRefused("Only an invoice that is void in Stripe can be drafted again.")
    try:
        workflow.transition(invoice, "void_redraft", user)
    except workflow.TransitionRefused as exc:
        raise RecoveryRefused(exc.message) from None
    new = Invoice(status="draft", version=1, created_by_id=getattr(user, "id", None),
                  updated_by_id=getattr(user, "id", None),
                  **{name: copy.deepcopy(getattr(invoice, name)) for name in CONTENT})
    if new.due_date is not None and new.due_date < utcnow().date():
        new.due_date = None  # Stripe refuses a due date in the past
        new.days_until_due = new.days_until_due or DEFAULT_DAYS_UNTIL_DUE
    new.lines = [InvoiceLine(**_columns(line)) for line in invoice.lines]
    new.discounts = [InvoiceDiscount(**_columns(d)) for d in invoice.discounts]
    db.session.add(new)
    db.session.flush()
    record("invoice.redrafted", "invoice", new.id, None,
           {"from_invoice_id": invoice.id, "void_stripe_invoice_id": invoice.stripe_invoice_id,
            "total": new.total}, actor=user)
    return new


def _columns(row) -> dict:
    """A line's or discount's own values, for a copy on another invoice."""
    return {attr.key: copy.deepcopy(getattr(row, attr.key))
            for attr in sa_inspect(type(row)).column_attrs
            if attr.key not in ("id", "invoice_id")}
