"""Issue 14, defect 6: a currency change re-checks every amount and re-renders every
part of the editor that shows the currency."""

from __future__ import annotations

from decimal import Decimal as D

from app.extensions import db
from app.invoices.models import Invoice, InvoiceDiscount
from tests.conftest import csrf_token


def _settings(client, invoice_id, version, currency):
    token = csrf_token(client, f"/invoices/{invoice_id}")
    return client.post(
        f"/invoices/{invoice_id}/settings",
        headers={"HX-Request": "true", "X-CSRFToken": token},
        data={"currency": currency, "collection_method": "send_invoice", "terms": "days",
              "days_until_due": "14", "current_version": str(version)},
    )


def test_a_price_with_decimals_refuses_the_change_to_jpy_and_says_which(app, client, login,
                                                                        draft):
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        inv.currency = "GBP"
        inv.lines[0].description, inv.lines[0].unit_price = "Consulting", D("6500.5")
        inv.discounts.append(InvoiceDiscount(position=0, description="Goodwill", type="amount",
                                             value=D("10.25")))
        db.session.commit()
        version = inv.version
    login(draft["finance"])
    resp = _settings(client, draft["invoice_id"], version, "JPY")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "Not changed to JPY" in html
    assert "The unit price of “Consulting” is 6500.5" in html and "JPY 6,500 or JPY 6,501" in html
    assert "The discount “Goodwill” is 10.25" in html
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        assert inv.currency == "GBP" and inv.lines[0].unit_price == D("6500.5")
    # KWD takes every two-decimal price (1.23 is 1.230): that change goes through.
    ok = _settings(client, draft["invoice_id"], version, "KWD")
    assert ok.status_code == 200


def test_the_answer_re_renders_lines_and_discounts_in_the_new_currency(app, client, login, draft):
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        inv.discounts.append(InvoiceDiscount(position=0, description="Goodwill", type="amount",
                                             value=D("10")))
        db.session.commit()
        version = inv.version
    login(draft["finance"])
    resp = _settings(client, draft["invoice_id"], version, "USD")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert '<section id="invoice-lines" hx-swap-oob="true">' in html
    assert '<section id="invoice-discounts" hx-swap-oob="true">' in html
    assert "Unit price (USD)" in html and "Goodwill: 10 USD" in html
    assert "Unit price (EUR)" not in html and " EUR" not in html.split('id="invoice-lines"')[1]
