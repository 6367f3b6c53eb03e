"""Issue 14, defect 4: no number is shown in scientific notation or with the zeros a
column's scale adds: not on pages, not in Stripe descriptions and parameters, not in
what goes to Pipedrive, not in CSV. One formatter, app.money.plain_decimal."""

from __future__ import annotations

import re
from decimal import Decimal as D

import pytest
from flask import render_template_string

from app.extensions import db
from app.money import plain_decimal

# (stored or computed Decimal, how people write it)
CASES = [
    (D("2E+1"), "20"),
    (D("1E+3"), "1000"),
    (D("1E-7"), "0.0000001"),
    (D("120.000000"), "120"),
    (D("-0.50"), "-0.5"),
    (D("1.5"), "1.5"),
    (D("0.000000"), "0"),
    (D("-0"), "0"),
    (D("0E+3"), "0"),
    (D("19.2500"), "19.25"),
    # more digits than the decimal context's 28: exact, not rounded
    (D("1234567890123456789012345678.9100"), "1234567890123456789012345678.91"),
]


@pytest.mark.parametrize(("value", "text"), CASES)
def test_plain_decimal(value, text):
    from app.money import plain_decimal

    assert plain_decimal(value) == text


def test_plain_decimal_takes_ints_and_stored_strings_and_refuses_floats():
    from app.money import plain_decimal

    assert plain_decimal(None) == ""
    assert plain_decimal(7) == "7"
    assert plain_decimal("1E+3") == "1000" and plain_decimal("120.000000") == "120"
    with pytest.raises(TypeError):
        plain_decimal(0.1)
    with pytest.raises(ValueError):
        plain_decimal("twelve")


def test_the_num_filter_on_pages_is_the_same_formatter(app):
    with app.test_request_context():
        for value, text in CASES:
            assert render_template_string("{{ x|num }}", x=value) == text


def _line(key, rate, **kw):
    from app.invoices.totals import LineInput

    return LineInput(key, f"Item {key}", D("1"), D("100.00"), tax_rate=rate,
                     tax_behavior="exclusive", **kw)


def test_stripe_discount_descriptions_are_plain():
    """'Loyalty (2E+1% tax)' reached Stripe: the tax group's rate is normalised."""
    from app.invoices.totals import DiscountInput, compute

    totals = compute(
        "EUR",
        [_line(1, D("20.000000"), discount_type="percentage", discount_value=D("1E+1")),
         _line(2, D("7.0000"))],
        [DiscountInput("Loyalty", "percentage", D("5.000000"))],
    )
    descriptions = [pl.description for pl in totals.push_lines if pl.is_discount]
    assert "Discount (10%) on Item 1" in descriptions
    assert "Loyalty (20% tax)" in descriptions and "Loyalty (7% tax)" in descriptions
    assert not any("E+" in d or "E-" in d for d in descriptions)


def test_stripe_parameters_are_plain():
    from app.invoices.plan import line_params, tax_rate_key
    from app.invoices.totals import compute

    totals = compute("EUR", [_line(1, D("2E+1"))], [])
    product = totals.push_lines[0]
    product.quantity = D("1E-7")  # as a quantity_decimal
    params = line_params(product, "EUR", {})
    assert params["price_data"]["unit_amount_decimal"] == "10000"  # 100.00 EUR in cents
    assert params["quantity_decimal"] == "0.0000001"
    assert tax_rate_key(D("20.000000"), "exclusive") == "20:exclusive"
    assert params["tax_rates"] == ["<tax rate 20:exclusive>"]


def test_the_amount_written_back_to_pipedrive_has_no_stored_zeros(app):
    """KRW 270000 was written to the deal as "270000.000000"."""
    from app.writeback.operations import enqueue_for_pushed_invoice
    from tests.approvals.conftest import new_invoice

    with app.app_context():
        invoice = new_invoice(currency="KRW", total=D("270000.000000"), status="pushed",
                              approved_version=1, stripe_invoice_id="in_plain",
                              stripe_number="DESK-0042", stripe_status="open")
        items = enqueue_for_pushed_invoice(invoice)
        fields = items[0].payload["fields"]
        assert fields["amount_invoiced"] == "270000"
        db.session.rollback()


def test_sales_csv_amounts_and_dso_are_plain(app):
    from app.sales.queries import exact_text

    assert exact_text(D("1E+3"), "EUR") == "1000.00"  # the currency's own decimals
    assert exact_text(D("270000.000000"), "KRW") == "270000"
    assert exact_text(D("1E-7"), "EUR") == "0.0000001"  # finer than the currency: exact
    assert exact_text(D("-0.50"), None) == "-0.5"
    assert exact_text(D("2E+1"), None) == "20"


def test_invoice_timeline_shows_stored_decimals_plainly(app, client, make_user, login):
    """The invoice's timeline showed "1E+3" and "1E-7" (str() of a Decimal)."""
    from app.audit.operations import record
    from tests.approvals.conftest import new_invoice

    finance = make_user("finance")
    with app.app_context():
        invoice = new_invoice()
        record("invoice.line_update", "invoice", invoice.id,
               {"line": 1, "quantity": D("1.000000"), "tax_rate": D("0.000000"),
                "discount_value": D("-0.50")},
               {"line": 1, "quantity": D("1E+3"), "tax_rate": D("2E+1"),
                "discount_value": D("1E-7")})
        record("invoice.settings_update", "invoice", invoice.id,
               {"custom_fields": []},
               {"custom_fields": [{"name": "Cost centre", "value": "42"}]})
        db.session.commit()
        invoice_id = invoice.id
    login(finance)
    html = client.get(f"/invoices/{invoice_id}/timeline").get_data(as_text=True)
    assert "<del>1</del> → <ins>1000</ins>" in html
    assert "<del>0</del> → <ins>20</ins>" in html
    assert "<del>-0.5</del> → <ins>0.0000001</ins>" in html
    assert "name: Cost centre, value: 42" in html and "[{" not in html
    for raw in ("1E+3", "2E+1", "1E-7", ">0.000000<", ">1.000000<"):
        assert raw not in html


def test_the_deal_drift_panel_shows_numbers_plainly(app, client, login, draft, synced):
    """The 'deal changed in Pipedrive' panel printed the snapshot's str(Decimal)."""
    from app.intake.operations import run_deal_sync
    from app.invoices.models import Invoice

    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        line = next(ln for ln in inv.lines if ln.source_deal_product_id)
        product_id, qty = line.source_deal_product_id, line.quantity
    synced.ui_edit(draft["deal_id"], products=[{"id": product_id, "quantity": int(qty) + 2}])
    with app.app_context():
        assert run_deal_sync().status == "ok"
    login(draft["finance"])
    html = client.get(f"/invoices/{draft['invoice_id']}").get_data(as_text=True)
    panel = html.split('id="drift"')[1].split("</article>")[0]
    assert f"quantity <del>{plain_decimal(qty)}</del> → <ins>{int(qty) + 2}</ins>" in panel
    assert not re.search(r"\.\d*0<", panel), panel  # was "1.750000 → 3.000000"


def test_a_refused_amount_is_named_plainly():
    from app.money import to_minor

    with pytest.raises(ValueError, match=r"^0\.0000001 has more decimals than EUR allows$"):
        to_minor(D("1E-7"), "EUR")
