"""Read-only accessors for what the admin set on the billing rules page.

Drafting and the push call these (they never query the tables themselves), so
a change applies from the next draft or push without any other wiring.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.rules.models import BillingDefaults, ProductMapping, TaxMapping

# Until an admin saves defaults: 30 days, emailed invoices, no default currency
# (a deal without a currency is refused rather than billed in a guessed one).
BUILTIN_DAYS_UNTIL_DUE = 30
BUILTIN_COLLECTION_METHOD = "send_invoice"
PERCENT_QUANTUM = Decimal("0.0001")


@dataclass(frozen=True)
class Defaults:
    currency: str | None
    days_until_due: int
    collection_method: str
    saved: bool  # False: the built-in defaults apply


@dataclass(frozen=True)
class TaxRule:
    percent: Decimal
    pd_method: str
    behavior: str  # Stripe: "inclusive" or "exclusive"
    tax_rate_id: str | None  # an existing Stripe tax rate, or None (the push makes one)


def billing_defaults() -> Defaults:
    row = db.session.get(BillingDefaults, 1)
    if row is None:
        return Defaults(None, BUILTIN_DAYS_UNTIL_DUE, BUILTIN_COLLECTION_METHOD, False)
    return Defaults(row.currency, row.days_until_due, row.collection_method, True)


def normalise_percent(percent: Decimal) -> Decimal:
    return Decimal(percent).quantize(PERCENT_QUANTUM)


def tax_mapping_for(percent: Decimal, method: str) -> TaxRule | None:
    """The admin's mapping for a Pipedrive tax, or None (the line keeps Pipedrive's method)."""
    if not isinstance(percent, Decimal):
        raise TypeError("tax percentages are Decimal, never float")
    if method not in ("exclusive", "inclusive"):
        return None
    wanted = normalise_percent(percent)
    row = db.session.execute(
        select(TaxMapping).where(TaxMapping.pd_percent == wanted, TaxMapping.pd_method == method)
    ).scalar_one_or_none()
    if row is None:
        return None
    return TaxRule(normalise_percent(row.pd_percent), row.pd_method, row.stripe_behavior,
                   row.stripe_tax_rate_id)


def stripe_product_for(code: str | None) -> str | None:
    """The Stripe product (prod_...) a Pipedrive product code is billed as, if mapped."""
    code = (code or "").strip()
    if not code:
        return None
    return db.session.execute(
        select(ProductMapping.stripe_product_id).where(ProductMapping.pd_product_code == code)
    ).scalar_one_or_none()
