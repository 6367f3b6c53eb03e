"""A deal that changes in Pipedrive after its draft was made: the draft shows the
difference line by line and re-applies the deal, keeping manual edits if asked."""

from __future__ import annotations

from decimal import Decimal

from app.extensions import db
from app.intake.models import PdDeal
from app.intake.operations import run_deal_sync
from app.invoices.models import Invoice
from tests.conftest import csrf_token


def _product_line(app, invoice_id):
    with app.app_context():
        inv = db.session.get(Invoice, invoice_id)
        line = next(ln for ln in inv.lines if ln.source_deal_product_id)
        return line.id, line.source_deal_product_id, line.quantity


def test_drift_is_shown_and_reapplied(app, client, login, draft, synced):
    line_id, product_id, qty = _product_line(app, draft["invoice_id"])
    # Finance edits the description by hand.
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        line = next(ln for ln in inv.lines if ln.id == line_id)
        line.description, line.edited_fields = "Hand-written description", ["description"]
        db.session.commit()
    # Sales changes the quantity in Pipedrive; the desk syncs.
    new_qty = int(qty) + 2  # a JSON number, as the Pipedrive UI sends it
    synced.ui_edit(draft["deal_id"], products=[{"id": product_id, "quantity": new_qty}])
    with app.app_context():
        assert run_deal_sync().status == "ok"
    login(draft["finance"])
    html = client.get(f"/invoices/{draft['invoice_id']}").get_data(as_text=True)
    assert "The deal changed in Pipedrive after this draft was made" in html
    assert "quantity" in html and "changed" in html
    queue = client.get(f"/queue/?q={draft['deal_id']}&flag=drifted").get_data(as_text=True)
    assert "Changed since its draft" in queue
    token = csrf_token(client, f"/invoices/{draft['invoice_id']}")
    with app.app_context():
        version = db.session.get(Invoice, draft["invoice_id"]).version
    resp = client.post(
        f"/invoices/{draft['invoice_id']}/reapply",
        data={"keep_manual": "1", "version": str(version), "csrf_token": token},
    )
    assert resp.status_code == 303
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        line = next(ln for ln in inv.lines if ln.id == line_id)
        assert line.quantity == new_qty  # the deal's new quantity
        assert line.description == "Hand-written description"  # the manual edit kept
        deal = db.session.get(PdDeal, draft["deal_id"])
        assert inv.deal_hash == deal.content_hash
    html = client.get(f"/invoices/{draft['invoice_id']}").get_data(as_text=True)
    assert "The deal changed in Pipedrive" not in html


def test_reapply_replacing_manual_edits(app, client, login, draft, synced):
    line_id, product_id, qty = _product_line(app, draft["invoice_id"])
    with app.app_context():
        inv = db.session.get(Invoice, draft["invoice_id"])
        line = next(ln for ln in inv.lines if ln.id == line_id)
        line.unit_price, line.edited_fields = Decimal("1.00"), ["unit_price"]
        db.session.commit()
    synced.ui_edit(draft["deal_id"], products=[{"id": product_id, "quantity": int(qty) + 1}])
    with app.app_context():
        run_deal_sync()
    login(draft["finance"])
    token = csrf_token(client, f"/invoices/{draft['invoice_id']}")
    with app.app_context():
        version = db.session.get(Invoice, draft["invoice_id"]).version
    client.post(
        f"/invoices/{draft['invoice_id']}/reapply",
        data={"keep_manual": "0", "version": str(version), "csrf_token": token},
    )
    with app.app_context():
        line = next(
            ln for ln in db.session.get(Invoice, draft["invoice_id"]).lines if ln.id == line_id
        )
        assert line.unit_price != Decimal("1.00") and line.edited_fields == []
