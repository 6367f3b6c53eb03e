"""“Test connection”: one harmless read against each vendor, told in plain words.

Messages never contain a secret: vendors' error texts (which may quote part of
a key) are not passed through, only facts picked out of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import requests
import stripe

from app.connections import pipedrive_auth, store
from app.connections.oauth import OAuthError

TIMEOUT = 15
STRIPE_PRODUCTION_HOST = "api.stripe.com"
_RAK_RE = re.compile(r"'(rak_[a-z0-9_]+)'")


@dataclass
class CheckResult:
    ok: bool
    message: str
    details: dict[str, str] = field(default_factory=dict)


# --- Pipedrive ------------------------------------------------------------------


def _pipedrive_get_me(base: str, headers: dict) -> requests.Response:
    # Never follow a redirect: requests would carry the x-api-token header to any host.
    return requests.get(
        f"{base}/v1/users/me", headers=headers, timeout=TIMEOUT, allow_redirects=False
    )


def check_pipedrive() -> CheckResult:
    try:
        base = store.effective("PIPEDRIVE_BASE_URL")
        if not base:
            return CheckResult(False, "Enter the company domain or base URL first, and save.")
        auth = pipedrive_auth.pipedrive_auth()
    except (store.ConnectionNotConfigured, store.SecretUnreadable) as exc:
        return CheckResult(False, str(exc) + ".")
    base = base.rstrip("/")
    try:
        resp = _pipedrive_get_me(base, pipedrive_auth.pipedrive_headers(auth))
        if resp.status_code == 401 and auth["kind"] == "oauth":
            # An expired access token: refresh once, then try again.
            resp = _pipedrive_get_me(base, pipedrive_auth.pipedrive_headers(
                {"kind": "oauth", "access_token": auth["refresh"]()}
            ))
    except OAuthError as exc:
        return CheckResult(False, str(exc))
    except requests.Timeout:
        return CheckResult(
            False, f"Could not reach Pipedrive at {base}: it did not answer in time."
        )
    except requests.RequestException:
        return CheckResult(
            False, f"Could not reach Pipedrive at {base}: check the company domain or base URL."
        )
    if resp.status_code == 401:
        if auth["kind"] == "oauth":
            return CheckResult(False, "Pipedrive rejected the OAuth access token even after a "
                                      "refresh: connect with Pipedrive again.")
        return CheckResult(
            False,
            "Pipedrive rejected the API token: check it was copied whole and belongs to "
            "this company.",
        )
    if resp.status_code == 429:
        wait = resp.headers.get("retry-after")
        when = f"in {wait} seconds" if wait and wait.isdigit() else "later"
        return CheckResult(
            False, f"Pipedrive is rate limiting this token (too many requests); try again {when}."
        )
    if resp.status_code == 404:
        return CheckResult(
            False, f"{base} does not look like a Pipedrive company address (no /v1/users/me)."
        )
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code >= 400 or not isinstance(body, dict) or not body.get("success"):
        error = body.get("error") if isinstance(body, dict) else None
        return CheckResult(
            False,
            f"Pipedrive answered HTTP {resp.status_code}"
            + (f": {error}" if isinstance(error, str) and error else "")
            + ". Check the base URL.",
        )
    data = body.get("data") or {}
    company = data.get("company_name") or data.get("company_domain") or "(unnamed company)"
    user = data.get("name") or data.get("email") or "(unnamed user)"
    return CheckResult(
        True,
        f"Connected to {company} as {user}.",
        {"company": str(company), "user": str(user),
         "auth": "OAuth" if auth["kind"] == "oauth" else "API token"},
    )


# --- Stripe ---------------------------------------------------------------------


def key_mode(key: str) -> str:
    return "live" if "_live_" in key else "test"


def is_production_api(api_base: str) -> bool:
    return api_base.rstrip("/").split("://", 1)[-1] == STRIPE_PRODUCTION_HOST


def check_stripe() -> CheckResult:
    try:
        key = store.credential("STRIPE_SECRET_KEY")
        api_base = store.destination("STRIPE_SECRET_KEY").rstrip("/")
    except store.SecretUnreadable as exc:
        return CheckResult(False, str(exc) + ".")
    if not key:
        return CheckResult(
            False, "Enter the Stripe secret key (or restricted key) first, and save."
        )
    mode = key_mode(key)
    if mode == "live" and not is_production_api(api_base):
        return CheckResult(
            False,
            f"This is a live key, but the Stripe API base is the test sandbox at {api_base}: "
            "use a test key (sk_test_… or rk_test_…) there.",
        )
    client = stripe.StripeClient(key, base_addresses={"api": api_base}, max_network_retries=0)
    try:
        account = client.v1.accounts.retrieve_current()
    except stripe.AuthenticationError:
        return CheckResult(
            False,
            "Stripe rejected the key: check it was copied whole (it starts with sk_ or rk_) "
            "and has not been rolled or deleted in the Stripe dashboard.",
        )
    except stripe.PermissionError as exc:
        found = _RAK_RE.search(exc.user_message or "")
        missing = found.group(1) if found else None
        return CheckResult(
            False,
            "This restricted key lacks a permission the desk needs"
            + (f": Stripe asks for “{missing}”." if missing else ".")
            + " Edit the key in the Stripe dashboard and grant the permissions listed below.",
            {"missing": missing or ""},
        )
    except stripe.RateLimitError:
        return CheckResult(False, "Stripe is rate limiting this key; try again in a minute.")
    except stripe.APIConnectionError:
        return CheckResult(False, f"Could not reach Stripe at {api_base}.")
    except stripe.StripeError as exc:
        return CheckResult(
            False, f"Stripe answered HTTP {exc.http_status or '?'}: the key could not be checked."
        )
    account = account.to_dict()  # StripeObject is not a dict in SDK 16
    dashboard = (account.get("settings") or {}).get("dashboard") or {}
    profile = account.get("business_profile") or {}
    name = (
        dashboard.get("display_name") or profile.get("name")
        or account.get("email") or account.get("id")
    )
    livemode = account.get("livemode")
    if livemode is not None and bool(livemode) != (mode == "live"):
        mode = "live" if livemode else "test"
    kind = "restricted key" if key.startswith("rk_") else "secret key"
    return CheckResult(
        True,
        f"Connected to {name} ({mode} mode, {kind}).",
        {"account": str(name), "mode": mode, "id": str(account.get("id") or "")},
    )


# What a restricted key (rk_...) must be granted in the Stripe dashboard
# (Developers → API keys → Create restricted key) for the desk to work.
STRIPE_RESTRICTED_PERMISSIONS: list[tuple[str, str, str]] = [
    ("Customers", "Write", "find or create the customer of each deal"),
    ("Invoices", "Write", "create, finalise and send invoices"),
    ("Invoice items", "Write", "add the deal's lines to an invoice"),
    ("Tax rates", "Write", "apply the deal's tax"),
    ("Products", "Write", "match deal products to Stripe products"),
    ("Prices", "Write", "price each invoice line"),
    ("Credit notes", "Read", "see credits against invoices"),
    ("Events", "Read", "catch up on payments missed by webhooks"),
    ("Webhook endpoints", "Read", "check the desk's webhook is set up"),
    ("Account (your own details)", "Read", "“Test connection” shows the account's name"),
]
