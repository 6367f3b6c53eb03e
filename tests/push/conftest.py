"""Push fixtures: the desk on the Stripe sandbox with waiting switched off."""

from __future__ import annotations

import pytest

from app.extensions import db


@pytest.fixture
def stripe_desk(app, desk_on_stripe):
    """desk_on_stripe with the client-side rate limit out of the way (fast tests)."""
    app.config["STRIPE_GATEWAY_OPTIONS"] = {"sleep": lambda s: None, "backoff": 0.0,
                                            "rate_limit": 100_000}
    return desk_on_stripe


@pytest.fixture
def approver(make_user):
    return make_user("approver")


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.rollback()
