"""/admin/rules: when deals are ready to bill, invoice defaults, taxes, products (admin).

Plain forms: saved -> redirect (303) with a message; refused -> the page again
(400) with the message next to the field and what was typed kept.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.approvals.workflow import current_policy
from app.auth.permissions import requires
from app.extensions import db
from app.intake.models import BillingRule, PdPipeline, PdProduct
from app.money import STRIPE_CURRENCIES, plain_decimal
from app.pipedrive.client import PipedriveError
from app.pipedrive.factory import pipedrive_client
from app.rules import operations as ops
from app.rules.models import COLLECTION_METHODS, TAX_METHODS, ProductMapping, TaxMapping
from app.rules.settings import billing_defaults

bp = Blueprint("rules", __name__, url_prefix="/admin/rules")


def _page(form: str | None = None, errors: dict | None = None, typed: dict | None = None,
          status: int = 200):
    pipelines = db.session.execute(
        select(PdPipeline).order_by(PdPipeline.order_nr, PdPipeline.id)
    ).scalars().all()
    rules = {r.pipeline_id: r for r in db.session.execute(select(BillingRule)).scalars()}
    products = db.session.execute(select(PdProduct).order_by(PdProduct.name)).scalars().all()
    product_maps = {
        m.pd_product_code: m
        for m in db.session.execute(
            select(ProductMapping).order_by(ProductMapping.pd_product_code)
        ).scalars()
    }
    taxes = db.session.execute(
        select(TaxMapping).order_by(TaxMapping.pd_percent, TaxMapping.pd_method)
    ).scalars().all()
    return render_template(
        "rules/index.html", pipelines=pipelines, rules=rules, stages_of=ops.stages_of,
        matches=ops.MATCHES, defaults=billing_defaults(), methods=COLLECTION_METHODS,
        tax_methods=TAX_METHODS, taxes=taxes, products=products, product_maps=product_maps,
        codes=ops.product_codes(), currencies=sorted(STRIPE_CURRENCIES),
        policy=current_policy(),
        form=form, errors=errors or {}, typed=typed or {}, percent_text=_percent_text,
    ), status


def _percent_text(value) -> str:
    return plain_decimal(value)


def _refused(form: str, exc: ops.RuleInputError, typed: dict):
    db.session.rollback()
    return _page(form, exc.errors, typed, 400)


def _back(anchor: str):
    return redirect(url_for("rules.index") + f"#{anchor}", 303)


@bp.route("/")
@requires("rules.manage")
def index():
    _load_on_first_visit()
    return _page()


def _quick_client():
    """For a page view: one retry and a short timeout, so an unreachable Pipedrive
    costs seconds, not minutes (the Reload button and syncs wait longer)."""
    return pipedrive_client(max_retries=1, timeout=10.0)


def _load_on_first_visit() -> None:
    """No pipeline known yet (before the first import): read them from Pipedrive now,
    so the rules can be set first; if Pipedrive cannot be reached, say so."""
    try:
        counts = ops.load_if_none_known(_quick_client)
    except PipedriveError as exc:
        db.session.rollback()
        flash(f"No pipelines are known yet, and they could not be read from Pipedrive: "
              f"{str(exc).rstrip('.')}. Check Admin → Connections, then reload them below.",
              "error")
        return
    if counts is not None:
        db.session.commit()
        flash(f"Read {counts['pipelines']} pipelines, {counts['stages']} stages and "
              f"{counts['products_catalogue']} products from Pipedrive.", "success")


@bp.route("/reload", methods=["POST"])
@requires("rules.manage")
def reload():
    try:
        counts = ops.reload_from_pipedrive(pipedrive_client())
    except PipedriveError as exc:
        db.session.rollback()
        flash(f"Pipelines and products could not be read from Pipedrive: {exc}", "error")
    else:
        db.session.commit()
        flash(f"Read {counts['pipelines']} pipelines, {counts['stages']} stages and "
              f"{counts['products_catalogue']} products from Pipedrive.", "success")
    return _back("pipelines")


@bp.route("/pipelines/<pd_id:pipeline_id>", methods=["POST"])
@requires("rules.manage")
def save_pipeline(pipeline_id: int):
    pipeline = db.session.get(PdPipeline, pipeline_id) or abort(404)
    typed = {"stages": request.form.getlist("stages"), "match": request.form.get("match"),
             "paid_stage": request.form.get("paid_stage", "")}
    try:
        _rule, changed = ops.save_pipeline_rule(
            pipeline, typed["stages"], typed["match"], typed["paid_stage"]
        )
    except ops.RuleInputError as exc:
        return _refused(f"pipeline-{pipeline_id}", exc, typed)
    db.session.commit()
    flash(f"{pipeline.name}: rule saved; {changed} deal{'s' if changed != 1 else ''} "
          "changed whether they are ready to bill. It applies to every sync from now on.",
          "success")
    return _back(f"pipeline-{pipeline_id}")


@bp.route("/defaults", methods=["POST"])
@requires("rules.manage")
def save_defaults():
    typed = {k: request.form.get(k, "") for k in ("currency", "days_until_due",
                                                  "collection_method")}
    try:
        ops.save_defaults(typed["currency"], typed["days_until_due"],
                          typed["collection_method"], current_user)
    except ops.RuleInputError as exc:
        return _refused("defaults", exc, typed)
    db.session.commit()
    flash("Invoice defaults saved: they apply to drafts made from now on.", "success")
    return _back("defaults")


@bp.route("/taxes", methods=["POST"])
@requires("rules.manage")
def save_tax():
    typed = {k: request.form.get(k, "") for k in ("percent", "pd_method", "behavior",
                                                  "tax_rate_id")}
    try:
        row = ops.set_tax_mapping(typed["percent"], typed["pd_method"] or None,
                                  typed["behavior"] or None, typed["tax_rate_id"])
    except ops.RuleInputError as exc:
        return _refused("taxes", exc, typed)
    db.session.commit()
    flash(f"Pipedrive tax {_percent_text(row.pd_percent)}% ({row.pd_method}) is billed as "
          f"an {row.stripe_behavior} Stripe tax rate.", "success")
    return _back("taxes")


@bp.route("/taxes/<int:mapping_id>/remove", methods=["POST"])
@requires("rules.manage")
def remove_tax(mapping_id: int):
    if ops.remove_tax_mapping(mapping_id):
        db.session.commit()
        flash("Tax mapping removed.", "success")
    else:
        flash("That tax mapping was already removed.", "error")
    return _back("taxes")


@bp.route("/products", methods=["POST"])
@requires("rules.manage")
def save_product():
    typed = {k: request.form.get(k, "") for k in ("code", "stripe_product_id")}
    try:
        row = ops.set_product_mapping(typed["code"], typed["stripe_product_id"])
    except ops.RuleInputError as exc:
        return _refused("products", exc, typed)
    db.session.commit()
    flash(f"Products with code {row.pd_product_code} are billed as Stripe product "
          f"{row.stripe_product_id}.", "success")
    return _back("products")


@bp.route("/products/<int:mapping_id>/remove", methods=["POST"])
@requires("rules.manage")
def remove_product(mapping_id: int):
    if ops.remove_product_mapping(mapping_id):
        db.session.commit()
        flash("Product mapping removed.", "success")
    else:
        flash("That product mapping was already removed.", "error")
    return _back("products")
