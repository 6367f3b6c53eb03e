"""The admin's billing rules reach the drafts and the Stripe request plan."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.intake.models import PdDeal, PdDealProduct
from app.invoices.drafting import create_draft
from app.invoices.plan import build_plan
from app.pipedrive.factory import pipedrive_client
from app.rules.operations import save_defaults, set_product_mapping, set_tax_mapping


def _deal_with_product(tax_method="exclusive"):
    return db.session.execute(
        select(PdDeal).join(PdDealProduct, PdDealProduct.deal_id == PdDeal.id).where(
            PdDeal.ready.is_(True), PdDeal.has_recurring.is_(False),
            PdDealProduct.product_code.is_not(None), PdDealProduct.tax_method == tax_method,
            PdDealProduct.tax > 0)
    ).scalars().first()


def test_defaults_tax_and_product_mappings_are_used(app, synced):
    with app.app_context():
        deal = _deal_with_product()
        product = next(p for p in deal.products if p.product_code and p.tax)
        save_defaults(None, "14", "charge_automatically", None)
        set_tax_mapping(str(product.tax), "exclusive", "inclusive", None)
        set_product_mapping(product.product_code, "prod_MappedInStripe")
        db.session.commit()
        invoice = create_draft(deal, None, pipedrive_client())
        line = next(ln for ln in invoice.lines if ln.source_deal_product_id == product.id)
        assert line.tax_behavior == "inclusive"
        assert line.tax_rate == product.tax
        calls, _ = build_plan(invoice)
        add_lines = next(c for c in calls if c.step == "lines")
        mapped = [p for p in add_lines.params["lines"]
                  if p.get("price_data", {}).get("product") == "prod_MappedInStripe"]
        assert mapped and "product_data" not in mapped[0]["price_data"]
        assert invoice.collection_method == "charge_automatically"
        assert invoice.total > Decimal(0)
        db.session.rollback()
