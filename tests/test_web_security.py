from __future__ import annotations

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
