"""Local stand-ins for the two vendor endpoints the connection test calls, and
Pipedrive's OAuth token endpoint, answering in the vendors' own shapes.

The project's sandboxes (app/sandbox/) do not serve GET /v1/users/me or
GET /v1/account yet; these stubs do, on a real socket (SandboxServer).
"""

from __future__ import annotations

import base64
import json
import secrets
import socket

from werkzeug.wrappers import Request, Response

from app.sandbox.server import SandboxServer

# Stripe's account object (API reference fixture), trimmed to the fields the desk reads
# and a few neighbours so the shape stays recognisable.
ACCOUNT = {
    "id": "acct_1PgafTB7WZ01zgkW",
    "object": "account",
    "business_profile": {"name": None, "support_email": None, "url": None, "mcc": None},
    "business_type": None,
    "capabilities": {"card_payments": "active", "transfers": "active"},
    "charges_enabled": False,
    "controller": {"type": "account"},
    "country": "US",
    "created": 1234567890,
    "default_currency": "usd",
    "details_submitted": False,
    "email": "site@stripe.com",
    "external_accounts": {"data": [], "has_more": False, "object": "list",
                          "url": "/v1/accounts/acct_1PgafTB7WZ01zgkW/external_accounts"},
    "metadata": {},
    "payouts_enabled": False,
    "settings": {
        "branding": {"icon": None, "logo": None, "primary_color": None, "secondary_color": None},
        "dashboard": {"display_name": "Acme Robotics Billing", "timezone": "Etc/UTC"},
        "payouts": {"debit_negative_balances": True, "statement_descriptor": None,
                    "schedule": {"delay_days": 2, "interval": "daily"}},
    },
    "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
    "type": "standard",
}


def _json(body, status=200, headers=None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {},
                    mimetype="application/json")


class PipedriveStub:
    """GET /v1/users/me and POST /oauth/token, like Pipedrive."""

    def __init__(self) -> None:
        self.api_token = "pd" + secrets.token_hex(20)
        self.client_id = "cid" + secrets.token_hex(8)
        self.client_secret = "pdsecret" + secrets.token_hex(16)
        self.code = "code-" + secrets.token_hex(8)
        self.access_tokens: set[str] = set()
        self.refresh_token = "rt" + secrets.token_hex(16)
        self.rate_limited = False
        self.requests: list[tuple[str, str]] = []
        self.server = SandboxServer(self.wsgi)

    @property
    def url(self) -> str:
        return self.server.url

    def expire_access_tokens(self) -> None:
        self.access_tokens.clear()

    def _new_tokens(self) -> dict:
        access = "at" + secrets.token_hex(20)
        self.access_tokens.add(access)
        return {
            "access_token": access, "token_type": "Bearer", "refresh_token": self.refresh_token,
            "scope": "base,deals:full", "expires_in": 3599, "api_domain": self.url,
        }

    def wsgi(self, environ, start_response):
        request = Request(environ)
        self.requests.append((request.method, request.path))
        if request.path == "/v1/users/me" and request.method == "GET":
            resp = self._me(request)
        elif request.path == "/oauth/token" and request.method == "POST":
            resp = self._token(request)
        else:
            resp = _json({"success": False, "error": "Not found"}, 404)
        return resp(environ, start_response)

    def _me(self, request: Request) -> Response:
        if self.rate_limited:
            return _json(
                {"success": False, "error": "Request over limit", "errorCode": 429},
                429, {"retry-after": "2"},
            )
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if request.headers.get("x-api-token") != self.api_token and (
            bearer not in self.access_tokens
        ):
            return _json({
                "success": False, "error": "unauthorized access", "errorCode": 401,
                "error_info": "Please check developers.pipedrive.com",
            }, 401)
        return _json({"success": True, "data": {
            "id": 7001, "name": "Pat Pipe", "email": "pat@acme.example",
            "company_id": 42, "company_name": "Acme Robotics GmbH",
            "company_domain": "acme", "default_currency": "EUR", "locale": "en_US",
            "timezone_name": "Europe/Berlin", "active_flag": True, "is_admin": 1,
        }})

    def _token(self, request: Request) -> Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return _json({"success": False, "message": "Invalid client credentials"}, 401)
        grant = request.form.get("grant_type")
        if grant == "authorization_code" and request.form.get("code") == self.code:
            return _json(self._new_tokens())
        if grant == "refresh_token" and request.form.get("refresh_token") == self.refresh_token:
            return _json(self._new_tokens())
        return _json({"success": False, "message": "Invalid grant"}, 400)


class StripeStub:
    """GET /v1/account like Stripe, with its error shapes."""

    def __init__(self) -> None:
        self.secret_key = f"sk_test_{secrets.token_hex(12)}"
        self.restricted_key = f"rk_test_{secrets.token_hex(12)}"
        self.rate_limited = False
        self.account = json.loads(json.dumps(ACCOUNT))
        self.server = SandboxServer(self.wsgi)

    @property
    def url(self) -> str:
        return self.server.url

    @staticmethod
    def _error(status: int, message: str, type_: str = "invalid_request_error") -> Response:
        return _json({"error": {"message": message, "type": type_}}, status,
                     {"request-id": "req_" + secrets.token_hex(7)})

    def wsgi(self, environ, start_response):
        request = Request(environ)
        if request.path != "/v1/account" or request.method != "GET":
            resp = self._error(404, f"Unrecognized request URL ({request.method}: {request.path}).")
            return resp(environ, start_response)
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        masked = key[:8] + "*" * 8 + key[-4:]
        if self.rate_limited:
            resp = self._error(429, "Too many requests.", "rate_limit_error")
        elif key == self.secret_key:
            resp = _json(self.account, headers={"request-id": "req_ok"})
        elif key == self.restricted_key:
            resp = self._error(
                403,
                f"The provided key '{masked}' does not have the required permissions for this "
                f"endpoint on account '{self.account['id']}'. Having the "
                "'rak_accounts_kyc_basic_read' permission would allow this request to continue.",
            )
        else:
            resp = self._error(401, f"Invalid API Key provided: {masked}")
        return resp(environ, start_response)


def closed_port_url() -> str:
    """An address nothing listens on (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
