"""The Pipedrive panel: Pipedrive's HS256 token (valid, expired, tampered, alg none,
wrong secret, wrong company, missing), framing, and what the panel shows."""

from __future__ import annotations

import base64
import json
import time

import pytest

from app.sales.panel_token import PanelTokenError, sign, verify
from app.types import utcnow

SECRET = "panel-secret-for-tests-0123456789"
COMPANY = 777


def token(secret=SECRET, **claims):
    base = {"userId": 1, "companyId": COMPANY, "iat": int(time.time()),
            "exp": int(time.time()) + 300}
    base.update(claims)
    return sign(base, secret)


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# -- the token itself -----------------------------------------------------------------


def test_valid_token_gives_its_claims():
    claims = verify(token(), SECRET, company_id=COMPANY)
    assert claims["companyId"] == COMPANY and claims["userId"] == 1


@pytest.mark.parametrize("make, reason", [
    (lambda: token(exp=int(time.time()) - 120), "expired"),
    (lambda: token(exp=None), "no expiry"),
    (lambda: token(secret="another-secret"), "bad signature"),
    (lambda: token(companyId=778), "another company"),
    (lambda: token(iat=int(time.time()) + 3600), "not valid yet"),
    (lambda: None, "missing"),
    (lambda: "", "missing"),
    (lambda: "a.b", "malformed"),
    (lambda: "!!!.???.###", "malformed"),
])
def test_bad_tokens_are_refused(make, reason):
    with pytest.raises(PanelTokenError, match=reason):
        verify(make(), SECRET, company_id=COMPANY)


def test_tampered_payload_is_refused():
    header, _payload, sig = token().split(".")
    forged = b64({"userId": 1, "companyId": COMPANY, "exp": int(time.time()) + 10**6})
    with pytest.raises(PanelTokenError, match="bad signature"):
        verify(f"{header}.{forged}.{sig}", SECRET)


@pytest.mark.parametrize("alg", ["none", "None", "HS512", "RS256", None])
def test_other_algorithms_are_refused(alg):
    claims = {"userId": 1, "companyId": COMPANY, "exp": int(time.time()) + 300}
    unsigned = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}."
    with pytest.raises(PanelTokenError):
        verify(unsigned, SECRET)
    # Even with a valid HS256 signature over the same header.
    import hashlib
    import hmac

    head_payload = unsigned[:-1]
    sig = hmac.new(SECRET.encode(), head_payload.encode(), hashlib.sha256).digest()
    signed = head_payload + "." + base64.urlsafe_b64encode(sig).rstrip(b"=").decode()
    with pytest.raises(PanelTokenError, match="algorithm"):
        verify(signed, SECRET)


def test_no_secret_means_no_panel():
    with pytest.raises(PanelTokenError, match="not configured"):
        verify(token(), None)


# -- the pages ------------------------------------------------------------------------


@pytest.fixture
def panel(app, people, make_deal, make_invoice):
    app.config.update(PIPEDRIVE_PANEL_SECRET=SECRET, PIPEDRIVE_PANEL_COMPANY_ID=COMPANY)
    import datetime as dt

    now = utcnow()
    deal = make_deal("900", title="Panel deal")
    make_invoice(deal, "400", paid="400", payment_status="paid", stripe_status="paid",
                 pushed=now - dt.timedelta(days=30))
    make_invoice(deal, "500", payment_status="overdue", due=now - dt.timedelta(days=3),
                 pushed=now - dt.timedelta(days=20))
    other = make_deal("70", "USD", title="Other deal")
    make_invoice(other, "70", "USD", due=now + dt.timedelta(days=9))
    return deal


def test_panel_shows_amounts_and_latest_invoice(client, panel):
    resp = client.get(f"/panel/deal/{panel}?token={token()}&companyId={COMPANY}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Panel deal" in html and 'data-paid-status="overdue"' in html
    amounts = html.split('id="panel-amounts"')[1].split("</table>")[0]
    for text in ("EUR 900.00", "EUR 400.00", "EUR 500.00"):
        assert text in amounts
    latest = html.split('id="panel-latest"')[1]
    assert "ST-0002" in latest and "https://invoice.stripe.com/i/test_2" in latest
    assert 'class="mainnav"' not in html and "<script" not in html
    # Framed by Pipedrive only; no desk session is made.
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors https://*.pipedrive.com" in csp
    assert "X-Frame-Options" not in resp.headers
    assert "Set-Cookie" not in resp.headers


def test_organization_panel_sums_its_deals_per_currency(client, panel):
    html = client.get(f"/panel/organization/500?token={token()}").get_data(as_text=True)
    amounts = html.split('id="panel-amounts"')[1].split("</table>")[0]
    assert "<th class=\"num\">EUR</th>" in amounts and "<th class=\"num\">USD</th>" in amounts
    assert "EUR 900.00" in amounts and "USD 70.00" in amounts
    assert "Acme GmbH" in html


def test_pipedrive_style_url_uses_selected_ids(client, panel):
    url = f"/panel/deal?resource=deal&selectedIds={panel}&companyId={COMPANY}&token={token()}"
    assert "Panel deal" in client.get(url).get_data(as_text=True)


@pytest.mark.parametrize("query", [
    "",  # missing
    "token=" + "x.y.z",
    "token={expired}",
    "token={wrong_secret}",
    "token={other_company}",
    "token={valid}&companyId=1",  # the query names another company than the token
])
def test_panel_refuses_with_a_plain_403(client, panel, query):
    query = query.format(
        expired=token(exp=int(time.time()) - 600), wrong_secret=token(secret="nope"),
        other_company=token(companyId=1), valid=token(),
    )
    resp = client.get(f"/panel/deal/{panel}?{query}")
    assert resp.status_code == 403
    assert resp.mimetype == "text/plain"
    body = resp.get_data(as_text=True)
    assert "Pipedrive" in body and "EUR" not in body and "Panel deal" not in body


def test_desk_signed_link_opens_its_own_record_only(client, panel):
    own = token(resource="deal", selectedIds=str(panel))
    assert client.get(f"/panel/deal/{panel}?token={own}").status_code == 200
    assert client.get(f"/panel/deal/{panel + 1}?token={own}").status_code == 403
    assert client.get(f"/panel/organization/500?token={own}").status_code == 403


def test_panel_unconfigured_answers_403(app, client, panel):
    app.config["PIPEDRIVE_PANEL_SECRET"] = None
    resp = client.get(f"/panel/deal/{panel}?token={token()}")
    assert resp.status_code == 403 and "not set up" in resp.get_data(as_text=True)


def test_panel_link_command_makes_a_working_link(app, client, panel):
    result = app.test_cli_runner().invoke(args=["desk", "panel-link", "deal", str(panel),
                                               "--base-url", "http://desk.test"])
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert url.startswith(f"http://desk.test/panel/deal/{panel}?token=")
    assert client.get(url.removeprefix("http://desk.test")).status_code == 200
