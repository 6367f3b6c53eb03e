"""Admin changes to the approval policy (four-eyes, thresholds); each one audited."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from app.approvals.models import ApprovalPolicy, ApprovalThreshold
from app.audit.operations import record
from app.extensions import db
from app.money import STRIPE_CURRENCIES, parse_amount
from app.types import utcnow

# Numeric(20, 6): at most 14 digits before the point.
MAX_THRESHOLD = Decimal(10) ** 14


class PolicyInputError(ValueError):
    """Bad input for one field; the message is shown next to that field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def set_four_eyes(on: bool, user) -> bool:
    """Switch four-eyes; returns False (and records nothing) if it was already so."""
    row = db.session.get(ApprovalPolicy, 1)
    before = True if row is None else row.four_eyes
    if before == on:
        return False
    if row is None:
        row = ApprovalPolicy(id=1)
        db.session.add(row)
    row.four_eyes = on
    row.updated_at, row.updated_by_id = utcnow(), user.id
    db.session.flush()
    record("approval_policy.four_eyes", "approval_policy", 1,
           {"four_eyes": before}, {"four_eyes": on}, actor=user)
    return True


def parse_threshold(currency_text: str | None, amount_text: str | None) -> tuple[str, Decimal]:
    currency = (currency_text or "").strip().upper()
    if not currency:
        raise PolicyInputError("currency", "Enter a currency code such as EUR.")
    if currency not in STRIPE_CURRENCIES:
        raise PolicyInputError(
            "currency", f"{currency} is not a currency Stripe bills in: use a code such as EUR."
        )
    try:
        amount = parse_amount(amount_text or "", currency)
    except ValueError as exc:
        raise PolicyInputError("amount", str(exc)) from None
    if amount <= 0:
        raise PolicyInputError("amount", "The threshold must be more than zero.")
    if amount >= MAX_THRESHOLD:
        raise PolicyInputError("amount", "That amount is too large for a threshold.")
    return currency, amount


def set_threshold(currency_text: str | None, amount_text: str | None, user) -> ApprovalThreshold:
    """Add or change the threshold of one currency (raises PolicyInputError)."""
    currency, amount = parse_threshold(currency_text, amount_text)
    row = db.session.execute(
        select(ApprovalThreshold).where(ApprovalThreshold.currency == currency)
    ).scalar_one_or_none()
    before = None if row is None else {"currency": currency, "amount": Decimal(row.amount)}
    if row is None:
        row = ApprovalThreshold(currency=currency)
        db.session.add(row)
    row.amount = amount
    row.updated_at, row.updated_by_id = utcnow(), user.id
    db.session.flush()
    record("approval_threshold.set", "approval_threshold", currency, before,
           {"currency": currency, "amount": amount}, actor=user)
    return row


def remove_threshold(currency: str, user) -> bool:
    row = db.session.execute(
        select(ApprovalThreshold).where(ApprovalThreshold.currency == currency.upper())
    ).scalar_one_or_none()
    if row is None:
        return False
    before = {"currency": row.currency, "amount": Decimal(row.amount)}
    db.session.delete(row)
    db.session.flush()
    record("approval_threshold.remove", "approval_threshold", before["currency"], before, None,
           actor=user)
    return True
