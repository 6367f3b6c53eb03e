"""Every amount on the invoice timeline shows with its currency (issue 15: the demo's
"Draft created" entry read "Total: — → 2757.028"); quantities and rates stay plain."""

from __future__ import annotations

import re

from app.audit.operations import record
from app.extensions import db
from app.invoices.audit_values import money_text
from app.invoices.models import Invoice
from tests.conftest import csrf_token
from tests.invoices.test_editor import _line_form, _line_ids

HX = {"HX-Request": "true"}


def _changes(html: str) -> list[tuple[str, str, str]]:
    return re.findall(r"<li>([^:<]+): <del>([^<]*)</del> → <ins>([^<]*)</ins></li>", html)


def _timeline(client, invoice_id) -> list[tuple[str, str, str]]:
    resp = client.get(f"/invoices/{invoice_id}/timeline")
    assert resp.status_code == 200
    return _changes(resp.get_data(as_text=True))


def test_the_draft_created_entry_gives_the_total_with_its_currency(app, client, login, draft):
    login(draft["finance"])
    changes = _timeline(client, draft["invoice_id"])
    total = money_text(draft["total"], "EUR")
    assert total.startswith("EUR ")
    assert ("Total", "—", total) in changes


def test_edited_amounts_show_their_currency_and_quantities_and_rates_stay_plain(
    app, client, login, draft
):
    login(draft["finance"])
    token = csrf_token(client, f"/invoices/{draft['invoice_id']}")
    line_id = _line_ids(app, draft["invoice_id"])[0]
    first = _line_form(app, draft["invoice_id"], line_id, unit_price="1234.5", quantity="2.75",
                       discount_type="percentage", discount_value="12.5",
                       tax_behavior="exclusive", tax_rate="7.25")
    second = dict(first, discount_type="amount", discount_value="100")
    for form in (first, second):
        with app.app_context():
            form["current_version"] = str(db.session.get(Invoice, draft["invoice_id"]).version)
        resp = client.post(f"/invoices/{draft['invoice_id']}/lines/{line_id}", data=form,
                           headers={**HX, "X-CSRFToken": token})
        assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    # Only the value changes now: the entry still says it is an amount, not a percentage.
    third = dict(second, discount_value="150")
    with app.app_context():
        third["current_version"] = str(db.session.get(Invoice, draft["invoice_id"]).version)
    assert client.post(f"/invoices/{draft['invoice_id']}/lines/{line_id}", data=third,
                       headers={**HX, "X-CSRFToken": token}).status_code == 200
    changes = _timeline(client, draft["invoice_id"])
    new = {name: after for name, _before, after in changes}
    assert new["Unit price"] == "EUR 1,234.50"
    assert new["Quantity"] == "2.75" and new["Tax rate"] == "7.25"
    assert ("Discount value", "12.5", "EUR 100.00") in changes  # a percentage became money
    assert ("Discount value", "EUR 100.00", "EUR 150.00") in changes
    for name, before, after in changes:
        if name in ("Unit price", "Total"):
            assert all(t == "—" or t.startswith("EUR ") for t in (before, after)), changes


def test_older_entries_and_other_currencies_show_money_too(app, client, login, draft):
    """An entry that names its currency is read in it; amounts that have more decimals
    than the currency are shown exactly, with the currency."""
    with app.app_context():
        record("invoice.create", "invoice", draft["invoice_id"], None,
               {"currency": "KWD", "total": "2757.028000", "lines": 3})
        record("invoice.discount_add", "invoice", draft["invoice_id"], None,
               {"description": "Goodwill", "type": "amount", "value": "50.000000"})
        record("invoice.discount_add", "invoice", draft["invoice_id"], None,
               {"description": "Loyalty", "type": "percentage", "value": "5.000000"})
        record("invoice.redrafted", "invoice", draft["invoice_id"], None,
               {"from_invoice_id": 1, "total": 1670})
        db.session.commit()
    login(draft["finance"])
    changes = _timeline(client, draft["invoice_id"])
    assert ("Total", "—", "KWD 2,757.028") in changes
    assert ("Value", "—", "EUR 50.00") in changes
    assert ("Value", "—", "5") in changes
    assert ("Total", "—", "EUR 1,670.00") in changes
    assert ("From invoice id", "—", "1") in changes


def test_money_text_is_exact():
    assert money_text("2757.028000", "EUR") == "EUR 2757.028"
    assert money_text("2757.030000", "EUR") == "EUR 2,757.03"
    assert money_text("1200", "JPY") == "JPY 1,200"
    assert money_text("not a number", "EUR") is None and money_text("NaN", "EUR") is None
