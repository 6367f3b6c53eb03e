"""GET /v1/account: what "Test connection" reads, in the SDK's shape."""

from __future__ import annotations

import json
from pathlib import Path

import requests

# A copy of shared/reference/stripe-fixtures3.json (Stripe's example objects).
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "stripe-fixtures3.json"


def test_account_has_the_fixture_shape(stripe_sandbox, stripe_client):
    account = stripe_client.v1.accounts.retrieve_current()
    assert account.object == "account" and account.id.startswith("acct_")
    body = json.loads(account.last_response.body)
    fixture = json.loads(FIXTURES.read_text())["resources"]["account"]
    assert set(fixture) <= set(body) | {"livemode"}


def test_account_needs_a_valid_key(stripe_sandbox):
    resp = requests.get(f"{stripe_sandbox.url}/v1/account",
                        headers={"Authorization": "Bearer sk_test_wrong"}, timeout=10)
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_connection_check_against_the_sandbox(app, stripe_sandbox):
    from app.connections.checks import check_stripe

    app.config.update(STRIPE_SECRET_KEY=stripe_sandbox.api_key, STRIPE_API_BASE=stripe_sandbox.url)
    with app.app_context():
        result = check_stripe()
    assert result.ok, result.message
    assert "Billing Desk Sandbox" in result.message and "test mode" in result.message
