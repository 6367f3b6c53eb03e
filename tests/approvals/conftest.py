"""Factories for approval tests: invoices made directly in the database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.extensions import db


def new_invoice(**kw):
    """An uncommitted invoice (needs an app context); defaults: an EUR 1,000.00 draft
    emailed to ap@acme.example."""
    from app.invoices.models import Invoice, InvoiceLine

    values = {
        "deal_id": 9001, "currency": "EUR", "status": "draft", "customer_name": "Acme GmbH",
        "billing_email": "ap@acme.example",
        "subtotal": Decimal("1000.00"), "total": Decimal("1000.00"),
    }
    values.update(kw)
    if "lines" not in values:
        # Submission needs something Stripe can bill: one line worth the total.
        values["lines"] = [InvoiceLine(
            position=0, description="Consulting", quantity=Decimal(1),
            unit_price=Decimal(values["total"]), tax_rate=Decimal(0), tax_behavior="none")]
    invoice = Invoice(**values)
    db.session.add(invoice)
    db.session.flush()
    return invoice


@pytest.fixture
def make_invoice(app):
    """Factory: a committed invoice; returns its id."""

    def make(**kw) -> int:
        with app.app_context():
            invoice = new_invoice(**kw)
            db.session.commit()
            return invoice.id

    return make


@pytest.fixture
def ctx(app):
    """An app context for calling the workflow directly."""
    with app.app_context():
        yield
        db.session.rollback()


def user(u):
    """The User row behind a make_user() result (inside an app context)."""
    from app.auth.models import User

    return db.session.get(User, u.id)
