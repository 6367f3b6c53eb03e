"""Desk invoices and their lines.

An invoice is made from one deal and edited by finance until it is approved and
pushed to Stripe. `version` increases with every change: an edit made against
an older version is refused (two people editing one draft), and approval
records the version it approved, so any later edit voids the approval.
Amounts are exact decimals in major units; minor units exist only in the
Stripe request plan.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.types import JSONType, UTCDateTime, utcnow

Amount = Numeric(20, 6)

STATUSES = {
    "draft": "Draft",
    "submitted": "Waiting for approval",
    "approved": "Approved",
    "pushing": "Pushing to Stripe",
    "pushed": "In Stripe",
    "push_failed": "Push failed",
    "cancelled": "Cancelled",
}
# Statuses in which the invoice may still be edited (an edit sends it back to draft).
EDITABLE = frozenset({"draft", "submitted", "approved", "push_failed"})
LIVE = frozenset({"draft", "submitted", "approved", "pushing", "pushed", "push_failed"})

TAX_BEHAVIORS = ("exclusive", "inclusive", "none")
DISCOUNT_TYPES = ("percentage", "amount")
COLLECTION_METHODS = {
    "send_invoice": "Email the invoice (customer pays by link)",
    "charge_automatically": "Charge the customer's saved payment method",
}


def _status_check() -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")"


class Invoice(db.Model):
    __tablename__ = "invoice"
    __table_args__ = (
        CheckConstraint(_status_check(), name="known_status"),
        CheckConstraint(
            "collection_method IN ('send_invoice', 'charge_automatically')",
            name="known_collection_method",
        ),
        Index("ix_invoice_deal_id", "deal_id", "id"),
        Index("ix_invoice_status", "status", "id"),
        Index("ix_invoice_payment_status", "payment_status", "id"),
        Index("ix_invoice_stripe_customer_id", "stripe_customer_id"),
        Index("ix_invoice_pushed_at", "pushed_at"),  # sales page: partial days
        Index("ix_invoice_due_at", "due_at"),  # sales page: aging boundary days
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(BigInteger, comment="Pipedrive deal id")
    status: Mapped[str] = mapped_column(String(20), default="draft")
    version: Mapped[int] = mapped_column(Integer, default=1, comment="bumped on every change")
    approved_version: Mapped[int | None] = mapped_column(Integer, comment="version approved")

    currency: Mapped[str] = mapped_column(String(3))
    # True once finance picked a currency other than the deal's: prices were typed by hand.
    currency_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    collection_method: Mapped[str] = mapped_column(String(24), default="send_invoice")
    days_until_due: Mapped[int | None] = mapped_column(Integer)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    memo: Mapped[str] = mapped_column(Text, default="", comment="Stripe description")
    footer: Mapped[str] = mapped_column(Text, default="")
    po_number: Mapped[str] = mapped_column(String(100), default="")
    custom_fields: Mapped[list] = mapped_column(
        JSONType, default=list, comment="[{name, value}] up to 4, shown on the invoice"
    )

    # Bill-to
    customer_name: Mapped[str] = mapped_column(String(255), default="")
    billing_email: Mapped[str] = mapped_column(String(254), default="")
    address: Mapped[dict] = mapped_column(
        JSONType, default=dict, comment="line1, line2, postal_code, city, state, country (ISO-2)"
    )
    vat_id: Mapped[str] = mapped_column(String(40), default="")
    org_id: Mapped[int | None] = mapped_column(BigInteger)
    person_id: Mapped[int | None] = mapped_column(BigInteger)

    # What the deal looked like when the draft was made (or last re-applied).
    deal_hash: Mapped[str] = mapped_column(String(64), default="")
    deal_snapshot: Mapped[dict] = mapped_column(JSONType, default=dict)

    # Totals as last computed (major units), for lists and sums.
    subtotal: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    discount_total: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    tax_total: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    total: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))

    # Holds (see the approvals module): orthogonal to the status.
    on_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    held_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    held_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    # Stripe: set by the push, kept current by the payment sync.
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_number: Mapped[str | None] = mapped_column(String(100), comment="Stripe's number")
    hosted_invoice_url: Mapped[str | None] = mapped_column(Text)
    invoice_pdf: Mapped[str | None] = mapped_column(Text)
    stripe_status: Mapped[str | None] = mapped_column(
        String(20), comment="draft, open, paid, void, uncollectible"
    )
    pushed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    push_error: Mapped[str | None] = mapped_column(Text, comment="last push failure, plain words")
    push_hint: Mapped[str | None] = mapped_column(Text, comment="what to do about it")
    payment_status: Mapped[str | None] = mapped_column(
        String(24), comment="see app.payments.states; null until pushed"
    )
    amount_paid: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    amount_refunded: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    amount_credited: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    amount_remaining: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, comment="Stripe due date")
    last_payment_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    stripe_synced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", cascade="all, delete-orphan", order_by="InvoiceLine.position"
    )
    discounts: Mapped[list[InvoiceDiscount]] = relationship(
        cascade="all, delete-orphan", order_by="InvoiceDiscount.position"
    )

    @property
    def number(self) -> str:
        return f"BD-{self.id:05d}"

    @property
    def status_label(self) -> str:
        label = STATUSES.get(self.status, self.status)
        return f"{label} (on hold)" if self.on_hold else label

    @property
    def collected(self) -> Decimal:
        """Paid minus refunded."""
        return (self.amount_paid or Decimal(0)) - (self.amount_refunded or Decimal(0))

    @property
    def label(self) -> str:
        return f"{self.number} · {self.customer_name or 'no customer'}"


class InvoiceLine(db.Model):
    __tablename__ = "invoice_line"
    __table_args__ = (
        CheckConstraint("tax_behavior IN ('exclusive', 'inclusive', 'none')", name="tax_behavior"),
        CheckConstraint(
            "discount_type IS NULL OR discount_type IN ('percentage', 'amount')",
            name="discount_type",
        ),
        Index("ix_invoice_line_invoice_id", "invoice_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[Decimal] = mapped_column(Amount, default=Decimal(1))
    unit_price: Mapped[Decimal] = mapped_column(Amount, comment="major units")
    discount_type: Mapped[str | None] = mapped_column(String(12))
    discount_value: Mapped[Decimal | None] = mapped_column(Amount)
    tax_rate: Mapped[Decimal] = mapped_column(Numeric(9, 4), default=Decimal(0), comment="%")
    tax_behavior: Mapped[str] = mapped_column(String(10), default="none")
    # Recurring products are shown but billed separately: excluded from totals and push.
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    excluded_reason: Mapped[str | None] = mapped_column(String(200))
    source_deal_product_id: Mapped[int | None] = mapped_column(BigInteger)
    # Fields finance changed by hand, kept when the deal is re-applied.
    edited_fields: Mapped[list] = mapped_column(JSONType, default=list)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class InvoiceDiscount(db.Model):
    """An invoice-level discount (deal-level discounts carry over as these)."""

    __tablename__ = "invoice_discount"
    __table_args__ = (
        CheckConstraint("type IN ('percentage', 'amount')", name="type"),
        Index("ix_invoice_discount_invoice_id", "invoice_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(String(255), default="Discount")
    type: Mapped[str] = mapped_column(String(12))
    value: Mapped[Decimal] = mapped_column(Amount)
    source_deal_discount_id: Mapped[str | None] = mapped_column(String(64))
