"""Push fixtures (stripe_desk and approver live in tests/fixtures_desk.py)."""

from __future__ import annotations

import pytest

from app.extensions import db


@pytest.fixture
def ctx(app):
    """An app context for calling the push operations directly."""
    with app.app_context():
        yield
        db.session.rollback()
