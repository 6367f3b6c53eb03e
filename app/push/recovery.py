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
push_failed    finalize sent, its answer lost        Check in Stripe (read it back): a
               (the push may have finalized it)      draft may be edited again; a
                                                     finalized one continues as above.
                                                     Until then it cannot be edited;
                                                     Retry stays safe (same keys).
                                                     Board rule 14.
any            an earlier version's invoice is       Check in Stripe; then void it or
               (or may be) finalized in Stripe       adopt it: one user asks, another
                                                     confirms. Until then editing and
                                                     pushing are refused. Rule 15.
=============  ====================================  =================================

The desk never guesses what became of a Stripe invoice whose finalize was sent: it
reads it back from Stripe (`read_back`), and until it knows, the invoice can be
neither edited nor pushed as another version (`edit_refusal`, `push_refusal`), because
a second Stripe invoice would bill the customer twice. Retrying the same version is
safe: its finalize is resent with the same key, or read back when Stripe forgot it.
The push itself, before deleting an earlier version's draft, reads back one Stripe
would not delete, and stops if it is finalized (operations._not_a_draft).

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
from app.auth.permissions import describe
from app.extensions import db
from app.invoices.models import Invoice, InvoiceDiscount, InvoiceLine
from app.invoices.validation import EMAIL_RE
from app.money import format_money, from_minor, to_minor
from app.push.customers import party
from app.push.finishing import finish_done
from app.push.models import PushJob, StripeCustomerLink
from app.push.queueing import enqueue_one
from app.push.status import latest_job
from app.push.stripe_calls import Calls, push_gateway
from app.stripe_api.client import StripeGateway, StripeGatewayError
from app.types import utcnow
from app.writeback.operations import enqueue_for_pushed_invoice

ACTIONS = ("send", "mark_sent", "void_redraft", "redraft", "read_back")
# Finance's choice about an earlier version's invoice that Stripe finalized (four-eyes).
CHOICES = ("void", "adopt")
FINALIZED = ("open", "paid", "uncollectible")
GONE = ("void", "deleted")
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
    if needs_read_back(invoice):
        found.insert(0, "read_back")
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
    finish_done(job, invoice, None, action="push_sent_by_hand", user=user)
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
    _apply(voided)
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


# -- what became of a Stripe invoice whose finalize was sent (issue 15) -----------------


def _jobs_in_stripe(invoice: Invoice) -> list[PushJob]:
    return list(db.session.execute(
        select(PushJob).where(PushJob.invoice_id == invoice.id,
                              PushJob.stripe_invoice_id.is_not(None))
        .order_by(PushJob.id)
    ).scalars())


def finalize_sent(job: PushJob) -> bool:
    """Stripe may have finalized this job's invoice: its finalize was sent (its answer may
    have been lost) or answered."""
    step = job.step_named("finalize")
    if not job.stripe_invoice_id or step is None or step.status == "pending":
        return False
    # Refused by Stripe: it answered, and it refuses only a draft it did not finalize.
    return not (step.status == "failed" and (step.result or {}).get("refused"))


def outcome_unknown(job: PushJob) -> bool:
    """Its finalize was sent and neither answered nor read back: only Stripe knows."""
    step = job.step_named("finalize")
    return finalize_sent(job) and step.status != "done" and job.stripe_status is None


def adopted(job: PushJob) -> bool:
    r = job.resolution or {}
    return r.get("action") == "adopt" and bool(r.get("confirmed_at"))


def _gone(invoice: Invoice, job: PushJob) -> bool:
    if job.stripe_status in GONE:
        return True
    # The payment sync saw it void (the desk invoice still names it).
    return invoice.stripe_invoice_id == job.stripe_invoice_id and invoice.stripe_status == "void"


def earlier_in_stripe(invoice: Invoice) -> list[PushJob]:
    """Pushes of other versions of this invoice whose Stripe invoice is, or may be,
    finalized there (and so may bill the customer): neither void nor deleted, nor read
    back as a draft, nor adopted as this invoice's push. The current push (the job of
    the approved version) is not among them: retrying it is safe, its keys replay."""
    return [job for job in _jobs_in_stripe(invoice)
            if job.version != invoice.approved_version and not adopted(job)
            and finalize_sent(job) and job.stripe_status != "draft"
            and not _gone(invoice, job)]


def current_in_doubt(invoice: Invoice) -> PushJob | None:
    """The failed push of the approved version, if it sent finalize and never learnt
    whether Stripe did it."""
    if invoice.status != "push_failed":
        return None
    job = latest_job(invoice.id)
    if job is None or job.version != invoice.approved_version or not outcome_unknown(job):
        return None
    return job


def push_refusal(invoice: Invoice) -> str | None:
    """Why no other version of this invoice may be pushed now, or None."""
    found = earlier_in_stripe(invoice)
    if not found:
        return None
    job = found[-1]
    if job.stripe_status in FINALIZED or job.step_named("finalize").status == "done":
        what = (f"was finalized in Stripe ({job.stripe_invoice_id}, "
                f"{job.stripe_status or 'open'})")
    else:
        what = (f"may be billed in Stripe ({job.stripe_invoice_id}: its finalize was sent "
                "and its answer never arrived)")
    return (f"An earlier version of it {what}; a second invoice would bill the customer "
            "twice. " + _next_step(job))


def edit_refusal(invoice: Invoice) -> str | None:
    """Why this invoice may not be edited now (a version of it may be billed in Stripe
    and the desk does not know yet), or None. The editor asks before every edit."""
    job = current_in_doubt(invoice)
    if job is not None:
        return (f"The push sent “finalize” to Stripe for {job.stripe_invoice_id} and its "
                "answer never arrived, so Stripe may have finalized it. Use “Check in "
                "Stripe” on this invoice first: until the desk knows, it cannot be edited "
                "(an edited version pushed again could bill the customer twice).")
    return push_refusal(invoice)


def _next_step(job: PushJob) -> str:
    if job.stripe_checked_at is None or job.stripe_status not in FINALIZED:
        return "Use “Check in Stripe” on this invoice first: until the desk knows, it " \
               "cannot be edited or pushed again."
    pending = job.resolution or {}
    if pending.get("action") and not pending.get("confirmed_at"):
        return (f"Someone asked to {pending['action']} it: another user must confirm that "
                "on this invoice before it can be edited or pushed again.")
    return ("Void it or adopt it on this invoice (one user asks, another confirms) before "
            "it can be edited or pushed again.")


def needs_read_back(invoice: Invoice) -> list[PushJob]:
    """The pushes whose Stripe invoice the desk should read back now."""
    jobs = [job for job in earlier_in_stripe(invoice)
            if job.stripe_status not in FINALIZED or job.stripe_checked_at is None]
    current = current_in_doubt(invoice)
    return jobs + ([current] if current is not None else [])


def awaiting_choice(invoice: Invoice) -> list[PushJob]:
    """Earlier versions' invoices read back as finalized: void or adopt (four-eyes)."""
    return [job for job in earlier_in_stripe(invoice)
            if job.stripe_status in FINALIZED and job.stripe_checked_at is not None]


def _retrieve(calls: Calls, stripe_id: str):
    """Stripe's invoice, or None when Stripe has no such invoice (a deleted draft)."""
    try:
        return calls.retrieve_invoice(stripe_id)
    except StripeGatewayError as exc:
        if exc.code == "resource_missing":
            return None
        raise RecoveryRefused(f"Stripe could not be asked what became of {stripe_id}: {exc} "
                              f"{exc.hint}".strip()) from None


def _note_read_back(job: PushJob, found, user) -> str:
    status = found.status if found is not None else "deleted"
    before = {"stripe_status": job.stripe_status}
    job.stripe_status, job.stripe_checked_at = status, utcnow()
    record("push.read_back", "invoice", job.invoice_id, before,
           {"stripe_status": status, "stripe_invoice_id": job.stripe_invoice_id,
            "push_job": job.id, "version": job.version}, actor=user)
    return status


def _apply(found) -> None:
    """Bring the desk invoice Stripe's invoice names in line with it (the payment sync)."""
    try:
        from app.payments.sync import apply_invoice
    except ImportError:  # pragma: no cover - the payment sync is optional here
        return
    apply_invoice(found.to_dict())


def read_back(invoice: Invoice, user, *, gateway: StripeGateway | None = None) -> str:
    """Ask Stripe what became of every invoice of this one whose fate the desk does not
    know, and record it. A finalize that did happen counts as done: the push then
    continues (Retry) or offers its ways out; an earlier version's finalized invoice then
    waits for finance's choice (void or adopt)."""
    if not getattr(user, "is_authenticated", False) or not user.can("invoices.push"):
        raise RecoveryRefused("Checking in Stripe needs the permission “invoices.push” "
                              f"({describe('invoices.push')}).")
    jobs = needs_read_back(invoice)
    if not jobs:
        raise RecoveryRefused("There is nothing of this invoice in Stripe the desk does not "
                              "know about.")
    calls = _calls(gateway)
    said = []
    for job in jobs:
        found = _retrieve(calls, job.stripe_invoice_id)
        status = _note_read_back(job, found, user)
        current = job.version == invoice.approved_version
        if current and status in FINALIZED:
            step = job.step_named("finalize")
            step.status, step.stripe_id, step.error = "done", found.id, None
            step.finished_at = step.finished_at or utcnow()
            if invoice.stripe_invoice_id in (None, found.id):
                _apply(found)
            said.append(f"{found.number or found.id} is finalized in Stripe ({status}): the "
                        "push got that far. Retry to finish it, or use the ways out below.")
        elif current:
            said.append(f"{job.stripe_invoice_id} is {status} in Stripe: it was not "
                        "finalized. Retry, or edit the invoice (the draft is deleted when "
                        "the new version is pushed).")
        elif status in FINALIZED:
            if invoice.stripe_invoice_id == found.id:
                _apply(found)
            said.append(f"{found.number or found.id}, from version {job.version}, is "
                        f"{status} in Stripe: void it or adopt it (one user asks, another "
                        "confirms).")
        else:
            said.append(f"{job.stripe_invoice_id}, from version {job.version}, is {status} "
                        "in Stripe: it bills nobody.")
    db.session.flush()
    return " ".join(said)


def _choice_job(invoice: Invoice, job_id) -> PushJob:
    for job in awaiting_choice(invoice):
        if str(job.id) == str(job_id):
            return job
    raise RecoveryRefused("That Stripe invoice is not waiting for a choice (it may have been "
                          "decided already): reload the page.")


def _may_push(user) -> None:
    if not getattr(user, "is_authenticated", False) or not user.can("invoices.push"):
        raise RecoveryRefused("That needs the permission “invoices.push” "
                              f"({describe('invoices.push')}).")


def request_choice(invoice: Invoice, job_id, action: str, user, *,
                   gateway: StripeGateway | None = None) -> str:
    """One user asks to void or adopt an earlier version's finalized Stripe invoice;
    nothing happens in Stripe until another user confirms."""
    _may_push(user)
    if action not in CHOICES:
        raise RecoveryRefused("Choose to void it or to adopt it.")
    job = _choice_job(invoice, job_id)
    if action == "adopt":
        _adoptable(invoice, job, _retrieve(_calls(gateway), job.stripe_invoice_id))
    before = job.resolution
    job.resolution = {"action": action, "requested_by_id": user.id,
                      "requested_by": user.email, "requested_at": utcnow().isoformat()}
    record("push.choice_requested", "invoice", invoice.id, before,
           {**job.resolution, "push_job": job.id,
            "stripe_invoice_id": job.stripe_invoice_id}, actor=user)
    db.session.flush()
    verb = "voided" if action == "void" else "adopted"
    return (f"Asked: {job.stripe_invoice_id} is {verb} once another user confirms it.")


def withdraw_choice(invoice: Invoice, job_id, user) -> str:
    _may_push(user)
    job = _choice_job(invoice, job_id)
    if not (job.resolution or {}).get("action"):
        raise RecoveryRefused("Nothing was asked for this Stripe invoice.")
    before, job.resolution = job.resolution, None
    record("push.choice_withdrawn", "invoice", invoice.id, before,
           {"push_job": job.id, "stripe_invoice_id": job.stripe_invoice_id}, actor=user)
    db.session.flush()
    return "Withdrawn: nothing was done in Stripe."


def confirm_choice(invoice: Invoice, job_id, user, *,
                   gateway: StripeGateway | None = None) -> str:
    """Another user confirms the choice: read the invoice back from Stripe again, then void
    it there, or adopt it as this desk invoice's push."""
    _may_push(user)
    job = _choice_job(invoice, job_id)
    asked = job.resolution or {}
    if not asked.get("action"):
        raise RecoveryRefused("Nobody asked to void or adopt it yet.")
    if asked.get("requested_by_id") == user.id:
        raise RecoveryRefused("You asked for this: with four-eyes, another user must "
                              "confirm it.")
    calls = _calls(gateway)
    found = _retrieve(calls, job.stripe_invoice_id)
    status = _note_read_back(job, found, user)
    if status not in FINALIZED:
        return f"{job.stripe_invoice_id} is {status} in Stripe now: there is nothing to decide."
    if asked["action"] == "void":
        message = _void_earlier(invoice, job, found, calls, user)
    else:
        message = _adopt(invoice, job, found, user)
    job.resolution = {**asked, "confirmed_by_id": user.id, "confirmed_by": user.email,
                      "confirmed_at": utcnow().isoformat()}
    record("push.choice_confirmed", "invoice", invoice.id, asked,
           {**job.resolution, "push_job": job.id, "stripe_invoice_id": job.stripe_invoice_id,
            "stripe_status": job.stripe_status}, actor=user)
    db.session.flush()
    return message


def _void_earlier(invoice: Invoice, job: PushJob, found, calls: Calls, user) -> str:
    if found.status == "paid" or int(found.amount_paid or 0):
        raise RecoveryRefused(f"{found.number or found.id} is paid (in part) in Stripe: it "
                              "cannot be voided. Adopt it, or credit it in Stripe.")
    try:
        voided = calls.void(found.id, f"desk:{invoice.id}:void:{found.id}")
    except StripeGatewayError as exc:
        raise RecoveryRefused(f"{exc} {exc.hint}".strip()) from None
    job.stripe_status = voided.status
    record("push.voided_in_stripe", "invoice", invoice.id, {"stripe_status": found.status},
           {"stripe_status": voided.status, "stripe_invoice_id": found.id,
            "push_job": job.id}, actor=user)
    if invoice.stripe_invoice_id == found.id and invoice.status != "pushed":
        # The desk invoice no longer has anything in Stripe: its next push makes one.
        invoice.stripe_invoice_id = invoice.stripe_number = invoice.stripe_status = None
        invoice.hosted_invoice_url = invoice.invoice_pdf = None
    return (f"{found.number or found.id} is void in Stripe: this invoice can be edited and "
            "pushed again.")


def _adoptable(invoice: Invoice, job: PushJob, found) -> None:
    """Adopting takes Stripe's invoice as this invoice's push: only when it bills what
    the invoice says now (same currency and total), and the invoice is not in Stripe
    otherwise."""
    if invoice.status not in ("draft", "submitted", "approved", "push_failed"):
        raise RecoveryRefused("Only an invoice not in Stripe otherwise can adopt it.")
    if found is None or found.status not in FINALIZED:
        raise RecoveryRefused(f"{job.stripe_invoice_id} is no longer billed in Stripe: "
                              "there is nothing to adopt.")
    cur = (found.currency or "").upper()
    total = to_minor(invoice.total, invoice.currency)
    if cur != invoice.currency.upper() or int(found.total) != total:
        theirs = format_money(from_minor(int(found.total), cur or invoice.currency),
                              cur or invoice.currency)
        raise RecoveryRefused(
            f"{found.number or found.id} bills {theirs}, the invoice now "
            f"{format_money(invoice.total, invoice.currency)}: adopting it would make the "
            "desk show what Stripe does not bill. Void it, or change the invoice back.")


def _adopt(invoice: Invoice, job: PushJob, found, user) -> str:
    _adoptable(invoice, job, found)
    try:
        workflow.transition(invoice, "adopt_stripe", user)
    except workflow.TransitionRefused as exc:
        raise RecoveryRefused(exc.message) from None
    step = job.step_named("finalize")
    step.status, step.stripe_id, step.error = "done", found.id, None
    job.status, job.error, job.hint = "done", None, None
    invoice.approved_version = invoice.version
    invoice.approved_by_id, invoice.approved_at = user.id, utcnow()
    invoice.stripe_invoice_id = found.id
    invoice.pushed_at = utcnow()
    invoice.push_error = invoice.push_hint = None
    db.session.flush()
    _apply(found)
    enqueue_for_pushed_invoice(invoice)
    return (f"{found.number or found.id} is this invoice's Stripe invoice now; Pipedrive is "
            "told.")
