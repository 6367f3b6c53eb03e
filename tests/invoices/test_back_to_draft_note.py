"""Issue 14, defect 15: editing a submitted invoice says, before and after, that it goes
back to draft."""

from __future__ import annotations

from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from app.invoices.models import Invoice
from tests.conftest import csrf_token
from tests.invoices.test_editor import _line_form, _line_ids


def _submitted(app, invoice_id, status="submitted"):
    with app.app_context():
        inv = db.session.get(Invoice, invoice_id)
        inv.status = status
        if status == "approved":
            inv.approved_version = inv.version
        db.session.commit()


def test_the_editor_warns_before_and_says_after(app, client, login, draft):
    _submitted(app, draft["invoice_id"])
    login(draft["finance"])
    url = f"/invoices/{draft['invoice_id']}"
    page = client.get(url).get_data(as_text=True)
    assert "any edit sends it back to draft" in page and 'id="edit-note"' in page
    token = csrf_token(client, url)
    line_id = _line_ids(app, draft["invoice_id"])[0]
    resp = client.post(f"{url}/lines/{line_id}",
                       data=_line_form(app, draft["invoice_id"], line_id, quantity="7"),
                       headers={"HX-Request": "true", "X-CSRFToken": token})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert '<div id="edit-note" hx-swap-oob="true">' in html
    assert "back to draft (it was waiting for approval)" in html and "Submit it again" in html
    with app.app_context():
        assert db.session.get(Invoice, draft["invoice_id"]).status == "draft"
        assert db.session.execute(select(AuditEntry).where(
            AuditEntry.action == "invoice.back_to_draft")).scalars().first() is not None
    # Now a draft: no warning any more.
    assert "any edit sends it back to draft" not in client.get(url).get_data(as_text=True)


def test_without_javascript_the_message_follows_the_redirect(app, client, login, draft):
    _submitted(app, draft["invoice_id"], "approved")
    login(draft["finance"])
    url = f"/invoices/{draft['invoice_id']}"
    page = client.get(url).get_data(as_text=True)
    assert "must then be submitted and approved again" in page
    token = csrf_token(client, url)
    line_id = _line_ids(app, draft["invoice_id"])[0]
    form = _line_form(app, draft["invoice_id"], line_id, quantity="7")
    form["version"] = form.pop("current_version")
    form["csrf_token"] = token
    resp = client.post(f"{url}/lines/{line_id}", data=form, follow_redirects=True)
    assert "back to draft (it was approved)" in resp.get_data(as_text=True)


def test_reapplying_the_deal_to_a_submitted_invoice_says_it_went_back(app, client, login, draft):
    _submitted(app, draft["invoice_id"])
    login(draft["finance"])
    url = f"/invoices/{draft['invoice_id']}"
    token = csrf_token(client, url)
    with app.app_context():
        version = db.session.get(Invoice, draft["invoice_id"]).version
    resp = client.post(f"{url}/reapply", follow_redirects=True,
                       data={"keep_manual": "1", "version": str(version), "csrf_token": token})
    assert "back to draft (it was waiting for approval)" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Invoice, draft["invoice_id"]).status == "draft"
