"""Desk fixtures shared across test folders: the desk wired to the sandboxes,
a seeded and synced Pipedrive, a draft invoice made through the real operation."""

from __future__ import annotations

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
