"""The approval policy an admin sets: four-eyes on or off, thresholds per currency."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.types import UTCDateTime, utcnow


class ApprovalPolicy(db.Model):
    """One row (id 1) once an admin saved the policy; no row means the defaults."""

    __tablename__ = "approval_policy"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, comment="always 1")
    four_eyes: Mapped[bool] = mapped_column(
        Boolean, default=True,
        comment="true: the approver may not be who last edited or submitted the invoice",
    )
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), comment="who saved it last"
    )


class ApprovalThreshold(db.Model):
    """Above `amount` (major units) in `currency`, only an admin may approve."""

    __tablename__ = "approval_threshold"
    __table_args__ = (CheckConstraint("amount > 0", name="positive_amount"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(
        String(3), unique=True, comment="upper-case ISO 4217 code Stripe bills in"
    )
    amount: Mapped[Decimal] = mapped_column(
        Numeric(20, 6), comment="invoice total above which only an admin may approve"
    )
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), comment="who saved it last"
    )
