"""Issue 14, defect 9: every state a failed push leaves an invoice in has a way out that
works, on the invoice page and on the mismatch board (app/push/recovery.py lists them)."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from app.intake.models import PdDeal
from app.invoices.models import Invoice
from app.mismatches.models import Mismatch
from app.mismatches.operations import recompute
from app.push import runner
from app.push.queueing import enqueue_push
from app.push.worker import work_push_queue
from app.writeback.models import WritebackItem
from tests.conftest import csrf_token
from tests.push.helpers import approved_invoice, finalized_without_email, invoice, job_for
from tests.push.helpers import stripe_invoices_for as stripe_invoices

HTMX = {"HX-Request": "true"}


def _stuck(app, approver, **kw) -> int:
    with app.app_context():
        return finalized_without_email(approver.id, **kw)


def _recover(client, iid, htmx=True, **data):
    data["csrf_token"] = csrf_token(client, "/push/")
    return client.post(f"/invoices/{iid}/push/recover", data=data,
                       headers=HTMX if htmx else {})


def _board(app) -> dict[int, list[Mismatch]]:
    with app.app_context():
        recompute()
        db.session.commit()
        rows = db.session.execute(
            select(Mismatch).where(Mismatch.resolved_at.is_(None))).scalars().all()
        out: dict[int, list[Mismatch]] = {}
        for m in rows:
            db.session.expunge(m)
            out.setdefault(m.rule, []).append(m)
        return out


def _audit(app, action: str) -> list[AuditEntry]:
    with app.app_context():
        rows = db.session.execute(
            select(AuditEntry).where(AuditEntry.action == action)).scalars().all()
        for r in rows:
            db.session.expunge(r)
        return rows


def test_finalized_but_unsent_is_on_the_board_and_the_page_with_its_ways_out(
    app, client, login, make_user, approver, stripe_desk
):
    iid = _stuck(app, approver)
    with app.app_context():
        inv = invoice(iid)
        number, sid = inv.stripe_number, inv.stripe_invoice_id
        assert (inv.status, inv.stripe_status) == ("push_failed", "open")
    board = _board(app)
    [row] = board[13]
    assert row.invoice_id == iid and row.severity == "high"
    assert f"finalized in Stripe as {number}" in row.explanation
    assert "does not have an email address" in row.explanation
    assert 14 not in board  # the generic "push failed" row does not say it twice
    login(make_user("finance"))
    page = client.get("/mismatches/").get_data(as_text=True)
    assert re.search(r'data-recovery="send mark_sent void_redraft"', page)
    assert "Set the email and send" in page and "Mark as sent by hand" in page
    status = client.get(f"/invoices/{iid}/push/status").get_data(as_text=True)
    assert "Set the email and send" in status and "Void in Stripe and draft again" in status
    assert "correct the invoice" not in status.lower()
    assert sid in page  # Open in Stripe


def test_set_the_billing_email_and_send(app, client, login, make_user, approver, stripe_desk):
    iid = _stuck(app, approver)
    login(make_user("finance"))
    # A bad address is refused next to the field, keeping what was typed.
    resp = _recover(client, iid, action="send", email="ap at acme")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'value="ap at acme"' in html and 'aria-invalid="true"' in html
    assert "This is not a valid email address." in html
    resp = _recover(client, iid, action="send", email="ap@acme.example")
    assert resp.status_code == 200 and resp.headers["HX-Trigger"] == "invoice-changed"
    assert "Stripe sends it to ap@acme.example" in resp.get_data(as_text=True)
    with app.app_context():
        assert invoice(iid).status == "pushing"
        assert work_push_queue()["done"] == 1
        inv = invoice(iid)
        assert (inv.status, inv.billing_email, inv.push_error) == (
            "pushed", "ap@acme.example", None)
        [si] = stripe_invoices(stripe_desk, iid)
        assert si["status"] == "open"  # the same Stripe invoice: nothing billed twice
        customer = stripe_desk.sandbox.store.get("customer", si["customer"])
        assert customer["email"] == "ap@acme.example"
        sent = [e for e in stripe_desk.sandbox.store.all("event") if e["type"] == "invoice.sent"]
        assert [e["data"]["object"]["id"] for e in sent] == [si["id"]]
        kinds = {w.kind for w in db.session.execute(select(WritebackItem)).scalars()}
        assert "deal_fields" in kinds  # Pipedrive is told now
    [changed] = _audit(app, "stripe_customer.email_set")
    assert changed.before == {"email": None} and changed.after["email"] == "ap@acme.example"
    assert _audit(app, "invoice.billing_email_set")
    assert 13 not in _board(app)


def test_mark_as_sent_by_hand(app, client, login, make_user, approver, stripe_desk):
    iid = _stuck(app, approver)
    finance = make_user("finance")
    login(finance)
    resp = _recover(client, iid, action="mark_sent", note="  ")
    assert resp.status_code == 422
    assert "Say how it reached the customer" in resp.get_data(as_text=True)
    resp = _recover(client, iid, htmx=False, action="mark_sent", next="mismatches",
                    note="PDF emailed to ap@acme.example by Fiona")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/mismatches/")
    with app.app_context():
        inv = invoice(iid)
        assert inv.status == "pushed" and inv.push_error is None and inv.pushed_at
        job = job_for(iid)
        assert job.status == "done"
        assert job.step_named("send").result["by_hand"] is True
        kinds = {w.kind for w in db.session.execute(select(WritebackItem)).scalars()}
        assert {"deal_fields", "deal_note"} <= kinds
    [entry] = _audit(app, "invoice.push_sent_by_hand")
    assert entry.actor_id == finance.id and entry.after["status"] == "pushed"
    assert _audit(app, "push.sent_by_hand")[0].after["note"].startswith("PDF emailed")
    assert 13 not in _board(app)


def test_void_in_stripe_and_draft_again(app, client, login, make_user, approver, stripe_desk):
    iid = _stuck(app, approver, discounts=[("percentage", "5")])
    with app.app_context():
        db.session.add(PdDeal(id=9001, title="Deal", value=Decimal(0), currency="EUR",
                              status="won", ready=True, content_hash="h"))
        db.session.commit()
        old = invoice(iid)
        old_total, old_lines = old.total, [(ln.description, ln.quantity) for ln in old.lines]
    login(make_user("finance"))
    resp = _recover(client, iid, action="void_redraft")
    assert resp.status_code == 204
    new_url = resp.headers["HX-Redirect"]
    new_id = int(new_url.rstrip("/").rsplit("/", 1)[1])
    with app.app_context():
        [si] = stripe_invoices(stripe_desk, iid)
        assert si["status"] == "void"
        old, new = invoice(iid), db.session.get(Invoice, new_id)
        assert (old.status, old.stripe_status) == ("cancelled", "void")
        assert (new.status, new.deal_id, new.total) == ("draft", 9001, old_total)
        assert [(ln.description, ln.quantity) for ln in new.lines] == old_lines
        assert len(new.discounts) == 1 and new.stripe_invoice_id is None
        # The new draft is editable, and the email is asked for before it can go anywhere.
        from app.invoices.editing import check_editable

        check_editable(new, new.version)
    assert _audit(app, "push.voided_in_stripe") and _audit(app, "invoice.redrafted")
    old_timeline = client.get(f"/invoices/{iid}/timeline").get_data(as_text=True)
    assert "Voided in Stripe; drafted again" in old_timeline
    new_timeline = client.get(f"/invoices/{new_id}/timeline").get_data(as_text=True)
    assert "Drafted again from an invoice voided in Stripe" in new_timeline
    board = _board(app)
    assert 13 not in board and 4 not in board and 9 not in board


def test_a_pushed_invoice_voided_in_stripe_by_hand_can_be_drafted_again_from_the_board(
    app, client, login, make_user, approver, stripe_desk, stripe_client
):
    from app.payments.sync import apply_invoice

    with app.app_context():
        iid = approved_invoice(approver.id)
        db.session.add(PdDeal(id=9001, title="Deal", value=Decimal(0), currency="EUR",
                              status="won", ready=True, content_hash="h"))
        db.session.commit()
        enqueue_push([iid], None)
        db.session.commit()
        assert work_push_queue()["done"] == 1
        voided = stripe_client.v1.invoices.void_invoice(invoice(iid).stripe_invoice_id)
        apply_invoice(voided.to_dict())
        db.session.commit()
    [row] = _board(app)[4]
    login(make_user("finance"))
    page = client.get("/mismatches/").get_data(as_text=True)
    assert "Draft it again" in page and 'data-recovery="redraft"' in page
    resp = _recover(client, iid, htmx=False, action="redraft")
    assert resp.status_code == 303
    with app.app_context():
        assert invoice(iid).status == "cancelled"
        drafts = db.session.execute(
            select(Invoice).where(Invoice.deal_id == 9001, Invoice.status == "draft")
        ).scalars().all()
        assert len(drafts) == 1 and resp.headers["Location"].endswith(f"/{drafts[0].id}")
    assert 4 not in _board(app)  # billed again: nothing left uncollected


def test_a_push_that_failed_before_finalizing_is_on_the_board_with_retry(
    app, client, login, make_user, approver, stripe_desk, monkeypatch
):
    real = runner.for_invoice

    def off_by_one(inv):
        totals = real(inv)
        totals.total += 1
        return totals

    with app.app_context():
        iid = approved_invoice(approver.id)
        monkeypatch.setattr(runner, "for_invoice", off_by_one)
        enqueue_push([iid], None)
        db.session.commit()
        assert work_push_queue()["failed"] == 1
        monkeypatch.setattr(runner, "for_invoice", real)
        sid = invoice(iid).stripe_invoice_id
    [row] = _board(app)[14]
    assert f"A draft ({sid}) is left in Stripe" in row.explanation
    assert "approved again" in row.explanation
    login(make_user("finance"))
    page = client.get("/mismatches/").get_data(as_text=True)
    assert f'action="/invoices/{iid}/push"' in page and "Retry the push" in page
    # No finalized invoice: none of the finalized-invoice ways out are offered.
    assert "data-recovery=" not in page
    resp = client.post(f"/invoices/{iid}/push", data={"csrf_token": csrf_token(client, "/")})
    assert resp.status_code == 303
    with app.app_context():
        assert work_push_queue()["done"] == 1
    assert 14 not in _board(app)


def test_ways_out_are_refused_in_plain_words_where_they_do_not_apply(
    app, client, login, make_user, approver, stripe_desk
):
    with app.app_context():
        iid = approved_invoice(approver.id)
    login(make_user("finance"))
    for action, says in (("send", "not yet sent"), ("mark_sent", "not yet sent"),
                         ("void_redraft", "open in Stripe"), ("redraft", "void in Stripe"),
                         ("explode", "Choose what to do")):
        resp = _recover(client, iid, action=action, email="a@b.example", note="x")
        assert resp.status_code == 422, action
        assert says in resp.get_data(as_text=True), action
    with app.app_context():
        assert invoice(iid).status == "approved"


def test_approvers_may_not_use_the_ways_out(app, client, login, approver, stripe_desk):
    iid = _stuck(app, approver)
    login(approver)
    resp = _recover(client, iid, action="mark_sent", note="x")
    assert resp.status_code == 403 and "invoices.push" in resp.get_data(as_text=True)
