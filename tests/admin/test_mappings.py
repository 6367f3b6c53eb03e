"""Field mappings, chosen by name from the live field lists of the Pipedrive sandbox."""

from __future__ import annotations

import re

import requests
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.extensions import db
from app.intake.models import FieldMapping, PdDeal, PdField
from app.mappings.purposes import PURPOSES
from app.payments.states import PAYMENT_STATES


def _sandbox_post(sandbox, path: str, body: dict) -> dict:
    resp = requests.post(f"{sandbox.url}{path}", json=body, headers=sandbox.headers(), timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def _sandbox_patch(sandbox, path: str, body: dict) -> dict:
    resp = requests.patch(f"{sandbox.url}{path}", json=body, headers=sandbox.headers(),
                          timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def _deal_fields(sandbox) -> list[dict]:
    resp = sandbox.get("/api/v2/dealFields", limit=500)
    assert resp.status_code == 200
    return resp.json()["data"]


def _row(app, purpose: str) -> FieldMapping | None:
    with app.app_context():
        row = db.session.execute(
            select(FieldMapping).where(FieldMapping.purpose == purpose)
        ).scalar_one_or_none()
        if row is not None:
            db.session.expunge(row)
        return row


def _actions(app, object_type: str) -> list[str]:
    with app.app_context():
        return list(db.session.execute(
            select(AuditEntry.action).where(AuditEntry.object_type == object_type)
            .order_by(AuditEntry.id)
        ).scalars())


def _codes(app) -> list[str]:
    with app.app_context():
        return list(db.session.execute(select(PdField.field_code)).scalars())


def test_page_lists_every_purpose_by_name_and_never_a_key(app, synced, admin):
    html = admin.get("/admin/mappings/").get_data(as_text=True)
    for purpose in PURPOSES.values():
        assert f'id="mapping-{purpose.key}"' in html
        assert purpose.label.replace("'", "&#39;") in html
    assert 'value="deal:PO number"' in html  # a live field, offered by name
    hashes = [c for c in _codes(app) if re.fullmatch(r"[0-9a-f]{40}", c)]
    assert len(hashes) >= 5
    for code in hashes:
        assert code not in html


def test_mapping_by_name_applies_from_the_next_sync(app, synced, admin):
    """A field added in Pipedrive, picked by its name, feeds the billing email."""
    from app.intake.operations import run_deal_sync

    field = _sandbox_post(synced, "/api/v2/dealFields",
                          {"field_name": "Invoice recipient", "field_type": "varchar"})
    with app.app_context():
        deal = db.session.execute(
            select(PdDeal).where(PdDeal.ready.is_(True)).order_by(PdDeal.id)
        ).scalars().first()
        deal_id, old_email = deal.id, deal.billing_email
    _sandbox_patch(synced, f"/api/v2/deals/{deal_id}",
                   {"custom_fields": {field["field_code"]: "ap@recipient.example"}})

    # Not known here yet: saving it by name reads the deal fields from Pipedrive first.
    resp = admin.post("/admin/mappings/billing_email", {"field": "deal:Invoice recipient"})
    assert resp.status_code == 303
    row = _row(app, "billing_email")
    assert (row.entity, row.field_name) == ("deal", "Invoice recipient")

    with app.app_context():
        assert db.session.get(PdDeal, deal_id).billing_email == old_email  # not before a sync
        run = run_deal_sync(trigger="manual")
        assert run.status == "ok", run.error
        assert db.session.get(PdDeal, deal_id).billing_email == "ap@recipient.example"
    assert _actions(app, "field_mapping") == ["field_mapping.set"]


def test_type_mismatch_is_refused_next_to_the_field(app, synced, admin):
    resp = admin.post("/admin/mappings/wb_deal_amount_invoiced", {"field": "deal:PO number"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "“PO number” is a text field, which cannot hold an amount" in html
    assert 'id="field-wb_deal_amount_invoiced-error"' in html
    # What was chosen is kept.
    section = html[html.index('id="mapping-wb_deal_amount_invoiced"'):]
    assert re.search(r'<option value="deal:PO number"\s+selected', section)
    assert _row(app, "wb_deal_amount_invoiced") is None
    assert _actions(app, "field_mapping") == []


def test_two_purposes_cannot_target_one_field(app, synced, admin):
    # "VAT ID" on deals is where the VAT id is read from (its default).
    resp = admin.post("/admin/mappings/po_number", {"field": "deal:VAT ID"}, htmx=True)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "already used for VAT id" in html
    assert "<html" not in html and 'id="mapping-po_number"' in html  # just the component
    assert _row(app, "po_number") is None

    # Once the VAT id reads elsewhere, the field is free.
    assert admin.post("/admin/mappings/vat_id", {"field": "organization:VAT ID"}
                      ).status_code == 303
    assert admin.post("/admin/mappings/po_number", {"field": "deal:VAT ID"}).status_code == 303
    # ...and the VAT id cannot go back to its default, which includes that field.
    resp = admin.post("/admin/mappings/vat_id/default")
    assert resp.status_code == 400
    assert "now used for PO number" in resp.get_data(as_text=True)
    assert _row(app, "vat_id").entity == "organization"


def test_a_key_or_an_unknown_name_is_refused(app, synced, admin):
    with app.app_context():
        code = db.session.execute(
            select(PdField.field_code).where(PdField.entity == "deal",
                                             PdField.name == "PO number")
        ).scalar_one()
    resp = admin.post("/admin/mappings/po_number", {"field": f"deal:{code}"})
    assert resp.status_code == 400
    assert "by its name" in resp.get_data(as_text=True)
    resp = admin.post("/admin/mappings/po_number", {"field": "deal:Purchase order"})
    assert resp.status_code == 400
    assert "no deal field called “Purchase order”" in resp.get_data(as_text=True)
    resp = admin.post("/admin/mappings/po_number", {"field": "organization:VAT ID"})
    assert resp.status_code == 400
    assert "can only be a deal field" in resp.get_data(as_text=True)
    assert _row(app, "po_number") is None


def test_enum_status_maps_each_payment_state_to_an_option(app, synced, admin):
    from app.mappings.options import enum_option

    labels = ["Open", "Paid", "Overdue", "Partly paid", "Problem", "Closed"]
    field = _sandbox_post(synced, "/api/v2/dealFields", {
        "field_name": "Payment state", "field_type": "enum",
        "options": [{"label": x} for x in labels]})
    ids = {o["label"]: o["id"] for o in field["options"]}
    assert admin.post("/admin/mappings/reload").status_code == 303

    # First choice: the options whose words match are proposed, the rest must be chosen.
    resp = admin.post("/admin/mappings/wb_deal_payment_status", {"field": "deal:Payment state"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "choose which of its options each payment state is written as" in html
    assert re.search(rf'<option value="{ids["Paid"]}"\s+selected>Paid</option>', html)
    assert 'id="state-partially_paid-wb_deal_payment_status-error"' in html
    assert _row(app, "wb_deal_payment_status") is None

    answers = {s: ids["Problem"] for s in PAYMENT_STATES}
    answers.update(open=ids["Open"], paid=ids["Paid"], overdue=ids["Overdue"],
                   partially_paid=ids["Partly paid"], void=ids["Closed"])
    form = {"field": "deal:Payment state", **{f"state-{s}": str(v) for s, v in answers.items()}}
    form["state-refunded"] = "999999"  # not an option of this field
    resp = admin.post("/admin/mappings/wb_deal_payment_status", form)
    assert resp.status_code == 400
    assert "not an option of “Payment state”" in resp.get_data(as_text=True)

    form["state-refunded"] = str(ids["Problem"])
    assert admin.post("/admin/mappings/wb_deal_payment_status", form).status_code == 303
    row = _row(app, "wb_deal_payment_status")
    assert row.field_name == "Payment state"
    assert row.options_map == answers
    with app.app_context():
        assert enum_option("wb_deal_payment_status", "partially_paid") == ids["Partly paid"]
        assert enum_option("wb_deal_payment_status", "Partially paid") == ids["Partly paid"]
        assert enum_option("wb_deal_payment_status", "Disputed") == ids["Problem"]


def test_a_status_cannot_go_into_a_date_field(app, synced, admin):
    _sandbox_post(synced, "/api/v2/dealFields",
                  {"field_name": "Paid on", "field_type": "date"})
    admin.post("/admin/mappings/reload")
    resp = admin.post("/admin/mappings/wb_deal_payment_status", {"field": "deal:Paid on"})
    assert resp.status_code == 400
    assert "“Paid on” is a date field, which cannot hold a status" in resp.get_data(as_text=True)
    # The date is fine for the last payment date.
    assert admin.post("/admin/mappings/wb_deal_last_payment_date", {"field": "deal:Paid on"}
                      ).status_code == 303


def test_create_missing_field_creates_it_in_pipedrive_once(app, synced, admin):
    assert "Invoice number" not in [f["field_name"] for f in _deal_fields(synced)]
    page = admin.get("/admin/mappings/").get_data(as_text=True)
    assert 'id="create-wb_deal_invoice_number"' in page

    resp = admin.post("/admin/mappings/wb_deal_invoice_number/create",
                      {"new_name": "Invoice number", "new_entity": "deal"}, htmx=True)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "Created the deal field “Invoice number” in Pipedrive" in html
    created = [f for f in _deal_fields(synced) if f["field_name"] == "Invoice number"]
    assert len(created) == 1
    assert re.fullmatch(r"[0-9a-f]{40}", created[0]["field_code"])
    assert created[0]["field_type"] == "varchar"
    assert created[0]["field_code"] not in html  # the key is never shown
    row = _row(app, "wb_deal_invoice_number")
    assert (row.entity, row.field_name) == ("deal", "Invoice number")
    with app.app_context():
        known = db.session.execute(
            select(PdField).where(PdField.entity == "deal", PdField.name == "Invoice number")
        ).scalar_one()
        assert known.field_code == created[0]["field_code"]

    # A second click finds the field instead of making a twin.
    resp = admin.post("/admin/mappings/wb_deal_invoice_number/create",
                      {"new_name": "invoice number", "new_entity": "deal"})
    assert resp.status_code == 303
    assert len([f for f in _deal_fields(synced) if f["field_name"] == "Invoice number"]) == 1
    assert _actions(app, "pipedrive_field") == ["pipedrive_field.create"]

    # A monetary purpose gets a monetary field.
    admin.post("/admin/mappings/wb_deal_amount_collected/create",
               {"new_name": "Amount collected", "new_entity": "deal"})
    types = {f["field_name"]: f["field_type"] for f in _deal_fields(synced)}
    assert types["Amount collected"] == "monetary"


def test_create_refuses_a_name_another_purpose_uses(app, synced, admin):
    before = len(_deal_fields(synced))
    resp = admin.post("/admin/mappings/wb_deal_invoice_number/create",
                      {"new_name": "Stripe invoice id", "new_entity": "deal"})
    assert resp.status_code == 400
    assert "already used for Stripe invoice id" in resp.get_data(as_text=True)
    assert len(_deal_fields(synced)) == before


def test_switch_off_and_back_to_default(app, synced, admin):
    from app.writeback.mapping import DEAL_TARGETS, resolve

    resp = admin.post("/admin/mappings/wb_deal_invoice_url/off", htmx=True)
    assert resp.status_code == 200
    assert "Switched off" in resp.get_data(as_text=True)
    assert _row(app, "wb_deal_invoice_url").field_name == ""
    with app.app_context():
        assert resolve(DEAL_TARGETS["invoice_url"]) is None

    assert admin.post("/admin/mappings/wb_deal_invoice_url/default").status_code == 303
    assert _row(app, "wb_deal_invoice_url") is None
    with app.app_context():
        assert resolve(DEAL_TARGETS["invoice_url"]).name == "Invoice URL"
    assert _actions(app, "field_mapping") == ["field_mapping.off", "field_mapping.default"]


def test_write_back_writes_into_the_field_mapped_by_name(app, synced, admin):
    """A deal_fields write-back lands in the field the admin chose by name."""
    from app.writeback.operations import enqueue, process_outbox

    _sandbox_post(synced, "/api/v2/dealFields",
                  {"field_name": "Stripe reference", "field_type": "varchar"})
    admin.post("/admin/mappings/reload")
    assert admin.post("/admin/mappings/wb_deal_stripe_invoice_id",
                      {"field": "deal:Stripe reference"}).status_code == 303
    with app.app_context():
        deal_id = db.session.execute(select(PdDeal.id).order_by(PdDeal.id)).scalars().first()
        enqueue("deal_fields", "test:mapped", "deal", deal_id,
                {"fields": {"stripe_invoice_id": "in_mapped123"}, "currency": "EUR"},
                deal_id=deal_id)
        db.session.commit()
        counts = process_outbox()
        assert counts["done"] == 1, counts
    fields = {f["field_name"]: f["field_code"] for f in _deal_fields(synced)}
    deal = synced.get(f"/api/v2/deals/{deal_id}").json()["data"]
    assert deal["custom_fields"][fields["Stripe reference"]] == "in_mapped123"
    assert "Stripe invoice id" not in fields  # the default was not created


def test_reload_without_pipedrive_says_so(app, admin):
    resp = admin.post("/admin/mappings/reload")
    assert resp.status_code == 303
    page = admin.get("/admin/mappings/").get_data(as_text=True)
    assert "could not be read from Pipedrive" in page


def test_billing_address_follows_its_mapping_into_the_draft(app, synced, admin):
    """By default a draft is addressed to the organization's address; mapped to another
    field by name, drafts take the address from that field."""
    from app.intake.models import PdOrganization
    from app.intake.operations import run_deal_sync
    from app.invoices.drafting import create_draft
    from app.pipedrive.factory import pipedrive_client

    def draft_address(deal_id):
        with app.app_context():
            deal = db.session.get(PdDeal, deal_id)
            address = create_draft(deal, None, pipedrive_client()).address
            db.session.rollback()
            return address

    with app.app_context():
        deal = db.session.execute(
            select(PdDeal).join(PdOrganization, PdOrganization.id == PdDeal.org_id)
            .where(PdDeal.ready.is_(True), PdOrganization.address.is_not(None))
            .order_by(PdDeal.id)
        ).scalars().first()
        deal_id, org_address = deal.id, db.session.get(PdOrganization, deal.org_id).address
    default = draft_address(deal_id)
    assert default["city"] == org_address["locality"] and default["city"]

    field = _sandbox_post(synced, "/api/v2/dealFields",
                          {"field_name": "Invoice address", "field_type": "address"})
    _sandbox_patch(synced, f"/api/v2/deals/{deal_id}", {"custom_fields": {
        field["field_code"]: "Accounts Payable, Hafenstrasse 5, 20095 Hamburg"}})
    assert admin.post("/admin/mappings/reload").status_code == 303
    resp = admin.post("/admin/mappings/billing_address", {"field": "deal:Invoice address"})
    assert resp.status_code == 303
    with app.app_context():
        assert run_deal_sync(trigger="manual").status == "ok"
    mapped = draft_address(deal_id)
    assert mapped["line1"] == "Accounts Payable, Hafenstrasse 5, 20095 Hamburg"
    assert mapped["city"] == ""


def test_field_names_with_control_characters_are_refused_next_to_the_field(app, synced, admin):
    """Issue 15 defect 8: NUL, control characters and direction overrides in a name."""
    before = len(_deal_fields(synced))
    for bad in ("Invoice\x00number", "Invoice\x1b[31mnumber", "Invoice\nnumber",
                "Invoice\u202enumber", "Invoice\x85number"):
        resp = admin.post("/admin/mappings/wb_deal_invoice_number/create",
                          {"new_name": bad, "new_entity": "deal"}, htmx=True)
        html = resp.get_data(as_text=True)
        assert resp.status_code == 400, repr(bad)
        assert 'id="new-name-wb_deal_invoice_number-error"' in html
        assert "cannot contain control characters" in html
        resp = admin.post("/admin/mappings/po_number", {"field": f"deal:PO{bad[7:]}number"})
        html = resp.get_data(as_text=True)
        assert resp.status_code == 400 and 'id="field-po_number-error"' in html
        assert "cannot contain control characters" in html
    assert len(_deal_fields(synced)) == before  # nothing was created in Pipedrive
    assert _row(app, "wb_deal_invoice_number") is None and _row(app, "po_number") is None
    assert "pipedrive_field.create" not in _actions(app, "pipedrive_field")
