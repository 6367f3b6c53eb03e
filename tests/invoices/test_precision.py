"""One precision from the editor to Stripe (issue 15, defect 7).

Every number field is refused with more decimals than its column keeps, so what the
edit response shows is what the reloaded editor shows, what the Stripe plan sends and
what the stored total (read by the approval threshold) is made of.
"""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from app.extensions import db
from app.invoices.models import Invoice, InvoiceDiscount, InvoiceLine
from app.invoices.plan import build_plan
from app.invoices.totals import for_invoice
from app.invoices.validation import (
    DISCOUNT_PLACES,
    QUANTITY_PLACES,
    TAX_RATE_PLACES,
    parse_discount,
    parse_line,
)
from tests.conftest import csrf_token
from tests.invoices.test_editor import _line_form, _line_ids

HX = {"HX-Request": "true"}


def test_the_limits_are_the_columns_scales():
    assert QUANTITY_PLACES == InvoiceLine.__table__.c.quantity.type.scale == 6
    assert TAX_RATE_PLACES == InvoiceLine.__table__.c.tax_rate.type.scale == 4
    assert DISCOUNT_PLACES == InvoiceDiscount.__table__.c.value.type.scale == 6


def _line(**changes):
    form = {"description": "Work", "quantity": "1", "unit_price": "10", "discount_type": "",
            "discount_value": "", "tax_behavior": "none", "tax_rate": "0"}
    form.update(changes)
    return parse_line(form, "EUR")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"quantity": "1.1234567"}, "quantity", "At most 6 decimals."),
        ({"quantity": "0.000000000001"}, "quantity", "At most 6 decimals."),
        ({"discount_type": "percentage", "discount_value": "10.1234567"}, "discount_value",
         "At most 6 decimals."),
        ({"tax_behavior": "exclusive", "tax_rate": "19.12345"}, "tax_rate",
         "At most 4 decimals."),
    ],
)
def test_more_decimals_than_the_column_keeps_are_refused(app, changes, field, message):
    with app.test_request_context():
        _values, errors = _line(**changes)
    assert errors == {field: message}


def test_as_many_decimals_as_the_column_keeps_are_taken(app):
    with app.test_request_context():
        values, errors = _line(quantity="1.123456", discount_type="percentage",
                               discount_value="10.123456", tax_behavior="exclusive",
                               tax_rate="19.1234")
    assert errors == {}
    assert values["quantity"] == Decimal("1.123456")


def test_an_invoice_discount_percentage_with_seven_decimals_is_refused(app):
    with app.test_request_context():
        _values, errors = parse_discount(
            {"description": "Loyalty", "type": "percentage", "value": "5.1234567"}, "EUR")
        ok, ok_errors = parse_discount(
            {"description": "Loyalty", "type": "percentage", "value": "5.123456"}, "EUR")
    assert errors == {"value": "At most 6 decimals."}
    assert ok_errors == {} and ok["value"] == Decimal("5.123456")


def _post_line(client, draft, line_id, form):
    token = csrf_token(client, f"/invoices/{draft['invoice_id']}")
    return client.post(f"/invoices/{draft['invoice_id']}/lines/{line_id}", data=form,
                       headers={**HX, "X-CSRFToken": token})


def _quantity_input(html: str, line_id: int) -> str:
    found = re.search(
        rf'<input name="quantity" form="line-form-{line_id}"[^>]*value="([^"]*)"', html)
    assert found, html[:2000]
    return found.group(1)


def test_an_edit_with_seven_decimals_is_refused_next_to_the_field_and_kept(
    app, client, login, draft
):
    login(draft["finance"])
    line_id = _line_ids(app, draft["invoice_id"])[0]
    form = _line_form(app, draft["invoice_id"], line_id, quantity="2.1234567")
    resp = _post_line(client, draft, line_id, form)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "At most 6 decimals." in html
    assert _quantity_input(html, line_id) == "2.1234567"  # what was typed is kept
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        assert inv.version == draft["version"] and inv.total == draft["total"]


def test_six_decimals_round_trip_through_response_reload_plan_and_stored_total(
    app, client, login, draft
):
    login(draft["finance"])
    line_id = _line_ids(app, draft["invoice_id"])[0]
    form = _line_form(app, draft["invoice_id"], line_id, quantity="2.123457",
                      unit_price="999.99", discount_type="", discount_value="",
                      tax_behavior="exclusive", tax_rate="19.5")
    resp = _post_line(client, draft, line_id, form)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    edited = resp.get_data(as_text=True)
    reloaded = client.get(f"/invoices/{draft['invoice_id']}").get_data(as_text=True)
    # The response and the reloaded editor show the same quantity and the same totals.
    assert _quantity_input(edited, line_id) == _quantity_input(reloaded, line_id) == "2.123457"
    totals_of = re.compile(r'id="invoice-totals"[^>]*>(.*?</table>)', re.S)
    assert totals_of.search(edited).group(1) == totals_of.search(reloaded).group(1)
    with app.app_context():
        db.session.expire_all()
        inv = db.session.get(Invoice, draft["invoice_id"])
        line = next(ln for ln in inv.lines if ln.id == line_id)
        assert line.quantity == Decimal("2.123457")
        calls, totals = build_plan(inv)
        sent = [
            p for c in calls if c.step == "lines" for p in c.params["lines"]
            if p.get("metadata", {}).get("desk_line_kind") == "product"
            and p["description"] == line.description
        ]
        assert [p["quantity_decimal"] for p in sent] == ["2.123457"]
        assert "quantity" not in sent[0]  # Stripe's `quantity` is a whole number
        assert sent[0]["price_data"]["unit_amount_decimal"] == "99999"
        # The stored total (what the approval threshold reads) is the plan's total.
        assert inv.total == totals.major(totals.total) == totals.major(for_invoice(inv).total)
        # 99999 x 2.123457 = 212343.57543 -> 212344 minor units on this line.
        assert totals.line_amounts[line_id][0] == 212344
