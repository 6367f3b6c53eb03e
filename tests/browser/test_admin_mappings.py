"""An admin maps a write-back field by its name, an invoice is pushed, and the value
lands in that field of the deal in the Pipedrive sandbox."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser


def _approve(app, invoice_id: int, finance, admin) -> None:
    """Submitted by finance, approved by the admin (someone else: four-eyes holds)."""
    from app.approvals import workflow
    from app.auth.models import User
    from app.extensions import db

    with app.app_context():
        invoice = workflow.load_for_update(invoice_id)
        workflow.transition(invoice, "submit", db.session.get(User, finance.id))
        db.session.commit()
        invoice = workflow.load_for_update(invoice_id)
        workflow.transition(invoice, "approve", db.session.get(User, admin.id))
        db.session.commit()


def _deal_field_codes(sandbox) -> dict[str, str]:
    resp = sandbox.get("/api/v2/dealFields", limit=500)
    assert resp.status_code == 200
    return {f["field_name"]: f["field_code"] for f in resp.json()["data"]}


def test_write_back_field_mapped_by_name_receives_the_pushed_invoice(
    app, page, synced, desk_on_stripe, draft, make_user
):
    from app.extensions import db
    from app.invoices.models import Invoice
    from app.push.worker import work_push_queue
    from app.writeback.operations import process_outbox

    # Someone adds a field in Pipedrive for the Stripe invoice id, under their own name.
    resp = requests.post(f"{synced.url}/api/v2/dealFields", headers=synced.headers(),
                         json={"field_name": "Stripe reference", "field_type": "varchar"},
                         timeout=30)
    assert resp.status_code == 200, resp.text
    admin = make_user("admin", name="Ada Admin")
    _approve(app, draft["invoice_id"], draft["finance"], admin)

    sign_in(page, admin.email, TEST_PASSWORD)
    page.goto("/admin/")
    page.get_by_role("link", name="Field mappings").click()
    component = page.locator("#mapping-wb_deal_stripe_invoice_id")
    expect(component.locator("option", has_text="Stripe reference")).to_have_count(0)
    page.get_by_role("button", name="Reload fields from Pipedrive").click()
    expect(page.locator(".flash-success")).to_contain_text("fields from Pipedrive")

    component = page.locator("#mapping-wb_deal_stripe_invoice_id")
    component.get_by_label("Pipedrive field").select_option(label="Stripe reference (text)")
    component.get_by_role("button", name="Save", exact=True).click()
    component = page.locator("#mapping-wb_deal_stripe_invoice_id")
    expect(component.locator("[role=status]")).to_contain_text(
        "now uses the deal field “Stripe reference”")
    expect(component.locator(".mapping-state")).to_contain_text(
        "Uses the Deal field “Stripe reference”")
    # Names only: the field's key is nowhere on the page.
    codes = _deal_field_codes(synced)
    assert codes["Stripe reference"] not in page.content()

    # Push it: the page queues the push; the scheduler's jobs push and write back.
    page.goto("/push/")
    page.locator(f"#push-pick-{draft['invoice_id']}").check()
    page.get_by_role("button", name="Push selected to Stripe").click()
    page.wait_for_url(lambda url: "/push/" not in url or "/batches/" in url)
    with app.app_context():
        assert work_push_queue()["done"] == 1
        process_outbox()
        invoice = db.session.get(Invoice, draft["invoice_id"])
        stripe_id = invoice.stripe_invoice_id
    assert stripe_id and stripe_id.startswith("in_")

    deal = synced.get(f"/api/v2/deals/{draft['deal_id']}").json()["data"]
    codes = _deal_field_codes(synced)
    assert deal["custom_fields"][codes["Stripe reference"]] == stripe_id
    # The default field was never made: the mapping by name was followed.
    assert "Stripe invoice id" not in codes
