"""Pipedrive OAuth 2.0: authorize, code exchange, token refresh.

Endpoints per Pipedrive's documentation: GET {oauth}/oauth/authorize and
POST {oauth}/oauth/token (HTTP Basic with the client id and secret, form
encoded). {oauth} is PIPEDRIVE_OAUTH_BASE_URL, https://oauth.pipedrive.com
unless configured otherwise (tests point it at a local stub).
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import requests
from flask import current_app

from app.connections import store
from app.types import utcnow

DEFAULT_OAUTH_BASE = "https://oauth.pipedrive.com"
TIMEOUT = 15


class OAuthError(Exception):
    """The OAuth exchange failed; the message is in plain words, without secrets."""


def oauth_base() -> str:
    return (current_app.config.get("PIPEDRIVE_OAUTH_BASE_URL") or DEFAULT_OAUTH_BASE).rstrip("/")


def authorize_url(client_id: str, redirect_uri: str, state: str) -> str:
    query = urlencode({"client_id": client_id, "redirect_uri": redirect_uri, "state": state})
    return f"{oauth_base()}/oauth/authorize?{query}"


def _client() -> tuple[str, str]:
    client_id = store.effective("PIPEDRIVE_OAUTH_CLIENT_ID")
    secret = store.effective("PIPEDRIVE_OAUTH_CLIENT_SECRET")
    if not client_id or not secret:
        raise OAuthError("Enter the OAuth app's client id and client secret first, and save.")
    return client_id, secret


def _token_request(data: dict) -> dict:
    client_id, secret = _client()
    problem = store.base_problem("PIPEDRIVE_OAUTH_BASE_URL", oauth_base())
    if problem:
        raise OAuthError(f"The client secret is not sent: PIPEDRIVE_OAUTH_BASE_URL {problem}.")
    url = f"{oauth_base()}/oauth/token"
    try:
        resp = requests.post(url, data=data, auth=(client_id, secret), timeout=TIMEOUT)
    except requests.RequestException:
        raise OAuthError(f"Could not reach Pipedrive's OAuth server at {oauth_base()}.") from None
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code == 401:
        raise OAuthError(
            "Pipedrive rejected the OAuth client id or client secret: check both were "
            "copied whole from the app's “OAuth & access scopes” tab."
        )
    if resp.status_code >= 400 or not isinstance(body, dict) or "access_token" not in body:
        detail = None
        if isinstance(body, dict):
            detail = body.get("error_description") or body.get("message") or body.get("error")
        raise OAuthError(
            f"Pipedrive's OAuth server refused the request (HTTP {resp.status_code}"
            + (f": {detail}" if isinstance(detail, str) else "") + ")."
        )
    return body


def _store_tokens(body: dict, action: str) -> str:
    # OAuth calls go to the company's own API domain, which the token names
    # (a Pipedrive host: the access token is sent nowhere else).
    domain = body.get("api_domain")
    domain = domain.rstrip("/") if isinstance(domain, str) and domain.startswith("http") else None
    if domain and store.base_problem("PIPEDRIVE_BASE_URL", domain):
        raise OAuthError("Pipedrive's OAuth server named an API domain that is not a "
                         "Pipedrive address; the tokens were not kept.")
    access = body["access_token"]
    store.save("PIPEDRIVE_OAUTH_ACCESS_TOKEN", access, audit_action=action)
    if body.get("refresh_token"):
        store.save("PIPEDRIVE_OAUTH_REFRESH_TOKEN", body["refresh_token"], audit_action=action)
    expires_in = body.get("expires_in")
    if isinstance(expires_in, int):
        expires = utcnow() + dt.timedelta(seconds=expires_in)
        store.save("PIPEDRIVE_OAUTH_EXPIRES_AT", expires.isoformat(timespec="seconds"))
    if domain:
        store.save("PIPEDRIVE_BASE_URL", domain)
    return access


def exchange_code(code: str, redirect_uri: str) -> str:
    """Trade the authorization code for tokens and save them. Returns the access token."""
    body = _token_request(
        {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    )
    store.save("PIPEDRIVE_AUTH_MODE", "oauth")
    return _store_tokens(body, "connection.pipedrive_oauth_connected")


def refresh_access_token() -> str:
    """A new access token from the saved refresh token (saved; the caller commits)."""
    refresh = store.effective("PIPEDRIVE_OAUTH_REFRESH_TOKEN")
    if not refresh:
        raise OAuthError(
            "There is no Pipedrive refresh token: connect with Pipedrive again on the "
            "Connections page."
        )
    body = _token_request({"grant_type": "refresh_token", "refresh_token": refresh})
    return _store_tokens(body, "connection.pipedrive_oauth_refreshed")
