"""Issue 15, defect 2: a user holding finance and approver changed a line price, another
user edited only the memo and submitted, and the first user approved their own price.
Nobody may approve a version to whose content they contributed since the last approval."""

from __future__ import annotations

from decimal import Decimal

from flask_login import login_user

from app.approvals import workflow
from app.extensions import db
from app.invoices import editing
from app.invoices.models import Invoice, InvoiceLine
from tests.approvals.conftest import new_invoice, user


def _draft(**kw) -> Invoice:
    invoice = new_invoice(**kw)
    invoice.lines.append(InvoiceLine(position=0, description="Consulting",
                                     quantity=Decimal(1), unit_price=Decimal("1000.00"),
                                     tax_rate=Decimal(0), tax_behavior="none",
                                     edited_fields=[]))
    db.session.commit()
    return invoice


def _as(app, who, fn):
    """Do `fn` in a request signed in as `who` (the audit log names the actor so)."""
    with app.test_request_context():
        login_user(who)
        fn()
        db.session.commit()


def test_whoever_changed_the_price_may_not_approve_it_after_a_memo_edit(
        app, ctx, make_user):
    both = user(make_user("finance", "approver"))
    other = user(make_user("finance"))
    invoice = _draft()
    _as(app, both, lambda: editing.update_line(
        invoice, invoice.lines[0], {"unit_price": Decimal("1500.00")}, both, invoice.version))
    _as(app, other, lambda: editing.update_settings(
        invoice, {"memo": "Thanks!"}, other, invoice.version))
    _as(app, other, lambda: workflow.transition(invoice, "submit", other))
    assert invoice.updated_by_id == other.id and invoice.submitted_by_id == other.id
    message = workflow.refusal(invoice, "approve", both)
    assert message and "You changed this invoice since it was last approved" in message
    assert invoice not in workflow.awaiting(both)[0]
    # Someone who changed nothing may approve it.
    third = user(make_user("approver"))
    assert workflow.refusal(invoice, "approve", third) is None
    _as(app, third, lambda: workflow.transition(invoice, "approve", third))
    assert invoice.status == "approved"


def test_only_changes_since_the_last_approval_count(app, ctx, make_user):
    both = user(make_user("finance", "approver"))
    other = user(make_user("finance", "approver"))
    invoice = _draft()
    _as(app, both, lambda: editing.update_line(
        invoice, invoice.lines[0], {"unit_price": Decimal("1500.00")}, both, invoice.version))
    _as(app, both, lambda: workflow.transition(invoice, "submit", both))
    _as(app, other, lambda: workflow.transition(invoice, "approve", other))
    # After that approval, `other` edits and `both` reviews: `both`'s old price counts no more.
    _as(app, other, lambda: editing.update_settings(
        invoice, {"memo": "PO 4711"}, other, invoice.version))
    _as(app, other, lambda: workflow.transition(invoice, "submit", other))
    assert workflow.refusal(invoice, "approve", both) is None
    assert "someone else must approve" in workflow.refusal(invoice, "approve", other)
