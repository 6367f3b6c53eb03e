"""Factories for the sales tests: deals and invoices written straight to the database,
as the intake and the payment sync would leave them."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from app.extensions import db

# A fixed "now" for query tests; route tests use the real clock.
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def people(app):
    """Two owners and two pipelines."""
    from app.intake.models import PdOrganization, PdPipeline, PdUser

    with app.app_context():
        db.session.add_all([
            PdUser(id=1, name="Olga Owner"), PdUser(id=2, name="Piet Seller"),
            PdPipeline(id=10, name="New business", order_nr=1),
            PdPipeline(id=11, name="Renewals", order_nr=2),
            PdOrganization(id=500, name="Acme GmbH"),
        ])
        db.session.commit()


@pytest.fixture
def make_deal(app):
    ids = itertools.count(1000)

    def make(value="100", currency="EUR", *, owner=1, pipeline=10, won=None, status="won",
             title=None, org=500, deal_id=None):
        from app.intake.models import PdDeal

        deal_id = deal_id or next(ids)
        with app.app_context():
            db.session.add(PdDeal(
                id=deal_id, title=title or f"Deal {deal_id}", value=Decimal(value),
                currency=currency, status=status, owner_id=owner, pipeline_id=pipeline,
                won_time=won if won is not None else NOW - dt.timedelta(days=10), org_id=org,
            ))
            db.session.commit()
        return deal_id

    return make


@pytest.fixture
def make_invoice(app):
    """An invoice in Stripe with the given amounts (major units, as strings)."""
    numbers = itertools.count(1)

    def make(deal_id, total, currency="EUR", *, paid="0", refunded="0", credited="0",
             remaining=None, payment_status="open", stripe_status="open", due=None,
             pushed=None, status="pushed", url=True):
        from app.invoices.models import Invoice

        n = next(numbers)
        total_d = Decimal(total)
        if remaining is None:
            remaining = total_d - Decimal(paid) - Decimal(credited)
            remaining = max(remaining, Decimal(0))
        pushed_at = pushed if pushed is not None else NOW - dt.timedelta(days=5)
        with app.app_context():
            inv = Invoice(
                deal_id=deal_id, currency=currency, status=status, subtotal=total_d,
                total=total_d, amount_paid=Decimal(paid), amount_refunded=Decimal(refunded),
                amount_credited=Decimal(credited), amount_remaining=Decimal(remaining),
                payment_status=payment_status if status == "pushed" else None,
                stripe_status=stripe_status if status == "pushed" else None,
                due_at=due, pushed_at=pushed_at if status == "pushed" else None,
                stripe_invoice_id=f"in_test_{deal_id}_{n}" if status == "pushed" else None,
                stripe_number=f"ST-{n:04d}" if status == "pushed" else None,
                hosted_invoice_url=(
                    f"https://invoice.stripe.com/i/test_{n}" if url and status == "pushed" else None
                ),
                created_at=pushed_at - dt.timedelta(hours=1),
            )
            db.session.add(inv)
            db.session.commit()
            return inv.id

    return make
