"""Done when: finance submits, an approver approves, finance pushes; the invoice shows
its Stripe number and link, and the deal in Pipedrive has the note and the fields."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser


def _scheduler_tick(app) -> None:
    """What the scheduler's push job does every two seconds."""
    from app.push.worker import scheduled_push

    with app.app_context():
        scheduled_push()


def test_approve_push_see_number_and_link_and_the_deal_in_pipedrive(
    app, page, make_user, draft, synced, desk_on_stripe
):
    app.config["STRIPE_GATEWAY_OPTIONS"] = {"sleep": lambda s: None, "backoff": 0.0,
                                            "rate_limit": 1000}
    finance = make_user("finance", name="Fiona Finance")
    approver = make_user("approver", name="Alex Approver")
    invoice_id = draft["invoice_id"]

    sign_in(page, finance.email, TEST_PASSWORD)
    page.goto(f"/invoices/{invoice_id}")
    page.locator("#invoice-actions").get_by_role("button", name="Submit for approval").click()
    expect(page.locator("#approval-status")).to_contain_text("Waiting for approval")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, approver.email, TEST_PASSWORD)
    page.goto(f"/invoices/{invoice_id}")
    page.locator("#invoice-actions").get_by_role("button", name="Approve").click()
    expect(page.locator("#approval-status")).to_contain_text("Approved")
    # An approver sees the state but has no push button.
    expect(page.locator("#push-status")).to_contain_text("finance pushes it to Stripe")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, finance.email, TEST_PASSWORD)
    page.goto(f"/invoices/{invoice_id}")
    status = page.locator("#push-status")
    status.get_by_role("button", name="Push to Stripe").click()
    expect(status.locator("#push-message")).to_have_text("Push queued.")
    expect(status.locator("#push-progress")).to_be_visible()

    _scheduler_tick(app)  # the push runs in the scheduler process, not in the web request

    # The component polls itself and shows the result without a reload.
    number = status.locator("#stripe-number")
    expect(number).to_have_text(re.compile(r"^[0-9A-F]{8}-\d{4}$"), timeout=15_000)
    link = status.locator("#stripe-hosted-link")
    expect(link).to_have_attribute("href", re.compile(r"^https://invoice\.stripe\.com/i/"))
    stripe_number = number.inner_text()

    # The write-back to Pipedrive: fields on the deal, the note, the customer id.
    # Sent in the same tick; the component follows pending write-backs until they are done.
    expect(status.locator("#push-writebacks")).to_have_count(0, timeout=15_000)
    deal_id = draft["deal_id"]
    fields = {f["field_name"]: f["field_code"]
              for f in synced.get("/api/v2/dealFields", limit=500).json()["data"]}
    deal = synced.get(f"/api/v2/deals/{deal_id}").json()["data"]
    assert deal["custom_fields"][fields["Invoice number"]] == stripe_number
    assert deal["custom_fields"][fields["Invoice status"]] == "open"
    assert deal["custom_fields"][fields["Invoice URL"]] == link.get_attribute("href")
    assert deal["custom_fields"][fields["Stripe invoice id"]].startswith("in_")
    assert deal["custom_fields"][fields["Stripe customer id"]].startswith("cus_")
    notes = synced.get("/v1/notes", deal_id=deal_id).json()["data"]
    assert len(notes) == 1
    assert f"Invoice {stripe_number} sent: EUR " in notes[0]["content"]
    assert link.get_attribute("href") in notes[0]["content"]
