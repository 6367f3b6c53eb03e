"""Done when (issue 8): push an invoice, pay part of it in the Stripe sandbox, see
"partially paid" in the desk and on the Pipedrive deal, refund it, and find the refund
on the mismatch board with its explanation."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import expect

from app.extensions import db
from app.invoices.models import Invoice
from tests.browser.conftest import sign_in
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser


def _tick(app, *jobs: str) -> None:
    """What the scheduler process runs on its intervals."""
    from app.jobs.queue import execute
    from app.push.worker import scheduled_push

    with app.app_context():
        if "push" in jobs:
            scheduled_push()
        for job in jobs:
            if job != "push":
                execute(job, trigger="schedule")


def _approve(app, invoice_id: int, approver_id: int) -> None:
    with app.app_context():
        inv = db.session.get(Invoice, invoice_id)
        inv.status, inv.approved_version = "approved", inv.version
        inv.approved_by_id, inv.approved_at = approver_id, dt.datetime.now(dt.UTC)
        db.session.commit()


def test_push_pay_part_refund_and_find_it_on_the_board(app, page, make_user, draft, synced,
                                                       desk_on_stripe):
    app.config["STRIPE_GATEWAY_OPTIONS"] = {"sleep": lambda s: None, "backoff": 0.0,
                                            "rate_limit": 1000}
    finance = make_user("finance", name="Fiona Finance")
    approver = make_user("approver")
    invoice_id, deal_id = draft["invoice_id"], draft["deal_id"]
    _approve(app, invoice_id, approver.id)

    sign_in(page, finance.email, TEST_PASSWORD)
    page.goto(f"/invoices/{invoice_id}")
    page.locator("#push-status").get_by_role("button", name="Push to Stripe").click()
    expect(page.locator("#push-message")).to_have_text("Push queued.")
    _tick(app, "push")
    number = page.locator("#stripe-number")
    expect(number).to_have_text(re.compile(r"\d{4}$"), timeout=15_000)

    # The customer pays part of it (the sandbox plays the customer).
    with app.app_context():
        inv = db.session.get(Invoice, invoice_id)
        stripe_id, total_minor = inv.stripe_invoice_id, int(inv.total * 100)
    desk_on_stripe.pay_invoice(stripe_id, total_minor // 2)
    _tick(app, "stripe.payments", "writeback.retry")
    page.goto(f"/invoices/{invoice_id}")
    expect(page.locator("#invoice-status")).to_contain_text("partially paid")

    fields = {f["field_name"]: f["field_code"]
              for f in synced.get("/api/v2/dealFields", limit=500).json()["data"]}
    deal = synced.get(f"/api/v2/deals/{deal_id}").json()["data"]
    assert deal["custom_fields"][fields["Payment status"]] == "Partially paid"
    notes = [n["content"] for n in synced.get("/v1/notes", deal_id=deal_id).json()["data"]]
    assert any("Partial payment received" in n for n in notes)

    # A refund: collected drops below invoiced; the board explains it.
    store = desk_on_stripe.sandbox.store
    payment = next(ip for ip in store.all("invoice_payment") if ip["invoice"] == stripe_id)
    charge = store.get("payment_intent", payment["payment"]["payment_intent"])["latest_charge"]
    desk_on_stripe.refund(charge, 1000)
    _tick(app, "stripe.payments", "writeback.retry", "mismatches.recompute")
    page.get_by_role("list", name="Main").get_by_role("link", name=re.compile("Mismatches")).click()
    board = page.locator("#board")
    expect(board).to_contain_text("Collected below invoiced after refunds or credit notes")
    expect(board).to_contain_text("EUR 10.00 refunded")
    notes = [n["content"] for n in synced.get("/v1/notes", deal_id=deal_id).json()["data"]]
    assert any("Refund on" in n for n in notes)
