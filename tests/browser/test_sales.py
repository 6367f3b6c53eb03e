"""A sales user in the browser: paid and overdue deals, no way into finance pages,
and a CSV download."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from app.extensions import db
from tests.browser.conftest import sign_in
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def deals(app):
    from app.intake.models import PdDeal, PdUser
    from app.invoices.models import Invoice

    now = dt.datetime.now(dt.UTC)
    with app.app_context():
        db.session.add(PdUser(id=1, name="Olga Owner"))
        for deal_id, title in ((1, "Paid Co renewal"), (2, "Late Ltd licence")):
            db.session.add(PdDeal(id=deal_id, title=title, value=Decimal("1200"),
                                  currency="EUR", status="won", owner_id=1,
                                  won_time=now - dt.timedelta(days=40)))
        common = dict(currency="EUR", status="pushed", total=Decimal("1200"),
                      subtotal=Decimal("1200"), pushed_at=now - dt.timedelta(days=35))
        db.session.add(Invoice(deal_id=1, amount_paid=Decimal("1200"),
                               amount_remaining=Decimal(0), payment_status="paid",
                               stripe_status="paid", stripe_invoice_id="in_paid",
                               stripe_number="ST-1", due_at=now - dt.timedelta(days=5),
                               last_payment_at=now - dt.timedelta(days=7),
                               hosted_invoice_url="https://invoice.stripe.com/i/paid",
                               **common))
        db.session.add(Invoice(deal_id=2, amount_remaining=Decimal("1200"),
                               payment_status="overdue", stripe_status="open",
                               stripe_invoice_id="in_late", stripe_number="ST-2",
                               due_at=now - dt.timedelta(days=5), **common))
        db.session.commit()


def test_sales_user_sees_paid_status_and_downloads_a_csv(page, make_user, deals):
    sales = make_user("sales", name="Sam Sales")
    sign_in(page, sales.email, TEST_PASSWORD)
    nav = page.get_by_role("list", name="Main")
    for hidden in ("Approvals", "Admin", "Invoices", "Queue"):
        expect(nav.get_by_role("link", name=hidden)).to_have_count(0)
    nav.get_by_role("link", name="Sales").click()
    expect(page.get_by_role("heading", name="Sales", exact=True)).to_be_visible()

    paid_row = page.locator("#sales-deals tr", has_text="Paid Co renewal")
    late_row = page.locator("#sales-deals tr", has_text="Late Ltd licence")
    expect(paid_row.locator("[data-paid-status]")).to_have_text("Paid")
    expect(late_row.locator("[data-paid-status]")).to_have_text("Overdue")
    expect(page.locator("#sales-aging")).to_contain_text("EUR 1,200.00")

    # Filtering by paid status swaps the results in place (htmx) and keeps the URL.
    page.get_by_label("Paid status").select_option("overdue")
    expect(page.locator("#sales-deals")).not_to_contain_text("Paid Co renewal")
    expect(late_row).to_be_visible()
    assert "status=overdue" in page.url

    with page.expect_download() as info:
        page.locator('a[data-export="deals"]').click()
    download = info.value
    assert download.suggested_filename.startswith("sales-deals-")
    with open(download.path(), encoding="utf-8") as fh:
        rows = list(csv.DictReader(io.StringIO(fh.read())))
    assert [(r["title"], r["paid_status"], r["outstanding"]) for r in rows] == [
        ("Late Ltd licence", "overdue", "1200.00")
    ]

    # The deal page: the timeline and the link to the customer's invoice.
    page.goto("/sales/?period=all")
    page.get_by_role("link", name="Paid Co renewal").click()
    expect(page.locator("h1 [data-paid-status]")).to_have_text("Paid")
    expect(page.locator("#deal-timeline")).to_contain_text("Payment on ST-1")
    expect(page.get_by_role("link", name="Hosted invoice")).to_have_attribute(
        "href", "https://invoice.stripe.com/i/paid")

    # Approve, push and admin pages stay closed, naming what is missing.
    for path, permission in (("/approvals/", "invoices.approve"), ("/push/", ""),
                             ("/admin/", "admin.view")):
        page.goto(path)
        expect(page.get_by_role("heading", name="You do not have access to this page"))\
            .to_be_visible()
        if permission:
            expect(page.locator("#forbidden-reason")).to_contain_text(permission)
