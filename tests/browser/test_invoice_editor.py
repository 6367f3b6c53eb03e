from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.browser


def _shot(page, name):
    folder = os.environ.get("DESK_SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def test_edit_price_and_quantity_totals_follow_invalid_price_explained(page, draft):
    sign_in(page, draft["finance"].email, TEST_PASSWORD)
    page.goto(f"/invoices/{draft['invoice_id']}")
    total = page.locator("#total-total")
    before = total.inner_text()
    row = page.locator("#invoice-lines tbody tr.line").first
    row.get_by_label("Unit price").fill("1000")
    row.get_by_label("Unit price").press("Tab")
    expect(total).not_to_have_text(before)
    after_price = total.inner_text()
    row = page.locator("#invoice-lines tbody tr.line").first
    row.get_by_label("Quantity").fill("3")
    row.get_by_label("Quantity").press("Tab")
    expect(total).not_to_have_text(after_price)
    expect(
        page.locator("#invoice-lines tbody tr.line").first.locator(".line-amount")
    ).to_contain_text("3,000.00")
    _shot(page, "editor")
    good_total = total.inner_text()
    row = page.locator("#invoice-lines tbody tr.line").first
    row.get_by_label("Unit price").fill("12.3456")
    row.get_by_label("Unit price").press("Tab")
    row = page.locator("#invoice-lines tbody tr.line").first
    expect(row).to_contain_text("EUR allows at most 2 decimals.")
    expect(row.get_by_label("Unit price")).to_have_value("12.3456")  # nothing typed is lost
    expect(row.get_by_label("Quantity")).to_have_value("3")
    expect(total).to_have_text(good_total)  # nothing invalid was saved
    # An ambiguous separator is refused with both readings, never guessed.
    row.get_by_label("Unit price").fill("1,500")
    row.get_by_label("Unit price").press("Tab")
    row = page.locator("#invoice-lines tbody tr.line").first
    expect(row).to_contain_text("could be 1500 or 1.5")
    expect(row.get_by_label("Unit price")).to_have_value("1,500")
    expect(row.get_by_label("Quantity")).to_have_value("3")
    expect(total).to_have_text(good_total)  # nothing invalid was saved
    _shot(page, "editor-invalid")
    # Fix it (a decimal comma is a decimal): the error goes away and the totals follow.
    row.get_by_label("Unit price").fill("12,34")
    row.get_by_label("Unit price").press("Tab")
    expect(page.locator("#invoice-lines tbody tr.line").first).not_to_contain_text("at most 2")
    expect(
        page.locator("#invoice-lines tbody tr.line").first.locator(".line-amount")
    ).to_contain_text("37.02")
