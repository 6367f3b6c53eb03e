"""Approval in a real browser: submit, four-eyes, approve from the inbox, hold with a reason."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser


def _invoice(app, **kw) -> int:
    from app.extensions import db
    from app.invoices.models import Invoice, InvoiceLine

    with app.app_context():
        # One line worth the total: submission refuses an invoice with nothing to bill.
        line = InvoiceLine(position=0, description="Consulting", quantity=Decimal(1),
                           unit_price=Decimal("1200.00"), tax_rate=Decimal(0),
                           tax_behavior="none")
        invoice = Invoice(deal_id=9001, currency="EUR", status="draft", lines=[line],
                          billing_email="ap@acme.example",
                          subtotal=Decimal("1200.00"), total=Decimal("1200.00"), **kw)
        db.session.add(invoice)
        db.session.commit()
        return invoice.id


def _status(app, invoice_id):
    from app.extensions import db
    from app.invoices.models import Invoice

    with app.app_context():
        invoice = db.session.get(Invoice, invoice_id)
        return invoice.status, invoice.on_hold, invoice.hold_reason


def test_submit_four_eyes_approve_and_hold(app, page, make_user):
    # Fiona prepares invoices and may also approve, but never her own (four-eyes).
    fiona = make_user("finance", "approver", name="Fiona Finance")
    alex = make_user("approver", name="Alex Approver")
    alpha = _invoice(app, customer_name="Alpha AG", updated_by_id=fiona.id)
    beta = _invoice(app, customer_name="Beta BV", updated_by_id=fiona.id)

    sign_in(page, fiona.email, TEST_PASSWORD)
    page.goto(f"/approvals/invoices/{alpha}")
    panel = page.locator("#invoice-actions")
    panel.get_by_role("button", name="Submit for approval").click()
    expect(panel.locator("#panel-message")).to_have_text("Submitted for approval.")
    expect(panel.locator("#approval-status")).to_contain_text("Waiting for approval")
    # The timeline reloads itself after the action.
    expect(page.locator("#invoice-timeline")).to_contain_text("Submitted for approval")
    expect(page.locator("#invoice-timeline")).to_contain_text("Fiona Finance")
    # Four-eyes: no Approve button for her, and the reason is shown.
    expect(panel.get_by_role("button", name="Approve")).to_have_count(0)
    expect(panel).to_contain_text("someone else must approve it")
    # Her own inbox does not offer it either.
    page.get_by_role("list", name="Main").get_by_role("link", name="Approvals").click()
    expect(page.locator("#inbox-empty")).to_be_visible()
    expect(page.locator("#inbox-others")).to_contain_text("1 more submitted invoice")

    # Hold the other invoice: a reason is required, and said so next to the field.
    page.goto(f"/approvals/invoices/{beta}")
    panel = page.locator("#invoice-actions")
    panel.get_by_text("Put on hold…").click()
    panel.get_by_role("button", name="Put on hold").click()
    expect(panel.locator("#hold-reason-error")).to_contain_text("Give a reason for the hold")
    panel.get_by_label("Reason for the hold").fill("Customer disputes the PO number")
    panel.get_by_role("button", name="Put on hold").click()
    expect(panel.locator("#hold-note")).to_contain_text("Customer disputes the PO number")
    expect(panel.get_by_role("button", name="Release hold")).to_be_visible()
    # The hold list shows who, when and why.
    page.goto("/approvals/holds")
    row = page.locator(f'#hold-list tr[data-invoice="{beta}"]')
    expect(row).to_contain_text("Beta BV")
    expect(row).to_contain_text("Fiona Finance")
    expect(row).to_contain_text("Customer disputes the PO number")
    expect(row).to_contain_text("UTC")
    assert _status(app, beta) == ("draft", True, "Customer disputes the PO number")
    page.get_by_role("button", name="Sign out").click()

    # Alex approves from his inbox; the navigation shows what waits for him.
    sign_in(page, alex.email, TEST_PASSWORD)
    nav = page.get_by_role("list", name="Main")
    expect(nav.locator("#nav-count-approvals-inbox")).to_have_text("1")
    nav.get_by_role("link", name="Approvals").click()
    row = page.locator(f'#inbox tr[data-invoice="{alpha}"]')
    expect(row).to_contain_text("Alpha AG")
    expect(row).to_contain_text("Fiona Finance")
    expect(row).to_contain_text("EUR 1,200.00")
    row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Approve selected").click()
    expect(page.locator(f'#bulk-results li[data-invoice="{alpha}"]')).to_contain_text("Approved")
    expect(page.locator("#inbox-empty")).to_be_visible()
    expect(nav.locator("#nav-count-approvals-inbox")).to_be_hidden()
    assert _status(app, alpha)[0] == "approved"
    page.goto(f"/approvals/invoices/{alpha}")
    expect(page.locator("#approval-status")).to_contain_text("approved by Alex Approver")
    expect(page.locator("#invoice-timeline")).to_contain_text("Approved")
