"""Billing rules: ready-to-bill stages per pipeline, defaults, tax and product mappings."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from app.audit.models import AuditEntry
from app.extensions import db
from app.intake.models import BillingRule, PdDeal, PdPipeline, PdStage


def _pipeline(app, name: str) -> tuple[int, dict[str, int]]:
    with app.app_context():
        p = db.session.execute(select(PdPipeline).where(PdPipeline.name == name)).scalar_one()
        stages = db.session.execute(select(PdStage).where(PdStage.pipeline_id == p.id)
                                    ).scalars()
        return p.id, {s.name: s.id for s in stages}


def _ready_ids(app, pipeline_id: int) -> set[int]:
    with app.app_context():
        return set(db.session.execute(
            select(PdDeal.id).where(PdDeal.pipeline_id == pipeline_id, PdDeal.ready.is_(True))
        ).scalars())


def _expected(app, pipeline_id: int, stage_ids: set[int], match: str) -> set[int]:
    with app.app_context():
        out = set()
        for d in db.session.execute(select(PdDeal).where(PdDeal.pipeline_id == pipeline_id)
                                    ).scalars():
            if d.is_deleted or d.status in ("lost", "deleted"):
                continue
            in_stage, won = d.stage_id in stage_ids, d.status == "won"
            if {"stage": in_stage, "won": won, "stage_and_won": in_stage and won,
                    "stage_or_won": in_stage or won}[match]:
                out.add(d.id)
        return out


def _actions(app, prefix: str) -> list[str]:
    with app.app_context():
        return list(db.session.execute(
            select(AuditEntry.action).where(AuditEntry.action.like(f"{prefix}%"))
            .order_by(AuditEntry.id)
        ).scalars())


def test_ready_stages_decide_which_deals_are_ready(app, synced, admin):
    pid, stages = _pipeline(app, "New business")
    audited = len(_actions(app, "billing_rule."))  # the fixture's default rules
    before = _ready_ids(app, pid)
    chosen = {stages["Negotiation"]}
    resp = admin.post(f"/admin/rules/pipelines/{pid}",
                      {"stages": [str(s) for s in chosen], "match": "stage",
                       "paid_stage": str(stages["Qualified"])})
    assert resp.status_code == 303
    after = _ready_ids(app, pid)
    assert after == _expected(app, pid, chosen, "stage")
    assert after and after != before
    with app.app_context():
        rule = db.session.execute(select(BillingRule).where(BillingRule.pipeline_id == pid)
                                  ).scalar_one()
        assert (rule.ready_stage_ids, rule.match, rule.paid_stage_id) == (
            sorted(chosen), "stage", stages["Qualified"])
    page = admin.get("/admin/rules/").get_data(as_text=True)
    assert "changed whether they are ready to bill" in page

    # Won only: the stage choice plays no part.
    assert admin.post(f"/admin/rules/pipelines/{pid}", {"match": "won"}).status_code == 303
    assert _ready_ids(app, pid) == _expected(app, pid, set(), "won")
    assert _actions(app, "billing_rule.")[audited:] == ["billing_rule.set", "billing_rule.set"]


def test_a_stage_of_another_pipeline_is_refused(app, synced, admin):
    pid, _stages = _pipeline(app, "New business")
    _other, other_stages = _pipeline(app, "Renewals")
    before = _ready_ids(app, pid)
    audited = _actions(app, "billing_rule.")
    resp = admin.post(f"/admin/rules/pipelines/{pid}",
                      {"stages": [str(other_stages["Ready to invoice"])], "match": "stage"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "is not a stage of the New business pipeline" in html
    assert f'id="pipeline-{pid}-stages-error"' in html
    assert _ready_ids(app, pid) == before
    assert _actions(app, "billing_rule.") == audited


def test_rule_choices_are_checked(app, synced, admin):
    pid, stages = _pipeline(app, "Renewals")
    audited = _actions(app, "billing_rule.")
    resp = admin.post(f"/admin/rules/pipelines/{pid}", {"match": "stage"})
    assert resp.status_code == 400
    assert "Choose at least one ready-to-bill stage" in resp.get_data(as_text=True)
    ready = str(stages["Ready to invoice"])
    resp = admin.post(f"/admin/rules/pipelines/{pid}",
                      {"stages": [ready], "match": "stage", "paid_stage": ready})
    assert resp.status_code == 400
    assert "paid stage cannot also be a ready-to-bill stage" in resp.get_data(as_text=True)
    resp = admin.post(f"/admin/rules/pipelines/{pid}", {"stages": [ready], "match": "always"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert "Choose when a deal of this pipeline is ready to bill" in html
    assert f'id="pipeline-{pid}-stage-{ready}" name="stages" value="{ready}" checked' in html
    assert admin.post("/admin/rules/pipelines/999999", {"match": "won"}).status_code == 404
    assert _actions(app, "billing_rule.") == audited


def test_defaults_are_validated_and_read_by_the_accessor(app, admin):
    from app.rules.settings import billing_defaults

    with app.app_context():
        d = billing_defaults()
        assert (d.currency, d.days_until_due, d.collection_method, d.saved) == (
            None, 30, "send_invoice", False)
    resp = admin.post("/admin/rules/defaults", {"currency": "XYZ", "days_until_due": "1000",
                                                "collection_method": "cash"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "XYZ is not a currency Stripe bills in" in html
    assert "At most 365 days." in html
    assert "Choose how invoices are collected." in html
    assert 'value="XYZ"' in html  # kept what was typed
    resp = admin.post("/admin/rules/defaults", {"currency": "chf", "days_until_due": "-3",
                                                "collection_method": "send_invoice"})
    assert resp.status_code == 400
    assert "whole number of days" in resp.get_data(as_text=True)
    assert _actions(app, "billing_defaults") == []

    resp = admin.post("/admin/rules/defaults", {"currency": "chf", "days_until_due": "14",
                                                "collection_method": "charge_automatically"})
    assert resp.status_code == 303
    with app.app_context():
        d = billing_defaults()
        assert (d.currency, d.days_until_due, d.collection_method, d.saved) == (
            "CHF", 14, "charge_automatically", True)
    assert _actions(app, "billing_defaults") == ["billing_defaults.set"]


def test_tax_mappings(app, admin):
    from app.rules.settings import tax_mapping_for

    bad = admin.post("/admin/rules/taxes", {"percent": "150", "pd_method": "exclusive",
                                            "behavior": "inclusive", "tax_rate_id": "tax_1"})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert "between 0 and 100" in html
    assert "starts with txr_" in html
    assert 'value="tax_1"' in html
    for percent, message in (("abc", "as a number"), ("", "Enter Pipedrive"),
                             ("7.12345", "four decimals"), ("-1", "between 0 and 100")):
        resp = admin.post("/admin/rules/taxes", {"percent": percent, "pd_method": "exclusive",
                                                 "behavior": "exclusive"})
        assert resp.status_code == 400
        assert message in resp.get_data(as_text=True), percent
    resp = admin.post("/admin/rules/taxes", {"percent": "19", "pd_method": "none",
                                             "behavior": "exclusive"})
    assert resp.status_code == 400

    ok = admin.post("/admin/rules/taxes", {"percent": "19", "pd_method": "exclusive",
                                           "behavior": "inclusive",
                                           "tax_rate_id": "txr_1NxAbCdEf"})
    assert ok.status_code == 303
    # The same tax again replaces the row.
    assert admin.post("/admin/rules/taxes", {"percent": "19,0", "pd_method": "exclusive",
                                             "behavior": "exclusive"}).status_code == 303
    assert admin.post("/admin/rules/taxes", {"percent": "7.7", "pd_method": "inclusive",
                                             "behavior": "inclusive"}).status_code == 303
    with app.app_context():
        rule = tax_mapping_for(Decimal("19.00"), "exclusive")
        assert (rule.behavior, rule.tax_rate_id) == ("exclusive", None)
        assert tax_mapping_for(Decimal("7.7"), "inclusive").behavior == "inclusive"
        assert tax_mapping_for(Decimal("7.7"), "exclusive") is None
        assert tax_mapping_for(Decimal("0"), "none") is None
        from app.rules.models import TaxMapping

        assert db.session.execute(select(func.count()).select_from(TaxMapping)).scalar() == 2
        first = db.session.execute(select(TaxMapping.id).order_by(TaxMapping.id)).scalar()
    page = admin.get("/admin/rules/").get_data(as_text=True)
    assert "7.7%" in page and "19%" in page
    assert admin.post(f"/admin/rules/taxes/{first}/remove").status_code == 303
    with app.app_context():
        assert tax_mapping_for(Decimal("19"), "exclusive") is None
    assert _actions(app, "tax_mapping") == [
        "tax_mapping.set", "tax_mapping.set", "tax_mapping.set", "tax_mapping.remove"]


def test_product_mappings(app, synced, admin):
    from app.rules.settings import stripe_product_for

    page = admin.get("/admin/rules/").get_data(as_text=True)
    assert "Training day (BD-TRAIN)" in page
    resp = admin.post("/admin/rules/products", {"code": "NOPE", "stripe_product_id": "price_1"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "No Pipedrive product has the code" in html
    assert "starts with prod_" in html
    assert 'value="price_1"' in html
    assert admin.post("/admin/rules/products", {"code": "BD-TRAIN",
                                                "stripe_product_id": "prod_Train01"}
                      ).status_code == 303
    with app.app_context():
        assert stripe_product_for("BD-TRAIN") == "prod_Train01"
        assert stripe_product_for("BD-HW") is None
        assert stripe_product_for(None) is None
        from app.rules.models import ProductMapping

        mapping_id = db.session.execute(select(ProductMapping.id)).scalar_one()
    assert admin.post(f"/admin/rules/products/{mapping_id}/remove").status_code == 303
    with app.app_context():
        assert stripe_product_for("BD-TRAIN") is None
    assert _actions(app, "product_mapping") == ["product_mapping.set",
                                                "product_mapping.remove"]


def test_page_links_the_approval_policy(app, admin):
    html = admin.get("/admin/rules/").get_data(as_text=True)
    assert 'href="/admin/approvals/"' in html
    assert 'id="four-eyes-now">on<' in html
    admin_index = admin.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/rules/"' in admin_index and 'href="/admin/mappings/"' in admin_index


def test_reload_brings_new_products_to_choose_from(app, synced, admin):
    import requests

    resp = requests.post(f"{synced.url}/api/v2/products", headers=synced.headers(),
                         json={"name": "Event ticket", "code": "BD-EVENT"}, timeout=30)
    assert resp.status_code == 200, resp.text
    refused = admin.post("/admin/rules/products", {"code": "BD-EVENT",
                                                   "stripe_product_id": "prod_Event01"})
    assert refused.status_code == 400
    assert admin.post("/admin/rules/reload").status_code == 303
    page = admin.get("/admin/rules/").get_data(as_text=True)
    assert "Event ticket (BD-EVENT)" in page
    assert admin.post("/admin/rules/products", {"code": "BD-EVENT",
                                                "stripe_product_id": "prod_Event01"}
                      ).status_code == 303
    assert _actions(app, "pipedrive_metadata") == ["pipedrive_metadata.reload"]
