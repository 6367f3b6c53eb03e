"""README's "First run, step by step", from an empty database to a paid invoice.

The README's commands run in its order through the Flask CLI runner (the real
`flask desk ...` commands); the pages through the test client; Pipedrive and Stripe
are the sandboxes on real sockets, reached by the desk's production clients. The
ready-to-bill rule is set by name before anything was imported from Pipedrive.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.intake.models import PdDeal, PdField, PdPipeline, PdStage
from tests.conftest import TEST_PASSWORD, csrf_token
from tests.push.helpers import stripe_invoices_for


def _desk(app, *args: str):
    """`flask desk ARGS...` as an ops engineer types it; returns the click result."""
    result = app.test_cli_runner().invoke(args=["desk", *args])
    return result


def _ok(result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout  # log lines go to stderr


def _signed_in(app, email: str):
    client = app.test_client()
    resp = client.post("/login", data={"email": email, "password": TEST_PASSWORD,
                                       "csrf_token": csrf_token(client, "/login")})
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:500]
    return client


def _post(client, path: str, data: dict | None = None, page: str = "/"):
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, page)})


def _count(app, model) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


@pytest.fixture
def accounts(app, desk_on_pipedrive, stripe_desk):
    """The "real" accounts: a Pipedrive company with data, an empty Stripe account; the
    desk's environment points at them (README step 1)."""
    desk_on_pipedrive.seed()
    return desk_on_pipedrive, stripe_desk


def test_readme_first_run_from_an_empty_database_to_a_paid_invoice(app, accounts):
    pipedrive, stripe = accounts
    # 2. The schema (already at head here: upgrading again changes nothing).
    _ok(_desk(app, "db", "upgrade"))
    assert _count(app, PdPipeline) == 0 and _count(app, PdDeal) == 0 and _count(app, PdField) == 0

    # 3. The first admin (and the people who make and approve invoices).
    for email, role in (("ops@example.com", "admin"), ("fin@example.com", "finance"),
                        ("boss@example.com", "approver")):
        _ok(_desk(app, "create-user", email, "--role", role, "--password", TEST_PASSWORD))

    # 4.-5. The connections come from the environment; the desk shows what it uses.
    shown = _ok(_desk(app, "config"))
    assert f"PIPEDRIVE_BASE_URL = {pipedrive.url}" in shown
    assert f"STRIPE_API_BASE = {stripe.url}" in shown
    admin = _signed_in(app, "ops@example.com")
    for vendor in ("pipedrive", "stripe"):  # "Test connection" on Admin → Connections
        resp = _post(admin, f"/admin/connections/{vendor}/test", page="/admin/connections/")
        assert resp.status_code == 200
        assert "Connected to " in resp.get_data(as_text=True), vendor

    # 6. Field mappings: the first visit reads the fields from Pipedrive.
    page = admin.get("/admin/mappings/").get_data(as_text=True)
    assert _count(app, PdField) > 0
    assert 'value="deal:PO number"' in page
    resp = _post(admin, "/admin/mappings/po_number", {"field": "deal:PO number"},
                 page="/admin/mappings/")
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]

    # 7. The ready-to-bill rule by name, before any import: the desk reads the
    #    pipelines and stages from Pipedrive first.
    assert _count(app, PdPipeline) == 0
    out = _ok(_desk(app, "rules", "set", "New business", "--stage", "Contract signed"))
    assert "New business: stage_or_won [Contract signed]" in out
    assert _count(app, PdDeal) == 0

    # 8. The first import.
    out = _ok(_desk(app, "sync", "deals"))
    assert out.startswith("ok:"), out
    with app.app_context():
        pipeline = db.session.execute(
            select(PdPipeline).where(PdPipeline.name == "New business")).scalar_one()
        signed = db.session.execute(select(PdStage).where(
            PdStage.pipeline_id == pipeline.id, PdStage.name == "Contract signed")).scalar_one()
        ready = db.session.execute(select(PdDeal).where(
            PdDeal.ready.is_(True), PdDeal.pipeline_id == pipeline.id,
            PdDeal.stage_id == signed.id, PdDeal.currency == "EUR",
            PdDeal.product_count > 0, PdDeal.has_recurring.is_(False),
        ).order_by(PdDeal.id)).scalars().all()
        ready_ids = [d.id for d in ready]
        # Only what the rule says: no deal of a pipeline without a rule is ready.
        assert not db.session.execute(select(PdDeal.id).where(
            PdDeal.ready.is_(True), PdDeal.pipeline_id != pipeline.id)).first()
    assert ready_ids, "the seeded New business pipeline has EUR deals in Contract signed"

    # 9.-10. (gunicorn and the scheduler: here the test client, and the scheduler's push
    # job called as it calls it.) Finance finds the deal in the queue and drafts it.
    finance = _signed_in(app, "fin@example.com")
    queue = finance.get("/queue/").get_data(as_text=True)
    assert f"/deals/{ready_ids[0]}" in queue
    invoice_id = None
    for deal_id in ready_ids:
        resp = _post(finance, f"/deals/{deal_id}/draft", page=f"/deals/{deal_id}")
        assert resp.status_code == 303
        if "/invoices/" in resp.headers["Location"]:
            invoice_id = int(resp.headers["Location"].rstrip("/").split("/")[-1])
            break
    assert invoice_id, "no ready deal could be drafted"
    from app.invoices.models import Invoice

    with app.app_context():
        inv = db.session.get(Invoice, invoice_id)
        if not inv.billing_email:  # the seed leaves some contacts without one
            inv.billing_email = "ap@example.com"
            db.session.commit()
        version = inv.version
    resp = _post(finance, f"/invoices/{invoice_id}/submit", page=f"/invoices/{invoice_id}")
    assert resp.status_code == 303
    # The approval policy as it comes: four-eyes, so the approver approves.
    approver = _signed_in(app, "boss@example.com")
    resp = _post(approver, f"/invoices/{invoice_id}/approve", {"version": str(version)},
                 page=f"/invoices/{invoice_id}")
    assert resp.status_code == 303
    with app.app_context():
        assert db.session.get(Invoice, invoice_id).status == "approved"
    resp = _post(finance, f"/invoices/{invoice_id}/push", page=f"/invoices/{invoice_id}")
    assert resp.status_code == 303
    with app.app_context():
        from app.push.worker import scheduled_push

        scheduled_push()  # the scheduler's "push.work" job
        db.session.commit()
        inv = db.session.get(Invoice, invoice_id)
        assert inv.status == "pushed", inv.status
        stripe_id = inv.stripe_invoice_id

    found = stripe_invoices_for(stripe, invoice_id)
    assert [i["id"] for i in found] == [stripe_id]
    assert found[0]["status"] == "open"  # finalized

    # 11. The customer pays; the payment sync sees it.
    stripe.pay_invoice(stripe_id)
    _ok(_desk(app, "sync", "payments"))
    with app.app_context():
        assert db.session.get(Invoice, invoice_id).payment_status == "paid"
    _ok(_desk(app, "audit", "verify"))


def test_an_unknown_pipeline_or_stage_lists_the_names_pipedrive_has(app, accounts):
    out = _desk(app, "rules", "set", "New business", "--stage", "Signed")
    assert out.exit_code == 1
    assert "no stage named 'Signed'" in out.output
    for stage in ("Qualified", "Negotiation", "Contract signed"):
        assert f"“{stage}”" in out.output
    assert "Traceback" not in out.output
    out = _desk(app, "rules", "set", "New busines", "--stage", "Contract signed")
    assert out.exit_code == 1
    assert "no pipeline named 'New busines'" in out.output
    assert "“New business”, “Renewals”" in out.output
    from app.intake.models import BillingRule

    assert _count(app, BillingRule) == 0


def test_rules_set_says_when_pipedrive_cannot_be_reached(app, pipedrive_sandbox):
    app.config.update(PIPEDRIVE_BASE_URL=pipedrive_sandbox.url, PIPEDRIVE_API_TOKEN=None)
    out = _desk(app, "rules", "set", "New business", "--stage", "Contract signed")
    assert out.exit_code == 1
    assert "A pipeline named 'New business' is not known to the desk yet" in out.output
    assert "could not be read from Pipedrive: No Pipedrive API token" in out.output
    assert "Traceback" not in out.output


@pytest.fixture
def admin(app, make_user, client, login):
    user = make_user("admin")
    login(user)
    return client


def test_rules_page_reads_pipelines_on_first_visit(app, accounts, admin):
    pipedrive = accounts[0]
    in_pipedrive = len(pipedrive.get("/api/v2/pipelines").json()["data"])
    assert _count(app, PdPipeline) == 0
    page = admin.get("/admin/rules/").get_data(as_text=True)
    assert f"Read {in_pipedrive} pipelines" in page
    assert 'data-pipeline="New business"' in page and "Contract signed" in page
    assert _count(app, PdPipeline) == in_pipedrive
    # Known now: the next visit does not read them again.
    pipedrive.reset_ledger()
    page = admin.get("/admin/rules/").get_data(as_text=True)
    assert f"Read {in_pipedrive} pipelines" not in page
    assert 'data-pipeline="New business"' in page
    assert pipedrive.ledger()["entries"] == []


def test_mappings_page_reads_fields_on_first_visit(app, accounts, admin):
    assert _count(app, PdField) == 0
    page = admin.get("/admin/mappings/").get_data(as_text=True)
    assert "fields from Pipedrive." in page
    assert 'value="deal:PO number"' in page
    assert _count(app, PdField) > 0


@pytest.mark.parametrize("where", ["not configured", "nobody listening"])
def test_first_visits_say_when_pipedrive_cannot_be_reached(app, admin, where):
    if where == "nobody listening":
        import socket

        with socket.socket() as sock:  # a port that was free a moment ago
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        app.config.update(PIPEDRIVE_BASE_URL=f"http://127.0.0.1:{port}",
                          PIPEDRIVE_API_TOKEN="pd_token",
                          PIPEDRIVE_CLIENT_OPTIONS={"sleep": lambda s: None})
    resp = admin.get("/admin/rules/")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "No pipelines are known yet, and they could not be read from Pipedrive" in page
    assert "Reload pipelines, stages and products from Pipedrive" in page
    resp = admin.get("/admin/mappings/")
    assert resp.status_code == 200
    assert "No fields are known yet, and they could not be read from Pipedrive" in \
        resp.get_data(as_text=True)
    assert _count(app, PdPipeline) == 0 and _count(app, PdField) == 0


def test_an_unknown_field_name_is_kept_and_the_fitting_ones_listed(app, accounts, admin):
    admin.get("/admin/mappings/")
    resp = admin.post("/admin/mappings/po_number", data={
        "field": "deal:Purchase order", "csrf_token": csrf_token(admin, "/admin/mappings/")})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "no deal field called “Purchase order”" in html
    assert "“PO number”" in html[html.index("no deal field called"):][:2000]
    assert '<option value="deal:Purchase order" selected>' in html


def test_an_unknown_field_name_with_pipedrive_out_of_reach_is_kept(app, accounts, admin):
    admin.get("/admin/mappings/")
    app.config.update(PIPEDRIVE_API_TOKEN=None)
    resp = admin.post("/admin/mappings/po_number", data={
        "field": "deal:Order reference", "csrf_token": csrf_token(admin, "/admin/mappings/")})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert ("No deal field called “Order reference” is known to the desk yet, and the fields "
            "could not be read from Pipedrive: No Pipedrive API token") in html
    assert '<option value="deal:Order reference" selected>' in html
