"""Issue 14, defect 9 in a real browser: an invoice without a billing email says so before
Submit; a push that stopped after Stripe finalized the invoice is got out of by hand."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser


def test_submit_waits_for_a_billing_email_and_appears_once_it_is_added(
    app, page, make_user, draft
):
    from app.extensions import db
    from app.invoices.models import Invoice

    with app.app_context():
        db.session.get(Invoice, draft["invoice_id"]).billing_email = ""
        db.session.commit()
    finance = make_user("finance", name="Fiona Finance")
    sign_in(page, finance.email, TEST_PASSWORD)
    page.goto(f"/invoices/{draft['invoice_id']}")
    panel = page.locator("#invoice-actions")
    expect(panel.locator('[data-blocked="submit"]')).to_contain_text("Add a billing email")
    expect(panel.get_by_role("button", name="Submit for approval")).to_have_count(0)
    billto = page.locator("#invoice-billto")
    billto.get_by_label("Billing email").fill("ap@acme.example")
    billto.get_by_role("button", name="Save bill-to").click()
    # The panel re-reads itself after the edit: no reload needed.
    expect(panel.get_by_role("button", name="Submit for approval")).to_be_visible()
    expect(panel.locator('[data-blocked="submit"]')).to_have_count(0)
    panel.get_by_role("button", name="Submit for approval").click()
    expect(panel.locator("#panel-message")).to_have_text("Submitted for approval.")


def test_finalized_but_unsent_is_sent_after_setting_the_email(
    app, page, make_user, approver, stripe_desk
):
    from app.push.worker import scheduled_push
    from tests.push.helpers import finalized_without_email

    with app.app_context():
        iid = finalized_without_email(approver.id)
    finance = make_user("finance", name="Fiona Finance")
    sign_in(page, finance.email, TEST_PASSWORD)
    page.goto(f"/invoices/{iid}")
    status = page.locator("#push-status")
    expect(status.locator("#push-failed")).to_contain_text("finalized in Stripe")
    status.get_by_label("Billing email to send it to").fill("not an address")
    status.get_by_role("button", name="Set the email and send").click()
    expect(status.locator(".recover-send .error")).to_have_text(
        "This is not a valid email address.")
    expect(status.get_by_label("Billing email to send it to")).to_have_value("not an address")
    status.get_by_label("Billing email to send it to").fill("ap@acme.example")
    status.get_by_role("button", name="Set the email and send").click()
    expect(status.locator("#push-message")).to_contain_text("Stripe sends it to ap@acme.example")
    with app.app_context():
        scheduled_push()
    expect(status.locator("#stripe-number")).to_be_visible(timeout=15_000)
