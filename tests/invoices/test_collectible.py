"""Issue 14, defects 2 and 5: nothing Stripe could not bill or collect passes submission."""

from __future__ import annotations

from decimal import Decimal as D

from app.extensions import db
from app.invoices.models import Invoice, InvoiceLine
from app.invoices.totals import DiscountInput, LineInput, compute
from app.invoices.validation import check_invoice
from tests.conftest import csrf_token


def line(key, qty, price, tax="0", behavior="none", desc=None, excluded=False):
    return LineInput(key, desc or f"Line {key}", D(qty), D(price), None, None, D(tax), behavior,
                     excluded)


def test_kwd_line_off_the_step_names_the_line_and_the_nearest_values():
    t = compute("KWD", [line(1, "1.5", "1.230", desc="Widget")], [])
    assert t.products == 1845
    problem = t.problems[0]
    assert "“Widget” comes to KWD 1.845" in problem and "steps of KWD 0.010" in problem
    assert "KWD 1.220 or KWD 1.240" in problem and "quantity to 1 or 2" in problem
    assert t.line_problems[1] == [problem]
    assert "The total comes to KWD 1.845" in t.problems[1]


def test_kwd_tax_off_the_step_is_refused_exclusive_and_inclusive():
    # Each line is fine (1.230 KWD), but 10% of it is 0.123 KWD as Stripe computes it.
    for behavior, nearest in (("exclusive", "KWD 1.200 or KWD 1.300"),
                              ("inclusive", "KWD 1.210 or KWD 1.320")):
        totals, problems = check_invoice("KWD", [line(1, "1", "1.230", "10", behavior)], [])
        assert any("The 10% tax" in p and nearest in p for p in problems), (behavior, problems)
    # The exclusive tax makes the total itself uncollectible; that is said too.
    totals, problems = check_invoice("KWD", [line(1, "1", "1.230", "10", "exclusive")], [])
    assert totals.total == 1353 and any("The total comes to KWD 1.353" in p for p in problems)


def test_kwd_on_the_step_everywhere_passes():
    totals, problems = check_invoice(
        "KWD", [line(1, "2", "1.500", "10", "exclusive"), line(2, "1.5", "2.000")],
        [DiscountInput("Loyalty", "percentage", D("10"))],
    )
    assert problems == [] and totals.total % 10 == 0


def test_below_stripes_minimum_charge_is_refused():
    assert any("minimum charge of EUR 0.50" in p for p in check_invoice(
        "EUR", [line(1, "1", "0.20")], [])[1])
    assert any("minimum charge of JPY 50" in p for p in check_invoice(
        "JPY", [line(1, "1", "30")], [])[1])


def test_zero_total_and_placeholder_are_refused():
    _, problems = check_invoice("EUR", [line(1, "1", "100", excluded=True)], [])
    assert any("Every line is left out" in p for p in problems)
    _, problems = check_invoice(
        "EUR", [line(1, "1", "100"), line(2, "1", "0", desc="New line")], [])
    assert any("“New line” is still the empty line" in p for p in problems)
    _, problems = check_invoice("EUR", [line(1, "2", "0", desc="Free onboarding")], [])
    assert any("The total is 0" in p for p in problems)


def _submit(client, invoice_id):
    token = csrf_token(client, f"/invoices/{invoice_id}")
    return client.post(f"/invoices/{invoice_id}/submit", data={"csrf_token": token},
                       headers={"HX-Request": "true", "X-CSRFToken": token})


def test_submit_is_refused_with_the_reason_and_the_editor_shows_it(app, client, login, draft):
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        inv.currency = "KWD"
        for ln in inv.lines:
            ln.quantity, ln.unit_price = D(1), D("1.000")
            ln.tax_rate, ln.tax_behavior = D(0), "none"
            ln.discount_type = ln.discount_value = None
        inv.discounts.clear()
        first = inv.lines[0]
        first.quantity, first.description = D("1.5"), "Widget"
        first.unit_price = D("1.230")
        inv.billing_email = inv.billing_email or "billing@example.com"
        db.session.commit()
    login(draft["finance"])
    page = client.get(f"/invoices/{draft['invoice_id']}").get_data(as_text=True)
    assert "Cannot be submitted until this is fixed" in page
    assert "“Widget” comes to KWD 1.845" in page and "line-problem" in page
    resp = _submit(client, draft["invoice_id"])
    html = resp.get_data(as_text=True)
    assert resp.status_code == 409 and "cannot be submitted yet" in html
    assert "“Widget” comes to KWD 1.845" in html
    with app.app_context():
        assert db.session.get(Invoice, draft["invoice_id"]).status == "draft"


def test_submit_refuses_an_invoice_of_only_recurring_lines(app, client, login, draft):
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        for ln in inv.lines:
            ln.excluded, ln.excluded_reason = True, "recurring"
        inv.billing_email = inv.billing_email or "billing@example.com"
        db.session.commit()
    login(draft["finance"])
    resp = _submit(client, draft["invoice_id"])
    assert resp.status_code == 409 and "Every line is left out" in resp.get_data(as_text=True)


def test_submit_refuses_a_placeholder_line(app, client, login, draft):
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        inv.lines.append(InvoiceLine(position=len(inv.lines), description="New line",
                                     quantity=D(1), unit_price=D(0), tax_rate=D(0),
                                     tax_behavior="none"))
        inv.billing_email = inv.billing_email or "billing@example.com"
        db.session.commit()
    login(draft["finance"])
    resp = _submit(client, draft["invoice_id"])
    assert resp.status_code == 409 and "still the empty line" in resp.get_data(as_text=True)


def test_fixing_the_line_brings_submit_back_without_a_reload(app, client, login, draft):
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        inv.currency = "KWD"
        for ln in inv.lines:
            ln.unit_price, ln.tax_rate, ln.tax_behavior = D("1.000"), D(0), "none"
            ln.discount_type = ln.discount_value = None
        inv.discounts.clear()
        inv.lines[0].quantity, inv.lines[0].unit_price = D("1.5"), D("1.230")
        inv.billing_email = inv.billing_email or "billing@example.com"
        db.session.commit()
        line_id, version = inv.lines[0].id, inv.version
    login(draft["finance"])
    url = f"/invoices/{draft['invoice_id']}"
    assert "Submit for approval" not in client.get(url).get_data(as_text=True).split(
        'id="invoice-actions"')[1].split("</section>")[0].replace("cannot be submitted", "")
    token = csrf_token(client, url)
    resp = client.post(f"{url}/lines/{line_id}", headers={"HX-Request": "true",
                                                           "X-CSRFToken": token},
                       data={"description": "Widget", "quantity": "2", "unit_price": "1.23",
                             "tax_behavior": "none", "tax_rate": "0",
                             "current_version": str(version)})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    panel = html.split('<section id="invoice-actions"')[1].split("</section>")[0]
    assert 'hx-swap-oob="true"' in panel and "Submit for approval" in panel
    assert "Cannot be submitted until this is fixed" not in html
