"""What the admin sets on the billing rules page, besides the per-pipeline rules
(`BillingRule`, kept with the intake that applies them)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import UTCDateTime, utcnow

COLLECTION_METHODS = {
    "send_invoice": "Email the invoice; the customer pays it",
    "charge_automatically": "Charge the customer's saved payment method",
}
TAX_METHODS = {"exclusive": "Exclusive (added on top)", "inclusive": "Inclusive (in the price)"}


class BillingDefaults(db.Model):
    """One row (id 1) once an admin saved the defaults; no row means the built-in ones."""

    __tablename__ = "billing_defaults"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("days_until_due >= 0 AND days_until_due <= 365", name="days_range"),
        CheckConstraint(
            "collection_method IN ('send_invoice', 'charge_automatically')",
            name="known_collection_method",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, comment="always 1")
    currency: Mapped[str | None] = mapped_column(
        String(3), comment="used when a deal has no currency; none: such deals are refused"
    )
    days_until_due: Mapped[int] = mapped_column(Integer, comment="payment terms in days")
    collection_method: Mapped[str] = mapped_column(
        String(30), comment="send_invoice or charge_automatically"
    )
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), comment="who saved it last"
    )


class TaxMapping(db.Model):
    """A Pipedrive tax (percent and method) as Stripe is to bill it."""

    __tablename__ = "tax_mapping"
    __table_args__ = (
        UniqueConstraint("pd_percent", "pd_method", name="uq_tax_mapping_percent_method"),
        CheckConstraint("pd_percent >= 0 AND pd_percent <= 100", name="percent_range"),
        CheckConstraint("pd_method IN ('exclusive', 'inclusive')", name="known_pd_method"),
        CheckConstraint(
            "stripe_behavior IN ('exclusive', 'inclusive')", name="known_stripe_behavior"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pd_percent: Mapped[Decimal] = mapped_column(
        Numeric(9, 4), comment="Pipedrive's tax percent on a deal product"
    )
    pd_method: Mapped[str] = mapped_column(String(10), comment="Pipedrive's tax_method")
    stripe_behavior: Mapped[str] = mapped_column(
        String(10), comment="Stripe tax rate: inclusive or exclusive"
    )
    stripe_tax_rate_id: Mapped[str | None] = mapped_column(
        String(255), comment="an existing Stripe tax rate (txr_...); none: the push makes one"
    )
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProductMapping(db.Model):
    """A Pipedrive product (by its product code) billed as a Stripe product."""

    __tablename__ = "product_mapping"

    id: Mapped[int] = mapped_column(primary_key=True)
    pd_product_code: Mapped[str] = mapped_column(
        String(100), unique=True, comment="Pipedrive's product code"
    )
    stripe_product_id: Mapped[str] = mapped_column(String(255), comment="prod_...")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
