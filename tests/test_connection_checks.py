"""“Test connection” against local stubs of Pipedrive and Stripe, and the
Pipedrive OAuth flow (authorize, callback, refresh) against a stub token endpoint."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.connections import pipedrive_auth, store
from app.extensions import db
from tests.conftest import csrf_token
from tests.connection_stubs import PipedriveStub, StripeStub, closed_port_url


@pytest.fixture
def pipedrive():
    stub = PipedriveStub()
    with stub.server:
        yield stub


@pytest.fixture
def stripe_stub():
    stub = StripeStub()
    with stub.server:
        yield stub


@pytest.fixture
def admin(make_user, login):
    user = make_user("admin")
    login(user)
    return user


def _token(client):
    return csrf_token(client, "/admin/connections/")


def _save(app, **values):
    with app.app_context():
        for name, value in values.items():
            store.save(name, value)
        db.session.commit()


def _check(client, kind, htmx=True):
    headers = {"HX-Request": "true"} if htmx else {}
    resp = client.post(f"/admin/connections/{kind}/test", data={"csrf_token": _token(client)},
                       headers=headers)
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


# --- Pipedrive -------------------------------------------------------------------


def test_pipedrive_success_shows_company_and_user_in_place(app, client, admin, pipedrive):
    _save(app, PIPEDRIVE_BASE_URL=pipedrive.url, PIPEDRIVE_API_TOKEN=pipedrive.api_token)
    html = _check(client, "pipedrive")
    assert html.startswith('<div id="pipedrive-check"')  # the fragment only, for htmx
    assert "Connected to Acme Robotics GmbH as Pat Pipe." in html
    assert pipedrive.api_token not in html


def test_pipedrive_check_without_js_renders_the_whole_page(app, client, admin, pipedrive):
    _save(app, PIPEDRIVE_BASE_URL=pipedrive.url, PIPEDRIVE_API_TOKEN=pipedrive.api_token)
    html = _check(client, "pipedrive", htmx=False)
    assert "<h1>Connections</h1>" in html and "Connected to Acme Robotics GmbH" in html


def test_pipedrive_wrong_token(app, client, admin, pipedrive):
    _save(app, PIPEDRIVE_BASE_URL=pipedrive.url, PIPEDRIVE_API_TOKEN="f" * 40)
    html = _check(client, "pipedrive")
    assert ("Pipedrive rejected the API token: check it was copied whole and belongs to "
            "this company.") in html


def test_pipedrive_rate_limited(app, client, admin, pipedrive):
    pipedrive.rate_limited = True
    _save(app, PIPEDRIVE_BASE_URL=pipedrive.url, PIPEDRIVE_API_TOKEN=pipedrive.api_token)
    html = _check(client, "pipedrive")
    assert "rate limiting this token (too many requests); try again in 2 seconds" in html


def test_pipedrive_unreachable(app, client, admin):
    url = closed_port_url()
    _save(app, PIPEDRIVE_BASE_URL=url, PIPEDRIVE_API_TOKEN="a" * 40)
    html = _check(client, "pipedrive")
    assert f"Could not reach Pipedrive at {url}" in html


def test_pipedrive_not_a_pipedrive_address(app, client, admin, stripe_stub):
    _save(app, PIPEDRIVE_BASE_URL=stripe_stub.url, PIPEDRIVE_API_TOKEN="a" * 40)
    html = _check(client, "pipedrive")
    assert "does not look like a Pipedrive company address" in html


def test_pipedrive_not_configured(client, admin):
    html = _check(client, "pipedrive")
    assert "Enter the company domain or base URL first" in html


def test_environment_settings_work_headless(app, client, admin, pipedrive):
    app.config["PIPEDRIVE_BASE_URL"] = pipedrive.url
    app.config["PIPEDRIVE_API_TOKEN"] = pipedrive.api_token
    assert "Connected to Acme Robotics GmbH" in _check(client, "pipedrive")


# --- Pipedrive OAuth -----------------------------------------------------------------


def _start_oauth(app, client, pipedrive):
    app.config["PIPEDRIVE_OAUTH_BASE_URL"] = pipedrive.url
    _save(app, PIPEDRIVE_OAUTH_CLIENT_ID=pipedrive.client_id,
          PIPEDRIVE_OAUTH_CLIENT_SECRET=pipedrive.client_secret,
          PIPEDRIVE_BASE_URL="https://acme.pipedrive.com")
    resp = client.post("/admin/connections/pipedrive/oauth/start",
                       data={"csrf_token": _token(client)})
    assert resp.status_code == 303
    location = urlsplit(resp.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{pipedrive.url}/oauth/authorize"
    )
    query = parse_qs(location.query)
    assert query["client_id"] == [pipedrive.client_id]
    assert query["redirect_uri"] == [
        "http://localhost/admin/connections/pipedrive/oauth/callback"
    ]
    return query["state"][0]


def test_oauth_connect_test_and_refresh(app, client, admin, pipedrive):
    state = _start_oauth(app, client, pipedrive)
    resp = client.get("/admin/connections/pipedrive/oauth/callback",
                      query_string={"code": pipedrive.code, "state": state},
                      follow_redirects=True)
    html = resp.get_data(as_text=True)
    assert "Connected with Pipedrive over OAuth" in html
    with app.app_context():
        auth = pipedrive_auth.pipedrive_auth()
        assert auth["kind"] == "oauth" and auth["access_token"] in pipedrive.access_tokens
        first_access = auth["access_token"]
        # The token names the company's API domain: calls go there.
        assert store.effective("PIPEDRIVE_BASE_URL") == pipedrive.url
        assert store.oauth_expires_at() is not None
    assert first_access not in html and pipedrive.refresh_token not in html
    assert "Connected to Acme Robotics GmbH as Pat Pipe." in _check(client, "pipedrive")

    # The access token expires: the check refreshes it once and succeeds.
    pipedrive.expire_access_tokens()
    assert "Connected to Acme Robotics GmbH" in _check(client, "pipedrive")
    with app.app_context():
        new_access = store.effective("PIPEDRIVE_OAUTH_ACCESS_TOKEN")
        assert new_access != first_access and new_access in pipedrive.access_tokens
        actions = [e.action for e in db.session.execute(select(AuditEntry)).scalars()]
        # The `refresh` callable the desk's client will use also works directly.
        pipedrive.expire_access_tokens()
        refreshed = pipedrive_auth.pipedrive_auth()["refresh"]()
        db.session.commit()
        assert refreshed in pipedrive.access_tokens
    assert "connection.pipedrive_oauth_connected" in actions
    assert "connection.pipedrive_oauth_refreshed" in actions


def test_oauth_callback_with_a_foreign_state_is_refused(app, client, admin, pipedrive):
    _start_oauth(app, client, pipedrive)
    resp = client.get("/admin/connections/pipedrive/oauth/callback",
                      query_string={"code": pipedrive.code, "state": "forged"},
                      follow_redirects=True)
    assert "did not start from this page" in resp.get_data(as_text=True)
    with app.app_context():
        assert store.effective("PIPEDRIVE_OAUTH_ACCESS_TOKEN") is None


def test_oauth_declined(app, client, admin, pipedrive):
    state = _start_oauth(app, client, pipedrive)
    resp = client.get("/admin/connections/pipedrive/oauth/callback",
                      query_string={"error": "user_denied", "state": state},
                      follow_redirects=True)
    assert "the authorisation was declined or cancelled" in resp.get_data(as_text=True)


def test_oauth_wrong_client_secret(app, client, admin, pipedrive):
    state = _start_oauth(app, client, pipedrive)
    _save(app, PIPEDRIVE_OAUTH_CLIENT_SECRET="wrong-secret-0123456789")
    resp = client.get("/admin/connections/pipedrive/oauth/callback",
                      query_string={"code": pipedrive.code, "state": state},
                      follow_redirects=True)
    html = resp.get_data(as_text=True)
    assert "Pipedrive rejected the OAuth client id or client secret" in html
    assert "wrong-secret-0123456789" not in html


def test_oauth_start_needs_the_client(client, admin):
    resp = client.post("/admin/connections/pipedrive/oauth/start",
                       data={"csrf_token": _token(client)}, follow_redirects=True)
    assert "Enter the OAuth app&#39;s client id and client secret first" in resp.get_data(
        as_text=True
    )


# --- Stripe ------------------------------------------------------------------------


def test_stripe_success_shows_account_and_mode(app, client, admin, stripe_stub):
    _save(app, STRIPE_API_BASE=stripe_stub.url, STRIPE_SECRET_KEY=stripe_stub.secret_key)
    html = _check(client, "stripe")
    assert html.startswith('<div id="stripe-check"')
    assert "Connected to Acme Robotics Billing (test mode, secret key)." in html


def test_stripe_invalid_key(app, client, admin, stripe_stub):
    _save(app, STRIPE_API_BASE=stripe_stub.url, STRIPE_SECRET_KEY="sk_test_" + "x" * 24)
    html = _check(client, "stripe")
    assert "Stripe rejected the key: check it was copied whole" in html


def test_stripe_restricted_key_missing_permission_is_named(app, client, admin, stripe_stub):
    _save(app, STRIPE_API_BASE=stripe_stub.url, STRIPE_SECRET_KEY=stripe_stub.restricted_key)
    html = _check(client, "stripe")
    assert "This restricted key lacks a permission the desk needs" in html
    assert "rak_accounts_kyc_basic_read" in html
    # Stripe's own message quotes part of the key: it is not passed through.
    assert stripe_stub.restricted_key[-4:] + "'" not in html


def test_stripe_live_key_against_the_sandbox(app, client, admin, stripe_stub):
    _save(app, STRIPE_API_BASE=stripe_stub.url, STRIPE_SECRET_KEY="sk_live_" + "y" * 24)
    html = _check(client, "stripe")
    assert "This is a live key, but the Stripe API base is the test sandbox" in html


def test_stripe_unreachable(app, client, admin):
    url = closed_port_url()
    _save(app, STRIPE_API_BASE=url, STRIPE_SECRET_KEY="sk_test_" + "z" * 24)
    assert f"Could not reach Stripe at {url}." in _check(client, "stripe")


def test_stripe_rate_limited(app, client, admin, stripe_stub):
    stripe_stub.rate_limited = True
    _save(app, STRIPE_API_BASE=stripe_stub.url, STRIPE_SECRET_KEY=stripe_stub.secret_key)
    assert "Stripe is rate limiting this key" in _check(client, "stripe")


def test_stripe_not_configured(client, admin):
    assert "Enter the Stripe secret key (or restricted key) first" in _check(client, "stripe")


def test_pipedrive_check_against_the_project_sandbox(app, client, admin, pipedrive_seeded):
    """The desk's own Pipedrive sandbox serves /v1/users/me too."""
    _save(app, PIPEDRIVE_BASE_URL=pipedrive_seeded.url,
          PIPEDRIVE_API_TOKEN=pipedrive_seeded.api_token)
    html = _check(client, "pipedrive")
    assert "Connected to" in html and "✔" in html
    _save(app, PIPEDRIVE_API_TOKEN="f" * 40)
    assert "Pipedrive rejected the API token" in _check(client, "pipedrive")
