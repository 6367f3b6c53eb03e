"""What finance sees: the push button, progress, the result, failures with a Retry."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.extensions import db
from app.push.models import PushJob
from app.push.worker import work_push_queue
from tests.conftest import csrf_token
from tests.push.helpers import approved_invoice, finalized_without_email, invoice

HTMX = {"HX-Request": "true"}


def _make(app, approver, **kw) -> int:
    with app.app_context():
        return approved_invoice(approver.id, **kw)


def _work(app, **kw) -> dict:
    with app.app_context():
        return work_push_queue(**kw)


def test_push_button_queues_and_the_component_follows_the_push(
    app, client, login, make_user, approver, stripe_desk
):
    iid = _make(app, approver)
    login(make_user("finance"))
    page = client.get(f"/invoices/{iid}/push/status")
    assert 'id="push-button"' in page.get_data(as_text=True)
    token = csrf_token(client, "/push/")
    resp = client.post(f"/invoices/{iid}/push", data={"csrf_token": token}, headers=HTMX)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 202 and resp.headers["HX-Trigger"] == "invoice-changed"
    assert "Waiting for the push worker" in html and "load delay:1s" in html
    again = client.post(f"/invoices/{iid}/push", data={"csrf_token": token}, headers=HTMX)
    assert again.status_code == 409
    assert "being pushed already" in again.get_data(as_text=True)
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(PushJob)).scalar() == 1
    assert _work(app)["done"] == 1
    html = client.get(f"/invoices/{iid}/push/status", headers=HTMX).get_data(as_text=True)
    with app.app_context():
        inv = invoice(iid)
        number, url = inv.stripe_number, inv.hosted_invoice_url
    assert f'<strong id="stripe-number">{number}</strong>' in html
    assert f'href="{url}"' in html
    assert "load delay:1s" not in html  # the push is finished
    assert "load delay:3s" in html  # it follows the pending write-backs
    assert re.search(r"Note on the deal:\s*pending", html)


def test_a_plain_form_post_redirects_to_the_invoice(app, client, login, make_user, approver,
                                                    stripe_desk):
    iid = _make(app, approver)
    login(make_user("finance"))
    resp = client.post(f"/invoices/{iid}/push", data={"csrf_token": csrf_token(client, "/push/")})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/invoices/{iid}")
    with app.app_context():
        assert invoice(iid).status == "pushing"


def test_a_failed_push_shows_the_error_the_hint_and_a_retry(
    app, client, login, make_user, approver, stripe_desk
):
    with app.app_context():
        iid = finalized_without_email(approver.id)
    login(make_user("finance"))
    html = client.get(f"/invoices/{iid}/push/status").get_data(as_text=True)
    assert "The push to Stripe failed." in html
    assert "does not have an email address" in html
    assert "What to do:" in html and 'id="push-retry"' in html
    assert 'data-step="send" data-state="failed"' in html


def test_bulk_push_shows_a_progress_bar_and_what_was_refused(
    app, client, login, make_user, approver, stripe_desk
):
    ids = [_make(app, approver, deal_id=9000 + n, org_id=700 + n) for n in range(3)]
    with app.app_context():
        held = invoice(ids[2])
        held.on_hold, held.hold_reason = True, "wait for the PO"
        db.session.commit()
    login(make_user("finance"))
    listing = client.get("/push/").get_data(as_text=True)
    assert all(f'value="{i}"' in listing for i in ids[:2])
    assert f'value="{ids[2]}"' not in listing  # on hold: not offered
    token = csrf_token(client, "/push/")
    resp = client.post("/invoices/push", data={"csrf_token": token, "invoice_id": ids})
    assert resp.status_code == 303
    batch_url = resp.headers["Location"]
    assert re.search(r"/push/batches/\d+$", batch_url)
    page = client.get(batch_url).get_data(as_text=True)
    assert 'value="0" max="2"' in page and 'data-finished="no"' in page
    assert "wait for the PO" in page  # the held one, and why
    _work(app)
    fragment = client.get(batch_url, headers=HTMX).get_data(as_text=True)
    assert 'value="2" max="2"' in fragment and 'data-finished="yes"' in fragment
    assert "2 of 2 in Stripe" in fragment


def test_bulk_push_without_a_selection_says_so(app, client, login, make_user):
    login(make_user("finance"))
    resp = client.post("/invoices/push", data={"csrf_token": csrf_token(client, "/push/")})
    assert resp.status_code == 400
    assert "Choose at least one invoice to push." in resp.get_data(as_text=True)


def test_approvers_may_not_push(app, client, login, approver, stripe_desk):
    iid = _make(app, approver)
    login(approver)
    resp = client.post(f"/invoices/{iid}/push", data={"csrf_token": csrf_token(client, "/")})
    assert resp.status_code == 403
    assert "invoices.push" in resp.get_data(as_text=True)
