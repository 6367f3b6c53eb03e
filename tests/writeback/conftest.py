"""Write-back fixtures: a real deal's invoice, approved and pushed to the Stripe sandbox."""

from __future__ import annotations

import pytest

from app.extensions import db
from tests.push.helpers import approve, push_now


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.rollback()


@pytest.fixture
def pushed_deal(app, draft, stripe_desk, approver):
    """The `draft` fixture's invoice (a synced Pipedrive deal), approved and pushed."""
    with app.app_context():
        approve(draft["invoice_id"], draft["finance"].id, approver.id)
        counts = push_now([draft["invoice_id"]])
        assert counts["done"] == 1, counts
    return draft
