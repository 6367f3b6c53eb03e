"""The route x role matrix, generated from the app's own URL map.

Every route: anonymous -> sign-in, each role without the permission -> 403
naming it, each role with it -> 200 or the route's own success code.
A new route with path arguments or a POST must add an example below, so no
route can escape the matrix.
"""

from __future__ import annotations

import pytest

from app.auth.permissions import PERMISSIONS, ROLES

# endpoint -> how to call it: method, keyword arguments for the URL, form data,
# and the status the right role gets.
EXAMPLES: dict[str, dict] = {
    "auth.logout": {"method": "POST", "expect": 302},
    "auth.account": {"method": "GET"},
    # Users admin: user 1 is the signed-in user, so these also exercise the
    # self-protection paths (deactivating oneself is refused, not a 500).
    "users.create": {"method": "GET"},
    "users.edit": {"method": "GET", "args": {"user_id": 1}},
    "users.deactivate": {"method": "POST", "args": {"user_id": 1}, "expect": 303},
    "users.reactivate": {"method": "POST", "args": {"user_id": 1}, "expect": 303},
    "users.unlock": {"method": "POST", "args": {"user_id": 1}, "expect": 303},
    "users.reset_password": {
        "method": "POST", "args": {"user_id": 1}, "expect": 303,
        "data": {"reset-method": "password", "reset-password": "correct horse battery staple",
                 "reset-confirm": "correct horse battery staple"},
    },
    # Public: an unknown link answers the friendly "link not valid" page.
    "users.invite": {"method": "GET", "args": {"token": "not-a-real-token"}, "public_expect": 404},
    "connections.save_pipedrive": {"method": "POST", "expect": 303},
    "connections.save_stripe": {"method": "POST", "expect": 303},
    "connections.forget": {"method": "POST", "args": {"name": "STRIPE_API_BASE"}, "expect": 303},
    "connections.test_pipedrive": {"method": "POST"},
    "connections.test_stripe": {"method": "POST"},
    "connections.oauth_start": {"method": "POST", "expect": 303},
    "connections.oauth_callback": {"method": "GET", "expect": 303},
    # Intake and queue: objects made by make_objects() below.
    "queue.sync_now": {"method": "POST", "expect": 202},
    "queue.sync_status": {"method": "GET", "args": lambda o: {"run_id": o["run_id"]}},
    "queue.deal": {"method": "GET", "args": lambda o: {"deal_id": o["deal_id"]}},
    # Approvals: on the draft invoice from make_objects(). Without htmx every action
    # redirects (303), refused or not; the refusal is a flash message.
    **{
        f"approvals.{action}": {
            "method": "POST", "expect": 303, "args": lambda o: {"invoice_id": o["invoice_id"]},
        }
        for action in ("submit", "approve", "reject", "hold", "release", "cancel")
    },
    "approvals.timeline": {"method": "GET", "args": lambda o: {"invoice_id": o["invoice_id"]}},
    "approvals.review": {"method": "GET", "args": lambda o: {"invoice_id": o["invoice_id"]}},
    # Nothing selected: 400 with "Choose at least one invoice".
    "approvals.approve_many": {"method": "POST", "expect": 400},
    "approval_policy.four_eyes": {"method": "POST", "expect": 303},
    "approval_policy.set_threshold": {
        "method": "POST", "expect": 303, "data": {"currency": "EUR", "amount": "50000"},
    },
    "approval_policy.remove_threshold": {
        "method": "POST", "expect": 303, "args": {"currency": "EUR"},
    },
    # Invoices (drafting and editing): an invoice made by make_objects().
    "invoices.create_drafts": {"method": "POST", "expect": 303},
    "invoices.show": {"method": "GET", "args": lambda o: {"invoice_id": o["invoice_id"]}},
    "invoices.preview": {"method": "GET", "args": lambda o: {"invoice_id": o["invoice_id"]}},
    "invoices.status_fragment": {"method": "GET",
                                 "args": lambda o: {"invoice_id": o["invoice_id"]}},
    "invoices.update_line": {"method": "POST", "expect": 422,
                             "args": lambda o: {"invoice_id": o["invoice_id"],
                                                "line_id": o["line_id"]}},
    "invoices.add_line": {"method": "POST", "expect": 409,
                          "args": lambda o: {"invoice_id": o["invoice_id"]}},
    "invoices.remove_line": {"method": "POST", "expect": 409,
                             "args": lambda o: {"invoice_id": o["invoice_id"],
                                                "line_id": o["line_id"]}},
    "invoices.move_line": {"method": "POST", "expect": 409,
                           "args": lambda o: {"invoice_id": o["invoice_id"],
                                              "line_id": o["line_id"]}},
    "invoices.update_settings": {"method": "POST", "expect": 422,
                                 "args": lambda o: {"invoice_id": o["invoice_id"]}},
    "invoices.update_billto": {"method": "POST", "expect": 422,
                               "args": lambda o: {"invoice_id": o["invoice_id"]}},
    "invoices.add_discount": {"method": "POST", "expect": 422,
                              "args": lambda o: {"invoice_id": o["invoice_id"]}},
    "invoices.remove_discount": {"method": "POST", "expect": 409,
                                 "args": lambda o: {"invoice_id": o["invoice_id"],
                                                    "discount_id": o["discount_id"]}},
    "invoices.reapply": {"method": "POST", "expect": 303,
                         "args": lambda o: {"invoice_id": o["invoice_id"]}},
    "invoices.draft_from_deal": {"method": "POST", "expect": 303,
                                 "args": lambda o: {"deal_id": o["deal_id"]}},
    # Push and write-back: the draft from make_objects() cannot be pushed (refused, 303);
    # without a selection the bulk push answers 400.
    "push.push_one": {"method": "POST", "expect": 303,
                      "args": lambda o: {"invoice_id": o["invoice_id"]}},
    "push.status": {"method": "GET", "args": lambda o: {"invoice_id": o["invoice_id"]}},
    "push.push_many": {"method": "POST", "expect": 400},
    "push.batch": {"method": "GET", "args": lambda o: {"batch_id": o["batch_id"]}},
    "push.recover": {"method": "POST", "expect": 303,
                     "args": lambda o: {"invoice_id": o["invoice_id"]}},
    "writeback.retry": {"method": "POST", "expect": 303,
                        "args": lambda o: {"item_id": o["writeback_id"]}},
    # Mismatches and sync health.
    "mismatches.ack": {"method": "POST", "expect": 303,
                       "args": lambda o: {"mismatch_id": o["mismatch_id"]}},
    "mismatches.resync": {"method": "POST", "expect": 303,
                          "args": lambda o: {"mismatch_id": o["mismatch_id"]}},
    "health.run_now": {"method": "POST", "expect": 303, "args": {"job_id": "stripe.payments"}},
    # Public, authenticated by Stripe's signature: with no signing secret set, 503.
    "stripe_webhooks.receive": {"method": "POST", "public_expect": 503},
    # Field mappings (no Pipedrive connected here): reload is refused with a message
    # (303); an empty choice or name is refused next to the field (400).
    "mappings.reload": {"method": "POST", "expect": 303},
    "mappings.save": {"method": "POST", "expect": 400, "args": {"purpose": "po_number"}},
    "mappings.create": {"method": "POST", "expect": 400, "args": {"purpose": "po_number"}},
    "mappings.switch_off": {"method": "POST", "expect": 303, "args": {"purpose": "po_number"}},
    "mappings.use_default": {"method": "POST", "expect": 303, "args": {"purpose": "po_number"}},
    # Billing rules: the pipeline from make_objects().
    "rules.reload": {"method": "POST", "expect": 303},
    "rules.save_pipeline": {"method": "POST", "expect": 303, "data": {"match": "won"},
                            "args": lambda o: {"pipeline_id": o["pipeline_id"]}},
    "rules.save_defaults": {"method": "POST", "expect": 303,
                            "data": {"currency": "EUR", "days_until_due": "14",
                                     "collection_method": "send_invoice"}},
    "rules.save_tax": {"method": "POST", "expect": 303,
                       "data": {"percent": "19", "pd_method": "exclusive",
                                "behavior": "exclusive"}},
    "rules.remove_tax": {"method": "POST", "expect": 303, "args": {"mapping_id": 1}},
    "rules.save_product": {"method": "POST", "expect": 400},
    "rules.remove_product": {"method": "POST", "expect": 303, "args": {"mapping_id": 1}},
    # Public, authenticated by HTTP basic auth: without it, 401.
    "pipedrive_webhooks.receive": {"method": "POST", "public_expect": 401},
    # Sales (app/sales): the deal from make_objects(); a CSV export streams a 200.
    "sales.deal": {"method": "GET", "args": lambda o: {"deal_id": o["deal_id"]}},
    "sales.export": {"method": "GET", "args": {"table": "deals"}},
    # Public, authenticated by Pipedrive's signed token: without one, 403.
    "panel.deal": {"method": "GET", "args": {"deal_id": 9001}, "public_expect": 403},
    "panel.organization": {"method": "GET", "args": {"org_id": 1}, "public_expect": 403},
    # Public health probes (app/ops): the test database is migrated, so both answer 200.
    "ops.livez": {"method": "GET", "public_expect": 200},
    "ops.readyz": {"method": "GET", "public_expect": 200},
}


def make_objects(app) -> dict:
    """The records that routes with path arguments need."""
    from decimal import Decimal

    from app.extensions import db
    from app.intake.models import PdDeal, PdPipeline, SyncRun
    from app.invoices.models import Invoice, InvoiceDiscount, InvoiceLine

    with app.app_context():
        deal = PdDeal(id=9001, title="Matrix deal", value=Decimal("100"), currency="EUR",
                      status="won", ready=True)
        run = SyncRun(job="pipedrive.deals", trigger="manual", status="ok", counts={})
        invoice = Invoice(deal_id=deal.id, currency="EUR", status="draft",
                          subtotal=Decimal("100"), total=Decimal("100"))
        invoice.lines.append(InvoiceLine(description="Line", quantity=Decimal(1),
                                         unit_price=Decimal(100), edited_fields=[]))
        invoice.discounts.append(InvoiceDiscount(type="amount", value=Decimal(1)))
        db.session.add_all([deal, run, invoice])
        db.session.flush()
        from app.push.models import PushBatch
        from app.writeback.models import WritebackItem

        batch = PushBatch(total=0, refused=[])
        writeback = WritebackItem(kind="deal_note", dedupe_key="matrix", entity="deal",
                                  entity_id=deal.id, payload={"content": "x"}, status="failed")
        db.session.add_all([batch, writeback])
        from app.mismatches.models import Mismatch

        mismatch = Mismatch(rule=9, subject="deal:9001", deal_id=deal.id, severity="high",
                            explanation="Matrix mismatch", facts={}, data_hash="x")
        db.session.add(mismatch)
        pipeline = PdPipeline(id=9001, name="Matrix pipeline")
        db.session.add(pipeline)
        db.session.commit()
        return {"deal_id": deal.id, "run_id": run.id, "invoice_id": invoice.id,
                "line_id": invoice.lines[0].id, "discount_id": invoice.discounts[0].id,
                "mismatch_id": mismatch.id,
                "batch_id": batch.id, "writeback_id": writeback.id,
                "pipeline_id": pipeline.id}


def _routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        yield rule


def _call(client, app, rule, example, token, objects=None):
    method = example.get("method") or ("GET" if "GET" in rule.methods else "POST")
    args = example.get("args", {})
    if callable(args):
        args = args(objects or {})
    with app.test_request_context():
        from flask import url_for

        url = url_for(rule.endpoint, **args)
    data = dict(example.get("data", {}))
    if method == "POST":
        data["csrf_token"] = token
        return client.post(url, data=data)
    return client.get(url)


def test_every_route_declares_access(app):
    """Default deny is enforced by the hook, but every route must say what it needs."""
    missing = []
    for rule in _routes(app):
        view = app.view_functions[rule.endpoint]
        if not getattr(view, "desk_public", False) and not hasattr(view, "desk_permission"):
            missing.append(rule.endpoint)
    assert missing == []


def test_routes_with_arguments_or_posts_have_examples(app):
    for rule in _routes(app):
        needs = rule.arguments or "GET" not in rule.methods
        if needs:
            assert rule.endpoint in EXAMPLES, f"add {rule.endpoint} to EXAMPLES"


@pytest.mark.parametrize("role", sorted(ROLES))
def test_matrix(app, client, make_user, login, role):
    from tests.conftest import csrf_token

    user = make_user(role)
    objects = make_objects(app)
    checked = 0
    for rule in _routes(app):
        view = app.view_functions[rule.endpoint]
        if getattr(view, "desk_public", False):
            continue
        example = EXAMPLES.get(rule.endpoint, {})
        permission = view.desk_permission
        # Fresh sign-in for every route: some routes (sign-out) end the session.
        client.delete_cookie("session")
        login(user)
        token = csrf_token(client, "/")
        resp = _call(client, app, rule, example, token, objects)
        if role in PERMISSIONS[permission][0]:
            assert resp.status_code == example.get("expect", 200), (rule.endpoint, role)
        else:
            assert resp.status_code == 403, (rule.endpoint, role)
            assert permission in resp.get_data(as_text=True)
        resp.close()  # a streamed body (CSV export) holds its request open until closed
        checked += 1
    assert checked >= 5


def test_anonymous_is_sent_to_sign_in(app, client):
    from tests.conftest import csrf_token

    token = csrf_token(client, "/login")
    objects = make_objects(app)
    for rule in _routes(app):
        view = app.view_functions[rule.endpoint]
        example = EXAMPLES.get(rule.endpoint, {})
        resp = _call(client, app, rule, example, token, objects)
        if getattr(view, "desk_public", False):
            assert resp.status_code == example.get("public_expect", 200), rule.endpoint
        else:
            assert resp.status_code == 302, rule.endpoint
            assert "/login?next=" in resp.headers["Location"], rule.endpoint


def test_anonymous_htmx_request_redirects_the_browser(client):
    resp = client.get("/admin/audit/", headers={"HX-Request": "true"})
    assert resp.status_code == 401
    assert resp.headers["HX-Redirect"].startswith("/login?next=")


def test_route_without_permission_is_closed_to_everyone(app, client, make_user, login):
    def secret():
        return "should never be seen"

    app.add_url_rule("/unguarded", "unguarded", secret)
    login(make_user(*ROLES))
    resp = client.get("/unguarded")
    assert resp.status_code == 403
    assert b"closed to everyone" in resp.data


def test_roles_page_lists_every_permission(client, make_user, login):
    login(make_user("admin"))
    html = client.get("/admin/roles").get_data(as_text=True)
    for name in PERMISSIONS:
        assert name in html
