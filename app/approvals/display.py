"""What the approval templates show: the actions panel, the timeline, people's names."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from flask_login import current_user
from sqlalchemy import select

from app.approvals.workflow import (
    TRANSITIONS,
    USER_ACTIONS,
    Policy,
    approval_is_current,
    current_policy,
    refusal,
)
from app.audit.display import DECIMAL_TEXT, show_value
from app.audit.models import AuditEntry
from app.audit.operations import changes
from app.auth.models import User
from app.extensions import db
from app.invoices.audit_values import money_currency, money_text
from app.invoices.models import STATUSES, Invoice
from app.money import plain_decimal

# Placeholders: the panel asks "could this user do it, given a reason?"
_NOTE = {"reason": "-", "comment": "-"}

# How the timeline names audit actions on invoices; other modules may add theirs.
TIMELINE_LABELS: dict[str, str] = {
    f"invoice.{action}": t.label for action, t in TRANSITIONS.items()
} | {
    "invoice.back_to_draft": "Back to draft (edited after submission or approval)",
    "invoice.create": "Draft created",
    "invoice.update": "Edited",
    # Ways out of a stopped push (app/push/recovery.py).
    "invoice.billing_email_set": "Billing email set, to send the invoice finalized in Stripe",
    "invoice.redrafted": "Drafted again from an invoice voided in Stripe",
    "push.voided_in_stripe": "Voided in Stripe",
    # What became of a Stripe invoice whose finalize answer was lost (issue 15).
    "push.read_back": "Checked in Stripe",
    "push.choice_requested": "Asked to void or adopt an earlier version's Stripe invoice",
    "push.choice_withdrawn": "Withdrew the request to void or adopt it",
    "push.choice_confirmed": "Confirmed (four-eyes): the earlier Stripe invoice decided",
}
FIELD_LABELS = {
    "status": "Status",
    "on_hold": "On hold",
    "hold_reason": "Hold reason",
    "approved_version": "Approved version",
}
NOTE_KEYS = {"reason": "Reason", "comment": "Comment"}


def names(ids) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    users = db.session.execute(select(User).where(User.id.in_(wanted))).scalars()
    return {u.id: u.display_name for u in users}


def panel_context(invoice: Invoice, user=None, policy: Policy | None = None) -> dict:
    """Which actions `user` may use on `invoice` now, and why others are blocked.

    `actions`: the buttons to show. `notes`: for actions the user's roles allow
    and the status fits but a rule blocks (four-eyes, threshold, hold), the reason.
    """
    user = user if user is not None else current_user
    policy = policy or current_policy()
    actions, notes = [], {}
    for action in USER_ACTIONS:
        why = refusal(invoice, action, user, policy=policy, **_NOTE)
        if why is None:
            actions.append(action)
            continue
        t = TRANSITIONS[action]
        if user.can(t.permission) and invoice.status in t.sources and action != "release":
            if action == "hold" and invoice.on_hold:
                continue  # the hold itself is shown; "already on hold" adds nothing
            notes[action] = why
    people = names(
        [invoice.submitted_by_id, invoice.approved_by_id, invoice.held_by_id,
         invoice.updated_by_id]
    )
    return {
        "actions": actions,
        "notes": notes,
        "policy": policy,
        "people": people,
        "approval_current": approval_is_current(invoice),
        "status_label": STATUSES.get(invoice.status, invoice.status),
    }


@dataclass
class TimelineRow:
    entry: AuditEntry
    label: str
    actor: str
    changes: list[tuple[str, str, str]]
    notes: list[tuple[str, str]]


_DECIMAL = DECIMAL_TEXT  # "120.000000", "1E+3", "1E-7": how Decimals are stored


def _show(field: str, value, currency: str | None = None) -> str:
    """`currency`: the value's currency when it is money (see money_currency), else None."""
    if value is None or value == "":
        return "—"
    if field == "status":
        return STATUSES.get(value, value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    money = money_text(value, currency) if currency else None
    if money is not None:
        return money  # "EUR 2,757.03", never a bare number
    if _DECIMAL.fullmatch(text):
        # Stored with six decimals ("120.000000"): show what was typed.
        return plain_decimal(Decimal(text))
    return show_value(value, field, inline=True)


def _label(action: str) -> str:
    if action in TIMELINE_LABELS:
        return TIMELINE_LABELS[action]
    return action.partition(".")[2].replace("_", " ").capitalize() or action


def timeline(invoice_id: int) -> list[TimelineRow]:
    """Every audit entry about this invoice, newest first, in plain words."""
    entries = db.session.execute(
        select(AuditEntry)
        .where(AuditEntry.object_type == "invoice", AuditEntry.object_id == str(invoice_id))
        .order_by(AuditEntry.id.desc())
    ).scalars().all()
    people = names(e.actor_id for e in entries)
    invoice = db.session.get(Invoice, invoice_id)
    currency = invoice.currency if invoice is not None else ""
    line_types = {ln.id: ln.discount_type for ln in invoice.lines} if invoice is not None else {}
    rows = []
    for e in entries:
        after = dict(e.after or {}) if isinstance(e.after, dict) else {}
        notes = [(NOTE_KEYS[k], str(after.pop(k))) for k in NOTE_KEYS if after.get(k)]
        before = dict(e.before or {}) if isinstance(e.before, dict) else {}
        for k in NOTE_KEYS:
            before.pop(k, None)
        diff = [
            (FIELD_LABELS.get(f, f.replace("_", " ").capitalize()),
             _show(f, old, money_currency(f, before, after, currency, line_types)),
             _show(f, new, money_currency(f, after, before, currency, line_types)))
            for f, (old, new) in changes(before, after).items()
        ]
        actor = people.get(e.actor_id) or e.actor_label
        rows.append(TimelineRow(e, _label(e.action), actor, diff, notes))
    return rows
