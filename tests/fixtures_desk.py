"""Desk fixtures shared across test folders: the desk wired to the sandboxes,
a seeded and synced Pipedrive, a draft invoice made through the real operation."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.extensions import db


@pytest.fixture
def desk_on_pipedrive(app, pipedrive_sandbox):
    """The desk configured to talk to the Pipedrive sandbox (no waiting in tests)."""
    app.config.update(
        PIPEDRIVE_BASE_URL=pipedrive_sandbox.url,
        PIPEDRIVE_API_TOKEN=pipedrive_sandbox.api_token,
        PIPEDRIVE_CLIENT_OPTIONS={"sleep": lambda s: None, "backoff": 0.0},
    )
    return pipedrive_sandbox


@pytest.fixture
def synced(app, desk_on_pipedrive):
    """Seeded sandbox, one full intake, demo default rules applied."""
    from app.intake.operations import apply_default_rules, run_deal_sync

    desk_on_pipedrive.seed()
    with app.app_context():
        run = run_deal_sync(trigger="manual")
        assert run.status == "ok", run.error
        apply_default_rules()
        db.session.commit()
    return desk_on_pipedrive


@pytest.fixture
def draft(app, synced, make_user):
    """A draft made from a ready EUR deal with several products."""
    from app.intake.models import PdDeal
    from app.invoices.drafting import create_draft
    from app.pipedrive.factory import pipedrive_client

    finance = make_user("finance")
    with app.app_context():
        deal = db.session.execute(
            select(PdDeal).where(PdDeal.ready.is_(True), PdDeal.product_count > 1,
                                 PdDeal.currency == "EUR", PdDeal.has_recurring.is_(False))
        ).scalars().first()
        invoice = create_draft(deal, None, pipedrive_client())
        db.session.commit()
        return {"invoice_id": invoice.id, "deal_id": deal.id, "finance": finance,
                "total": invoice.total, "version": invoice.version}


@pytest.fixture
def desk_on_stripe(app, stripe_sandbox):
    """The desk configured to talk to the Stripe sandbox (no waiting in tests)."""
    stripe_sandbox.settings(rate_limit_per_second=10_000)
    app.config.update(
        STRIPE_SECRET_KEY=stripe_sandbox.api_key,
        STRIPE_API_BASE=stripe_sandbox.url,
        STRIPE_WEBHOOK_SECRET=None,
        STRIPE_GATEWAY_OPTIONS={"sleep": lambda s: None, "backoff": 0.0},
    )
    return stripe_sandbox


def send_to_stripe(app, invoice_id: int) -> str:
    """Put a desk invoice into Stripe through its request plan, finalized and sent.

    Test scaffolding for the payment tests: it makes the same calls as the push,
    without the push's persistence, so payments can be tested on their own.
    """
    from app.invoices.models import Invoice
    from app.invoices.plan import invoice_params, line_params, tax_rate_key, tax_rates_needed
    from app.invoices.totals import for_invoice
    from app.stripe_api.factory import stripe_gateway

    with app.app_context():
        inv = db.session.get(Invoice, invoice_id)
        gw = stripe_gateway()
        c = gw.client.v1
        customer = c.customers.create(params={"name": inv.customer_name or "Customer",
                                              "email": inv.billing_email or None})
        totals = for_invoice(inv)
        rates = {}
        for rate, behavior in tax_rates_needed(totals):
            tr = c.tax_rates.create(params={"display_name": "VAT", "percentage": f"{rate:f}",
                                            "inclusive": behavior == "inclusive"})
            rates[tax_rate_key(rate, behavior)] = tr.id
        si = c.invoices.create(params=invoice_params(inv, customer.id))
        c.invoices.add_lines(si.id, params={
            "lines": [line_params(pl, inv.currency, rates) for pl in totals.push_lines]})
        c.invoices.finalize_invoice(si.id, params={"auto_advance": False})
        if inv.collection_method == "send_invoice":
            c.invoices.send_invoice(si.id)
        si = c.invoices.retrieve(si.id)
        inv.status = "pushed"
        inv.approved_version = inv.version
        inv.stripe_invoice_id, inv.stripe_customer_id = si.id, customer.id
        inv.stripe_number, inv.stripe_status = si.number, si.status
        inv.hosted_invoice_url = si.hosted_invoice_url
        from app.payments.sync import apply_invoice

        apply_invoice(json.loads(si.last_response.body))
        db.session.commit()
        return si.id


@pytest.fixture
def pushed(app, draft, desk_on_stripe):
    """A draft invoice sent to the Stripe sandbox; payments start from here."""
    stripe_id = send_to_stripe(app, draft["invoice_id"])
    return {**draft, "stripe_id": stripe_id}


@pytest.fixture
def stripe_desk(app, desk_on_stripe):
    """desk_on_stripe with the client-side rate limit out of the way (push tests)."""
    app.config["STRIPE_GATEWAY_OPTIONS"] = {"sleep": lambda s: None, "backoff": 0.0,
                                            "rate_limit": 100_000}
    return desk_on_stripe


@pytest.fixture
def approver(make_user):
    """A user with the approver role (push tests make invoices approved by them)."""
    return make_user("approver")
