"""The invoice state machine: one table of transitions, and the rules around it.

    draft -> submitted -> approved -> pushing -> pushed
                                       pushing -> push_failed -> pushing (retry)
    submitted -> draft (rejected, with a comment); draft -> cancelled
    draft, submitted, approved: put on hold (with a reason) and released
    push_failed, pushed -> cancelled (its Stripe invoice is void; a new draft replaces it)
    push_failed -> pushed (finalized in Stripe, sent to the customer by hand)

An invoice Stripe could not send (no billing email) never gets past submission:
`billing_problem` is checked on submit, approve and push.

A hold is orthogonal to the status (`on_hold`): it stops the invoice moving
forward (submit, approve, cancel, push) until it is released. Approval records
the version it approved; `content_edited` sends an edited invoice back to draft,
so an approval only ever covers the content the approver saw.

Helpers here change and flush, and write an audit entry for every change; the
caller (a view, a job) commits once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import func, or_, select

from app.approvals.models import ApprovalPolicy, ApprovalThreshold
from app.audit.models import AuditEntry
from app.audit.operations import lock_chain, record
from app.auth.permissions import describe
from app.extensions import db
from app.invoices.models import EDITABLE, STATUSES, Invoice
from app.invoices.validation import EMAIL_RE, submission_problems
from app.money import format_money
from app.types import utcnow

MAX_NOTE = 1000
# Above a currency's threshold, approving needs this permission as well.
LARGE_PERMISSION = "invoices.approve_large"


class TransitionRefused(Exception):
    """A transition that is not allowed; the message is fit to show to the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Transition:
    sources: frozenset[str]
    target: str | None  # None: the status stays (holds are orthogonal to it)
    # None: a system step (the push module); whoever calls it checks access.
    permission: str | None
    only: str  # what the refusal says when the status does not fit
    verb: str  # "approve": for "You may not approve invoices"
    gerund: str  # "approving": for "release it before approving"
    label: str  # how the timeline names it


def _t(sources, target, permission, only, verb, gerund, label):
    return Transition(frozenset(sources), target, permission, only, verb, gerund, label)


HOLDABLE = ("draft", "submitted", "approved")

TRANSITIONS: dict[str, Transition] = {
    "submit": _t(("draft",), "submitted", "invoices.submit",
                 "Only a draft can be submitted for approval", "submit", "submitting",
                 "Submitted for approval"),
    "approve": _t(("submitted",), "approved", "invoices.approve",
                  "Only a submitted invoice can be approved", "approve", "approving",
                  "Approved"),
    "reject": _t(("submitted",), "draft", "invoices.approve",
                 "Only a submitted invoice can be rejected", "reject", "rejecting",
                 "Rejected back to draft"),
    "hold": _t(HOLDABLE, None, "invoices.hold",
               "Only a draft, submitted or approved invoice can be put on hold", "hold",
               "holding", "Put on hold"),
    "release": _t(HOLDABLE, None, "invoices.hold",
                  "Only a draft, submitted or approved invoice can be released from hold",
                  "release", "releasing", "Released from hold"),
    "cancel": _t(("draft",), "cancelled", "invoices.cancel",
                 "Only a draft can be cancelled", "cancel", "cancelling", "Cancelled"),
    "push_start": _t(("approved",), "pushing", None,
                     "Only an approved invoice can be pushed to Stripe", "push", "pushing",
                     "Push to Stripe started"),
    "push_done": _t(("pushing",), "pushed", None,
                    "Only an invoice being pushed can be marked as in Stripe", "push",
                    "pushing", "Pushed to Stripe"),
    "push_fail": _t(("pushing",), "push_failed", None,
                    "Only an invoice being pushed can be marked as failed", "push", "pushing",
                    "Push to Stripe failed"),
    "push_retry": _t(("push_failed",), "pushing", None,
                     "Only an invoice whose push failed can be retried", "push", "pushing",
                     "Push to Stripe retried"),
    # Ways out of a push that stopped after Stripe finalized the invoice (app/push/recovery).
    "push_sent_by_hand": _t(("push_failed",), "pushed", "invoices.push",
                            "Only an invoice whose push failed can be marked as sent by hand",
                            "mark", "marking", "Marked as sent to the customer by hand"),
    "void_redraft": _t(("push_failed", "pushed"), "cancelled", "invoices.push",
                       "Only an invoice in Stripe (or whose push failed) can be voided and "
                       "drafted again", "void", "voiding", "Voided in Stripe; drafted again"),
    # An earlier version's invoice, finalized in Stripe, taken as this invoice's push by
    # two users (one asks, another confirms; app/push/recovery).
    "adopt_stripe": _t(("draft", "submitted", "approved", "push_failed"), "pushed",
                       "invoices.push", "Only an invoice not yet in Stripe can adopt a Stripe "
                       "invoice", "adopt", "adopting", "Adopted its Stripe invoice"),
}
# What people do from the invoice page; the push_* steps belong to the push module.
USER_ACTIONS = ("submit", "approve", "reject", "hold", "release", "cancel")
# A hold stops these until it is released.
BLOCKED_BY_HOLD = frozenset({"submit", "approve", "cancel", "push_start", "push_retry"})
# What Stripe needs from the bill-to before these may happen (see billing_problem).
NEEDS_BILLING_CONTACT = frozenset({"submit", "approve", "push_start", "push_retry"})

# "...; this one is <phrase>."
STATUS_PHRASES = {
    "draft": "a draft",
    "submitted": "waiting for approval",
    "approved": "approved already",
    "pushing": "being pushed to Stripe",
    "pushed": "in Stripe already",
    "push_failed": "one whose push failed",
    "cancelled": "cancelled",
}
assert set(STATUS_PHRASES) == set(STATUSES), "every status needs a phrase"

BACK_TO_DRAFT_REASON = "edited after submission/approval"
# Audit actions that change what an invoice bills (lines, amounts, bill-to, terms, and
# the rest of its content): whoever did one since the last approval may not approve it.
CONTENT_ACTIONS = (
    "invoice.line_update", "invoice.line_add", "invoice.line_remove", "invoice.line_move",
    "invoice.settings_update", "invoice.billto_update", "invoice.discount_add",
    "invoice.discount_remove", "invoice.reapply_deal", "invoice.billing_email_set",
)


@dataclass
class Policy:
    four_eyes: bool = True
    thresholds: dict[str, Decimal] = field(default_factory=dict)  # upper-case currency

    def threshold_for(self, currency: str | None) -> Decimal | None:
        return self.thresholds.get((currency or "").upper())


def current_policy() -> Policy:
    row = db.session.get(ApprovalPolicy, 1)
    thresholds = db.session.execute(select(ApprovalThreshold)).scalars().all()
    return Policy(
        four_eyes=True if row is None else row.four_eyes,
        thresholds={t.currency.upper(): Decimal(t.amount) for t in thresholds},
    )


def state(invoice: Invoice) -> dict:
    """What a transition changes, as the audit log stores it before and after."""
    return {
        "status": invoice.status,
        "on_hold": bool(invoice.on_hold),
        "hold_reason": invoice.hold_reason,
        "approved_version": invoice.approved_version,
    }


def _clean_note(text: str | None) -> str:
    return (text or "").strip()


def billing_problem(invoice: Invoice) -> str | None:
    """Why Stripe could not deliver this invoice to its customer, or None.

    An invoice sent by email (collection method "send_invoice") is finalized and then
    emailed by Stripe; without a usable address Stripe finalizes it and then refuses to
    send it, leaving an open invoice nobody received. So submitting, approving and
    pushing are refused until the bill-to has one.
    """
    if invoice.collection_method != "send_invoice":
        return None
    email = (invoice.billing_email or "").strip()
    if not email:
        return ("Add a billing email: Stripe emails the invoice to that address and cannot "
                "send it without one (Bill to → Billing email).")
    if not EMAIL_RE.match(email) or len(email) > 254:
        return (f"Correct the billing email “{email}”: it is not an address Stripe can "
                "send the invoice to (Bill to → Billing email).")
    return None


def approval_is_current(invoice: Invoice) -> bool:
    """True if someone approved exactly the content the invoice has now."""
    return (
        invoice.approved_by_id is not None
        and invoice.approved_version is not None
        and invoice.approved_version == invoice.version
    )


def refusal(
    invoice: Invoice,
    action: str,
    user,
    *,
    policy: Policy | None = None,
    reason: str | None = None,
    comment: str | None = None,
    expected_version: int | None = None,
) -> str | None:
    """Why `user` may not do `action` to `invoice` now, or None if they may."""
    t = TRANSITIONS.get(action)
    if t is None:
        return f"“{action}” is not something that can be done to an invoice."
    if t.permission is not None:
        if user is None or not user.is_authenticated or not user.can(t.permission):
            return (
                f"You may not {t.verb} invoices: that needs the permission "
                f"“{t.permission}” ({describe(t.permission)})."
            )
    if invoice.status not in t.sources:
        phrase = STATUS_PHRASES.get(invoice.status, invoice.status)
        return f"{t.only}; this one is {phrase}."
    held = f"This invoice is on hold (reason: {invoice.hold_reason})"
    if action in BLOCKED_BY_HOLD and invoice.on_hold:
        return f"{held}: release it before {t.gerund}."
    if action in NEEDS_BILLING_CONTACT:
        problem = billing_problem(invoice)
        if problem:
            return problem
    if action == "hold":
        if invoice.on_hold:
            return f"{held} already."
        if not _clean_note(reason):
            return "Give a reason for the hold: it is shown to everyone who sees the invoice."
        if len(_clean_note(reason)) > MAX_NOTE:
            return f"Keep the reason under {MAX_NOTE} characters."
    if action == "submit":
        problems = submission_problems(invoice)
        if problems:
            return "It cannot be submitted yet: " + " ".join(problems)
    if action == "release" and not invoice.on_hold:
        return "This invoice is not on hold."
    if action == "reject":
        if not _clean_note(comment):
            return "Say why you reject it: the comment goes back to whoever prepared it."
        if len(_clean_note(comment)) > MAX_NOTE:
            return f"Keep the comment under {MAX_NOTE} characters."
    if action == "approve":
        if expected_version is not None and expected_version != invoice.version:
            return (
                "This invoice was changed since you opened it: "
                "review the current version before approving it."
            )
        policy = policy or current_policy()
        if policy.four_eyes:
            if invoice.updated_by_id is not None and invoice.updated_by_id == user.id:
                return (
                    "You last edited this invoice: with four-eyes on, "
                    "someone else must approve it."
                )
            if invoice.submitted_by_id is not None and invoice.submitted_by_id == user.id:
                return (
                    "You submitted this invoice: with four-eyes on, "
                    "someone else must approve it."
                )
            if user.id in contributors(invoice):
                return (
                    "You changed this invoice since it was last approved (its lines, "
                    "amounts, bill-to or terms): with four-eyes on, someone else must "
                    "approve it."
                )
        limit = policy.threshold_for(invoice.currency)
        if limit is not None and Decimal(invoice.total) > limit and not user.can(
            LARGE_PERMISSION
        ):
            return (
                f"{format_money(invoice.total, invoice.currency)} is above the "
                f"{format_money(limit, invoice.currency)} approval threshold: "
                "only an admin may approve it."
            )
    if action in ("push_start", "push_retry") and not approval_is_current(invoice):
        return "This invoice has no approval of its current content: it must be approved again."
    return None


def contributors(invoice: Invoice) -> set[int]:
    """Who changed the invoice's content since its last approval, from the audit log
    (every edit is recorded there with the user who made it): not only the last editor,
    whose stamp the next edit (even of the memo alone) overwrites."""
    obj = (AuditEntry.object_type == "invoice", AuditEntry.object_id == str(invoice.id))
    last_approval = select(func.coalesce(func.max(AuditEntry.id), 0)).where(
        *obj, AuditEntry.action == "invoice.approve").scalar_subquery()
    return set(db.session.execute(
        select(AuditEntry.actor_id).distinct().where(
            *obj, AuditEntry.action.in_(CONTENT_ACTIONS), AuditEntry.actor_id.is_not(None),
            AuditEntry.id > last_approval)
    ).scalars())


def transition(
    invoice: Invoice,
    action: str,
    user,
    *,
    reason: str | None = None,
    comment: str | None = None,
    expected_version: int | None = None,
    policy: Policy | None = None,
) -> Invoice:
    """Do `action` to `invoice` as `user` (None: the system), or raise TransitionRefused.

    Everything is checked before anything changes, so a refusal leaves the
    invoice and the session as they were. Writes `invoice.<action>` to the audit
    log; flushes, never commits. `version` is not touched: it counts content edits.
    """
    message = refusal(
        invoice, action, user, policy=policy, reason=reason, comment=comment,
        expected_version=expected_version,
    )
    if message:
        raise TransitionRefused(message)
    t = TRANSITIONS[action]
    before = state(invoice)
    now = utcnow()
    user_id = user.id if user is not None else None
    if t.target is not None:
        invoice.status = t.target
    note: dict[str, str] = {}
    if action == "submit":
        invoice.submitted_at, invoice.submitted_by_id = now, user_id
    elif action == "approve":
        invoice.approved_version = invoice.version
        invoice.approved_at, invoice.approved_by_id = now, user_id
    elif action == "reject":
        _clear_approval(invoice)
        note["comment"] = _clean_note(comment)
    elif action == "hold":
        invoice.on_hold = True
        invoice.hold_reason = _clean_note(reason)
        invoice.held_by_id, invoice.held_at = user_id, now
        note["reason"] = invoice.hold_reason
    elif action == "release":
        invoice.on_hold = False
        invoice.hold_reason = None
        invoice.held_by_id = invoice.held_at = None
    record(f"invoice.{action}", "invoice", invoice.id, before, state(invoice) | note,
           actor=user)
    return invoice


def _clear_approval(invoice: Invoice) -> None:
    invoice.approved_version = None
    invoice.approved_by_id = None
    invoice.approved_at = None


def content_edited(invoice: Invoice, user) -> Invoice:
    """The editor calls this on every content edit, before flushing it.

    Stamps who edited and when, bumps `version`, and sends a submitted, approved
    or failed invoice back to draft: its approval no longer counts. A hold stays.
    """
    if invoice.status not in EDITABLE:
        phrase = STATUS_PHRASES.get(invoice.status, invoice.status)
        raise TransitionRefused(f"This invoice is {phrase}: it can no longer be edited.")
    invoice.updated_by_id = user.id if user is not None else None
    invoice.updated_at = utcnow()
    invoice.version = (invoice.version or 1) + 1
    if invoice.status != "draft" or invoice.approved_version is not None:
        before = state(invoice)
        invoice.status = "draft"
        _clear_approval(invoice)
        record("invoice.back_to_draft", "invoice", invoice.id, before,
               state(invoice) | {"reason": BACK_TO_DRAFT_REASON}, actor=user)
    return invoice


def load_for_update(invoice_id: int) -> Invoice | None:
    """The invoice, locked on PostgreSQL until the commit (two approvers at once).
    The audit chain lock comes first (LOCK ORDER in app.audit.operations)."""
    lock_chain()
    return db.session.get(Invoice, invoice_id, with_for_update=True)


def _may_approve_any(user) -> bool:
    return user is not None and user.is_authenticated and user.can("invoices.approve")


def _submitted_for(user, policy: Policy) -> list[Invoice]:
    """Submitted invoices not on hold that four-eyes leaves to `user` (if it is on)."""
    query = select(Invoice).where(Invoice.status == "submitted", Invoice.on_hold.is_(False))
    if policy.four_eyes:
        # Cheap pre-filter in SQL; `refusal` then applies every rule exactly.
        query = query.where(
            or_(Invoice.updated_by_id.is_(None), Invoice.updated_by_id != user.id),
            or_(Invoice.submitted_by_id.is_(None), Invoice.submitted_by_id != user.id),
        )
    rows = db.session.execute(query.order_by(Invoice.submitted_at, Invoice.id)).scalars()
    return [i for i in rows if refusal(i, "approve", user, policy=policy) is None]


def awaiting(user, policy: Policy | None = None) -> tuple[list[Invoice], int]:
    """Submitted invoices `user` may approve now, and how many others are waiting."""
    if not _may_approve_any(user):
        return [], 0
    mine = _submitted_for(user, policy or current_policy())
    waiting = db.session.execute(
        select(func.count()).select_from(Invoice).where(
            Invoice.status == "submitted", Invoice.on_hold.is_(False)
        )
    ).scalar_one()
    return mine, waiting - len(mine)


def awaiting_count(user) -> int:
    """The navigation badge: how many invoices wait for `user`'s approval."""
    if not _may_approve_any(user):
        return 0
    return len(_submitted_for(user, current_policy()))
