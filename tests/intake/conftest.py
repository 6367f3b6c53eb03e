from __future__ import annotations

import pytest

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
