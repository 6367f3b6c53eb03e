"""The audit log in a real browser: an invoice found by its number while typing (htmx),
its values in words."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser


def test_typing_an_invoice_number_finds_its_entries(app, page, make_user):
    from app.audit.operations import record
    from app.extensions import db
    from app.invoices.models import Invoice

    admin = make_user("admin")
    with app.app_context():
        invoice = Invoice(deal_id=9001, currency="EUR", status="draft", stripe_number="DESK-0007",
                          subtotal=Decimal("1200.00"), total=Decimal("1200.00"))
        db.session.add(invoice)
        db.session.flush()
        record("invoice.line_update", "invoice", invoice.id,
               {"quantity": Decimal("1.000000"), "edited_fields": []},
               {"quantity": Decimal("1E+3"), "edited_fields": ["quantity", "unit_price"]})
        db.session.commit()
        invoice_id = invoice.id
    sign_in(page, admin.email, TEST_PASSWORD)
    page.goto("/admin/audit/")
    results = page.locator("#audit-results")
    expect(results).to_contain_text("user.sign_in")
    page.get_by_label("Object or invoice number").fill("desk-0007")
    expect(results).to_contain_text(f"is invoice {invoice_id}")
    expect(results).not_to_contain_text("user.sign_in")
    expect(results).to_contain_text("quantity: 1 → 1000")
    expect(results).to_contain_text("quantity, unit_price")
    page.get_by_label("Object or invoice number").fill(f"invoice #{invoice_id}")
    expect(results).not_to_contain_text("is invoice")
    expect(results).to_contain_text("invoice.line_update")
    page.get_by_label("Object or invoice number").fill("DESK-9999")
    expect(results.get_by_role("alert")).to_contain_text("No invoice is numbered")
