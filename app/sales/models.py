"""The sales rollup: the summary page's sums per UTC day, kept by the `sales.rollup` job.

Amounts are whole millionths of the currency unit (the invoice columns' scale) in
BigInteger columns: exact on PostgreSQL and SQLite alike (SQLite would keep a Numeric
sum as a binary float).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, Date, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import UTCDateTime


class SalesDaily(db.Model):
    """Deals won and invoices issued per UTC day, deal owner, pipeline and currency.

    A row holds either the deals won that day (sold) or the invoices pushed that day
    (the other sums); the page adds rows up, so the two never need to share a row.
    """

    __tablename__ = "sales_daily"
    __table_args__ = (
        # Covers DSO's countback: newest day first, summed per currency as it streams.
        Index("ix_sales_daily_day", "day", "currency", "invoice_count", "invoiced_micros"),
        Index("ix_sales_daily_owner_day", "owner_id", "day"),
        Index("ix_sales_daily_pipeline_day", "pipeline_id", "day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date | None] = mapped_column(
        Date, comment="UTC day of the won time or the push; none: the time is unknown"
    )
    owner_id: Mapped[int | None] = mapped_column(BigInteger, comment="the deal's owner")
    pipeline_id: Mapped[int | None] = mapped_column(BigInteger, comment="the deal's pipeline")
    currency: Mapped[str | None] = mapped_column(
        String(3), comment="the deal's (sold) or the invoice's currency"
    )
    sold_micros: Mapped[int] = mapped_column(BigInteger, comment="value of deals won")
    deals_won: Mapped[int] = mapped_column(Integer, comment="number of deals won")
    invoiced_micros: Mapped[int] = mapped_column(BigInteger, comment="totals of invoices in Stripe")
    invoice_count: Mapped[int] = mapped_column(Integer, comment="number of invoices in Stripe")
    credited_micros: Mapped[int] = mapped_column(
        BigInteger, comment="credit notes not paid back as refunds, customer credit applied"
    )
    collected_micros: Mapped[int] = mapped_column(
        BigInteger, comment="paid, less refunds and credit notes after payment"
    )
    refunded_micros: Mapped[int] = mapped_column(
        BigInteger, server_default=text("0"), comment="refunds"
    )
    outstanding_micros: Mapped[int] = mapped_column(
        BigInteger, comment="amount_remaining, unless written off"
    )
    written_off_micros: Mapped[int] = mapped_column(
        BigInteger, server_default=text("0"),
        comment="amount_remaining of invoices marked uncollectible",
    )
    overdue_micros: Mapped[int] = mapped_column(
        BigInteger, comment="amount_remaining of invoices overdue at refreshed_at"
    )


class SalesRollupState(db.Model):
    """When sales_daily was last rebuilt (one row); no row: never built."""

    __tablename__ = "sales_rollup_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False,
                                    comment="always 1")
    refreshed_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, comment="the data and clock the rollup reflects"
    )
    row_count: Mapped[int] = mapped_column(Integer, comment="rows in sales_daily")
    duration_ms: Mapped[int] = mapped_column(Integer, comment="how long the rebuild took")


class SalesOpenDaily(db.Model):
    """What is still due on open invoices in Stripe, per UTC due day, owner, pipeline and
    currency: the aging table and DSO's receivables without reading every open invoice."""

    __tablename__ = "sales_open_daily"
    __table_args__ = (Index("ix_sales_open_daily_due_day", "due_day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    due_day: Mapped[dt.date | None] = mapped_column(
        Date, comment="UTC day of the due date; none: no due date"
    )
    owner_id: Mapped[int | None] = mapped_column(BigInteger, comment="the deal's owner")
    pipeline_id: Mapped[int | None] = mapped_column(BigInteger, comment="the deal's pipeline")
    currency: Mapped[str] = mapped_column(String(3), comment="the invoice's currency")
    outstanding_micros: Mapped[int] = mapped_column(BigInteger, comment="amount_remaining")
