"""Connection settings: saved encrypted, shown only as last 4, rotated, and
taking precedence over the environment; the interface the desk calls."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.connections import pipedrive_auth, store
from app.connections.models import Setting
from app.extensions import db
from tests.conftest import csrf_token

STRIPE_KEY = "sk_test_51AbCdEfGhIjKlMnOpQrStUvWxYz0123"
STRIPE_KEY_2 = "sk_test_51ZyXwVuTsRqPoNmLkJiHgFeDcBa9876"
WHSEC = "whsec_Q1w2E3r4T5y6U7i8O9p0AsDfGhJk"
PD_TOKEN = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def admin(make_user, login):
    user = make_user("admin")
    login(user)
    return user


def _save_stripe(client, **fields):
    data = {"st-secret_key": "", "st-api_base": "", "st-webhook_secret": "",
            "csrf_token": csrf_token(client, "/admin/connections/")}
    data.update({f"st-{k}": v for k, v in fields.items()})
    return client.post("/admin/connections/stripe", data=data)


def _save_pipedrive(client, **fields):
    data = {"pd-mode": "token", "pd-base_url": "", "pd-api_token": "", "pd-client_id": "",
            "pd-client_secret": "", "csrf_token": csrf_token(client, "/admin/connections/")}
    data.update({f"pd-{k}": v for k, v in fields.items()})
    return client.post("/admin/connections/pipedrive", data=data)


def csrf_token_at(client, path: str, base_url: str) -> str:
    import re

    html = client.get(path, base_url=base_url).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def _rows(app) -> dict[str, Setting]:
    with app.app_context():
        return {r.name: r for r in db.session.execute(select(Setting)).scalars()}


def _audit(app) -> list[AuditEntry]:
    with app.app_context():
        return db.session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars().all()


def test_stripe_key_is_saved_encrypted_and_shown_only_as_last_4(app, client, admin):
    resp = _save_stripe(client, secret_key=STRIPE_KEY, webhook_secret=WHSEC)
    assert resp.status_code == 303
    page = client.get("/admin/connections/").get_data(as_text=True)
    assert STRIPE_KEY not in page and WHSEC not in page
    assert "•••• 0123" in page and "•••• GhJk" in page
    row = _rows(app)["STRIPE_SECRET_KEY"]
    assert row.value is None and row.ciphertext and STRIPE_KEY not in row.ciphertext
    assert Fernet(app.config["DESK_ENCRYPTION_KEY"].encode()).decrypt(
        row.ciphertext.encode()
    ).decode() == STRIPE_KEY
    entries = [e for e in _audit(app) if e.object_type == "setting"]
    assert {(e.action, e.object_id) for e in entries} == {
        ("connection.secret_set", "STRIPE_SECRET_KEY"),
        ("connection.secret_set", "STRIPE_WEBHOOK_SECRET"),
    }
    assert all(e.after == {"secret": "set"} for e in entries)
    dump = json.dumps([[e.before, e.after] for e in _audit(app)])
    assert STRIPE_KEY not in dump and WHSEC not in dump


def test_rotating_a_secret_replaces_it_and_audits_rotated(app, client, admin):
    _save_stripe(client, secret_key=STRIPE_KEY)
    # Empty field: the saved key is kept.
    _save_stripe(client, webhook_secret=WHSEC)
    with app.app_context():
        assert store.effective("STRIPE_SECRET_KEY") == STRIPE_KEY
    resp = _save_stripe(client, secret_key=STRIPE_KEY_2)
    assert resp.status_code == 303
    page = client.get("/admin/connections/").get_data(as_text=True)
    assert "•••• 9876" in page and "•••• 0123" not in page
    assert "secret key rotated" in page  # the flash message
    with app.app_context():
        assert store.effective("STRIPE_SECRET_KEY") == STRIPE_KEY_2
    rotated = [e for e in _audit(app) if e.action == "connection.secret_rotated"]
    assert len(rotated) == 1 and rotated[0].object_id == "STRIPE_SECRET_KEY"
    assert rotated[0].before == {"secret": "saved"} and rotated[0].after == {"secret": "rotated"}
    # Saving the same key again changes nothing and writes no entry.
    count = len(_audit(app))
    _save_stripe(client, secret_key=STRIPE_KEY_2)
    assert len([e for e in _audit(app) if e.object_type == "setting"]) == len(
        [e for e in _audit(app)[:count] if e.object_type == "setting"]
    )


def test_desk_value_takes_precedence_over_the_environment(app, client, admin):
    app.config["STRIPE_SECRET_KEY"] = STRIPE_KEY
    app.config["STRIPE_API_BASE"] = "https://api.stripe.com"
    with app.app_context():
        assert store.effective("STRIPE_SECRET_KEY") == STRIPE_KEY
        assert store.source("STRIPE_SECRET_KEY") == "environment"
        assert store.effective("STRIPE_WEBHOOK_SECRET") is None
    page = client.get("/admin/connections/").get_data(as_text=True)
    assert "From the environment: <code>•••• 0123</code>" in page and STRIPE_KEY not in page
    _save_stripe(client, secret_key=STRIPE_KEY_2, api_base="http://127.0.0.1:12111")
    with app.app_context():
        assert store.effective("STRIPE_SECRET_KEY") == STRIPE_KEY_2
        assert store.effective("STRIPE_API_BASE") == "http://127.0.0.1:12111"
        assert store.source("STRIPE_SECRET_KEY") == "desk"
    # Removing the desk's key would send the environment's key to the desk's address:
    # refused while that address differs from the environment's.
    forget = {"csrf_token": csrf_token(client, "/admin/connections/")}
    resp = client.post("/admin/connections/STRIPE_SECRET_KEY/forget", data=forget,
                       follow_redirects=True)
    assert "Secret key not removed" in resp.get_data(as_text=True)
    with app.app_context():
        assert store.effective("STRIPE_SECRET_KEY") == STRIPE_KEY_2
    # Emptying the address moves the desk's key: it must be entered again.
    assert _save_stripe(client, api_base="").status_code == 400
    _save_stripe(client, api_base="", secret_key=STRIPE_KEY_2)
    with app.app_context():
        assert store.effective("STRIPE_API_BASE") == "https://api.stripe.com"
    # Now removing the desk's key brings the environment's back, for its own address.
    resp = client.post("/admin/connections/STRIPE_SECRET_KEY/forget", data=forget)
    assert resp.status_code == 303
    with app.app_context():
        assert store.effective("STRIPE_SECRET_KEY") == STRIPE_KEY
    assert any(e.action == "connection.setting_removed" for e in _audit(app))


def test_effective_knows_only_the_connection_names(app):
    with app.app_context():
        with pytest.raises(KeyError):
            store.effective("SECRET_KEY")
        for name in ("PIPEDRIVE_BASE_URL", "PIPEDRIVE_API_TOKEN", "PIPEDRIVE_OAUTH_ACCESS_TOKEN",
                     "STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET"):
            store.effective(name)


def test_pipedrive_settings_and_auth(app, client, admin):
    with app.app_context():
        with pytest.raises(store.ConnectionNotConfigured, match="No Pipedrive API token"):
            pipedrive_auth.pipedrive_auth()
    resp = _save_pipedrive(client, base_url="acme", api_token=PD_TOKEN)
    assert resp.status_code == 303
    with app.app_context():
        assert store.effective("PIPEDRIVE_BASE_URL") == "https://acme.pipedrive.com"
        assert pipedrive_auth.pipedrive_auth() == {"kind": "token", "token": PD_TOKEN}
        assert pipedrive_auth.pipedrive_headers() == {"x-api-token": PD_TOKEN}
    page = client.get("/admin/connections/").get_data(as_text=True)
    assert PD_TOKEN not in page and "•••• 4567" in page
    assert 'value="https://acme.pipedrive.com"' in page
    # OAuth chosen but not connected: a plain-words error, not a token.
    _save_pipedrive(client, mode="oauth", base_url="https://acme.pipedrive.com")
    with app.app_context():
        with pytest.raises(store.ConnectionNotConfigured, match="Connect with Pipedrive"):
            pipedrive_auth.pipedrive_auth()


def test_environment_only_oauth_token_is_used_headless(app):
    app.config["PIPEDRIVE_OAUTH_ACCESS_TOKEN"] = "env-access-token-0123456789"
    with app.app_context():
        auth = pipedrive_auth.pipedrive_auth()
        assert auth["kind"] == "oauth" and auth["access_token"] == "env-access-token-0123456789"
        assert callable(auth["refresh"])


@pytest.mark.parametrize(
    ("fields", "field_id", "message"),
    [
        ({"secret_key": "pk_test_abcdefghijklmnop"}, "st-secret_key-error",
         "This is a publishable key"),
        ({"secret_key": "sk_test_short"}, "st-secret_key-error",
         "This is not a Stripe secret key"),
        ({"secret_key": WHSEC}, "st-secret_key-error", "This is a webhook signing secret"),
        ({"webhook_secret": "secret_abcdefghijkl"}, "st-webhook_secret-error",
         "A webhook signing secret starts with whsec_"),
        ({"api_base": "ftp://files.example.com"}, "st-api_base-error", "Enter an http(s) URL"),
    ],
)
def test_stripe_validation_next_to_the_field_keeps_input_but_not_secrets(
    app, client, admin, fields, field_id, message
):
    typed = {"api_base": "http://typed.example:1234", **fields}
    resp = _save_stripe(client, **typed)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert f'id="{field_id}">{message}' in html
    assert f'value="{typed["api_base"]}"' in html  # plain input is kept
    for name in ("secret_key", "webhook_secret"):
        if name in fields:
            assert fields[name] not in html  # secrets are never echoed back
    assert _rows(app) == {}


def test_pipedrive_validation_next_to_the_field(app, client, admin):
    resp = _save_pipedrive(client, base_url="not a domain!", api_token="short")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="pd-base_url-error">Enter the company domain' in html
    assert 'id="pd-api_token-error">This does not look like a Pipedrive API token' in html
    assert 'value="not a domain!"' in html
    assert _rows(app) == {}


def test_webhook_url_is_built_from_the_request_host(app, make_user):
    from tests.conftest import TEST_PASSWORD

    user = make_user("admin")
    client = app.test_client()
    base = "http://desk.example.com:8080"
    token = csrf_token_at(client, "/login", base)
    client.post("/login", base_url=base, data={
        "email": user.email, "password": TEST_PASSWORD, "csrf_token": token})
    html = client.get("/admin/connections/", base_url=base).get_data(as_text=True)
    assert 'value="http://desk.example.com:8080/webhooks/stripe"' in html
    assert "http://desk.example.com:8080/admin/connections/pipedrive/oauth/callback" in html


def test_restricted_key_permissions_are_listed(client, admin):
    html = client.get("/admin/connections/").get_data(as_text=True)
    for resource in ("Customers", "Invoices", "Invoice items", "Tax rates", "Products",
                     "Prices", "Credit notes", "Events", "Webhook endpoints"):
        assert f"<td>{resource}</td>" in html
    assert "<td>Write</td>" in html and "<td>Read</td>" in html


def test_a_secret_encrypted_under_another_key_is_reported_not_a_500(app, client, admin):
    _save_stripe(client, secret_key=STRIPE_KEY)
    app.config["DESK_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    resp = client.get("/admin/connections/")
    assert resp.status_code == 200
    assert "cannot be decrypted with DESK_ENCRYPTION_KEY or any key in" in resp.get_data(
        as_text=True
    )
    with app.app_context():
        with pytest.raises(store.SecretUnreadable):
            store.effective("STRIPE_SECRET_KEY")
    # Entering it again repairs it.
    _save_stripe(client, secret_key=STRIPE_KEY)
    with app.app_context():
        assert store.effective("STRIPE_SECRET_KEY") == STRIPE_KEY


# `flask desk rotate-encryption-key`: tests/test_encryption_rotation.py


def test_tampered_sign_in_method_is_refused_not_a_500(app, client, admin):
    resp = _save_pipedrive(client, mode="password")
    assert resp.status_code == 400
    assert 'id="pd-mode-error">' in resp.get_data(as_text=True)
    assert _rows(app) == {}


# --- issue 15 defect 3: a saved secret is never sent to a new address -----------------


class _Listener:
    """A fake vendor on a free loopback port: records every request's credentials."""

    def __init__(self) -> None:
        from werkzeug.wrappers import Request, Response

        from app.sandbox.server import SandboxServer

        self.seen: list[str] = []

        def wsgi(environ, start_response):
            req = Request(environ)
            self.seen.append(" ".join(filter(None, (
                req.headers.get("Authorization"), req.headers.get("x-api-token"),
                req.query_string.decode()))))
            return Response("{}", status=401, mimetype="application/json")(
                environ, start_response)

        self.server = SandboxServer(wsgi).start()
        self.url = self.server.url

    def received(self, secret: str) -> bool:
        import base64

        encoded = base64.b64encode(f"{secret}:".encode()).decode()
        return any(secret in s or encoded in s for s in self.seen)


@pytest.fixture
def listener():
    fake = _Listener()
    yield fake
    fake.server.stop()


def _test_button(client, kind: str, **extra):
    data = {"csrf_token": csrf_token(client, "/admin/connections/"), **extra}
    return client.post(f"/admin/connections/{kind}/test", data=data)


def test_a_new_stripe_address_needs_the_key_again_and_never_gets_the_saved_one(
    app, client, admin, listener
):
    _save_stripe(client, secret_key=STRIPE_KEY, api_base="https://api.stripe.com")
    app.config["STRIPE_SECRET_KEY"] = STRIPE_KEY_2  # the environment's key must not go either
    resp = _save_stripe(client, api_base=listener.url)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="st-secret_key-error"' in page and "enter the secret key again" in page
    assert f'value="{listener.url}"' in page  # what was typed is kept
    with app.app_context():
        assert store.effective("STRIPE_API_BASE") == "https://api.stripe.com"
    # "Test connection" with the unsaved address and a blank key: the saved address only.
    _test_button(client, "stripe", **{"st-api_base": listener.url, "st-secret_key": ""})
    assert not listener.received(STRIPE_KEY) and not listener.received(STRIPE_KEY_2)
    assert listener.seen == []
    # With the key entered again, the address may change (it is that key that goes there).
    assert _save_stripe(client, api_base=listener.url, secret_key=STRIPE_KEY_2).status_code == 303


def test_a_stripe_address_from_the_environment_is_no_way_around_it(app, client, admin, listener):
    app.config["STRIPE_SECRET_KEY"] = STRIPE_KEY
    resp = _save_stripe(client, api_base=listener.url)  # the attack: a new address, no key
    _test_button(client, "stripe")  # then "Test connection"
    assert not listener.received(STRIPE_KEY)  # before the fix the key arrived here
    assert listener.seen == [] and resp.status_code == 400


def test_a_new_pipedrive_address_needs_the_token_again(app, client, admin, listener):
    _save_pipedrive(client, base_url="acme", api_token=PD_TOKEN)
    resp = _save_pipedrive(client, base_url=listener.url)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="pd-api_token-error"' in page and "enter the API token again" in page
    with app.app_context():
        assert store.effective("PIPEDRIVE_BASE_URL") == "https://acme.pipedrive.com"
    _test_button(client, "pipedrive", **{"pd-base_url": listener.url})
    assert listener.seen == []


def test_a_new_pipedrive_address_drops_the_oauth_tokens(app, client, admin, listener):
    with app.app_context():
        store.save("PIPEDRIVE_BASE_URL", "https://acme.pipedrive.com")
        store.save("PIPEDRIVE_AUTH_MODE", "oauth")
        store.save("PIPEDRIVE_OAUTH_ACCESS_TOKEN", "at" + "9" * 40)
        store.save("PIPEDRIVE_OAUTH_REFRESH_TOKEN", "rt" + "8" * 40)
        db.session.commit()
    resp = _save_pipedrive(client, mode="oauth", base_url=listener.url)
    assert resp.status_code == 303
    with app.app_context():
        assert store.effective("PIPEDRIVE_OAUTH_ACCESS_TOKEN") is None
        assert store.effective("PIPEDRIVE_OAUTH_REFRESH_TOKEN") is None
    _test_button(client, "pipedrive")
    assert not listener.received("at" + "9" * 40) and listener.seen == []


def test_outside_the_sandbox_profile_only_the_vendors_hosts(app, client, admin, listener):
    app.config["DESK_SANDBOX"] = False
    resp = _save_stripe(client, api_base=listener.url, secret_key=STRIPE_KEY)
    assert resp.status_code == 400
    assert 'id="st-api_base-error"' in resp.get_data(as_text=True)
    for bad in (listener.url, "https://evil.example.com", "https://acme.pipedrive.com.evil.io",
                "https://acme.pipedrive.com:8443", "http://acme.pipedrive.com"):
        resp = _save_pipedrive(client, base_url=bad, api_token=PD_TOKEN)
        assert resp.status_code == 400, bad
        assert 'id="pd-base_url-error"' in resp.get_data(as_text=True)
    assert _save_pipedrive(client, base_url="acme", api_token=PD_TOKEN).status_code == 303
    assert _save_pipedrive(client, base_url="https://api.pipedrive.com",
                           api_token=PD_TOKEN).status_code == 303
    assert _save_stripe(client, api_base="https://api.stripe.com",
                        secret_key=STRIPE_KEY).status_code == 303
    # An address saved earlier (before this check) is not used to send the key.
    with app.app_context():
        store.save("STRIPE_API_BASE", listener.url)
        db.session.commit()
    page = _test_button(client, "stripe").get_data(as_text=True)
    assert "is not sent" in page and STRIPE_KEY not in page
    assert listener.seen == []
    with app.app_context():
        from app.stripe_api.client import StripeGatewayError
        from app.stripe_api.factory import stripe_gateway

        with pytest.raises(StripeGatewayError):
            stripe_gateway()


def test_test_connection_does_not_follow_a_redirect_with_the_token(app, client, admin, listener):
    from werkzeug.utils import redirect as redirect_to

    from app.sandbox.server import SandboxServer

    hop = SandboxServer(lambda environ, start_response: redirect_to(
        f"{listener.url}/v1/users/me", 302)(environ, start_response)).start()
    try:
        _save_pipedrive(client, base_url=hop.url, api_token=PD_TOKEN)
        page = _test_button(client, "pipedrive").get_data(as_text=True)
    finally:
        hop.stop()
    assert not listener.received(PD_TOKEN) and listener.seen == []
    assert "Pipedrive answered HTTP 302" in page


def test_removing_the_only_pipedrive_address_is_allowed(app, client, admin):
    _save_pipedrive(client, base_url="acme", api_token=PD_TOKEN)
    resp = client.post("/admin/connections/PIPEDRIVE_BASE_URL/forget",
                       data={"csrf_token": csrf_token(client, "/admin/connections/")})
    assert resp.status_code == 303
    with app.app_context():
        assert store.effective("PIPEDRIVE_BASE_URL") is None  # the token goes nowhere
        assert store.effective("PIPEDRIVE_API_TOKEN") == PD_TOKEN
