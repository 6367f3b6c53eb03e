"""Write-back fixtures: the push fixtures, and a real deal's invoice pushed to Stripe."""

from __future__ import annotations

import pytest

from tests.push.conftest import approver, ctx, stripe_desk  # noqa: F401 - shared fixtures
from tests.push.helpers import approve, push_now


@pytest.fixture
def pushed_deal(app, draft, stripe_desk, approver):
    """The `draft` fixture's invoice (a synced Pipedrive deal), approved and pushed."""
    with app.app_context():
        approve(draft["invoice_id"], draft["finance"].id, approver.id)
        counts = push_now([draft["invoice_id"]])
        assert counts["done"] == 1, counts
    return draft
