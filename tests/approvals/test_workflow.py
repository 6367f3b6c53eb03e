"""The state machine itself: every transition for every role and every status."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, text

from app.approvals import policy as policy_ops
from app.approvals.workflow import (
    BACK_TO_DRAFT_REASON,
    TransitionRefused,
    content_edited,
    transition,
)
from app.audit.models import AuditEntry
from app.audit.operations import verify_chain
from app.auth.permissions import ROLES
from app.extensions import db
from app.invoices.models import STATUSES
from tests.approvals.conftest import new_invoice, user

# The list, written out independently of the code's table:
# action -> (statuses it starts from, resulting status (None: unchanged), roles allowed)
SPEC = {
    "submit": ({"draft"}, "submitted", {"finance", "admin"}),
    "approve": ({"submitted"}, "approved", {"approver", "admin"}),
    "reject": ({"submitted"}, "draft", {"approver", "admin"}),
    "hold": ({"draft", "submitted", "approved"}, None, {"finance", "approver", "admin"}),
    "release": ({"draft", "submitted", "approved"}, None, {"finance", "approver", "admin"}),
    "cancel": ({"draft"}, "cancelled", {"finance", "admin"}),
}
SYSTEM_SPEC = {
    "push_start": ({"approved"}, "pushing"),
    "push_done": ({"pushing"}, "pushed"),
    "push_fail": ({"pushing"}, "push_failed"),
    "push_retry": ({"push_failed"}, "pushing"),
}
PERMISSION_OF = {"submit": "invoices.submit", "approve": "invoices.approve",
                 "reject": "invoices.approve", "hold": "invoices.hold",
                 "release": "invoices.hold", "cancel": "invoices.cancel"}


def _entries(invoice_id, action=None):
    query = select(AuditEntry).where(
        AuditEntry.object_type == "invoice", AuditEntry.object_id == str(invoice_id)
    )
    if action:
        query = query.where(AuditEntry.action == action)
    return db.session.execute(query.order_by(AuditEntry.id)).scalars().all()


def _invoice_in(status, preparer, *, on_hold=False):
    """An invoice in `status`, prepared (edited, submitted) by `preparer`, approved if it
    has been past approval, so only the rule under test can refuse."""
    kw = {"status": status, "updated_by_id": preparer.id, "version": 3}
    if status != "draft":
        kw["submitted_by_id"] = preparer.id
    if status in ("approved", "pushing", "pushed", "push_failed"):
        kw.update(approved_version=3, approved_by_id=preparer.id)
    if on_hold:
        kw.update(on_hold=True, hold_reason="customer disputes the PO", held_by_id=preparer.id)
    return new_invoice(**kw)


@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize("action", sorted(SPEC))
def test_every_transition_for_every_role_and_status(app, ctx, make_user, role, action):
    actor = user(make_user(role))
    preparer = user(make_user("finance"))
    sources, target, roles = SPEC[action]
    for status in STATUSES:
        invoice = _invoice_in(status, preparer, on_hold=(action == "release"))
        before = (invoice.status, invoice.on_hold, invoice.version)
        allowed = role in roles and status in sources
        if allowed:
            transition(invoice, action, actor, reason="waiting for a PO", comment="wrong VAT")
            expected = target or status
            assert invoice.status == expected, (action, role, status)
            assert invoice.version == before[2], "transitions do not bump the content version"
            entry = _entries(invoice.id, f"invoice.{action}")[-1]
            assert entry.actor_id == actor.id
            assert entry.before["status"] == status and entry.after["status"] == expected
        else:
            with pytest.raises(TransitionRefused) as refused:
                transition(invoice, action, actor, reason="waiting for a PO", comment="wrong")
            message = refused.value.message
            if role not in roles:
                assert PERMISSION_OF[action] in message and "You may not" in message
            else:
                assert "this one is" in message, message
            assert (invoice.status, invoice.on_hold, invoice.version) == before
            assert _entries(invoice.id) == []


def test_state_refusals_name_the_status_in_plain_words(app, ctx, make_user):
    admin = user(make_user("admin"))
    preparer = user(make_user("finance"))
    draft = _invoice_in("draft", preparer)
    with pytest.raises(TransitionRefused, match=r"^Only a submitted invoice can be approved; "
                                                r"this one is a draft\.$"):
        transition(draft, "approve", admin)
    pushed = _invoice_in("pushed", preparer)
    with pytest.raises(TransitionRefused, match="can be put on hold; this one is in Stripe"):
        transition(pushed, "hold", admin, reason="x")
    with pytest.raises(TransitionRefused, match="not something that can be done"):
        transition(draft, "publish", admin)


@pytest.mark.parametrize("action", sorted(SYSTEM_SPEC))
def test_system_push_steps_from_every_status(app, ctx, make_user, action):
    preparer = user(make_user("finance"))
    sources, target = SYSTEM_SPEC[action]
    for status in STATUSES:
        invoice = _invoice_in(status, preparer)
        if status in sources:
            transition(invoice, action, None)
            assert invoice.status == target
            assert _entries(invoice.id, f"invoice.{action}")
        else:
            with pytest.raises(TransitionRefused, match="this one is"):
                transition(invoice, action, None)
            assert invoice.status == status


def test_user_actions_need_a_signed_in_user(app, ctx, make_user):
    invoice = _invoice_in("draft", user(make_user("finance")))
    with pytest.raises(TransitionRefused, match="invoices.submit"):
        transition(invoice, "submit", None)


# Four-eyes


def test_four_eyes_refuses_who_last_edited_or_submitted(app, ctx, make_user):
    both = user(make_user("finance", "approver"))
    other = user(make_user("finance"))
    approver = user(make_user("approver"))
    edited = new_invoice(status="submitted", updated_by_id=both.id, submitted_by_id=other.id)
    with pytest.raises(TransitionRefused) as refused:
        transition(edited, "approve", both)
    assert refused.value.message == (
        "You last edited this invoice: with four-eyes on, someone else must approve it."
    )
    submitted = new_invoice(status="submitted", updated_by_id=other.id, submitted_by_id=both.id)
    with pytest.raises(TransitionRefused, match="You submitted this invoice"):
        transition(submitted, "approve", both)
    # Someone else may approve both.
    transition(edited, "approve", approver)
    transition(submitted, "approve", approver)
    assert edited.approved_by_id == approver.id and edited.approved_version == edited.version


def test_four_eyes_applies_to_admins_too_and_can_be_switched_off(app, ctx, make_user):
    admin = user(make_user("admin"))
    invoice = new_invoice(status="draft", updated_by_id=admin.id)
    transition(invoice, "submit", admin)
    with pytest.raises(TransitionRefused, match="four-eyes on"):
        transition(invoice, "approve", admin)
    assert policy_ops.set_four_eyes(False, admin) is True
    transition(invoice, "approve", admin)
    assert invoice.status == "approved" and invoice.approved_by_id == admin.id
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.action == "approval_policy.four_eyes")
    ).scalar_one()
    assert entry.before == {"four_eyes": True} and entry.after == {"four_eyes": False}
    assert policy_ops.set_four_eyes(False, admin) is False  # no change, no entry


# Thresholds


def test_above_the_threshold_only_an_admin_may_approve(app, ctx, make_user):
    admin, approver = user(make_user("admin")), user(make_user("approver"))
    preparer = user(make_user("finance"))
    policy_ops.set_threshold("eur", "50,000.00", admin)
    big = new_invoice(status="submitted", total=Decimal("60000.00"),
                      updated_by_id=preparer.id, submitted_by_id=preparer.id)
    with pytest.raises(TransitionRefused) as refused:
        transition(big, "approve", approver)
    assert refused.value.message == (
        "EUR 60,000.00 is above the EUR 50,000.00 approval threshold: "
        "only an admin may approve it."
    )
    assert big.status == "submitted"
    transition(big, "approve", admin)
    assert big.status == "approved"
    # At the threshold exactly, and in another currency, any approver may.
    at = new_invoice(status="submitted", total=Decimal("50000.00"), submitted_by_id=preparer.id)
    usd = new_invoice(status="submitted", total=Decimal("90000"), currency="USD",
                      submitted_by_id=preparer.id)
    transition(at, "approve", approver)
    transition(usd, "approve", approver)
    assert (at.status, usd.status) == ("approved", "approved")


def test_threshold_input_is_validated(app, ctx, make_user):
    admin = user(make_user("admin"))
    cases = [
        ("", "100", "currency", "Enter a currency code"),
        ("XYZ", "100", "currency", "not a currency Stripe bills in"),
        ("EUR", "", "amount", "Enter an amount"),
        ("EUR", "lots", "amount", "Enter a number"),
        ("EUR", "0", "amount", "more than zero"),
        ("EUR", "-5", "amount", "cannot be negative"),
        ("EUR", "10.1234", "amount", "at most 2 decimals"),
        ("EUR", "10.123", "amount", "could be 10123 or 10.123"),
        ("JPY", "10.5", "amount", "no decimals"),
        ("EUR", "1e20", "amount", "Enter a number such as"),
        ("EUR", "100000000000000000000", "amount", "too large"),
    ]
    for currency, amount, field, words in cases:
        with pytest.raises(policy_ops.PolicyInputError) as bad:
            policy_ops.set_threshold(currency, amount, admin)
        assert bad.value.field == field and words in bad.value.message, (currency, amount)
    row = policy_ops.set_threshold(" kwd ", "1,000.250", admin)
    assert row.currency == "KWD" and row.amount == Decimal("1000.250")
    policy_ops.set_threshold("KWD", "2000", admin)
    entries = db.session.execute(
        select(AuditEntry).where(AuditEntry.object_type == "approval_threshold")
        .order_by(AuditEntry.id)
    ).scalars().all()
    assert [e.after["amount"] for e in entries] == ["1000.250", "2000"]
    assert Decimal(entries[1].before["amount"]) == Decimal("1000.25")
    assert policy_ops.remove_threshold("kwd", admin) is True
    assert policy_ops.remove_threshold("KWD", admin) is False


# Approval freezes the invoice


def test_an_edit_after_approval_sends_it_back_to_draft(app, ctx, make_user):
    finance, approver = user(make_user("finance")), user(make_user("approver"))
    invoice = new_invoice(status="draft", updated_by_id=finance.id)
    transition(invoice, "submit", finance)
    transition(invoice, "approve", approver)
    version = invoice.version
    content_edited(invoice, finance)
    assert invoice.status == "draft" and invoice.version == version + 1
    assert invoice.approved_version is None and invoice.approved_by_id is None
    assert invoice.updated_by_id == finance.id
    entry = _entries(invoice.id, "invoice.back_to_draft")[-1]
    assert entry.before["status"] == "approved" and entry.before["approved_version"] == version
    assert entry.after["status"] == "draft" and entry.after["reason"] == BACK_TO_DRAFT_REASON
    # The old approval does not count: the invoice cannot be pushed.
    with pytest.raises(TransitionRefused, match="Only an approved invoice"):
        transition(invoice, "push_start", None)


@pytest.mark.parametrize("status", ["submitted", "push_failed"])
def test_editing_a_submitted_or_failed_invoice_sends_it_back_too(app, ctx, make_user, status):
    finance = user(make_user("finance"))
    invoice = _invoice_in(status, finance)
    content_edited(invoice, finance)
    assert invoice.status == "draft" and invoice.approved_version is None
    assert len(_entries(invoice.id, "invoice.back_to_draft")) == 1


def test_editing_a_draft_only_bumps_the_version_and_keeps_a_hold(app, ctx, make_user):
    finance = user(make_user("finance"))
    invoice = _invoice_in("draft", finance, on_hold=True)
    content_edited(invoice, finance)
    assert invoice.status == "draft" and invoice.version == 4 and invoice.on_hold
    assert _entries(invoice.id) == []


@pytest.mark.parametrize("status", ["pushing", "pushed", "cancelled"])
def test_invoices_past_approval_cannot_be_edited(app, ctx, make_user, status):
    finance = user(make_user("finance"))
    invoice = _invoice_in(status, finance)
    with pytest.raises(TransitionRefused, match="can no longer be edited"):
        content_edited(invoice, finance)
    assert invoice.status == status and invoice.version == 3


def test_approval_of_an_older_version_is_refused(app, ctx, make_user):
    finance, approver = user(make_user("finance")), user(make_user("approver"))
    invoice = _invoice_in("submitted", finance)
    with pytest.raises(TransitionRefused, match="changed since you opened it"):
        transition(invoice, "approve", approver, expected_version=2)
    transition(invoice, "approve", approver, expected_version=3)
    assert invoice.approved_version == 3


def test_push_needs_an_approval_of_the_current_version(app, ctx, make_user):
    finance = user(make_user("finance"))
    stale = _invoice_in("approved", finance)
    stale.approved_version = 2  # approved an older content (not reachable via the workflow)
    with pytest.raises(TransitionRefused, match="no approval of its current content"):
        transition(stale, "push_start", None)
    failed = _invoice_in("push_failed", finance)
    failed.approved_by_id = None
    with pytest.raises(TransitionRefused, match="no approval of its current content"):
        transition(failed, "push_retry", None)


# Holds


def test_a_hold_blocks_push_until_released(app, ctx, make_user):
    finance = user(make_user("finance"))
    invoice = _invoice_in("approved", finance)
    transition(invoice, "hold", finance, reason="  customer disputes the PO  ")
    assert invoice.on_hold and invoice.hold_reason == "customer disputes the PO"
    assert invoice.held_by_id == finance.id and invoice.held_at is not None
    with pytest.raises(TransitionRefused) as refused:
        transition(invoice, "push_start", None)
    assert refused.value.message == (
        "This invoice is on hold (reason: customer disputes the PO): release it before pushing."
    )
    with pytest.raises(TransitionRefused, match="already"):
        transition(invoice, "hold", finance, reason="again")
    transition(invoice, "release", finance)
    assert not invoice.on_hold and invoice.hold_reason is None and invoice.held_by_id is None
    transition(invoice, "push_start", None)
    assert invoice.status == "pushing"
    hold = _entries(invoice.id, "invoice.hold")[0]
    release = _entries(invoice.id, "invoice.release")[0]
    assert hold.after["reason"] == "customer disputes the PO" and hold.after["on_hold"] is True
    assert release.before["hold_reason"] == "customer disputes the PO"
    assert release.after["on_hold"] is False


@pytest.mark.parametrize("action", ["submit", "approve", "cancel"])
def test_a_hold_blocks_moving_forward(app, ctx, make_user, action):
    admin = user(make_user("admin"))
    preparer = user(make_user("finance"))
    status = {"submit": "draft", "approve": "submitted", "cancel": "draft"}[action]
    invoice = _invoice_in(status, preparer, on_hold=True)
    with pytest.raises(TransitionRefused, match=r"on hold \(reason: customer disputes the PO\)"):
        transition(invoice, action, admin)
    assert invoice.status == status


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_hold_needs_a_reason(app, ctx, make_user, reason):
    finance = user(make_user("finance"))
    invoice = _invoice_in("draft", finance)
    with pytest.raises(TransitionRefused, match="Give a reason for the hold"):
        transition(invoice, "hold", finance, reason=reason)
    assert not invoice.on_hold


def test_release_needs_a_hold(app, ctx, make_user):
    finance = user(make_user("finance"))
    with pytest.raises(TransitionRefused, match="not on hold"):
        transition(_invoice_in("draft", finance), "release", finance)


@pytest.mark.parametrize("comment", [None, "", "  \n "])
def test_reject_needs_a_comment(app, ctx, make_user, comment):
    approver, finance = user(make_user("approver")), user(make_user("finance"))
    invoice = _invoice_in("submitted", finance)
    with pytest.raises(TransitionRefused, match="Say why you reject it"):
        transition(invoice, "reject", approver, comment=comment)
    assert invoice.status == "submitted"


def test_reject_goes_back_to_draft_with_the_comment(app, ctx, make_user):
    approver, finance = user(make_user("approver")), user(make_user("finance"))
    invoice = _invoice_in("submitted", finance)
    transition(invoice, "reject", approver, comment="VAT id is missing")
    assert invoice.status == "draft"
    entry = _entries(invoice.id, "invoice.reject")[0]
    assert entry.after["comment"] == "VAT id is missing"
    assert entry.before["status"] == "submitted"


def test_long_notes_are_refused(app, ctx, make_user):
    finance = user(make_user("finance"))
    with pytest.raises(TransitionRefused, match="under 1000 characters"):
        transition(_invoice_in("draft", finance), "hold", finance, reason="x" * 1001)


# The audit chain covers invoice transitions


def test_the_chain_check_detects_a_tampered_invoice_entry(app, make_user):
    finance_u, approver_u = make_user("finance"), make_user("approver")
    with app.app_context():
        finance, approver = user(finance_u), user(approver_u)
        invoice = new_invoice(status="draft", updated_by_id=finance.id)
        transition(invoice, "submit", finance)
        transition(invoice, "approve", approver)
        transition(invoice, "hold", finance, reason="check the PO")
        db.session.commit()
        assert verify_chain().ok
        approval = _entries(invoice.id, "invoice.approve")[0]
        # Someone rewrites history: the approval now names another approver.
        db.session.execute(
            text("UPDATE audit_entry SET actor_label = 'someone@else.example' WHERE id = :i"),
            {"i": approval.id},
        )
        db.session.commit()
        report = verify_chain()
        assert not report.ok and report.broken_at == approval.id
        assert "changed" in report.problem


def test_the_chain_check_detects_a_deleted_invoice_entry(app, make_user):
    finance_u = make_user("finance")
    with app.app_context():
        finance = user(finance_u)
        invoice = new_invoice(status="draft", updated_by_id=finance.id)
        transition(invoice, "hold", finance, reason="a")
        transition(invoice, "release", finance)
        transition(invoice, "submit", finance)
        db.session.commit()
        entries = _entries(invoice.id)
        db.session.execute(text("DELETE FROM audit_entry WHERE id = :i"), {"i": entries[1].id})
        db.session.commit()
        report = verify_chain()
        assert not report.ok and report.broken_at == entries[2].id and "deleted" in report.problem


# Issue 14, defect 9: an invoice Stripe cannot email never gets past submission.


@pytest.mark.parametrize("email, says", [
    ("", "Add a billing email"),
    ("   ", "Add a billing email"),
    ("accounts at acme", "Correct the billing email “accounts at acme”"),
])
def test_an_invoice_without_a_usable_billing_email_cannot_be_submitted(
    app, ctx, make_user, email, says
):
    finance = user(make_user("finance"))
    invoice = new_invoice(billing_email=email, collection_method="send_invoice")
    with pytest.raises(TransitionRefused) as refused:
        transition(invoice, "submit", finance)
    assert refused.value.message.startswith(says)
    assert "Bill to → Billing email" in refused.value.message
    assert invoice.status == "draft" and _entries(invoice.id) == []
    invoice.billing_email = "ap@acme.example"
    transition(invoice, "submit", finance)
    assert invoice.status == "submitted"


def test_approve_and_push_recheck_the_billing_email(app, ctx, make_user):
    """One submitted or approved before the check existed is stopped at the next step."""
    preparer, approver = user(make_user("finance")), user(make_user("approver"))
    submitted = _invoice_in("submitted", preparer)
    approved = _invoice_in("approved", preparer)
    for invoice in (submitted, approved):
        invoice.billing_email = ""
    with pytest.raises(TransitionRefused, match="^Add a billing email"):
        transition(submitted, "approve", approver)
    with pytest.raises(TransitionRefused, match="^Add a billing email"):
        transition(approved, "push_start", None)
    assert (submitted.status, approved.status) == ("submitted", "approved")


def test_a_charged_invoice_needs_no_email(app, ctx, make_user):
    finance = user(make_user("finance"))
    invoice = new_invoice(billing_email="", collection_method="charge_automatically")
    transition(invoice, "submit", finance)
    assert invoice.status == "submitted"
