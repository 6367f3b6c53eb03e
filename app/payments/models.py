"""What the desk keeps of Stripe's side: events (raw, deduped), payments, the
customers and invoices it has seen, and the scheduler's view of its jobs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import JSONType, UTCDateTime, utcnow

Amount = Numeric(20, 6)


class StripeEvent(db.Model):
    """A Stripe event as received (webhook) or pulled (Events API): stored raw first."""

    __tablename__ = "stripe_event"
    __table_args__ = (
        Index("ix_stripe_event_status", "status", "created"),
        Index("ix_stripe_event_object", "object_id", "created"),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True, comment="evt_...")
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(BigInteger, comment="Stripe's unix time")
    object_id: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(20), comment="webhook, pull or replay")
    payload: Mapped[dict] = mapped_column(JSONType)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(
        String(20), default="received", comment="received, processed, ignored, failed"
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)


class StripePayment(db.Model):
    """One payment on an invoice (InvoicePayment) and what was refunded of it."""

    __tablename__ = "stripe_payment"
    __table_args__ = (
        Index("ix_stripe_payment_invoice_id", "invoice_id"),
        Index("ix_stripe_payment_payment_intent", "payment_intent"),
        Index("ix_stripe_payment_charge", "charge"),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True, comment="inpay_...")
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoice.id", ondelete="SET NULL"))
    stripe_invoice_id: Mapped[str] = mapped_column(String(255))
    payment_intent: Mapped[str | None] = mapped_column(String(255))
    charge: Mapped[str | None] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal] = mapped_column(Amount, comment="major units")
    amount_refunded: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    status: Mapped[str] = mapped_column(String(20), default="paid")
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class StripeCustomerSeen(db.Model):
    """A Stripe customer as last seen (for rule 12: email differs from the CRM)."""

    __tablename__ = "stripe_customer_seen"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254))
    name: Mapped[str | None] = mapped_column(String(255))
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ForeignStripeInvoice(db.Model):
    """A Stripe invoice for a customer the desk knows, which the desk did not create."""

    __tablename__ = "foreign_stripe_invoice"
    __table_args__ = (Index("ix_foreign_stripe_invoice_customer", "customer"),)
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer: Mapped[str] = mapped_column(String(255))
    number: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str | None] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[Decimal] = mapped_column(Amount)
    hosted_invoice_url: Mapped[str | None] = mapped_column(Text)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class InvoiceStripeState(db.Model):
    """Stripe's own view of a pushed invoice, as last applied."""

    __tablename__ = "invoice_stripe_state"
    invoice_id: Mapped[int] = mapped_column(
        ForeignKey("invoice.id", ondelete="CASCADE"), primary_key=True
    )
    stripe_total: Mapped[Decimal] = mapped_column(Amount, comment="Stripe's total, major units")
    stripe_subtotal: Mapped[Decimal] = mapped_column(Amount)
    line_count: Mapped[int] = mapped_column(Integer, default=0)
    amount_due: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    pre_payment_credit: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    post_payment_credit: Mapped[Decimal] = mapped_column(Amount, default=Decimal(0))
    payment_failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    disputed: Mapped[bool] = mapped_column(Boolean, default=False)
    overdue_told_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime, comment="when the CRM was told it is overdue (once)"
    )
    last_event_created: Mapped[int] = mapped_column(BigInteger, default=0)
    last_event_id: Mapped[str | None] = mapped_column(String(255))


class JobSchedule(db.Model):
    """What the scheduler process plans to run next (read by the Sync health page)."""

    __tablename__ = "job_schedule"
    id: Mapped[str] = mapped_column(String(60), primary_key=True)
    description: Mapped[str] = mapped_column(String(255), default="")
    interval_seconds: Mapped[int] = mapped_column(Integer)
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    scheduler_pid: Mapped[int | None] = mapped_column(Integer)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
