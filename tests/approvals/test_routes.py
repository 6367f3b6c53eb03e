"""The approval pages: actions panel (htmx and plain forms), inbox, holds, timeline, policy."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.auth.permissions import PERMISSIONS, ROLES
from app.extensions import db
from app.invoices.models import Invoice
from tests.conftest import csrf_token

HX = {"HX-Request": "true"}


def _get(app, invoice_id) -> Invoice:
    with app.app_context():
        invoice = db.session.get(Invoice, invoice_id)
        db.session.expunge(invoice)
        return invoice


def _post(client, url, data=None, htmx=False):
    data = dict(data or {})
    data["csrf_token"] = csrf_token(client, "/")
    return client.post(url, data=data, headers=HX if htmx else {})


def _actions(client, app, invoice_id) -> set[str]:
    """The action forms the panel shows to the signed-in user."""
    html = client.get(f"/approvals/invoices/{invoice_id}").get_data(as_text=True)
    return set(re.findall(rf'action="/invoices/{invoice_id}/(\w+)"', html))


def test_panel_shows_each_role_only_its_actions(app, client, make_user, login, make_invoice):
    preparer = make_user("finance")
    draft = make_invoice(updated_by_id=preparer.id)
    submitted = make_invoice(status="submitted", updated_by_id=preparer.id,
                             submitted_by_id=preparer.id)
    expected = {
        "finance": ({"submit", "hold", "cancel"}, {"hold"}),
        "approver": ({"hold"}, {"approve", "reject", "hold"}),
        "admin": ({"submit", "hold", "cancel"}, {"approve", "reject", "hold"}),
        "sales": None,
    }
    for role in sorted(ROLES):
        client.delete_cookie("session")
        login(make_user(role))
        if expected[role] is None:
            assert client.get(f"/approvals/invoices/{draft}").status_code == 403
            continue
        assert _actions(client, app, draft) == expected[role][0], role
        assert _actions(client, app, submitted) == expected[role][1], role


def test_submit_with_htmx_answers_the_panel_and_refreshes_the_timeline(
    app, client, make_user, login, make_invoice
):
    finance = make_user("finance")
    invoice_id = make_invoice(updated_by_id=finance.id)
    login(finance)
    resp = _post(client, f"/invoices/{invoice_id}/submit", htmx=True)
    assert resp.status_code == 200
    assert resp.headers["HX-Trigger"] == "invoice-changed"
    html = resp.get_data(as_text=True)
    assert html.lstrip().startswith('<section id="invoice-actions"')
    assert "Submitted for approval." in html and "Waiting for approval" in html
    assert _get(app, invoice_id).status == "submitted"
    # The timeline fragment now has the entry, with who did it.
    timeline = client.get(f"/invoices/{invoice_id}/timeline").get_data(as_text=True)
    assert "Submitted for approval" in timeline and finance.email in timeline
    assert "Waiting for approval" in timeline  # the status change, in plain words


def test_the_submitter_cannot_approve_their_own_invoice(app, client, make_user, login,
                                                        make_invoice):
    both = make_user("finance", "approver")
    invoice_id = make_invoice(updated_by_id=both.id)
    login(both)
    _post(client, f"/invoices/{invoice_id}/submit", htmx=True)
    html = client.get(f"/approvals/invoices/{invoice_id}").get_data(as_text=True)
    assert "approve" not in _actions(client, app, invoice_id)
    assert "with four-eyes on, someone else must approve it" in html
    # Posting anyway is refused in place (htmx) ...
    resp = _post(client, f"/invoices/{invoice_id}/approve", {"version": "1"}, htmx=True)
    assert resp.status_code == 409 and "HX-Trigger" not in resp.headers
    assert 'id="panel-message" class="error"' in resp.get_data(as_text=True)
    # ... and without JavaScript, with the message on the invoice page.
    resp = _post(client, f"/invoices/{invoice_id}/approve", {"version": "1"})
    assert resp.status_code == 303
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "You last edited this invoice" in page
    assert _get(app, invoice_id).status == "submitted"


def test_approve_without_javascript_redirects_to_the_invoice(app, client, make_user, login,
                                                             make_invoice):
    preparer, approver = make_user("finance"), make_user("approver")
    invoice_id = make_invoice(status="submitted", updated_by_id=preparer.id,
                              submitted_by_id=preparer.id)
    login(approver)
    resp = _post(client, f"/invoices/{invoice_id}/approve", {"version": "1"})
    assert resp.status_code == 303
    with app.test_request_context():
        from app.approvals.routes import invoice_url

        assert resp.headers["Location"].endswith(invoice_url(invoice_id))
    invoice = _get(app, invoice_id)
    assert invoice.status == "approved" and invoice.approved_by_id == approver.id
    assert invoice.approved_version == 1


def test_reject_without_a_comment_shows_the_error_under_the_field(app, client, make_user, login,
                                                                  make_invoice):
    preparer, approver = make_user("finance"), make_user("approver")
    invoice_id = make_invoice(status="submitted", submitted_by_id=preparer.id)
    login(approver)
    resp = _post(client, f"/invoices/{invoice_id}/reject", {"comment": "  "}, htmx=True)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 409
    assert 'id="reject-comment-error"' in html and "Say why you reject it" in html
    assert '<details open data-action="reject">' in html
    resp = _post(client, f"/invoices/{invoice_id}/reject", {"comment": "VAT id missing"},
                 htmx=True)
    assert resp.status_code == 200 and _get(app, invoice_id).status == "draft"
    timeline = client.get(f"/invoices/{invoice_id}/timeline").get_data(as_text=True)
    assert "Rejected back to draft" in timeline and "VAT id missing" in timeline


def test_hold_list_shows_who_when_why_and_releases(app, client, make_user, login, make_invoice):
    finance = make_user("finance", name="Fiona Finance")
    held_id = make_invoice(status="approved", customer_name="Held Corp",
                           total=Decimal("1234.50"))
    other_id = make_invoice(customer_name="Free Ltd")
    login(finance)
    resp = _post(client, f"/invoices/{held_id}/hold", {"reason": ""}, htmx=True)
    assert resp.status_code == 409 and "Give a reason for the hold" in resp.get_data(as_text=True)
    resp = _post(client, f"/invoices/{held_id}/hold", {"reason": "Customer disputes the PO"},
                 htmx=True)
    assert resp.status_code == 200
    assert "Customer disputes the PO" in resp.get_data(as_text=True)
    html = client.get("/approvals/holds").get_data(as_text=True)
    row = re.search(rf'<tr data-invoice="{held_id}">(.*?)</tr>', html, re.S).group(1)
    assert "Held Corp" in row and "Fiona Finance" in row and "Customer disputes the PO" in row
    assert "EUR 1,234.50" in row and "UTC" in row  # when, in the user's zone
    assert "Free Ltd" not in html and str(other_id) not in re.findall(r'data-invoice="(\d+)"',
                                                                     html)
    # Release from the list goes back to the list.
    resp = _post(client, f"/invoices/{held_id}/release", {"next": "holds"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/approvals/holds")
    assert "No invoice is on hold" in client.get("/approvals/holds").get_data(as_text=True)
    assert not _get(app, held_id).on_hold


def test_inbox_lists_what_i_may_approve_with_a_count_in_the_navigation(
    app, client, make_user, login, make_invoice
):
    from app.approvals import policy as policy_ops
    from app.auth.models import User

    preparer = make_user("finance", name="Pat Preparer")
    approver = make_user("approver")
    admin = make_user("admin")
    with app.app_context():
        policy_ops.set_threshold("EUR", "50000", db.session.get(User, admin.id))
        db.session.commit()
    mine = make_invoice(status="submitted", customer_name="Small Co", submitted_by_id=preparer.id)
    big = make_invoice(status="submitted", customer_name="Big Co", total=Decimal("60000"),
                       submitted_by_id=preparer.id)
    own = make_invoice(status="submitted", customer_name="Own Co", updated_by_id=approver.id,
                       submitted_by_id=preparer.id)
    make_invoice(status="submitted", customer_name="Held Co", on_hold=True, hold_reason="x",
                 submitted_by_id=preparer.id)
    make_invoice(customer_name="Draft Co")
    login(approver)
    html = client.get("/approvals/").get_data(as_text=True)
    listed = set(map(int, re.findall(r'<tr data-invoice="(\d+)"', html)))
    assert listed == {mine}
    assert "Pat Preparer" in html and "EUR 1,000.00" in html
    assert re.search(r'id="nav-count-approvals-inbox"[^>]*>1</span>', html)
    assert "2 more submitted invoices are waiting for someone else" in html
    # The admin may approve the big one and the one the approver edited.
    client.delete_cookie("session")
    login(admin)
    html = client.get("/").get_data(as_text=True)
    assert re.search(r'id="nav-count-approvals-inbox"[^>]*>3</span>', html)
    assert set(map(int, re.findall(r'<tr data-invoice="(\d+)"',
                                   client.get("/approvals/").get_data(as_text=True)))) == {
        mine, big, own}
    # Finance has no inbox and no count.
    client.delete_cookie("session")
    login(preparer)
    assert "nav-count-approvals-inbox" not in client.get("/").get_data(as_text=True)


def test_bulk_approve_shows_each_result(app, client, make_user, login, make_invoice):
    preparer, approver = make_user("finance"), make_user("approver")
    ok_id = make_invoice(status="submitted", customer_name="Fine Co", submitted_by_id=preparer.id)
    changed_id = make_invoice(status="submitted", customer_name="Changed Co", version=2,
                              submitted_by_id=preparer.id)
    own_id = make_invoice(status="submitted", customer_name="Own Co", submitted_by_id=approver.id)
    login(approver)
    resp = client.post(
        "/approvals/approve",
        data={"csrf_token": csrf_token(client, "/"),
              # The approver saw version 1 of "Changed Co"; it is at version 2 now.
              "invoice": [f"{ok_id}:1", f"{changed_id}:1", f"{own_id}:1", "junk"]},
        headers=HX,
    )
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    results = {i: c for c, i in re.findall(r'<li class="(ok|error)" data-invoice="(\d+)"', html)}
    assert results == {str(ok_id): "ok", str(changed_id): "error", str(own_id): "error"}
    assert "changed since you opened it" in html and "You submitted this invoice" in html
    assert 'hx-swap-oob="true"' in html  # the navigation count follows
    assert _get(app, ok_id).status == "approved"
    assert _get(app, changed_id).status == "submitted" and _get(app, own_id).status == "submitted"
    # Nothing chosen: said so, nothing done.
    resp = _post(client, "/approvals/approve")
    assert resp.status_code == 400 and "Choose at least one invoice" in resp.get_data(as_text=True)


def test_timeline_lists_every_entry_newest_first_in_plain_words(app, client, make_user, login,
                                                                make_invoice):
    finance = make_user("finance", name="Fiona Finance")
    approver = make_user("approver", name="Alex Approver")
    invoice_id = make_invoice(updated_by_id=finance.id)
    login(finance)
    _post(client, f"/invoices/{invoice_id}/submit")
    client.delete_cookie("session")
    login(approver)
    _post(client, f"/invoices/{invoice_id}/approve", {"version": "1"})
    _post(client, f"/invoices/{invoice_id}/hold", {"reason": "Waiting for the PO"})
    with app.app_context():
        from app.approvals.workflow import content_edited
        from app.auth.models import User

        content_edited(db.session.get(Invoice, invoice_id), db.session.get(User, finance.id))
        db.session.commit()
    html = client.get(f"/invoices/{invoice_id}/timeline").get_data(as_text=True)
    labels = re.findall(r"<strong>([^<]+)</strong>", html)
    assert labels == ["Back to draft (edited after submission or approval)", "Put on hold",
                      "Approved", "Submitted for approval"]
    assert html.count("Alex Approver") == 2 and html.count("Fiona Finance") == 2
    assert "Waiting for the PO" in html and "edited after submission/approval" in html
    assert "<del>Approved</del> → <ins>Draft</ins>" in html
    assert "audit/verify" not in html  # the chain check is for admins
    client.delete_cookie("session")
    login(make_user("admin"))
    assert "/admin/audit/verify" in client.get(f"/invoices/{invoice_id}/timeline").get_data(
        as_text=True)


def test_unknown_invoice_is_a_404(client, make_user, login):
    login(make_user("admin"))
    assert _post(client, "/invoices/999/submit", htmx=True).status_code == 404
    assert client.get("/invoices/999/timeline").status_code == 404


# The admin policy page


def test_policy_page_switches_four_eyes_and_sets_thresholds(app, client, make_user, login):
    admin = make_user("admin")
    login(admin)
    html = client.get("/admin/approvals/").get_data(as_text=True)
    assert "Now on." in html and "/admin/audit/verify" in html
    resp = _post(client, "/admin/approvals/four-eyes", {})  # checkbox unticked
    assert resp.status_code == 303
    assert "Now off." in client.get("/admin/approvals/").get_data(as_text=True)
    resp = _post(client, "/admin/approvals/thresholds", {"currency": "usd", "amount": "12.3456"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="threshold-amount-error">USD allows at most 2 decimals.' in html
    assert 'value="12.3456"' in html  # what was typed stays
    resp = _post(client, "/admin/approvals/thresholds", {"currency": "ABC", "amount": "10"})
    assert resp.status_code == 400 and 'id="threshold-currency-error"' in resp.get_data(
        as_text=True)
    resp = _post(client, "/admin/approvals/thresholds", {"currency": "usd", "amount": "75,000.00"})
    assert resp.status_code == 303
    html = client.get("/admin/approvals/").get_data(as_text=True)
    assert "USD 75,000.00" in html and "only an admin may approve" in html
    resp = _post(client, "/admin/approvals/thresholds/USD/remove")
    assert resp.status_code == 303
    assert "No thresholds" in client.get("/admin/approvals/").get_data(as_text=True)
    with app.app_context():
        actions = db.session.execute(
            select(AuditEntry.action).where(AuditEntry.object_type.in_(
                ["approval_policy", "approval_threshold"])).order_by(AuditEntry.id)
        ).scalars().all()
    assert actions == ["approval_policy.four_eyes", "approval_threshold.set",
                       "approval_threshold.remove"]


# Access: the approval routes for every role (the app-wide matrix in tests/test_access.py
# covers them too; this one does not depend on other modules' routes).


@pytest.mark.parametrize("role", sorted(ROLES))
def test_approval_routes_for_every_role(app, client, make_user, login, role):
    from tests.test_access import EXAMPLES, _call, make_objects

    login(make_user(role))
    objects = make_objects(app)
    token = csrf_token(client, "/")
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in ("approvals", "approval_policy"):
            continue
        permission = app.view_functions[rule.endpoint].desk_permission
        example = EXAMPLES.get(rule.endpoint, {})
        resp = _call(client, app, rule, example, token, objects)
        if role in PERMISSIONS[permission][0]:
            assert resp.status_code == example.get("expect", 200), (rule.endpoint, role)
        else:
            assert resp.status_code == 403, (rule.endpoint, role)
        checked += 1
    assert checked == 15


@pytest.mark.parametrize("currency, price_before, price_after", [
    ("EUR", "120.00", "99.50"), ("JPY", "1200", "1199"), ("KWD", "12.000", "11.250"),
])
def test_timeline_shows_amounts_as_typed_not_as_stored(app, make_invoice, currency,
                                                       price_before, price_after):
    """Amounts are stored with six decimals; the timeline shows a price with its
    currency's decimals and a quantity or a rate without trailing zeros."""
    from app.approvals.display import timeline
    from app.audit.operations import record
    from app.money import format_money

    invoice_id = make_invoice(currency=currency)
    with app.app_context():
        record("invoice.line_update", "invoice", invoice_id,
               {"line": 1, "unit_price": Decimal(price_before).quantize(Decimal("0.000001")),
                "quantity": "2.500000", "tax_percent": "19.000000"},
               {"line": 1, "unit_price": Decimal(price_after).quantize(Decimal("0.000001")),
                "quantity": "3.000000", "tax_percent": "7.700000"})
        db.session.commit()
        [row] = [r for r in timeline(invoice_id) if r.entry.action == "invoice.line_update"]
    shown = {label: (old, new) for label, old, new in row.changes}
    # With its currency (issue 15): "EUR 120.00", "JPY 1,200", "KWD 12.000".
    assert shown["Unit price"] == (format_money(Decimal(price_before), currency),
                                   format_money(Decimal(price_after), currency))
    assert shown["Quantity"] == ("2.5", "3")
    assert shown["Tax percent"] == ("19", "7.7")


def test_the_panel_says_why_an_invoice_without_billing_email_cannot_be_submitted(
    app, client, make_user, login, make_invoice
):
    """Issue 14, defect 9: the reason is next to where Submit would be, before any click."""
    finance = make_user("finance")
    iid = make_invoice(billing_email="", updated_by_id=finance.id)
    login(finance)
    html = client.get(f"/approvals/invoices/{iid}").get_data(as_text=True)
    assert "submit" not in _actions(client, app, iid)
    assert re.search(r'data-blocked="submit">Add a billing email: Stripe emails', html)
    resp = _post(client, f"/invoices/{iid}/submit", htmx=True)
    assert resp.status_code == 409
    assert "Add a billing email" in resp.get_data(as_text=True)
    assert _get(app, iid).status == "draft"
