"""Configuration from the environment (12-factor), validated once at start-up.

Every setting is read here and nowhere else. A missing or malformed value raises
`ConfigError` naming the variable; `create_app` turns that into one clear line.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# templates/, static/ and migrations/ sit at the top of the source tree (an editable install
# runs from there); a built wheel ships them inside the package (see setup.py).
PACKAGE_DIR = Path(__file__).resolve().parent
INSTALLED = (PACKAGE_DIR / "migrations").is_dir()
RESOURCE_ROOT = PACKAGE_DIR if INSTALLED else PACKAGE_DIR.parent
# Without DESK_INSTANCE_PATH: instance/ in the source tree, or, for an installed package
# (never inside site-packages), instance/ in the directory the process was started in.
DEFAULT_INSTANCE = (Path.cwd() if INSTALLED else PACKAGE_DIR.parent) / "instance"

_DOMAIN_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_STRIPE_KEY_RE = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9]{4,}$")
_WHSEC_RE = re.compile(r"^whsec_[A-Za-z0-9+/=_-]{8,}$")


STRIPE_API_HOST = "api.stripe.com"
PIPEDRIVE_OAUTH_HOST = "oauth.pipedrive.com"
_PIPEDRIVE_HOST_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.pipedrive\.com$")
# Where each kind of base URL may point outside the sandbox profile, in words.
VENDOR_HOSTS = {
    "STRIPE_API_BASE": "https://api.stripe.com",
    "PIPEDRIVE_BASE_URL": "https://<company>.pipedrive.com or https://api.pipedrive.com",
    "PIPEDRIVE_OAUTH_BASE_URL": "https://oauth.pipedrive.com",
}


def vendor_url_problem(name: str, url: str) -> str | None:
    """Why `url` is not the vendor's own address for setting `name`, or None.

    Outside the sandbox profile the desk sends its keys only to these hosts:
    Stripe's API, a Pipedrive company (or api.pipedrive.com) and Pipedrive's
    OAuth server, over https on the default port, without a path or user info.
    """
    parts = urlsplit(url.strip().rstrip("/"))
    try:
        port = parts.port
    except ValueError:
        port = -1
    host = (parts.hostname or "").lower()
    if name == "STRIPE_API_BASE":
        allowed = host == STRIPE_API_HOST
    elif name == "PIPEDRIVE_OAUTH_BASE_URL":
        allowed = host == PIPEDRIVE_OAUTH_HOST
    else:
        allowed = bool(_PIPEDRIVE_HOST_RE.match(host)) and host != PIPEDRIVE_OAUTH_HOST
    plain = (
        parts.scheme == "https" and port is None and parts.username is None
        and parts.password is None and parts.path in ("", "/")
        and not parts.query and not parts.fragment
    )
    if allowed and plain:
        return None
    return f"must be {VENDOR_HOSTS[name]} (other addresses only in the sandbox profile)"


class ConfigError(Exception):
    """A setting is missing or malformed. The message names the variable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name
        self.problem = problem


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            name, f"must be an http(s) URL such as https://example.com, got {value!r}"
        )
    return value.rstrip("/")


def _database_url(value: str) -> str:
    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError(
            "DATABASE_URL",
            "is not a database URL (expected postgresql://user@host/db or sqlite:///path)",
        ) from None
    backend = url.get_backend_name()
    if backend == "postgresql":
        # One driver for every deployment: psycopg 3.
        url = url.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigError(
            "DATABASE_URL", f"unsupported database {backend!r}; use PostgreSQL or SQLite"
        )
    return url.render_as_string(hide_password=False)


def _instance_secret(instance: Path, filename: str, make) -> str:
    """Read a generated secret kept under instance/, creating it on first run."""
    path = instance / filename
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    value = make()
    # Created readable by the owner only: it signs sessions or decrypts stored secrets.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def _fernet_key(value: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(value.encode())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(
            "DESK_ENCRYPTION_KEY",
            "must be 32 url-safe base64-encoded bytes "
            "(make one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')",
        )
    return value


def load_settings(env: Mapping[str, str] | None = None, instance_path: Path | None = None) -> dict:
    """Build the Flask config mapping from environment variables."""
    env = os.environ if env is None else env
    instance = Path(instance_path or env.get("DESK_INSTANCE_PATH") or DEFAULT_INSTANCE)

    def get(name: str) -> str | None:
        value = env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    settings: dict = {}

    db = get("DATABASE_URL")
    settings["SQLALCHEMY_DATABASE_URI"] = (
        _database_url(db) if db else f"sqlite:///{(instance / 'billing_desk.sqlite3').as_posix()}"
    )

    secret = get("SECRET_KEY")
    if secret is not None and len(secret) < 32:
        raise ConfigError("SECRET_KEY", "must be at least 32 characters long")
    settings["SECRET_KEY"] = secret or _instance_secret(
        instance, "secret_key", lambda: secrets.token_urlsafe(48)
    )

    enc = get("DESK_ENCRYPTION_KEY")
    settings["DESK_ENCRYPTION_KEY"] = (
        _fernet_key(enc)
        if enc
        else _instance_secret(
            instance,
            "encryption_key",
            lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        )
    )

    sandbox = get("DESK_SANDBOX")
    if sandbox not in (None, "0", "1"):
        raise ConfigError("DESK_SANDBOX", "must be 0 or 1")
    # The sandbox profile (demo, tests): base URLs may point at the local sandboxes.
    # Unset: off, except when the app is created for tests (see connections.store).
    settings["DESK_SANDBOX"] = None if sandbox is None else sandbox == "1"

    def vendor(name: str, url: str | None) -> str | None:
        problem = vendor_url_problem(name, url) if url and sandbox != "1" else None
        if problem:
            raise ConfigError(name, problem)
        return url

    pd_base = get("PIPEDRIVE_BASE_URL")
    pd_domain = get("PIPEDRIVE_COMPANY_DOMAIN")
    if pd_domain is not None and not _DOMAIN_RE.match(pd_domain):
        raise ConfigError(
            "PIPEDRIVE_COMPANY_DOMAIN",
            "must be the company's subdomain only, e.g. 'acme' for acme.pipedrive.com",
        )
    if pd_base:
        settings["PIPEDRIVE_BASE_URL"] = vendor(
            "PIPEDRIVE_BASE_URL", _http_url("PIPEDRIVE_BASE_URL", pd_base)
        )
    elif pd_domain:
        settings["PIPEDRIVE_BASE_URL"] = f"https://{pd_domain}.pipedrive.com"
    else:
        settings["PIPEDRIVE_BASE_URL"] = None
    settings["PIPEDRIVE_API_TOKEN"] = get("PIPEDRIVE_API_TOKEN")
    # HTTP basic auth that Pipedrive sends with each webhook delivery.
    settings["PIPEDRIVE_WEBHOOK_USER"] = get("PIPEDRIVE_WEBHOOK_USER")
    settings["PIPEDRIVE_WEBHOOK_PASSWORD"] = get("PIPEDRIVE_WEBHOOK_PASSWORD")
    # The JWT secret of the Pipedrive app extension (deal/organization panel); unset: no panel.
    settings["PIPEDRIVE_PANEL_SECRET"] = get("PIPEDRIVE_PANEL_SECRET")
    panel_company = get("PIPEDRIVE_PANEL_COMPANY_ID")
    if panel_company is not None and not panel_company.isdigit():
        raise ConfigError("PIPEDRIVE_PANEL_COMPANY_ID", "must be the numeric Pipedrive company id")
    settings["PIPEDRIVE_PANEL_COMPANY_ID"] = int(panel_company) if panel_company else None

    stripe_key = get("STRIPE_SECRET_KEY")
    if stripe_key is not None and not _STRIPE_KEY_RE.match(stripe_key):
        raise ConfigError(
            "STRIPE_SECRET_KEY",
            "must be a Stripe secret or restricted key (sk_test_..., sk_live_..., rk_...)",
        )
    settings["STRIPE_SECRET_KEY"] = stripe_key
    settings["STRIPE_API_BASE"] = vendor("STRIPE_API_BASE", _http_url(
        "STRIPE_API_BASE", get("STRIPE_API_BASE") or "https://api.stripe.com"
    ))
    whsec = get("STRIPE_WEBHOOK_SECRET")
    if whsec is not None and not _WHSEC_RE.match(whsec):
        raise ConfigError("STRIPE_WEBHOOK_SECRET", "must be a webhook signing secret (whsec_...)")
    settings["STRIPE_WEBHOOK_SECRET"] = whsec

    # Whose calendar days decide when an invoice falls overdue (docs/payment-states.md).
    settings["DESK_TIMEZONE"] = get("DESK_TIMEZONE") or "UTC"
    try:
        ZoneInfo(settings["DESK_TIMEZONE"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("DESK_TIMEZONE", "must be a time zone such as Europe/Berlin") from None

    settings["DESK_INSTANCE_PATH"] = str(instance)
    trust = get("DESK_TRUST_PROXY") or "0"
    if trust not in ("0", "1"):
        raise ConfigError("DESK_TRUST_PROXY", "must be 0 or 1")
    settings["DESK_TRUST_PROXY"] = trust == "1"

    from app.ops.settings import ops_settings

    settings.update(ops_settings(get))  # logging (DESK_LOG_*) and the web server (DESK_WEB_*)
    return settings
