from __future__ import annotations

import ipaddress

import pytest

from tests.conftest import csrf_token


def test_form_post_without_csrf_token_is_rejected(client, make_user, login):
    login(make_user("finance"))
    resp = client.post("/logout")
    assert resp.status_code == 400
    assert "did not come from Billing Desk" in resp.get_data(as_text=True)
    assert client.get("/").status_code == 200  # still signed in: nothing changed


def test_form_post_with_wrong_token_is_rejected(client, make_user, login):
    login(make_user("finance"))
    resp = client.post("/logout", data={"csrf_token": "forged"})
    assert resp.status_code == 400


def test_htmx_post_without_header_is_rejected_with_a_fragment(client, make_user, login):
    login(make_user("finance"))
    resp = client.post("/logout", headers={"HX-Request": "true"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert html.startswith('<p class="error"') and "<html" not in html


def test_htmx_post_with_header_token_is_accepted(client, make_user, login):
    login(make_user("finance"))
    token = csrf_token(client, "/")
    resp = client.post("/logout", headers={"HX-Request": "true", "X-CSRFToken": token})
    assert resp.status_code == 302


def test_layout_sets_the_csrf_header_for_htmx_once(client, make_user, login):
    login(make_user("finance"))
    html = client.get("/").get_data(as_text=True)
    assert html.count('hx-headers=\'{"X-CSRFToken": "') == 1


def test_security_headers(client):
    resp = client.get("/login")
    h = resp.headers
    csp = h["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["Referrer-Policy"] == "same-origin"
    assert h["X-Frame-Options"] == "DENY"
    assert h["Cache-Control"] == "no-store"
    assert len(h["X-Request-ID"]) >= 8
    assert "Strict-Transport-Security" not in h


def test_embeddable_view_may_be_framed_by_named_origins(app, client):
    from app.auth.permissions import public
    from app.web.security import embeddable

    @public
    @embeddable("https://*.pipedrive.com")
    def panel():
        return "panel"

    app.add_url_rule("/panel-test", "panel_test", panel)
    h = client.get("/panel-test").headers
    assert "frame-ancestors https://*.pipedrive.com" in h["Content-Security-Policy"]
    assert "X-Frame-Options" not in h


def test_cookies_are_secure_over_https(client, make_user):
    user = make_user("finance")
    token = csrf_token(client)
    resp = client.post(
        "/login", base_url="https://localhost",
        data={"email": user.email, "password": "correct horse battery staple", "csrf_token": token},
    )
    cookie = resp.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Strict-Transport-Security" in resp.headers


def test_cookies_are_not_secure_over_http(client, make_user, login):
    resp = login(make_user("finance"))
    assert "Secure" not in resp.headers["Set-Cookie"]


def test_no_inline_script_or_style_in_pages(client, make_user, login):
    login(make_user("admin", "finance", "approver", "sales"))
    for path in ("/", "/admin/", "/admin/audit/", "/admin/roles", "/account"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>" not in html and " style=" not in html and "<style" not in html, path
        assert "https://" not in html.replace("https://*.pipedrive.com", ""), path  # no CDN


def test_unknown_page_is_a_friendly_404(client, make_user, login):
    login(make_user("finance"))
    resp = client.get("/no/such/page")
    assert resp.status_code == 404
    assert "There is nothing at this address" in resp.get_data(as_text=True)


def test_unexpected_error_is_a_friendly_500_with_a_reference(app, client, make_user, login):
    from app.auth.permissions import requires

    @requires("home.view")
    def boom():
        raise RuntimeError("internal detail that must not leak")

    app.add_url_rule("/boom", "boom", boom)
    login(make_user("finance"))
    resp = client.get("/boom", headers={"X-Request-ID": "req-12345678"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 500
    assert "req-12345678" in html and "internal detail" not in html


# --- issue 16 defect 8: forwarded headers only from the configured proxies ----------------

PROXY = "10.0.0.5"


@pytest.fixture
def proxied(database_url, tmp_path):
    """The app behind one trusted proxy (10.0.0.5) and a trusted network (10.1.0.0/16)."""
    from app import create_app
    from tests.conftest import _clean, base_config

    app = create_app({**base_config(database_url, tmp_path),
                      "DESK_TRUSTED_PROXIES": ("10.0.0.5/32", "10.1.0.0/16")})
    yield app
    _clean(app)


def _failed_sign_in_from(app, remote: str, headers: dict) -> str:
    """The address the sign-in throttle recorded for one failed attempt."""
    from sqlalchemy import select

    from app.auth.models import LoginFailure
    from app.extensions import db

    client = app.test_client()
    token = csrf_token(client)
    resp = client.post("/login", data={"email": "nobody@example.com", "password": "wrong!",
                                       "csrf_token": token},
                       headers=headers, environ_base={"REMOTE_ADDR": remote})
    assert resp.status_code == 401
    with app.app_context():
        ips = db.session.execute(select(LoginFailure.ip).order_by(LoginFailure.id)).scalars()
        return list(ips)[-1]


def test_forwarded_headers_from_an_untrusted_address_are_ignored(proxied):
    headers = {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"}
    assert _failed_sign_in_from(proxied, "203.0.113.50", headers) == "203.0.113.50"
    resp = proxied.test_client().get("/login", headers=headers,
                                     environ_base={"REMOTE_ADDR": "203.0.113.50"})
    assert "Strict-Transport-Security" not in resp.headers  # still plain http


def test_forwarded_headers_from_a_trusted_proxy_are_applied(proxied):
    assert _failed_sign_in_from(proxied, PROXY, {"X-Forwarded-For": "198.51.100.1"}) \
        == "198.51.100.1"
    headers = {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"}
    resp = proxied.test_client().get("/login", headers=headers,
                                     environ_base={"REMOTE_ADDR": PROXY})
    assert "Strict-Transport-Security" in resp.headers


def test_spoofed_hops_in_front_of_the_client_do_not_win(proxied):
    # The client wrote "1.2.3.4" itself; the proxy appended the address it saw.
    headers = {"X-Forwarded-For": "1.2.3.4, 198.51.100.1"}
    assert _failed_sign_in_from(proxied, PROXY, headers) == "198.51.100.1"
    # Two trusted proxies in a row (10.1.2.3 then 10.0.0.5): the client is before them.
    headers = {"X-Forwarded-For": "1.2.3.4, 198.51.100.2, 10.1.2.3"}
    assert _failed_sign_in_from(proxied, PROXY, headers) == "198.51.100.2"
    # A client claiming to be a trusted proxy itself gets nothing from it.
    headers = {"X-Forwarded-For": "10.0.0.5"}
    assert _failed_sign_in_from(proxied, "198.51.100.3", headers) == "198.51.100.3"


def test_without_trusted_proxies_forwarded_headers_count_for_nothing(app):
    headers = {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"}
    assert _failed_sign_in_from(app, PROXY, headers) == PROXY


def test_trusted_proxies_middleware_picks_the_client(proxied):
    from app.web.proxies import TrustedProxies

    mw = TrustedProxies(None, ["10.0.0.5", "10.1.0.0/16", "fd00::/8"])
    assert mw.client("203.0.113.7") == "203.0.113.7"
    assert mw.client("203.0.113.7:5123, 10.1.0.9") == "203.0.113.7"
    assert mw.client("[2001:db8::1]:443, fd00::2") == "2001:db8::1"
    assert mw.client("10.1.0.8, 10.0.0.5") == "10.1.0.8"  # all trusted: the first
    assert mw.client("203.0.113.7, unknown") is None  # garbage: believe nothing
    assert mw.trusted(ipaddress.ip_address("10.1.255.255"))
    assert not mw.trusted(ipaddress.ip_address("10.2.0.1"))
