from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from app.invoices.models import Invoice
from tests.conftest import csrf_token


def _line_ids(app, invoice_id):
    with app.app_context():
        inv = db.session.get(Invoice, invoice_id)
        return [ln.id for ln in inv.lines if not ln.excluded]


def _line_form(app, invoice_id, line_id, **changes):
    with app.app_context():
        inv = db.session.get(Invoice, invoice_id)
        ln = next(x for x in inv.lines if x.id == line_id)
        form = {
            "description": ln.description,
            "quantity": f"{ln.quantity.normalize():f}",
            "unit_price": f"{ln.unit_price.normalize():f}",
            "discount_type": ln.discount_type or "",
            "discount_value": f"{ln.discount_value.normalize():f}" if ln.discount_value else "",
            "tax_rate": f"{ln.tax_rate.normalize():f}",
            "tax_behavior": ln.tax_behavior,
            "current_version": str(inv.version),
        }
    form.update(changes)
    return form


def test_editor_page_shows_lines_and_totals(app, client, login, draft):
    login(draft["finance"])
    html = client.get(f"/invoices/{draft['invoice_id']}").get_data(as_text=True)
    assert 'id="invoice-totals"' in html and 'id="invoice-lines"' in html
    assert "Preview and Stripe plan" in html


def test_edit_price_recomputes_totals_and_audits(app, client, login, draft):
    login(draft["finance"])
    token = csrf_token(client, f"/invoices/{draft['invoice_id']}")
    line_id = _line_ids(app, draft["invoice_id"])[0]
    form = _line_form(
        app,
        draft["invoice_id"],
        line_id,
        unit_price="1234.50",
        quantity="2",
        discount_type="",
        discount_value="",
        tax_behavior="none",
        tax_rate="0",
    )
    resp = client.post(
        f"/invoices/{draft['invoice_id']}/lines/{line_id}",
        data=form,
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    html = resp.get_data(as_text=True)
    assert "EUR 2,469.00" in html  # the line amount
    assert 'hx-swap-oob="true"' in html and 'id="invoice-totals"' in html
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        assert inv.version == draft["version"] + 1
        assert inv.total != draft["total"]
        entry = db.session.execute(
            select(AuditEntry).where(AuditEntry.action == "invoice.line_update")
        ).scalar_one()
        assert entry.after["unit_price"] == "1234.50"


def test_invalid_price_is_explained_next_to_the_field_and_kept(app, client, login, draft):
    login(draft["finance"])
    token = csrf_token(client, f"/invoices/{draft['invoice_id']}")
    line_id = _line_ids(app, draft["invoice_id"])[0]
    form = _line_form(app, draft["invoice_id"], line_id, unit_price="12.3456", quantity="-1")
    resp = client.post(
        f"/invoices/{draft['invoice_id']}/lines/{line_id}",
        data=form,
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "EUR allows at most 2 decimals." in html
    assert "The quantity must be more than 0." in html
    assert 'value="12.3456"' in html and 'value="-1"' in html  # what was typed is kept
    with app.app_context():
        assert db.session.get(Invoice, draft["invoice_id"]).version == draft["version"]


def test_concurrent_edit_gets_a_conflict_and_overwrites_nothing(
    app, client, login, draft, make_user
):
    login(draft["finance"])
    token = csrf_token(client, f"/invoices/{draft['invoice_id']}")
    line_id = _line_ids(app, draft["invoice_id"])[0]
    stale = _line_form(app, draft["invoice_id"], line_id, unit_price="100")
    first = _line_form(app, draft["invoice_id"], line_id, unit_price="200")
    client.post(
        f"/invoices/{draft['invoice_id']}/lines/{line_id}",
        data=first,
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    resp = client.post(
        f"/invoices/{draft['invoice_id']}/lines/{line_id}",
        data=stale,
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert resp.status_code == 409
    html = resp.get_data(as_text=True)
    assert "changed by someone else" in html and 'value="100"' in html
    with app.app_context():
        line = next(
            ln for ln in db.session.get(Invoice, draft["invoice_id"]).lines if ln.id == line_id
        )
        assert line.unit_price == Decimal("200")


def test_add_move_remove_lines(app, client, login, draft):
    login(draft["finance"])
    url = f"/invoices/{draft['invoice_id']}"
    token = csrf_token(client, url)
    hdr = {"HX-Request": "true", "X-CSRFToken": token}

    def version():
        with app.app_context():
            return str(db.session.get(Invoice, draft["invoice_id"]).version)

    before = _line_ids(app, draft["invoice_id"])
    assert (
        client.post(f"{url}/lines", data={"current_version": version()}, headers=hdr).status_code
        == 200
    )
    after = _line_ids(app, draft["invoice_id"])
    assert len(after) == len(before) + 1
    new = after[-1]
    assert (
        client.post(
            f"{url}/lines/{new}/move",
            data={"direction": "up", "current_version": version()},
            headers=hdr,
        ).status_code
        == 200
    )
    assert _line_ids(app, draft["invoice_id"]).index(new) == len(after) - 2
    assert (
        client.post(
            f"{url}/lines/{new}/delete", data={"current_version": version()}, headers=hdr
        ).status_code
        == 200
    )
    assert _line_ids(app, draft["invoice_id"]) == before


def test_settings_validation_and_currency_warning(app, client, login, draft):
    login(draft["finance"])
    url = f"/invoices/{draft['invoice_id']}"
    token = csrf_token(client, url)
    with app.app_context():
        version = str(db.session.get(Invoice, draft["invoice_id"]).version)
    bad = client.post(
        f"{url}/settings",
        headers={"HX-Request": "true", "X-CSRFToken": token},
        data={
            "currency": "XXX",
            "collection_method": "send_invoice",
            "terms": "date",
            "due_date": "2020-01-01",
            "current_version": version,
        },
    )
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert "Stripe cannot bill in this currency." in html and "The due date is in the past." in html
    ok = client.post(
        f"{url}/settings",
        headers={"HX-Request": "true", "X-CSRFToken": token},
        data={
            "currency": "USD",
            "collection_method": "send_invoice",
            "terms": "days",
            "days_until_due": "14",
            "po_number": "PO-1",
            "current_version": version,
        },
    )
    assert ok.status_code == 200
    assert "prices were NOT converted" in ok.get_data(as_text=True)
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        assert inv.currency == "USD" and inv.currency_manual and inv.days_until_due == 14


def test_billto_email_validation(app, client, login, draft):
    login(draft["finance"])
    url = f"/invoices/{draft['invoice_id']}"
    token = csrf_token(client, url)
    with app.app_context():
        version = str(db.session.get(Invoice, draft["invoice_id"]).version)
    resp = client.post(
        f"{url}/billto",
        headers={"HX-Request": "true", "X-CSRFToken": token},
        data={
            "customer_name": "Acme",
            "billing_email": "not-an-email",
            "address_country": "Germany",
            "current_version": version,
        },
    )
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "This is not a valid email address." in html and 'value="not-an-email"' in html
    assert "two-letter country code" in html


def test_preview_shows_the_stripe_plan_in_minor_units(app, client, login, draft):
    login(draft["finance"])
    html = client.get(f"/invoices/{draft['invoice_id']}/preview").get_data(as_text=True)
    assert "POST /v1/invoices" in html and "/add_lines" in html and "/finalize" in html
    assert "unit_amount_decimal" in html and '"auto_advance": false' in html


def test_no_js_form_post_redirects_back(app, client, login, draft):
    login(draft["finance"])
    url = f"/invoices/{draft['invoice_id']}"
    token = csrf_token(client, url)
    line_id = _line_ids(app, draft["invoice_id"])[0]
    form = _line_form(app, draft["invoice_id"], line_id, quantity="3")
    form["version"] = form.pop("current_version")
    form["csrf_token"] = token
    resp = client.post(f"{url}/lines/{line_id}", data=form)
    assert resp.status_code == 303 and resp.headers["Location"].endswith(url)


def test_draft_from_queue_selection_reports_each_result(app, client, login, synced, make_user):
    login(make_user("finance"))
    html = client.get("/queue/").get_data(as_text=True)
    ids = re.findall(r'<tr data-deal="(\d+)"', html)[:2]
    token = csrf_token(client, "/queue/")
    resp = client.post("/invoices/drafts", data={"deal_id": ids, "csrf_token": token})
    page = resp.get_data(as_text=True)
    assert page.count("Draft <a") + page.count("Not created") == 2
    # A second attempt for the same deals is refused, naming the existing invoice.
    again = client.post("/invoices/drafts", data={"deal_id": ids, "csrf_token": token})
    assert again.get_data(as_text=True).count("already has invoice") >= 1


def test_invoice_discount_validation_and_add(app, client, login, draft):
    login(draft["finance"])
    url = f"/invoices/{draft['invoice_id']}"
    token = csrf_token(client, url)
    hdr = {"HX-Request": "true", "X-CSRFToken": token}
    with app.app_context():
        version = str(db.session.get(Invoice, draft["invoice_id"]).version)
    bad = client.post(f"{url}/discounts", headers=hdr, data={
        "description": "Loyalty", "type": "percentage", "value": "150", "current_version": version})
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "A percentage above 0 and at most 100." in html and 'value="150"' in html
    ok = client.post(f"{url}/discounts", headers=hdr, data={
        "description": "Loyalty", "type": "percentage", "value": "10", "current_version": version})
    assert ok.status_code == 200 and "Loyalty: 10%" in ok.get_data(as_text=True)
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        assert inv.discount_total > 0 and inv.total < draft["total"]
